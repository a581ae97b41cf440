/**
 * The guard around real openai-node and @anthropic-ai/sdk calls, against a live creditgate and
 * a local stand-in for the providers: the charge is the card's price of the usage the answer
 * reports; a decline stops the call before the provider sees it; a stream settles once.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

import { Declined, Usage, type Client, type FetchLike, type Guard } from "../src/index.js";
import { live, priceOf, type Context } from "./support/context.js";
import { ANTHROPIC_USAGE, startProvider, type Provider } from "./support/provider.js";

let provider: Provider;
let ctx: Context;
let openai: OpenAI;
let anthropic: Anthropic;
const settles: string[] = [];
const warnings: string[] = [];
let cg: Client;

before(async () => {
  provider = await startProvider();
  ctx = await live();
  openai = new OpenAI({ apiKey: "sk-test", baseURL: `${provider.baseUrl}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: "sk-ant-test", baseURL: provider.baseUrl, maxRetries: 0 });
  const counting: FetchLike = (url, init) => {
    if (url.endsWith("/settle")) settles.push(url);
    return fetch(url, init);
  };
  cg = ctx.client({ fetch: counting, logger: { warn: (m) => warnings.push(m) } });
});
after(() => provider.close());

const CHAT = { input_tokens: 200, cached_tokens: 1_000, output_tokens: 300 };
const MESSAGE = { input_tokens: 50, cached_tokens: 2_000, cache_write_tokens: 300, output_tokens: 200 };
const RESPONSE = { input_tokens: 388, cached_tokens: 512, output_tokens: 250 };

async function available(who: string): Promise<bigint> {
  return (await cg.balance(who, "credits")).available;
}

async function held(who: string): Promise<bigint> {
  return (await cg.balance(who, "credits")).held;
}

const options = (customer: string, model: string) => ({
  customer,
  action: "chat.completion",
  model,
  inputTokens: 1_200,
  maxTokens: 800,
});

test("an OpenAI chat completion is charged the card's price of its usage", async () => {
  const who = await ctx.customer(100_000);
  let guard: Guard | undefined;
  const completion = await cg.guard(options(who, "gpt-4.1"), (g) => {
    guard = g;
    return openai.chat.completions.create({ model: "gpt-4.1", messages: [{ role: "user", content: "Hi" }], max_tokens: 800 });
  });
  assert.equal(completion.choices[0]?.message.content, "Hello!");
  assert.equal(guard?.status, "settled");
  assert.equal(guard?.settlement?.charge.amount, priceOf(CHAT));
  assert.deepEqual(guard?.usage?.counts(), { ...CHAT, cache_write_tokens: 0, reasoning_tokens: 0 });
  assert.equal(await available(who), 100_000n - priceOf(CHAT));
  assert.equal(await held(who), 0n);
});

test("an OpenAI stream settles once, when it ends, from its usage chunk", async () => {
  const who = await ctx.customer(100_000);
  let guard: Guard | undefined;
  const stream = await cg.guard(options(who, "gpt-4.1"), (g) => {
    guard = g;
    return openai.chat.completions.create({
      model: "gpt-4.1",
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
  });
  assert.equal(guard?.status, "pending");
  const before = settles.length;
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
  assert.equal(text, "Hello!");
  assert.equal(guard?.status, "settled");
  assert.equal(settles.length - before, 1);
  assert.equal(guard?.settlement?.charge.amount, priceOf(CHAT));
  assert.equal(await available(who), 100_000n - priceOf(CHAT));
});

test("an OpenAI stream without its usage chunk is voided, and says the call went unbilled", async () => {
  const who = await ctx.customer(100_000);
  warnings.length = 0;
  const stream = await cg.guard(options(who, "gpt-4.1"), () =>
    openai.chat.completions.create({ model: "gpt-4.1", messages: [{ role: "user", content: "Hi" }], stream: true }),
  );
  for await (const _ of stream) {
    // read to the end
  }
  assert.equal(await held(who), 0n);
  assert.equal(await available(who), 100_000n);
  assert.match(warnings.join("\n"), /unbilled/);
});

test("an OpenAI Responses API answer is charged by the same rule", async () => {
  const who = await ctx.customer(100_000);
  await cg.guard(options(who, "gpt-4.1"), () => openai.responses.create({ model: "gpt-4.1", input: "Hi" }));
  assert.equal(await available(who), 100_000n - priceOf(RESPONSE));
});

test("an Anthropic message, its raw stream and its MessageStream are charged alike, once each", async () => {
  const who = await ctx.customer(1_000_000);
  const request = { model: "claude-sonnet-4-5", max_tokens: 800, messages: [{ role: "user" as const, content: "Hi" }] };

  const message = await cg.guard(options(who, "claude-sonnet-4-5"), () => anthropic.messages.create(request));
  assert.deepEqual(message.usage, { ...message.usage, ...ANTHROPIC_USAGE });
  assert.equal(await available(who), 1_000_000n - priceOf(MESSAGE));

  let before = settles.length;
  const raw = await cg.guard(options(who, "claude-sonnet-4-5"), () => anthropic.messages.create({ ...request, stream: true }));
  for await (const _ of raw) {
    // read to the end
  }
  assert.equal(settles.length - before, 1);
  assert.equal(await available(who), 1_000_000n - 2n * priceOf(MESSAGE));

  before = settles.length;
  let guard: Guard | undefined;
  const helper = await cg.guard(options(who, "claude-sonnet-4-5"), (g) => {
    guard = g;
    return anthropic.messages.stream(request);
  });
  const final = await helper.finalMessage();
  assert.equal(final.usage.output_tokens, 200);
  for (let i = 0; i < 100 && guard?.status === "pending"; i++) await new Promise((ok) => setTimeout(ok, 20));
  assert.equal(guard?.status, "settled");
  assert.equal(settles.length - before, 1);
  assert.equal(await available(who), 1_000_000n - 3n * priceOf(MESSAGE));
});

test("a decline throws Declined before the provider is called", async () => {
  const who = await ctx.customer(10);
  const calls = provider.calls.length;
  let ran = false;
  await assert.rejects(
    cg.guard(options(who, "gpt-4.1"), () => {
      ran = true;
      return openai.chat.completions.create({ model: "gpt-4.1", messages: [{ role: "user", content: "Hi" }] });
    }),
    (error: unknown) => {
      assert.ok(error instanceof Declined);
      assert.equal(error.reason, "insufficient_funds");
      assert.equal(error.available, 10n);
      return true;
    },
  );
  assert.equal(ran, false);
  assert.equal(provider.calls.length, calls);
});

test("a failing provider call voids the hold and rethrows its error", async () => {
  const who = await ctx.customer(100_000);
  provider.failNext(400);
  await assert.rejects(
    cg.guard(options(who, "gpt-4.1"), () =>
      openai.chat.completions.create({ model: "gpt-4.1", messages: [{ role: "user", content: "Hi" }] }),
    ),
    OpenAI.BadRequestError,
  );
  assert.equal(await held(who), 0n);
  assert.equal(await available(who), 100_000n);
});

test("a hold by hand: settle with counts, or close without settling to void it", async () => {
  const who = await ctx.customer(100_000);
  const g = await cg.hold({ customer: who, action: "chat.completion", maxTokens: 100 });
  await g.settle({ input_tokens: 10, output_tokens: 10, cache_write_tokens: 1_000 });
  assert.equal(g.settlement?.charge.amount, priceOf({ input_tokens: 10, output_tokens: 10, cache_write_tokens: 1_000 }));
  await g.close();

  const flat = await cg.hold({ customer: who, action: "image.generate" });
  await flat.settle(); // priced flat by the card
  assert.equal(flat.settlement?.charge.amount, 500n);

  const priced = await cg.hold({
    customer: who,
    price: (u: Usage) => BigInt(u.input_tokens + u.output_tokens),
    inputTokens: 100,
    maxTokens: 100,
  });
  assert.equal(priced.amount, 200n);
  await priced.settle({ input_tokens: 30, output_tokens: 12 });
  assert.equal(priced.settlement?.charge.amount, 42n);

  warnings.length = 0;
  const unused = await cg.hold({ customer: who, asset: "credits", amount: 100 });
  await unused.close();
  assert.equal(unused.status, "voided");
  assert.match(warnings.join("\n"), /unbilled/);
});

test("the hold, the settle and the void use the guard's key, and :settle / :void after it", async () => {
  const keys: string[] = [];
  const recording = ctx.client({
    fetch: (url, init) => {
      const key = new Headers(init.headers).get("idempotency-key");
      if (key && url.includes("/v1/authorizations")) keys.push(key);
      return fetch(url, init);
    },
  });
  const who = await ctx.customer(100_000);
  await recording.guard({ ...options(who, "gpt-4.1"), idempotencyKey: "req-7" }, () =>
    openai.chat.completions.create({ model: "gpt-4.1", messages: [{ role: "user", content: "Hi" }] }),
  );
  const g = await recording.hold({ customer: who, asset: "credits", amount: 5, idempotencyKey: "req-8" });
  await g.void();
  assert.deepEqual(keys, ["req-7", "req-7:settle", "req-8", "req-8:void"]);
  // the same guard key again is a replay: the first hold's answer, nothing held twice
  const again = await recording.hold({ customer: who, asset: "credits", amount: 5, idempotencyKey: "req-9" });
  const replay = await recording.authorize({ customer: who, asset: "credits", amount: 5 }, { idempotencyKey: "req-9" });
  assert.equal(replay.id, again.authorization?.id);
  await again.void();
});
