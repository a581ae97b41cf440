import assert from "node:assert/strict";
import { test } from "node:test";

import { UnsafeNumberError, parseJson, stringifyJson } from "../src/index.js";

test("integers are read as bigint without lost digits, whatever their size", () => {
  const text = '{"amount": 9223372036854775807, "small": 12, "neg": -9007199254740993, "f": 1.5, "e": 1e2}';
  const data = parseJson(text) as Record<string, unknown>;
  assert.equal(data.amount, 9223372036854775807n);
  assert.equal(data.small, 12n);
  assert.equal(data.neg, -9007199254740993n);
  assert.equal(data.f, 1.5);
  assert.equal(data.e, 100);
  // JSON.parse would have lost the last digits
  assert.notEqual(BigInt((JSON.parse(text) as { amount: number }).amount), 9223372036854775807n);
});

test("the rest of JSON reads as JSON.parse reads it", () => {
  const samples = [
    '{"a": [1.25, "x\\u00e9\\n\\"", true, false, null, {}], "b": {"c": []}}',
    '  "plain"  ',
    "[]",
    '{"__proto__": {"polluted": 1.5}}',
  ];
  for (const text of samples) {
    const ours = JSON.stringify(parseJson(text), (_k, v) => (typeof v === "bigint" ? Number(v) : v));
    assert.equal(ours, JSON.stringify(JSON.parse(text)));
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  for (const bad of ["{", '{"a" 1}', "[1,]", "01", "1 2", '"open', "nul", "-", ""]) {
    assert.throws(() => parseJson(bad), SyntaxError, bad);
  }
});

test("requests write bigint as digits and refuse lossy or fractional numbers", () => {
  assert.equal(
    stringifyJson({ amount: 2n ** 63n - 1n, n: 5, skip: undefined, at: new Date(0) }),
    '{"amount":9223372036854775807,"n":5,"at":"1970-01-01T00:00:00.000Z"}',
  );
  assert.throws(() => stringifyJson({ amount: 1.5 }), UnsafeNumberError);
  assert.throws(() => stringifyJson({ amount: 2 ** 53 }), /amount/);
  assert.throws(() => stringifyJson({ quantities: { input_tokens: Number.NaN } }), /quantities.input_tokens/);
  // metadata keeps its numbers as JSON numbers
  assert.equal(stringifyJson({ metadata: { temperature: 0.7 } }), '{"metadata":{"temperature":0.7}}');
});
