/**
 * The guard around an LLM call: hold before it, settle the real usage after, void on failure.
 *
 *     const completion = await cg.guard(
 *       { customer: "cust_42", action: "chat.completion", model: "gpt-4.1",
 *         inputTokens: 1200, maxTokens: 800 },
 *       () => openai.chat.completions.create({ model: "gpt-4.1", messages, max_tokens: 800 }),
 *     );
 *
 * The hold is authorized first: a decline throws `Declined` before the call runs. The answer
 * the call returns is settled from its usage; a stream it returns (openai-node's `Stream`,
 * Anthropic's `Stream` or `MessageStream`, any async iterable of events) is settled once, when
 * it ends, from the usage its events carry; an error voids the hold. A stream left before its
 * end is settled from the usage seen so far, or voided with a warning when none was seen.
 *
 * Pricing, as in creditgate's Python SDK: with neither `amount` nor `price`, the server's rate
 * card prices both ends: the hold is the card's price of `action` with `dimensions` (and
 * `model` as the `model` dimension) for the estimate (`inputTokens`, `maxTokens` as
 * `output_tokens`, other `quantities`), and the settle sends the quantities read off the
 * response, priced by the same card version the hold used. Tokens are counted disjointly on
 * both sides (see usage.ts). With `amount` the hold is that amount; with `price` (a function
 * of `Usage`) it is `price(estimate)` and the settle `price(usage)`.
 *
 * Writes are idempotent: the hold uses the guard's key (`idempotencyKey` or a new one), the
 * settle and the void that key plus `:settle` / `:void`, and every retry keeps them.
 *
 * A settle charged short of the priced usage (the answer's `shortfall`) logs a warning; with
 * `strict` it throws `ChargeShortfall` after the settle. A guard closed without settle or void
 * voids its hold and logs that the call went unbilled; with `strict` it throws `UnbilledCall`.
 */

import { ChargeShortfall, Declined, HoldNotPending, UnbilledCall } from "./errors.js";
import type { Authorization, NewAuthorization, Settlement, SettlementRequest } from "./types.js";
import { Usage, UsageMeter, UsageNotFound, usageFrom, type UsageCounts } from "./usage.js";

export interface Logger {
  warn(message: string): void;
}

/** A function from usage to an amount in minor units. */
export type Price = (usage: Usage) => number | bigint;

export interface GuardOptions {
  customer: string;
  /** The action the rate card prices, e.g. "chat.completion". */
  action?: string;
  /** Default: the asset the rate card prices in (or "credits" with `amount` or `price`). */
  asset?: string;
  /** Hold this amount (minor units) instead of the card's price of the estimate. */
  amount?: number | bigint;
  /** Price the hold and the settle on the client instead of by the server's card. */
  price?: Price;
  /** The model: the card's `model` dimension. */
  model?: string;
  /** The estimate the hold is priced for. */
  inputTokens?: number;
  /** Output tokens the call may produce (the `max_tokens` sent to the model). */
  maxTokens?: number;
  quantities?: Record<string, number | bigint>;
  dimensions?: Record<string, string>;
  rateCard?: string;
  ttlSeconds?: number;
  metadata?: Record<string, unknown>;
  idempotencyKey?: string;
  /** Default: the client's. */
  strict?: boolean;
}

/** What a guard asks of `Client` (named here, so that the client, which makes guards, is the
 * only one of the two that imports the other). */
export interface GuardedClient {
  readonly strict: boolean;
  readonly logger: Logger;
  authorize(body: NewAuthorization, options?: { idempotencyKey?: string }): Promise<Authorization>;
  settle(
    authorization: string,
    body?: SettlementRequest,
    options?: { idempotencyKey?: string },
  ): Promise<Settlement>;
  void(authorization: string, options?: { idempotencyKey?: string }): Promise<Authorization>;
}

export interface SettleOptions extends UsageCounts {
  amount?: number | bigint;
  quantities?: Record<string, number | bigint>;
  /** What the call cost you, in USD as a decimal string; replaces the card's vendor cost. */
  vendor_cost?: string;
  metadata?: Record<string, unknown>;
}

export type GuardStatus = "new" | "pending" | "settled" | "voided" | "declined" | "closed";

const DEFAULT_ASSET = "credits";

