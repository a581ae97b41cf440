/**
 * The examples run as written under Deno (the `deno` binary comes with the locked dev
 * dependencies): the Supabase edge function, and the Next.js route handler's `POST` served by
 * a two-line Deno.serve driver (a route handler is a function of a web Request). Each charges
 * the card's price of the stand-in provider's usage, once; a customer without credit gets 402
 * and the provider sees nothing. The examples' imports are mapped to this package's build and
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

interface Served {
  child: ChildProcess;
  baseUrl: string;
}

const served: Record<string, Served> = {};

async function serveUnderDeno(entry: string, importMap: string): Promise<Served> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const child = spawn(
    deno,
    ["run", "--quiet", "--no-config", "--no-remote", "--no-npm", "--no-lock", `--import-map=${importMap}`,
      "--allow-net", "--allow-env", "--allow-read", entry],
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
      return { child, baseUrl };
    } catch {
      if (Date.now() > deadline) assert.fail(`${entry} did not start under deno: ${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

before(async () => {
  assert.ok(existsSync(deno), `${deno} is missing: npm ci installs it with the dev dependencies`);
  provider = await startProvider();
  ctx = await live();
  const client = pathToFileURL(join(root, "build", "src", "index.js")).href;
  const openai = pathToFileURL(join(root, "node_modules", "openai", "index.mjs")).href;
  const importMap = join(work, "import_map.json");
  writeFileSync(
    importMap,
    JSON.stringify({
      imports: {
        "npm:@creditgate/client": client,
        "npm:openai": openai,
        "@creditgate/client": client,
        openai: openai,
      },
    }),
  );
  const route = pathToFileURL(join(root, "examples", "nextjs", "app", "api", "chat", "route.ts")).href;
  const driver = join(work, "nextjs.ts");
  writeFileSync(driver, `import { POST } from "${route}";\nDeno.serve((request: Request) => POST(request));\n`);
  const [supabase, nextjs] = await Promise.all([
    serveUnderDeno(example, importMap),
    serveUnderDeno(driver, importMap),
  ]);
  served.supabase = supabase;
  served.nextjs = nextjs;
});

after(async () => {
  for (const { child } of Object.values(served)) child.kill("SIGTERM");
  await provider?.close();
  rmSync(work, { recursive: true, force: true });
});

async function call(customer: string, example = "supabase"): Promise<Response> {
  return fetch(served[example]!.baseUrl, {
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

test("under Deno, the Next.js route handler answers and charges the completion's usage once", async () => {
  const who = await ctx.customer(100_000);
  const before = provider.calls.length;
  const res = await call(who, "nextjs");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { answer: "Hello!" });
  assert.equal(provider.calls.length - before, 1);
  const cost = priceOf({ input_tokens: 200, cached_tokens: 1_000, output_tokens: 300 });
  const balance = await ctx.client().balance(who, "credits");
  assert.equal(balance.available, 100_000n - cost);
  assert.equal(balance.held, 0n);
});

test("under Deno, the Next.js route handler answers 402 with the available balance when declined", async () => {
  const who = await ctx.customer(0);
  const before = provider.calls.length;
  const res = await call(who, "nextjs");
  assert.equal(res.status, 402);
  assert.deepEqual(await res.json(), { error: "out of credits", available: "0" });
  assert.equal(provider.calls.length, before);
});
