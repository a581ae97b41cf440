/** The asset and the rate card every test server has (no test-runner imports here: the
 * runner script prepares its server with this before the tests start). */

import { AlreadyExists, Client } from "../../src/index.js";

/** Credits at scale 2; per token, in hundredths of a credit: input 0.1, cached 0.01,
 * cache writes 0.125, output 0.4. Images are priced flat at 5 credits. */
export const CARD = {
  asset: "credits",
  rounding: "up",
  actions: {
    "chat.completion": {
      prices: [
        {
          match: {},
          per_unit: {
            input_tokens: "0.001",
            cached_tokens: "0.0001",
            cache_write_tokens: "0.00125",
            output_tokens: "0.004",
          },
        },
      ],
    },
    "image.generate": { prices: [{ match: {}, flat: "5" }] },
  },
};

/** The card's price of token usage, in minor units, rounded up, in integers only. */
export function priceOf(q: {
  input_tokens?: number;
  cached_tokens?: number;
  cache_write_tokens?: number;
  output_tokens?: number;
}): bigint {
  // thousandths of a minor unit per token
  const milli =
    BigInt(q.input_tokens ?? 0) * 100n +
    BigInt(q.cached_tokens ?? 0) * 10n +
    BigInt(q.cache_write_tokens ?? 0) * 125n +
    BigInt(q.output_tokens ?? 0) * 400n;
  return (milli + 999n) / 1000n;
}

/** The asset and the card, on a server made for the tests. */
export async function prepare(baseUrl: string, apiKey: string): Promise<void> {
  const admin = new Client({ baseUrl, apiKey });
  try {
    await admin.createAsset({ code: "credits", scale: 2, name: "Credits" });
  } catch (error) {
    if (!(error instanceof AlreadyExists)) throw error;
  }
  await admin.publishRateCard({ spec: CARD });
}
