/**
 * Named failures: one class per problem code the API answers with, as in creditgate's Python
 * SDK. Every answer that is not a success is an RFC 9457 problem document
 * (`application/problem+json`): `code` is stable, `field` names the input at fault.
 */

import type { Authorization, Settlement } from "./types.js";

/** A failing input of an invalid request. */
export interface FieldProblem {
  field: string | null;
  detail: string;
}

/** An RFC 9457 problem document as the API sends it (also a failed item of a batch). */
export interface Problem {
  code: string;
  detail: string;
  status: number | null;
  title: string;
  type: string;
  field: string | null;
  /** Every failing input, when a request is invalid. */
  errors: FieldProblem[];
}

export interface ErrorOptions {
  status?: number | null;
  code?: string;
  field?: string | null;
  problem?: Problem | null;
  requestId?: string | null;
  retryAfter?: number | null;
  cause?: unknown;
}

/** Base of every failure of this client. `code` is stable; `field` names the input at fault. */
export class CreditgateError extends Error {
  static readonly code: string = "error";
  readonly code: string;
  /** The HTTP status, or null when no answer came. */
  readonly status: number | null;
  readonly field: string | null;
  readonly problem: Problem | null;
  readonly requestId: string | null;
  /** Seconds the server asked to wait (`Retry-After`), when it did. */
  readonly retryAfter: number | null;

  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? (new.target as typeof CreditgateError).code;
    this.status = options.status ?? null;
    this.field = options.field ?? null;
    this.problem = options.problem ?? null;
    this.requestId = options.requestId ?? null;
    this.retryAfter = options.retryAfter ?? null;
  }

  override toString(): string {
    const status = this.status === null ? "" : `${this.status} `;
    const where = this.field ? ` (field ${JSON.stringify(this.field)})` : "";
    return `${this.name}: ${status}${this.code}: ${this.message}${where}`;
  }
}

// Failures with no answer from the server.

/** The request could not be sent or no answer came back, even after the retries. */
export class APIConnectionError extends CreditgateError {
  static override readonly code: string = "connection_error";
}
export class APITimeoutError extends APIConnectionError {
  static override readonly code: string = "timeout";
}
/** The server answered with something this client cannot read (a version mismatch?). */
export class UnexpectedResponse extends CreditgateError {
  static override readonly code: string = "unexpected_response";
}

// Answers from the server, by status; subclasses by problem code.

export class InvalidRequest extends CreditgateError {
  static override readonly code: string = "invalid_input";
}
export class AmountOverflow extends InvalidRequest {
  static override readonly code: string = "amount_overflow";
}
/** The rate card has no price for the action (or its dimensions): never a free call. */
export class NoPrice extends InvalidRequest {
  static override readonly code: string = "no_price";
}
/** The price is a multiple of the vendor cost, and the vendor cost is not known. */
export class VendorCostUnknown extends NoPrice {
  static override readonly code: string = "vendor_cost_unknown";
}
/** The request moves money or creates a billable object and came without an Idempotency-Key
 * (this client always sends one). */
export class IdempotencyKeyRequired extends InvalidRequest {
  static override readonly code: string = "idempotency_key_required";
}
/** No API key, or one that is malformed, unknown or revoked. */
export class Unauthorized extends CreditgateError {
  static override readonly code: string = "unauthenticated";
}
export class PermissionDenied extends CreditgateError {
  static override readonly code: string = "forbidden";
}
export class NotFound extends CreditgateError {
  static override readonly code: string = "not_found";
}
export class UnknownAsset extends NotFound {
  static override readonly code: string = "unknown_asset";
}
export class UnknownCustomer extends NotFound {
  static override readonly code: string = "unknown_customer";
}
export class UnknownAuthorization extends NotFound {
  static override readonly code: string = "unknown_hold";
}
export class UnknownGrant extends NotFound {
  static override readonly code: string = "unknown_lot";
}
export class Conflict extends CreditgateError {
  static override readonly code: string = "conflict";
}
export class AlreadyExists extends Conflict {
  static override readonly code: string = "already_exists";
}
/** The idempotency key was used before with a different request; nothing was applied. */
export class IdempotencyConflict extends Conflict {
  static override readonly code: string = "idempotency_conflict";
}
/** The authorization has already been resolved; a hold resolves exactly once. */
export class HoldNotPending extends Conflict {
  static override readonly code: string = "hold_not_pending";
}
export class HoldAlreadySettled extends HoldNotPending {
  static override readonly code: string = "hold_already_settled";
}
export class HoldAlreadyVoided extends HoldNotPending {
  static override readonly code: string = "hold_already_voided";
}
export class HoldExpired extends HoldNotPending {
  static override readonly code: string = "hold_expired";
}
export class GrantNotActive extends Conflict {
  static override readonly code: string = "lot_not_active";
}
/** Too many requests; `retryAfter` says how long the server asked to wait. */
export class RateLimited extends CreditgateError {
  static override readonly code: string = "too_many_requests";
}
export class ServerError extends CreditgateError {
  static override readonly code: string = "internal_error";
}
export class ServiceUnavailable extends ServerError {
  static override readonly code: string = "unavailable";
}

// Raised by the guard and the middleware only: `Client.authorize` answers a decline as a value.

/** The gate declined the hold; thrown before the guarded call runs. */
export class Declined extends CreditgateError {
  static override readonly code: string = "declined";
  readonly authorization: Authorization;
  readonly reason: string;
  readonly available: bigint;
  readonly requested: bigint;