function wholeAmount(value: unknown, what: string, least: bigint): bigint {
  const amount =
    typeof value === "bigint"
      ? value
      : typeof value === "number" && Number.isSafeInteger(value)
        ? BigInt(value)
        : null;
  if (amount === null || amount < least) {
    throw new RangeError(`${what} must be a whole amount of ${least} or more, got ${String(value)}`);
  }
  return amount;
}

/** A hold around one call; made by `Client.guard` and `Client.hold`. */
export class Guard {
  readonly options: Readonly<GuardOptions>;
  readonly idempotencyKey: string;
  readonly strict: boolean;
  authorization: Authorization | null = null;
  settlement: Settlement | null = null;
  usage: Usage | null = null;
  readonly #client: GuardedClient;
  readonly #estimate: Usage | null;
  readonly #hold: bigint | null;
  readonly #meter = new UsageMeter();
  #observed = false;
  #status: GuardStatus = "new";
  #busy: Promise<unknown> | null = null;

  constructor(client: GuardedClient, options: GuardOptions) {
    this.#client = client;
    this.options = Object.freeze({ ...options });
    this.idempotencyKey = options.idempotencyKey ?? globalThis.crypto.randomUUID();
    this.strict = options.strict ?? client.strict;
    const { inputTokens, maxTokens, quantities, model } = options;
    this.#estimate =
      inputTokens !== undefined || maxTokens !== undefined || (quantities && hasAny(quantities))
        ? new Usage(
            { input_tokens: inputTokens ?? 0, output_tokens: maxTokens ?? 0 },
            { model: model ?? null, quantities: quantities ?? {} },
          )
        : null;
    const dimModel = options.dimensions?.model;
    if (model !== undefined && dimModel !== undefined && dimModel !== model) {
      throw new TypeError(`model ${model} and dimensions.model ${dimModel} differ`);
    }
    if (options.amount !== undefined) {
      this.#hold = wholeAmount(options.amount, "the hold", 1n);
    } else if (options.price !== undefined) {
      const priced = priceOf(options.price, this.#estimate ?? new Usage({}, { model }));
      this.#hold = wholeAmount(priced, "the hold", 1n);
    } else if (options.action === undefined) {
      throw new TypeError(
        "the guard needs an action for the server's rate card to price, amount (the hold)," +
          " or price (a function of Usage)",
      );
    } else {
      this.#hold = null;
    }
  }

  /** new, pending, settled, voided, declined or closed (resolved elsewhere, e.g. expired). */
  get status(): GuardStatus {
    return this.#status;
  }

  /** Whether the server's rate card prices the hold and the settle. */
  get serverPriced(): boolean {
    return this.#hold === null;
  }

  /** The amount held (priced by the server: known once the hold is made). */
  get amount(): bigint | null {
    return this.#hold ?? this.authorization?.requested ?? null;
  }

  /** Authorize the hold; a decline throws `Declined`. */
  async open(): Promise<Authorization> {
    if (this.#status !== "new") throw new Error("a guard is opened once");
    const o = this.options;
    const dimensions = { ...o.dimensions, ...(o.model ? { model: o.model } : {}) };
    const common: NewAuthorization = {
      customer: o.customer,
      action: o.action ?? null,
      dimensions: hasAny(dimensions) ? dimensions : null,
    };
    if (o.ttlSeconds !== undefined) common.ttl_seconds = o.ttlSeconds;
    let body: NewAuthorization;
    if (this.#hold === null) {
      body = {
        ...common,
        asset: o.asset ?? null,
        quantities: this.#estimate?.asQuantities() ?? {},
        metadata: o.metadata && hasAny(o.metadata) ? { ...o.metadata } : null,
      };
      if (o.rateCard !== undefined) body.rate_card = o.rateCard;
    } else {
      body = {
        ...common,
        asset: o.asset ?? DEFAULT_ASSET,
        amount: this.#hold,
        metadata: this.#authorizeMetadata(),
      };
    }
    const authorization = await this.#client.authorize(body, {
      idempotencyKey: this.idempotencyKey,
    });
    this.authorization = authorization;
    if (!authorization.approved) {
      this.#status = "declined";
      throw new Declined(authorization);
    }
    this.#status = "pending";
    return authorization;
  }

