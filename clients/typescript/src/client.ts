/**
 * `Client`: creditgate's HTTP API over the global `fetch`, with retries and typed errors.
 *
 * Every write carries an `Idempotency-Key` (generated per call unless given) and keeps it on
 * every retry, so a retried request answers with its first result instead of a second effect.
 * Runs wherever `fetch` does: Node 20 and later, Deno, Bun, edge runtimes and browsers.
 */

import {
  APIConnectionError,
  APITimeoutError,
  CreditgateError,
  UnexpectedResponse,
  errorFromProblem,
  problemFrom,
} from "./errors.js";
import { Guard, type GuardOptions, type Logger, runGuarded } from "./guard.js";
import { parseJson, stringifyJson, type Json } from "./json.js";
import type {
  Asset,
  AssetBalance,
  Authorization,
  BatchItem,
  Budget,
  BudgetSpec,
  Charge,
  Customer,
  GrantVoid,
  LedgerPage,
  Lot,
  Member,
  MemberChange,
  MemberUsage,
  NewAsset,
  NewAuthorization,
  NewCharge,
  NewCustomer,
  NewGrant,
  NewMember,
  NewPortalSession,
  NewRateCard,
  NewRefund,
  Policy,
  PolicyChange,
  PortalSession,
  PriceQuote,
  PublishedRateCard,
  QuoteRequest,
  RateCardVersion,
  Refund,
  Settlement,
  SettlementRequest,
  UsageEvent,
  Wallet,
} from "./types.js";
import { VERSION } from "./version.js";

export const ENV_BASE_URL = "CREDITGATE_BASE_URL";
export const ENV_API_KEY = "CREDITGATE_API_KEY";

/** Statuses worth another try: the request did not take effect, or replays its first answer
 * (every write carries the same idempotency key on each try). */
export const RETRY_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

export interface RetryPolicy {
  /** Tries after the first (default 2). */
  maxRetries?: number;
  /** First wait in milliseconds, doubled each try, with jitter (default 250). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A `Retry-After` asking for longer than this (default 30 000 ms) is not waited for. */
  maxRetryAfterMs?: number;
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** Default: $CREDITGATE_BASE_URL of `env`. */
  baseUrl?: string;
  /** Default: $CREDITGATE_API_KEY of `env`. */
  apiKey?: string;
  /** Where `baseUrl` and `apiKey` are looked up when not given: `process.env` on Node and
   * Bun, `Deno.env` on Deno; pass your runtime's bindings (e.g. a Worker's `env`) elsewhere. */
  env?: Record<string, string | undefined>;
  /** Per try, in milliseconds (default 10 000). */
  timeoutMs?: number;
  retry?: RetryPolicy;
  /** Default: the global `fetch`. */
  fetch?: FetchLike;
  /** Guards' default: raise `ChargeShortfall` and `UnbilledCall` instead of a warning. */
  strict?: boolean;
  /** Where guards write their warnings (default: `console`). */
  logger?: Logger;
}

export interface RequestOptions {
  /** The key of this logical write; sent again unchanged on every retry. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

type Query = Record<string, string | number | bigint | boolean | null | undefined>;

export interface Call {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  body?: unknown;
  query?: Query;
}

export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

function envLookup(): Record<string, string | undefined> {
  const g = globalThis as {
    process?: { env?: Record<string, string | undefined> };
    Deno?: { env?: { get(name: string): string | undefined } };
  };
  // Reading the environment may be refused (Deno without --allow-env): then it is empty.
  const read = (name: string): string | undefined => {
    try {
      return g.Deno?.env ? g.Deno.env.get(name) : g.process?.env?.[name];
    } catch {
      return undefined;
    }
  };
  return { [ENV_BASE_URL]: read(ENV_BASE_URL), [ENV_API_KEY]: read(ENV_API_KEY) };
}

function budgetPath(customer: string, member: string | null, asset: string | null): string {
  const owner = member === null ? "" : `/members/${seg(member)}`;
  const tail = asset === null ? "" : `/${seg(asset)}`;
  return `/v1/customers/${seg(customer)}${owner}/budgets${tail}`;
}

/** One path segment: ids are the product's own and may hold any character. */
function seg(value: string): string {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`expected a non-empty id, got ${JSON.stringify(value)}`);
  }
  return encodeURIComponent(value);
}

