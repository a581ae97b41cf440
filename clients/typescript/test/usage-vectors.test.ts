/**
 * The usage mapping of every vendor, from the vectors the Python SDK's tests use too
 * (tests/fixtures/usage_vectors.json): each raw usage read bare, inside a whole answer and as
 * the events of a stream, the way openai-node and @anthropic-ai/sdk hand them over (parsed
 * JSON); and through the guard, whose settle sends the mapped quantities to the live server.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { ImpossibleUsage, PRICED_TOKENS, Usage, usageFrom, usageOf } from "../src/index.js";
import { live, priceOf } from "./support/context.js";
import { repoRoot } from "./support/live.js";

interface Vector {
  name: string;
  vendor: "openai" | "anthropic" | "creditgate";
  api: string;
  model?: string;
  usage: Record<string, unknown>;
  expected?: Record<string, number>;
  error?: { code: string; field: string };
}

const VECTORS = (
  JSON.parse(readFileSync(join(repoRoot(), "tests/fixtures/usage_vectors.json"), "utf8")) as {
    vectors: Vector[];
  }
).vectors;

/** The answers that carry the usage: a whole response, and the events of its stream. */
function answers(v: Vector): unknown[][] {
  const raw = v.usage;
  const model = v.model ?? "some-model";
  if (v.api === "chat.completions") {
    const common = { id: "chatcmpl-1", created: 1_767_268_800, model, choices: [] };
    return [
      [{ object: "chat.completion", usage: raw, ...common }],
      [
        { object: "chat.completion.chunk", usage: null, ...common },
        { object: "chat.completion.chunk", usage: raw, ...common },
      ],
    ];
  }
  if (v.api === "responses") {
    const response = { id: "resp_1", object: "response", model, status: "completed", output: [], usage: raw };
    return [[response], [{ type: "response.created", response: { ...response, usage: null } }, { type: "response.completed", response, sequence_number: 1 }]];
  }
  const message = { id: "msg_01", type: "message", role: "assistant", model, content: [], usage: raw };
  return [
    [message],
    [
      { type: "message_start", message },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "hi" } },
      { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: raw },
      { type: "message_stop" },
    ],
  ];
}

const counts = (u: Usage) => u.counts();

for (const v of VECTORS.filter((v) => v.vendor !== "creditgate")) {
  test(`vector: ${v.name}`, () => {
    if (v.expected) {
      assert.deepEqual(counts(usageOf(v.usage)), v.expected);
      for (const items of answers(v)) assert.deepEqual(counts(usageFrom(...items)), v.expected);
      const sent = Object.fromEntries(
        PRICED_TOKENS.filter((n) => v.expected![n]).map((n) => [n, v.expected![n]]),
      );
      assert.deepEqual(usageOf(v.usage).asQuantities(), sent);
    } else {
      for (const items of [[v.usage], ...answers(v)]) {
        assert.throws(
          () => usageFrom(...items),
          (error: unknown) => {
            assert.ok(error instanceof ImpossibleUsage);
            assert.equal(error.code, v.error!.code);
            assert.equal(error.field, v.error!.field);
            assert.ok(error.source?.includes(v.vendor));
            assert.ok(error.message.includes(v.error!.field));
            return true;
          },
        );
      }
    }
  });
}

for (const v of VECTORS.filter((v) => v.vendor === "creditgate")) {
  test(`vector: ${v.name}`, () => {
    if (v.expected) assert.deepEqual(counts(new Usage(v.usage)), v.expected);
    else {
      assert.throws(
        () => new Usage(v.usage),
        (e: unknown) => e instanceof ImpossibleUsage && e.code === v.error!.code && e.field === v.error!.field,
      );
    }
  });
}

test("the guard settles each vector's mapped quantities, priced by the card; impossible usage voids", async () => {
  const ctx = await live();
  const cg = ctx.client();
  const who = await ctx.customer(100_000_000);
  for (const v of VECTORS) {
    const call = () => (v.vendor === "creditgate" ? v.usage : answers(v)[0]![0]);
    const before = (await cg.balance(who, "credits")).available;
    if (v.expected) {
      let guard: { settlement: unknown } | undefined;
      await cg.guard({ customer: who, action: "chat.completion", model: "gpt-4.1", maxTokens: 10 }, async (g) => {
        guard = g;
        if (v.vendor === "creditgate") await g.settle(v.usage);
        return call();
      });
      const settlement = (guard!.settlement as { charge: { amount: bigint; quantities: Record<string, string> | null } });
      const expected = v.expected;
      assert.equal(settlement.charge.amount, priceOf(expected), v.name);
      const sent = Object.fromEntries(
        PRICED_TOKENS.filter((n) => expected[n]).map((n) => [n, String(expected[n])]),
      );
      assert.deepEqual(settlement.charge.quantities, sent, v.name);
      assert.equal((await cg.balance(who, "credits")).available, before - priceOf(expected));
    } else {
      await assert.rejects(
        cg.guard({ customer: who, action: "chat.completion", model: "gpt-4.1", maxTokens: 10 }, async (g) => {
          if (v.vendor === "creditgate") await g.settle(v.usage);
          return call();
        }),
        ImpossibleUsage,
      );
      const after = await cg.balance(who, "credits");
      assert.equal(after.available, before, v.name);
      assert.equal(after.held, 0n, v.name);
    }
  }
});