  #authorizeMetadata(): Record<string, unknown> {
    const o = this.options;
    const auto: Record<string, unknown> = {};
    if (o.action) auto.action = o.action;
    if (o.model) auto.model = o.model;
    if (o.dimensions && hasAny(o.dimensions)) auto.dimensions = { ...o.dimensions };
    if (this.#estimate) auto.estimate = this.#estimate.toJSON();
    return { ...auto, ...o.metadata };
  }

  /** Record the usage a stream event carries; returns it. */
  observe<E>(event: E): E {
    this.#observed = true;
    this.#meter.observe(event);
    return event;
  }

  /** Whether an observed event carried usage. */
  get observedUsage(): boolean {
    return this.#meter.seen;
  }

  #pendingId(): string {
    if (this.#status !== "pending" || this.authorization === null) {
      throw new Error(`this guard's hold is ${this.#status}, not pending`);
    }
    return this.authorization.id;
  }

  /**
   * Charge the call: from response objects (an OpenAI chat completion or response, an
   * Anthropic message, or their usage), from counts (`{ input_tokens, output_tokens, … }`,
   * disjoint), from the events given to `observe`, or `amount`. With nothing at all, the card
   * prices the action flat.
   */
  async settle(...args: unknown[]): Promise<Settlement> {
    const id = this.#pendingId();
    return this.#exclusive(async () => {
      const { responses, options } = splitSettleArgs(args);
      const terms = this.#terms(responses, options);
      let settlement: Settlement;
      try {
        const body: SettlementRequest = {
          amount: terms.amount,
          quantities: terms.quantities,
          action: this.options.action ?? null,
          metadata: hasAny(terms.metadata) ? terms.metadata : null,
        };
        if (options.vendor_cost !== undefined) body.vendor_cost = options.vendor_cost;
        settlement = await this.#client.settle(id, body, {
          idempotencyKey: `${this.idempotencyKey}:settle`,
        });
      } catch (error) {
        if (error instanceof HoldNotPending) this.#status = "closed";
        throw error;
      }
      this.settlement = settlement;
      this.usage = terms.usage;
      this.authorization = settlement.authorization;
      this.#status = "settled";
      const charge = settlement.charge;
      if (charge.shortfall > 0n) {
        this.#client.logger.warn(
          `creditgate: authorization ${settlement.authorization.id} settled short: charge` +
            ` ${charge.id} took ${charge.amount} of the ${charge.requested} ${charge.asset} the` +
            ` usage was priced at; ${charge.shortfall} went unbilled`,
        );
        if (this.strict) throw new ChargeShortfall(settlement);
      }
      return settlement;
    });
  }

  /** Release the hold in full: the call did not happen or is not charged. */
  async void(): Promise<Authorization> {
    const id = this.#pendingId();
    return this.#exclusive(async () => {
      let authorization: Authorization;
      try {
        authorization = await this.#client.void(id, {
          idempotencyKey: `${this.idempotencyKey}:void`,
        });
      } catch (error) {
        if (error instanceof HoldNotPending) this.#status = "closed";
        throw error;
      }
      this.authorization = authorization;
      this.#status = "voided";
      return authorization;
    });
  }

  /** End the guard: a hold still pending is voided, and the call went unbilled (a warning;
   * `UnbilledCall` when strict). */
  async close(): Promise<void> {
    if (this.#busy) await this.#busy.catch(() => undefined);
    if (this.#status !== "pending") return;
    const voided = await this.void();
    this.#client.logger.warn(
      `creditgate: the guard of authorization ${voided.id} ended without settle or void: its` +
        " hold was voided and the call went unbilled",
    );
    if (this.strict) throw new UnbilledCall(voided);
  }

  /** Void after a failure of the call; a failing void is logged (the hold expires after its
   * TTL), never thrown over the call's own error. */
  async abandon(reason?: unknown): Promise<void> {
    if (this.#busy) await this.#busy.catch(() => undefined);
    if (this.#status !== "pending") return;
    try {
      await this.void();
    } catch (error) {
      const hold = this.authorization?.id ?? "?";
      this.#client.logger.warn(
        `creditgate: could not void authorization ${hold} (${String(error)}); it expires after` +
          ` its TTL${reason === undefined ? "" : ` (the call failed: ${String(reason)})`}`,
      );
    }
  }

  async #exclusive<T>(work: () => Promise<T>): Promise<T> {
    if (this.#busy) throw new Error("this guard is already settling or voiding its hold");
    const running = work();
    this.#busy = running;
    try {
      return await running;
    } finally {
      this.#busy = null;
    }
  }

  #terms(
    responses: unknown[],
    options: SettleOptions,
  ): {
    amount: bigint | null;
    quantities: Record<string, number> | null;
    usage: Usage | null;
    metadata: Record<string, unknown>;
  } {
    const given: UsageCounts = {};
    for (const name of [
      "input_tokens",
      "output_tokens",
      "cached_tokens",
      "cache_write_tokens",
      "reasoning_tokens",
    ] as const) {
      if (options[name] !== undefined && options[name] !== null) given[name] = options[name];
    }
    const counted = hasAny(given) || (options.quantities !== undefined && hasAny(options.quantities));
    const sources = [responses.length > 0, counted, this.#observed].filter(Boolean).length;
    if (sources > 1) {
      throw new TypeError(
        "settle from one source: responses, quantities, or the events given to observe()",
      );
    }
    let amount: bigint | null =
      options.amount === undefined ? null : wholeAmount(options.amount, "amount", 0n);
    let usage: Usage | null = null;
    if (responses.length > 0) {
      usage = usageFrom(...responses);
    } else if (counted) {
      usage = new Usage(given, { quantities: options.quantities ?? {} });
    } else if (this.#observed) {
      if (this.#meter.seen) usage = this.#meter.total;
      else if (amount === null) {
        throw new UsageNotFound(
          "the observed stream carried no usage (OpenAI: pass stream_options:" +
            " { include_usage: true }) and no amount was given",
        );
      }
    }
    if (usage !== null && usage.model === null && this.options.model) {
      usage = usage.with({ model: this.options.model });
    }
    let quantities: Record<string, number> | null = null;
    if (amount === null) {
      if (this.serverPriced) {
        // No usage at all: the card prices the action flat (or says it needs usage).
        quantities = usage === null ? null : usage.asQuantities();
      } else if (usage === null) {
        throw new TypeError("settle() needs a response, quantities, observed events or amount");
      } else if (this.options.price === undefined) {
        throw new TypeError(
          "no price to turn usage into an amount: give the guard a price (or no amount, for" +
            " the rate card to price it), or settle with amount",
        );
      } else {
        amount = wholeAmount(priceOf(this.options.price, usage), "price()", 0n);
      }
    }
    if (this.serverPriced) {
      // The charge records the quantities and the price; only the caller's metadata.
      return {
        amount,
        quantities,
        usage,
        metadata: { ...this.options.metadata, ...options.metadata },
      };
    }
    const auto: Record<string, unknown> = {};
    if (this.options.model) auto.model = this.options.model;
    if (this.options.dimensions && hasAny(this.options.dimensions)) {
      auto.dimensions = { ...this.options.dimensions };
    }
    if (usage !== null) auto.usage = usage.toJSON();
    return {
      amount,
      quantities: null,
      usage,
      metadata: { ...auto, ...this.options.metadata, ...options.metadata },
    };
  }
}

function hasAny(record: object): boolean {
  return Object.keys(record).length > 0;
}

function priceOf(price: Price, usage: Usage): bigint {
  return wholeAmount(price(usage), "price()", 0n);
}

const SETTLE_KEYS = new Set([
  "amount",
  "quantities",
  "vendor_cost",
  "metadata",
  "input_tokens",
  "output_tokens",
  "cached_tokens",
  "cache_write_tokens",
  "reasoning_tokens",
]);

/** `settle(response…)`, `settle({ input_tokens, … })` or `settle(response, { metadata })`:
 * a last plain object of settle options only is options, anything else a response. */
function splitSettleArgs(args: unknown[]): { responses: unknown[]; options: SettleOptions } {
  const last = args[args.length - 1];
  if (
    last !== null &&
    typeof last === "object" &&
    Object.getPrototypeOf(last) === Object.prototype &&
    Object.keys(last).every((key) => SETTLE_KEYS.has(key)) &&
    !("prompt_tokens" in last)
  ) {
    const options = last as SettleOptions;
    const rest = args.slice(0, -1);
    // Plain counts alone are options; counts beside a response would be two sources.
    return { responses: rest, options };
  }
  return { responses: args, options: {} };
}

// Running a call under a guard.

type AsyncIterableLike = { [Symbol.asyncIterator](): AsyncIterator<unknown> };

function isAsyncIterable(value: unknown): value is AsyncIterableLike {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as Partial<AsyncIterableLike>)[Symbol.asyncIterator] === "function"
  );
}