  constructor(authorization: Authorization) {
    const reason = authorization.decline_reason ?? "declined";
    super(
      `authorization ${authorization.id} for ${authorization.requested} ${authorization.asset}` +
        ` was declined: ${reason} (available ${authorization.available})`,
      { field: "amount" },
    );
    this.authorization = authorization;
    this.reason = reason;
    this.available = authorization.available;
    this.requested = authorization.requested;
  }
}

/** A strict guard's settle charged less than the usage was priced at: the wallet could not
 * pay the rest. The charge stands (the hold is settled); `settlement` is its answer. */
export class ChargeShortfall extends CreditgateError {
  static override readonly code: string = "charge_shortfall";
  readonly settlement: Settlement;
  readonly shortfall: bigint;

  constructor(settlement: Settlement) {
    const charge = settlement.charge;
    super(
      `authorization ${settlement.authorization.id} was settled with a shortfall: charge` +
        ` ${charge.id} took ${charge.amount} of the ${charge.requested} ${charge.asset} the` +
        ` usage was priced at; ${charge.shortfall} went unbilled`,
      { field: "amount" },
    );
    this.settlement = settlement;
    this.shortfall = charge.shortfall;
  }
}

/** A strict guard ended without settle or void: its hold was voided, so the call it guarded
 * was not billed. */
export class UnbilledCall extends CreditgateError {
  static override readonly code: string = "unbilled_call";
  readonly authorization: Authorization;

  constructor(authorization: Authorization) {
    super(
      `the guard of authorization ${authorization.id} ended without settle or void: its hold` +
        " was voided and the call went unbilled",
    );
    this.authorization = authorization;
  }
}

type ErrorClass = typeof CreditgateError;

const BY_CODE = new Map<string, ErrorClass>(
  [
    InvalidRequest,
    AmountOverflow,
    NoPrice,
    VendorCostUnknown,
    Unauthorized,
    PermissionDenied,
    NotFound,
    UnknownAsset,
    UnknownCustomer,
    UnknownAuthorization,
    UnknownGrant,
    AlreadyExists,
    IdempotencyKeyRequired,
    IdempotencyConflict,
    HoldNotPending,
    HoldAlreadySettled,
    HoldAlreadyVoided,
    HoldExpired,
    GrantNotActive,
    RateLimited,
    ServiceUnavailable,
  ].map((cls) => [cls.code, cls]),
);
// Other codes the server uses, mapped to the class a caller would catch them by.
for (const [code, cls] of [
  ["malformed_request", InvalidRequest],
  ["malformed_json", InvalidRequest],
  ["body_too_large", InvalidRequest],
  ["unsupported_media_type", InvalidRequest],
  ["database_unavailable", ServiceUnavailable],
  ["internal_error", ServerError],
] as const) {
  BY_CODE.set(code, cls);
}

const BY_STATUS = new Map<number, ErrorClass>([
  [400, InvalidRequest],
  [401, Unauthorized],
  [403, PermissionDenied],
  [404, NotFound],
  [409, Conflict],
  [422, InvalidRequest],
  [429, RateLimited],
  [503, ServiceUnavailable],
]);

/** The most specific class for a problem: by its code, else by its HTTP status. */
export function errorClass(status: number, code: string | null): ErrorClass {
  const byCode = code === null ? undefined : BY_CODE.get(code);
  if (byCode) return byCode;
  const byStatus = BY_STATUS.get(status);
  if (byStatus) return byStatus;
  return status >= 500 ? ServerError : CreditgateError;
}

function text(data: Record<string, unknown>, key: string): string | null {
  const value = data[key];
  return typeof value === "string" ? value : null;
}

/** Read a problem document leniently (a batch item's `error` may be a reduced form). */
export function problemFrom(data: unknown, status: number | null = null): Problem {
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    return {
      code: "error",
      detail: String(data).slice(0, 500),
      status,
      title: "",
      type: "about:blank",
      field: null,
      errors: [],
    };
  }
  const record = data as Record<string, unknown>;
  const rawStatus = record.status;
  const rawErrors = Array.isArray(record.errors) ? (record.errors as unknown[]) : [];
  return {
    code: text(record, "code") ?? "error",
    detail: text(record, "detail") ?? text(record, "message") ?? text(record, "title") ?? "",
    status:
      typeof rawStatus === "bigint" || typeof rawStatus === "number" ? Number(rawStatus) : status,
    title: text(record, "title") ?? "",
    type: text(record, "type") ?? "about:blank",
    field: text(record, "field"),
    errors: rawErrors
      .filter((e): e is Record<string, unknown> => e !== null && typeof e === "object")
      .map((e) => ({ field: text(e, "field"), detail: String(e.detail ?? "") })),
  };
}

export function errorFromProblem(
  problem: Problem,
  options: { requestId?: string | null; retryAfter?: number | null } = {},
): CreditgateError {
  const status = problem.status ?? 0;
  const Cls = errorClass(status, problem.code);
  const errorOptions: ErrorOptions = {
    status: problem.status,
    field: problem.field,
    problem,
    requestId: options.requestId ?? null,
    retryAfter: options.retryAfter ?? null,
  };
  if (problem.code !== "error") errorOptions.code = problem.code;
  return new Cls(problem.detail || problem.title || `HTTP ${status}`, errorOptions);
}
