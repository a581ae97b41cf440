import assert from "node:assert/strict";
import { test } from "node:test";

import {
  APIConnectionError,
  Client,
  InvalidRequest,
  NoPrice,
  UnknownCustomer,
  HoldAlreadySettled,
  type FetchLike,
} from "../src/index.js";
import { live, priceOf } from "./support/context.js";

test("authorize, settle, void and charge against a live server", async () => {
  const ctx = await live();
  const cg = ctx.client();
  const who = await ctx.customer(10_000);

  const auth = await cg.authorize({ customer: who, asset: "credits", amount: 1_200 });
  assert.equal(auth.status, "pending");
  assert.equal(auth.approved, true);
  assert.equal(auth.amount, 1_200n);
  assert.equal(auth.available, 8_800n);

  const settled = await cg.settle(auth.id, { amount: 950 });
  assert.equal(settled.charge.amount, 950n);
  assert.equal((await cg.balance(who, "credits")).available, 9_050n);
  await assert.rejects(cg.settle(auth.id, { amount: 1 }), HoldAlreadySettled);

  const other = await cg.authorize({ customer: who, asset: "credits", amount: 500 });
  const voided = await cg.void(other.id);
  assert.equal(voided.status, "voided");

  const charge = await cg.charge({
    customer: who,
    action: "chat.completion",
    quantities: { input_tokens: 1_000, output_tokens: 250 },
  });
  assert.equal(charge.amount, priceOf({ input_tokens: 1_000, output_tokens: 250 }));

  const declined = await cg.authorize({ customer: who, asset: "credits", amount: 1_000_000 });
  assert.equal(declined.approved, false);
  assert.equal(declined.status, "declined");
  assert.equal(declined.decline_reason, "insufficient_funds");
});

test("batch charges, grants, quotes, customers, wallets and portal sessions", async () => {
  const ctx = await live();
  const cg = ctx.client();
  const who = await ctx.customer(5_000);

  const items = await cg.chargeBatch([
    { customer: who, asset: "credits", amount: 100 },
    { customer: who, action: "image.generate" },
    { customer: who, asset: "credits", amount: 1_000_000 },
  ]);
  assert.deepEqual(
    items.map((i) => i.status),
    ["posted", "posted", "declined"],
  );
  assert.equal(items[1]?.charge?.amount, 500n);

  const lot = await cg.grant(who, { asset: "credits", amount: 250, kind: "promotional" });
  assert.equal(lot.amount, 250n);
  const lots = await cg.grants(who);
  assert.ok(lots.some((l) => l.id === lot.id));

  const quote = await cg.quote({
    action: "chat.completion",
    quantities: { input_tokens: 1_000, cached_tokens: 2_000, output_tokens: 10 },
  });
  assert.equal(quote.amount, priceOf({ input_tokens: 1_000, cached_tokens: 2_000, output_tokens: 10 }));

  const customer = await cg.customer(who);
  assert.equal(customer.external_id, who);
  const page = await cg.customers({ limit: 500 });
  assert.ok(page.some((c) => c.external_id === who));

  const wallet = await cg.wallet(who);
  assert.equal(wallet.balances[0]?.available, 5_000n - 600n + 250n);

  const session = await cg.createPortalSession({ customer: who, return_url: "https://example.com" });
  assert.match(session.url, /\/portal\?token=/);

  const ledger = await cg.ledger(who, { limit: 2 });
  assert.equal(ledger.data.length, 2);
});

test("members, budgets and usage: a member's calls count against its hard budget", async () => {
  const ctx = await live();
  const cg = ctx.client();
  const org = await ctx.customer(10_000);

  const alice = await cg.createMember(org, { external_id: "alice", name: "Alice" });
  assert.equal(alice.status, "active");
  const budget = await cg.setBudget(org, "alice", "credits", {
    amount: 1_000,
    period: "day",
    thresholds: [50],
  });
  assert.equal(budget.amount, 1_000n);
  assert.deepEqual((await cg.budgets(org, "alice")).map((b) => b.id), [budget.id]);

  const held = await cg.authorize({ customer: org, asset: "credits", amount: 600, member: "alice" });
  assert.equal(held.approved, true);
  assert.equal(held.member, "alice");
  const past = await cg.charge({ customer: org, asset: "credits", amount: 500, member: "alice" });
  assert.equal(past.status, "declined");
  assert.equal(past.decline_reason, "budget_exceeded");

  const usage = await cg.usage(org, "alice");
  assert.equal(usage.data[0]?.held, 600n);
  assert.equal(usage.data[0]?.remaining, 400n);
  assert.deepEqual(usage.data[0]?.thresholds_crossed, [50n]);

  await cg.setBudget(org, null, "credits", { amount: 5_000, period: "total" });
  assert.equal((await cg.usage(org)).member, null);
  await cg.deleteBudget(org, null, "credits");
  assert.deepEqual(await cg.budgets(org), []);

  const off = await cg.updateMember(org, "alice", { active: false });
  assert.equal(off.status, "inactive");
  const removed = await cg.removeMember(org, "alice");
  assert.equal(removed.status, "removed");
  assert.deepEqual(await cg.members(org), []);
  assert.equal((await cg.members(org, { include_removed: true })).length, 1);
});