const FINAL_METHODS = ["finalMessage", "finalChatCompletion", "finalResponse"] as const;

/** A stream helper that resolves its final answer however it is consumed (Anthropic's
 * `MessageStream`, openai-node's `ChatCompletionStream` and `ResponseStream`). */
function finalOf(value: unknown): (() => Promise<unknown>) | null {
  if (value === null || typeof value !== "object") return null;
  for (const name of FINAL_METHODS) {
    const method = (value as Record<string, unknown>)[name];
    if (typeof method === "function") return () => (method as () => Promise<unknown>).call(value);
  }
  return null;
}

export async function runGuarded<T>(
  client: GuardedClient,
  options: GuardOptions,
  call: (guard: Guard) => T | PromiseLike<T>,
): Promise<T> {
  const guard = new Guard(client, options);
  await guard.open();
  let result: T;
  try {
    result = await call(guard);
  } catch (error) {
    await guard.abandon(error);
    throw error;
  }
  if (guard.status !== "pending") return result;
  const final = finalOf(result);
  if (final !== null) {
    settleWhenFinal(guard, final, client.logger);
    return result;
  }
  if (isAsyncIterable(result) && !hasUsage(result)) {
    meterStream(guard, result);
    return result;
  }
  try {
    await guard.settle(result);
  } catch (error) {
    await guard.abandon(error);
    throw error;
  }
  return result;
}

