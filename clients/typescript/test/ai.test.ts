/**
 * creditgateMiddleware with the AI SDK's wrapLanguageModel and its mock language model:
 * held before doGenerate/doStream, settled from the usage reported (a stream's finish part
 * included), a decline thrown before the model is called.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { generateText, streamText, wrapLanguageModel } from "ai";
import { MockLanguageModelV3, simulateReadableStream } from "ai/test";

import { Declined, creditgateMiddleware } from "../src/index.js";
import { live, priceOf } from "./support/context.js";

const USAGE = {
  inputTokens: { total: 1_200, noCache: 200, cacheRead: 1_000, cacheWrite: undefined },
  outputTokens: { total: 300, text: 250, reasoning: 50 },
};
const CHARGED = priceOf({ input_tokens: 200, cached_tokens: 1_000, output_tokens: 300 });

function mock() {
  return new MockLanguageModelV3({
    modelId: "gpt-4.1",
    doGenerate: async () => ({
      content: [{ type: "text", text: "Hello!" }],
      finishReason: { unified: "stop", raw: "stop" },
      usage: USAGE,
      warnings: [],
    }),
    doStream: async () => ({
      stream: simulateReadableStream({
        chunks: [
          { type: "text-start", id: "1" },
          { type: "text-delta", id: "1", delta: "Hel" },
          { type: "text-delta", id: "1", delta: "lo!" },
          { type: "text-end", id: "1" },
          { type: "finish", finishReason: { unified: "stop", raw: "stop" }, usage: USAGE },
        ],
      }),
    }),
  });
}

test("generateText is held before the model and charged the card's price of its usage", async () => {
  const ctx = await live();
  const cg = ctx.client();
  const who = await ctx.customer(100_000);
  const model = mock();
  const wrapped = wrapLanguageModel({
    model,
    middleware: creditgateMiddleware({ client: cg, customer: who, action: "chat.completion" }),
  });
  const { text } = await generateText({ model: wrapped, prompt: "Say hello", maxOutputTokens: 500 });
  assert.equal(text, "Hello!");
  assert.equal(model.doGenerateCalls.length, 1);
  const balance = await cg.balance(who, "credits");
  assert.equal(balance.available, 100_000n - CHARGED);
  assert.equal(balance.held, 0n);
});

test("streamText settles once from the stream's finish part", async () => {
  const ctx = await live();
  const settles: string[] = [];
  const cg = ctx.client({
    fetch: (url, init) => {
      if (url.endsWith("/settle")) settles.push(url);
      return fetch(url, init);
    },
  });
  const who = await ctx.customer(100_000);
  const wrapped = wrapLanguageModel({
    model: mock(),
    middleware: creditgateMiddleware({ client: cg, customer: () => who, action: "chat.completion" }),
  });
  const result = streamText({ model: wrapped, prompt: "Say hello", maxOutputTokens: 500 });
  let text = "";
  for await (const part of result.textStream) text += part;
  assert.equal(text, "Hello!");
  await result.usage;
  assert.equal(settles.length, 1);
  assert.equal((await cg.balance(who, "credits")).available, 100_000n - CHARGED);
});

test("a decline throws Declined before the model is called", async () => {
  const ctx = await live();
  const cg = ctx.client();
  const who = await ctx.customer(1);
  const model = mock();
  const wrapped = wrapLanguageModel({
    model,
    middleware: creditgateMiddleware({ client: cg, customer: who, action: "chat.completion" }),
  });
  await assert.rejects(generateText({ model: wrapped, prompt: "Say hello", maxOutputTokens: 500, maxRetries: 0 }), (error: unknown) => {
    const found = error instanceof Declined ? error : (error as { cause?: unknown }).cause;
    assert.ok(found instanceof Declined, String(error));
    return true;
  });
  assert.equal(model.doGenerateCalls.length, 0);
  const failing = streamText({ model: wrapped, prompt: "Say hello", maxOutputTokens: 500, onError: () => undefined });
  await assert.rejects((async () => {
    for await (const _ of failing.textStream) {
      // nothing arrives
    }
    await failing.text;
  })());
  assert.equal(model.doStreamCalls.length, 0);
});
