/**
 * The Supabase edge-function example run as written under Deno (the `deno` binary comes with
 * the locked dev dependencies): it streams the stand-in provider's answer and the customer is
 * charged the card's price of the stream's usage, once; a customer without credit gets 402 and
 * the provider sees nothing. The example's `npm:` imports are mapped to this package's build and
 * the installed openai package, so Deno downloads nothing.
 */

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";

import { live, priceOf, type Context } from "./support/context.js";
import { packageRoot } from "./support/live.js";
import { startProvider, type Provider } from "./support/provider.js";

const root = packageRoot();
const deno = join(root, "node_modules", ".bin", "deno");
const example = join(root, "examples", "supabase", "functions", "chat", "index.ts");

let provider: Provider;
let ctx: Context;
let child: ChildProcess | undefined;
let baseUrl = "";
const work = mkdtempSync(join(root, "build", "deno-"));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

before(async () => {
  assert.ok(existsSync(deno), `${deno} is missing: npm ci installs it with the dev dependencies`);
  provider = await startProvider();
  ctx = await live();
  const importMap = join(work, "import_map.json");
  writeFileSync(
    importMap,
    JSON.stringify({
      imports: {
        "npm:@creditgate/client": pathToFileURL(join(root, "build", "src", "index.js")).href,
        "npm:openai": pathToFileURL(join(root, "node_modules", "openai", "index.mjs")).href,
      },
    }),
  );
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  child = spawn(
    deno,
    ["run", "--quiet", "--no-config", "--no-remote", "--no-npm", "--no-lock", `--import-map=${importMap}`,
      "--allow-net", "--allow-env", "--allow-read", example],
    {
      cwd: work,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        PATH: process.env.PATH ?? "",
        HOME: work,
        DENO_DIR: join(work, "cache"),
        DENO_NO_UPDATE_CHECK: "1",
        DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${port}`, // where Deno.serve() listens
        CREDITGATE_BASE_URL: ctx.baseUrl,
        CREDITGATE_API_KEY: ctx.apiKey,
        OPENAI_API_KEY: "sk-test",
        OPENAI_BASE_URL: `${provider.baseUrl}/v1`,
      },
    },
  );
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) assert.fail(`deno exited ${child.exitCode}: ${output}`);
    try {
      await fetch(baseUrl, { method: "OPTIONS" });
      break;
    } catch {
      if (Date.now() > deadline) assert.fail(`the edge function did not start: ${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

after(async () => {
  child?.kill("SIGTERM");
  await provider?.close();
  rmSync(work, { recursive: true, force: true });
});

async function call(customer: string): Promise<Response> {
  return fetch(baseUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ customer, prompt: "Hi" }),
  });
}

test("under Deno, the edge function streams the answer and charges its usage once", async () => {
  const who = await ctx.customer(100_000);
  const before = provider.calls.length;
  const res = await call(who);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "Hello!");
  assert.equal(provider.calls.length - before, 1);
  const cg = ctx.client();
  // The stand-in reports 1,200 prompt tokens (1,000 cached) and 300 completion tokens.
  const cost = priceOf({ input_tokens: 200, cached_tokens: 1_000, output_tokens: 300 });
  const balance = await cg.balance(who, "credits");
  assert.equal(balance.available, 100_000n - cost);
  assert.equal(balance.held, 0n);
});

test("under Deno, a customer without credit gets 402 and the provider sees nothing", async () => {
  const who = await ctx.customer(0);
  const before = provider.calls.length;
  const res = await call(who);
  assert.equal(res.status, 402);
  assert.deepEqual(await res.json(), { error: "out of credits" });
  assert.equal(provider.calls.length, before);
});