function hasUsage(value: unknown): boolean {
  return value !== null && typeof value === "object" && "usage" in value;
}

function settleWhenFinal(guard: Guard, final: () => Promise<unknown>, logger: Logger): void {
  final().then(
    async (answer) => {
      try {
        await guard.settle(answer);
      } catch (error) {
        logger.warn(`creditgate: could not settle the guarded stream: ${String(error)}`);
        await guard.abandon(error);
      }
    },
    (error: unknown) => guard.abandon(error),
  );
}

/**
 * Observe the events of a stream as its reader takes them, and settle once when it ends.
 * openai-node's and Anthropic's `Stream` read through their own `iterator()` (also for
 * `tee()` and `toReadableStream()`), so that is wrapped where there is one; otherwise the
 * object's `[Symbol.asyncIterator]`.
 */
function meterStream(guard: Guard, stream: AsyncIterableLike): void {
  const target = stream as unknown as Record<string | symbol, unknown>;
  const key: string | symbol =
    typeof target.iterator === "function" && Object.hasOwn(target, "iterator")
      ? "iterator"
      : Symbol.asyncIterator;
  const original = (target[key] as () => AsyncIterator<unknown>).bind(stream);
  Object.defineProperty(stream, key, {
    configurable: true,
    writable: true,
    value: () => observed(guard, original()),
  });
}

function observed(guard: Guard, inner: AsyncIterator<unknown>): AsyncIterator<unknown> {
  let finished = false;
  const finish = async (): Promise<void> => {
    if (finished) return;
    finished = true;
    if (guard.status !== "pending") return;
    try {
      if (guard.observedUsage) await guard.settle();
      else await guard.close();
    } catch (error) {
      await guard.abandon(error); // a settle that failed leaves no hold behind
      throw error;
    }
  };
  const fail = async (error: unknown): Promise<never> => {
    finished = true;
    await guard.abandon(error);
    throw error;
  };
  return {
    async next(): Promise<IteratorResult<unknown>> {
      let step: IteratorResult<unknown>;
      try {
        step = await inner.next();
      } catch (error) {
        return fail(error);
      }
      if (step.done) {
        await finish();
        return step;
      }
      try {
        guard.observe(step.value);
      } catch (error) {
        await inner.return?.().catch(() => undefined);
        return fail(error);
      }
      return step;
    },
    async return(value?: unknown): Promise<IteratorResult<unknown>> {
      // the reader left before the end: bill what was seen, or void
      const step = inner.return ? await inner.return(value) : { done: true as const, value };
      await finish();
      return step;
    },
    async throw(error?: unknown): Promise<IteratorResult<unknown>> {
      if (inner.throw) {
        try {
          return await inner.throw(error);
        } catch (thrown) {
          return fail(thrown);
        }
      }
      return fail(error);
    },
  };
}