test("amounts past 2^53 arrive exactly, as bigint", async () => {
  const ctx = await live();
  const cg = ctx.client();
  const who = await ctx.customer(0);
  const big = 2n ** 60n + 7n; // not representable as a double
  assert.notEqual(BigInt(Number(big)), big);
  await cg.grant(who, { asset: "credits", amount: big });
  const balance = await cg.balance(who, "credits");
  assert.equal(balance.available, big);
  const auth = await cg.authorize({ customer: who, asset: "credits", amount: big - 3n });
  assert.equal(auth.available, 3n);
  assert.equal(typeof auth.amount, "bigint");
  await assert.rejects(cg.authorize({ customer: who, asset: "credits", amount: 2 ** 60 }), /integers/);
});

test("errors are typed classes carrying the problem's code, field and status", async () => {
  const ctx = await live();
  const cg = ctx.client();
  await assert.rejects(cg.wallet("nobody_here"), (error: unknown) => {
    assert.ok(error instanceof UnknownCustomer);
    assert.equal(error.code, "unknown_customer");
    assert.equal(error.status, 404);
    assert.ok(error.requestId);
    return true;
  });
  const who = await ctx.customer(100);
  await assert.rejects(cg.authorize({ customer: who, asset: "credits", amount: 0 }), (error: unknown) => {
    assert.ok(error instanceof InvalidRequest);
    assert.equal(error.status, 422);
    assert.equal(error.field, "amount");
    return true;
  });
  await assert.rejects(cg.authorize({ customer: who, action: "no.such.action" }), (error: unknown) => {
    assert.ok(error instanceof NoPrice);
    assert.equal(error.code, "no_price");
    assert.equal(error.field, "action");
    return true;
  });
});

test("every write sends an Idempotency-Key, the same on each retry after a network error", async () => {
  const ctx = await live();
  const sent: { method: string; key: string | null }[] = [];
  let failNext = true;
  const flaky: FetchLike = async (url, init) => {
    const headers = new Headers(init.headers);
    sent.push({ method: init.method ?? "GET", key: headers.get("idempotency-key") });
    const response = await fetch(url, init);
    if (failNext && init.method === "POST") {
      failNext = false;
      await response.text();
      throw new TypeError("fetch failed"); // the answer was lost after the server acted
    }
    return response;
  };
  const cg = ctx.client({ fetch: flaky });
  const who = await ctx.customer(1_000);
  sent.length = 0;
  const auth = await cg.authorize({ customer: who, asset: "credits", amount: 300 });
  assert.equal(sent.length, 2);
  assert.ok(sent[0]?.key);
  assert.equal(sent[0]?.key, sent[1]?.key);
  // applied once: the retry answered the first answer
  assert.equal((await cg.balance(who, "credits")).held, 300n);
  assert.equal(auth.available, 700n);
  // reads carry no key; distinct writes get distinct keys
  sent.length = 0;
  await cg.wallet(who);
  await cg.void(auth.id);
  await cg.authorize({ customer: who, asset: "credits", amount: 1 });
  assert.equal(sent[0]?.key, null);
  assert.notEqual(sent[1]?.key, sent[2]?.key);
  // the server refuses a write without a key: this client never sends one
  const bare = await fetch(`${ctx.baseUrl}/v1/charges`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ctx.apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify({ customer: who, asset: "credits", amount: 1 }),
  });
  assert.equal(bare.status, 400);
  assert.equal(((await bare.json()) as { code: string }).code, "idempotency_key_required");
});

test("a 503 is retried after its Retry-After with the same key; giving up raises the error", async () => {
  const ctx = await live();
  const keys: (string | null)[] = [];
  const times: number[] = [];
  let busy = 1;
  const overloaded: FetchLike = async (url, init) => {
    keys.push(new Headers(init.headers).get("idempotency-key"));
    times.push(Date.now());
    if (busy-- > 0) {
      return new Response(
        JSON.stringify({ type: "about:blank", title: "Unavailable", status: 503, detail: "busy", code: "unavailable" }),
        { status: 503, headers: { "Retry-After": "0.3", "Content-Type": "application/problem+json" } },
      );
    }
    return fetch(url, init);
  };
  const cg = ctx.client({ fetch: overloaded });
  const who = await ctx.customer(1_000);
  keys.length = 0;
  times.length = 0;
  const charge = await cg.charge({ customer: who, asset: "credits", amount: 10 });
  assert.equal(charge.status, "posted");
  assert.equal(keys.length, 2);
  assert.equal(keys[0], keys[1]);
  assert.ok(times[1]! - times[0]! >= 290, `waited ${times[1]! - times[0]!} ms`);

  const down = new Client({
    baseUrl: "http://127.0.0.1:9",
    apiKey: "k",
    retry: { maxRetries: 1, initialBackoffMs: 1 },
  });
  await assert.rejects(down.wallet("x"), APIConnectionError);
});

test("base URL and key come from options or an env-like record", () => {
  const cg = new Client({ env: { CREDITGATE_BASE_URL: "http://h:1/", CREDITGATE_API_KEY: "k" } });
  assert.equal(cg.baseUrl, "http://h:1");
  assert.throws(() => new Client({ env: {} }), /CREDITGATE_BASE_URL/);
  process.env.CREDITGATE_BASE_URL = "http://from-env:2";
  process.env.CREDITGATE_API_KEY = "k";
  try {
    assert.equal(new Client().baseUrl, "http://from-env:2");
    assert.equal(new Client({ baseUrl: "http://given:3" }).baseUrl, "http://given:3");
  } finally {
    delete process.env.CREDITGATE_BASE_URL;
    delete process.env.CREDITGATE_API_KEY;
  }
});