/** `Retry-After` in milliseconds (delta-seconds or an HTTP date), if usable. */
export function retryAfterMs(header: string | null, now: number = Date.now()): number | null {
  if (header === null) return null;
  const text = header.trim();
  let ms: number;
  if (/^[0-9]+(\.[0-9]+)?$/.test(text)) ms = Number(text) * 1000;
  else {
    const when = Date.parse(text);
    if (Number.isNaN(when)) return null;
    ms = when - now;
  }
  return Number.isFinite(ms) ? Math.max(0, ms) : null;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function listed<T>(data: Json, what: string): T[] {
  const items = (data as { data?: unknown } | null)?.data;
  if (!Array.isArray(items)) throw new UnexpectedResponse(`${what}: a list answer has no data`);
  return items as T[];
}

/** creditgate's HTTP API. */
export class Client {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly retry: Required<RetryPolicy>;
  readonly strict: boolean;
  readonly logger: Logger;
  readonly #apiKey: string;
  readonly #fetch: FetchLike;

  constructor(options: ClientOptions = {}) {
    const env = options.env ?? envLookup();
    const baseUrl = options.baseUrl ?? env[ENV_BASE_URL];
    const apiKey = options.apiKey ?? env[ENV_API_KEY];
    if (!baseUrl) throw new TypeError(`give baseUrl or set $${ENV_BASE_URL}`);
    if (!apiKey) throw new TypeError(`give apiKey or set $${ENV_API_KEY}`);
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.#apiKey = apiKey;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retry = {
      maxRetries: options.retry?.maxRetries ?? 2,
      initialBackoffMs: options.retry?.initialBackoffMs ?? 250,
      maxBackoffMs: options.retry?.maxBackoffMs ?? 8_000,
      maxRetryAfterMs: options.retry?.maxRetryAfterMs ?? 30_000,
    };
    if (this.retry.maxRetries < 0) throw new RangeError("maxRetries must be zero or more");
    if (!options.fetch && typeof globalThis.fetch !== "function") {
      throw new TypeError("no global fetch here: pass options.fetch");
    }
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.strict = options.strict ?? false;
    this.logger = options.logger ?? console;
  }

  toString(): string {
    return `Client(${this.baseUrl})`;
  }

  /** Milliseconds to wait before try `attempt + 1` (0-based), or null to give up. */
  protected delay(attempt: number, retryAfter: number | null): number | null {
    if (attempt >= this.retry.maxRetries) return null;
    if (retryAfter !== null) return retryAfter <= this.retry.maxRetryAfterMs ? retryAfter : null;
    const backoff = Math.min(this.retry.maxBackoffMs, this.retry.initialBackoffMs * 2 ** attempt);
    return backoff * (0.5 + Math.random() / 2);
  }

  /** Send a request, retrying on network errors, timeouts, 408, 429 and 5xx; a write keeps
   * one Idempotency-Key across its tries. Answers are read without lost digits. */
  async request<T>(call: Call, options: RequestOptions = {}): Promise<T> {
    let url = this.baseUrl + call.path;
    if (call.query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(call.query)) {
        if (value !== undefined && value !== null) params.set(key, String(value));
      }
      const text = params.toString();
      if (text) url += `?${text}`;
    }
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.#apiKey}`,
      Accept: "application/json",
      "User-Agent": `creditgate-client-typescript/${VERSION}`,
    };
    if (call.method === "POST" || call.method === "PUT") {
      headers["Idempotency-Key"] = options.idempotencyKey ?? newIdempotencyKey();
    }
    let body: string | undefined;
    if (call.body !== undefined) {
      body = stringifyJson(call.body);
      headers["Content-Type"] = "application/json";
    }
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.#try(call.method, url, headers, body, options.signal);
      if (!(outcome instanceof CreditgateError)) return read<T>(call, outcome.response, outcome.text);
      const retryable = outcome.status === null || RETRY_STATUSES.has(outcome.status);
      const wait = retryable
        ? this.delay(attempt, outcome.retryAfter === null ? null : outcome.retryAfter * 1000)
        : null;
      if (wait === null) throw outcome;
      await sleep(wait, options.signal);
    }
  }

  /** One try: the answer, or the error it came to (a caller's abort is thrown as it is). */
  async #try(
    method: string,
    url: string,
    headers: Record<string, string>,
    body: string | undefined,
    callerSignal: AbortSignal | undefined,
  ): Promise<{ response: Response; text: string } | CreditgateError> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = callerSignal ? anySignal([callerSignal, timeout]) : timeout;
    try {
      const response = await this.#fetch(url, { method, headers, body, signal });
      const text = await response.text();
      return response.ok ? { response, text } : errorFromResponse(response, text);
    } catch (cause) {
      if (callerSignal?.aborted) throw cause;
      if (timeout.aborted) {
        return new APITimeoutError(`${method} ${url}: no answer within ${this.timeoutMs} ms`, {
          cause,
        });
      }
      return new APIConnectionError(`${method} ${url}: ${describeCause(cause)}`, { cause });
    }
  }

  // Catalog

  createAsset(body: NewAsset, options?: RequestOptions): Promise<Asset> {
    return this.request({ method: "POST", path: "/v1/assets", body }, options);
  }

  async assets(): Promise<Asset[]> {
    return listed(await this.request({ method: "GET", path: "/v1/assets" }), "assets");
  }

  createCustomer(body: NewCustomer, options?: RequestOptions): Promise<Customer> {
    return this.request({ method: "POST", path: "/v1/customers", body }, options);
  }

  customer(customer: string): Promise<Customer> {
    return this.request({ method: "GET", path: `/v1/customers/${seg(customer)}` });
  }

  /** One page of customers, oldest first; `after` is the last id of the previous page. */
  async customers(query: { limit?: number; after?: string } = {}): Promise<Customer[]> {
    const data = await this.request<Json>({ method: "GET", path: "/v1/customers", query });
    return listed(data, "customers");
  }

  /** The customer's balances, one per asset: posted, held, available, debt and policy. */
  wallet(customer: string): Promise<Wallet> {
    return this.request({ method: "GET", path: `/v1/customers/${seg(customer)}/wallet` });
  }

  /** The customer's balance of one asset (zero balances of a known asset included). */
  async balance(customer: string, asset: string): Promise<AssetBalance> {
    const wallet = await this.wallet(customer);
    const found = wallet.balances.find((b) => b.asset === asset);
    if (found === undefined) {
      throw new UnexpectedResponse(`the wallet of ${customer} has no balance of ${asset}`, {
        field: "asset",
      });
    }
    return found;
  }

  setPolicy(
    customer: string,
    asset: string,
    body: PolicyChange,
    options?: RequestOptions,
  ): Promise<Policy> {
    const path = `/v1/customers/${seg(customer)}/policies/${seg(asset)}`;
    return this.request({ method: "PUT", path, body }, options);
  }

  // Organizations: members and budgets

  /** Add a member (a user, seat, project or API key of yours) to a customer: calls that
   * name it (`member`) draw on the customer's wallet under its budgets. */
  createMember(customer: string, body: NewMember, options?: RequestOptions): Promise<Member> {
    const path = `/v1/customers/${seg(customer)}/members`;
    return this.request({ method: "POST", path, body }, options);
  }

  member(customer: string, member: string): Promise<Member> {
    const path = `/v1/customers/${seg(customer)}/members/${seg(member)}`;
    return this.request({ method: "GET", path });
  }

  /** One page of the customer's members in order of `external_id`. */
  async members(
    customer: string,
    query: { include_removed?: boolean; after?: string; limit?: number } = {},
  ): Promise<Member[]> {
    const path = `/v1/customers/${seg(customer)}/members`;
    return listed(await this.request({ method: "GET", path, query }), "members");
  }

  /** Change a member's name, metadata or `active` flag (an inactive member is declined). */
  updateMember(
    customer: string,
    member: string,
    body: MemberChange,
    options?: RequestOptions,
  ): Promise<Member> {
    const path = `/v1/customers/${seg(customer)}/members/${seg(member)}`;
    return this.request({ method: "POST", path, body }, options);
  }

  /** Remove a member for good: its calls are declined, its history stays. */
  removeMember(customer: string, member: string): Promise<Member> {
    const path = `/v1/customers/${seg(customer)}/members/${seg(member)}`;
    return this.request({ method: "DELETE", path });
  }

  /** Set the budget in `asset` of `member`, or (`member` null) of the customer as a whole. */
  setBudget(
    customer: string,
    member: string | null,
    asset: string,
    body: BudgetSpec,
    options?: RequestOptions,
  ): Promise<Budget> {
    return this.request({ method: "PUT", path: budgetPath(customer, member, asset), body }, options);
  }

  async deleteBudget(customer: string, member: string | null, asset: string): Promise<void> {
    await this.request({ method: "DELETE", path: budgetPath(customer, member, asset) });
  }

  /** The budgets of `member`, or (`member` null) of the customer as a whole. */
  async budgets(customer: string, member: string | null = null): Promise<Budget[]> {
    const path = budgetPath(customer, member, null);
    return listed(await this.request({ method: "GET", path }), "budgets");
  }

  /** Spent, held and remaining per budget period of `member` (null: of the customer). */
  usage(customer: string, member: string | null = null, periods = 1): Promise<MemberUsage> {
    const owner = member === null ? "" : `/members/${seg(member)}`;
    const path = `/v1/customers/${seg(customer)}${owner}/usage`;
    return this.request({ method: "GET", path, query: { periods } });
  }

  // Grants

  grant(customer: string, body: NewGrant, options?: RequestOptions): Promise<Lot> {
    const path = `/v1/customers/${seg(customer)}/grants`;
    return this.request({ method: "POST", path, body }, options);
  }

  async grants(
    customer: string,
    query: { asset?: string; include_closed?: boolean } = {},
  ): Promise<Lot[]> {
    const path = `/v1/customers/${seg(customer)}/grants`;
    const params: Query = { asset: query.asset };
    if (query.include_closed) params.include_closed = "true";
    return listed(await this.request({ method: "GET", path, query: params }), "grants");
  }

  voidGrant(grant: string, body: GrantVoid = {}, options?: RequestOptions): Promise<Lot> {
    return this.request({ method: "POST", path: `/v1/grants/${seg(grant)}/void`, body }, options);
  }

  // The gate

  /** Hold credit before a call: `amount` of `asset`, or (no amount) the rate card's price of
   * `action` for its `dimensions` and estimated `quantities`, e.g.
   * `{ input_tokens: n, output_tokens: maxTokens }`. A decline is an answer (`approved`
   * false, `status` "declined"), not an error. */
  authorize(body: NewAuthorization, options?: RequestOptions): Promise<Authorization> {
    return this.request({ method: "POST", path: "/v1/authorizations", body }, options);
  }

  authorization(authorization: string): Promise<Authorization> {
    return this.request({ method: "GET", path: `/v1/authorizations/${seg(authorization)}` });
  }

  /** Charge what the call used and release the rest of the hold: `amount`, or (for a hold
   * priced by the rate card) the actual `quantities`, priced by the card version the hold
   * was priced with. Neither, for an action the card prices flat. */
  settle(
    authorization: string,
    body: SettlementRequest = {},
    options?: RequestOptions,
  ): Promise<Settlement> {
    const path = `/v1/authorizations/${seg(authorization)}/settle`;
    return this.request({ method: "POST", path, body }, options);
  }

  /** Release the hold in full. */
  void(authorization: string, options?: RequestOptions): Promise<Authorization> {
    const path = `/v1/authorizations/${seg(authorization)}/void`;
    return this.request({ method: "POST", path, body: {} }, options);
  }

  /** Authorize and settle in one step (`amount`, or the card's price of `action`); a decline
   * comes back as a `declined` charge. */
  charge(body: NewCharge, options?: RequestOptions): Promise<Charge> {
    return this.request({ method: "POST", path: "/v1/charges", body }, options);
  }

  /** Up to 1 000 charges in one request, each with its own answer (posted, declined or error).
   * An event without `idempotency_key` gets the batch's key and its index. */
  async chargeBatch(events: UsageEvent[], options: RequestOptions = {}): Promise<BatchItem[]> {
    const key = options.idempotencyKey ?? newIdempotencyKey();
    const body = {
      events: events.map((event, i) => ({
        ...event,
        idempotency_key: event.idempotency_key ?? `${key}:${i}`,
      })),
    };
    const data = await this.request<Json>(
      { method: "POST", path: "/v1/charges/batch", body },
      { ...options, idempotencyKey: key },
    );
    return listed(data, "charge batch");
  }

  /** Give back what is left of a charge (or `amount` of it) to the customer's lots. */
  refundCharge(charge: string, body: NewRefund, options?: RequestOptions): Promise<Refund> {
    const path = `/v1/charges/${seg(charge)}/refunds`;
    return this.request({ method: "POST", path, body }, options);
  }

  // Pricing

  /** What an action costs, line by line with its vendor cost; changes nothing. */
  quote(body: QuoteRequest): Promise<PriceQuote> {
    return this.request({ method: "POST", path: "/v1/rate-cards/quote", body });
  }

  /** Publish the next version of a rate card (`name` defaults to "default"). Give prices as
   * decimal strings. */
  publishRateCard(body: NewRateCard, options?: RequestOptions): Promise<PublishedRateCard> {
    return this.request({ method: "POST", path: "/v1/rate-cards", body }, options);
  }

  async rateCards(query: { name?: string } = {}): Promise<RateCardVersion[]> {
    const data = await this.request<Json>({ method: "GET", path: "/v1/rate-cards", query });
    return listed(data, "rate cards");
  }

  // The billing portal and reading

  /** A billing portal session for one customer: send them to its `url` (valid one hour). */
  createPortalSession(body: NewPortalSession, options?: RequestOptions): Promise<PortalSession> {
    return this.request({ method: "POST", path: "/v1/portal/sessions", body }, options);
  }

  ledger(
    customer: string,
    query: { limit?: number; cursor?: string; asset?: string } = {},
  ): Promise<LedgerPage> {
    const path = `/v1/customers/${seg(customer)}/ledger`;
    return this.request({ method: "GET", path, query });
  }

  // The guard

  /**
   * Hold credit, run `call`, and charge what it used: the hold is authorized first (a
   * decline throws `Declined` and `call` never runs); the answer `call` returns is settled
   * from its usage (an OpenAI chat completion or response, an Anthropic message); a stream it
   * returns is settled once, when it ends, from the usage its events carry; an error voids
   * the hold. `call` may settle or void through its `Guard` argument itself.
   */
  guard<T>(options: GuardOptions, call: (guard: Guard) => T | PromiseLike<T>): Promise<T> {
    return runGuarded(this, options, call);
  }

  /** An authorized hold for a call, to settle or void by hand (`close()` when done). */
  async hold(options: GuardOptions): Promise<Guard> {
    const guard = new Guard(this, options);
    await guard.open();
    return guard;
  }
}

function read<T>(call: Call, response: Response, text: string): T {
  if (text === "") return undefined as T;
  try {
    return parseJson(text) as T;
  } catch (cause) {
    throw new UnexpectedResponse(
      `${call.method} ${call.path} answered ${response.status} without JSON`,
      { status: response.status, cause },
    );
  }
}

function errorFromResponse(response: Response, text: string): CreditgateError {
  let data: unknown;
  try {
    data = parseJson(text);
  } catch {
    data = { detail: text.slice(0, 500) || response.statusText };
  }
  // the status line is the truth, whatever the body says
  const problem = { ...problemFrom(data), status: response.status };
  return errorFromProblem(problem, {
    requestId: response.headers.get("x-request-id"),
    retryAfter: (() => {
      const ms = retryAfterMs(response.headers.get("retry-after"));
      return ms === null ? null : ms / 1000;
    })(),
  });
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const inner = (cause as { cause?: unknown }).cause;
    const detail = inner instanceof Error ? `: ${inner.message}` : "";
    return `${cause.name}: ${cause.message}${detail}`;
  }
  return String(cause);
}

/** `AbortSignal.any`, for runtimes that lack it. */
function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (any) return any(signals);
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}
