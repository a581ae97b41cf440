/**
 * The live server the tests share: the one `scripts/test.mjs` started (its address and key in
 * $CREDITGATE_TEST_BASE_URL and $CREDITGATE_TEST_API_KEY), or one started here for a test file
 * run alone. Either way it has the asset and the rate card below.
 */

import { after } from "node:test";

import { AlreadyExists, Client, type ClientOptions } from "../../src/index.js";
import { startServer } from "./live.js";

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

export interface Context {
  baseUrl: string;
  apiKey: string;
  client(options?: ClientOptions): Client;
  /** A new customer with `grant` minor units of credits. */
  customer(grant?: number | bigint, policy?: "block" | "overdraft" | "allow"): Promise<string>;
}

let shared: Promise<Context> | undefined;
let stopServer: (() => Promise<void>) | undefined;

// Registered as the test file loads this module, so it runs after the file's last test.
after(async () => {
  await stopServer?.();
});

export function live(): Promise<Context> {
  shared ??= make();
  return shared;
}

async function make(): Promise<Context> {
  let baseUrl = process.env.CREDITGATE_TEST_BASE_URL;
  let apiKey = process.env.CREDITGATE_TEST_API_KEY;
  if (!baseUrl || !apiKey) {
    const server = await startServer();
    stopServer = () => server.stop();
    baseUrl = server.baseUrl;
    apiKey = server.apiKey;
    await prepare(baseUrl, apiKey);
  }
  const url = baseUrl;
  const key = apiKey;
  const client = (options: ClientOptions = {}): Client =>
    new Client({ baseUrl: url, apiKey: key, retry: { initialBackoffMs: 10 }, ...options });
  const admin = client();
  let n = 0;
  return {
    baseUrl: url,
    apiKey: key,
    client,
    async customer(grant = 100_000, policy?: "block" | "overdraft" | "allow") {
      const id = `cust_${Date.now().toString(36)}_${(n++).toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
      await admin.createCustomer(policy ? { id, policy } : { id });
      if (BigInt(grant) > 0n) {
        await admin.grant(id, { asset: "credits", amount: grant, kind: "purchased" });
      }
      return id;
    },
  };
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
