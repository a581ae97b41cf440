/**
 * The live server the tests share: the one `scripts/test.mjs` started (its address and key in
 * $CREDITGATE_TEST_BASE_URL and $CREDITGATE_TEST_API_KEY), or one started here for a test file
 * run alone. Either way it has the asset and the rate card of prepare.ts.
 */

import { after } from "node:test";

import { Client, type ClientOptions } from "../../src/index.js";
import { startServer } from "./live.js";
import { prepare } from "./prepare.js";

export { CARD, priceOf } from "./prepare.js";

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
