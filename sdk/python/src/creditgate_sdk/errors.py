"""Named failures: one exception class per problem code the API answers with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from creditgate_sdk.problems import FieldError, Problem

if TYPE_CHECKING:
    from creditgate_sdk.models import Authorization, Settlement


class CreditgateError(Exception):
    """Base of every SDK failure. `code` is stable; `field` names the input at fault."""

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        problem: Problem | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        if code is not None:
            self.code = code
        self.field = field
        self.problem = problem
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f" (field {self.field!r})" if self.field else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.code}: {self.message}{where}"


# Failures with no answer from the server.


class APIConnectionError(CreditgateError):
    """The request could not be sent or no answer came back, even after the retries."""

    code = "connection_error"


class APITimeoutError(APIConnectionError):
    code = "timeout"


class UnexpectedResponse(CreditgateError):
    """The server answered with something this SDK cannot read (a version mismatch?)."""

    code = "unexpected_response"


# Answers from the server, by status; subclasses by problem code.


class InvalidRequest(CreditgateError):
    code = "invalid_input"


class AmountOverflow(InvalidRequest):
    code = "amount_overflow"


class NoPrice(InvalidRequest):
    """The rate card has no price for the action (or its dimensions): never a free call.
    `field` says which: `action`, `dimensions` or `rate_card` (no card in effect)."""

    code = "no_price"


class VendorCostUnknown(NoPrice):
    """The price is a multiple of the vendor cost, and the vendor cost is not known."""

    code = "vendor_cost_unknown"


class Unauthorized(CreditgateError):
    """No API key, or one that is malformed, unknown or revoked."""

    code = "unauthenticated"


class PermissionDenied(CreditgateError):
    code = "forbidden"


class NotFound(CreditgateError):
    code = "not_found"


class UnknownAsset(NotFound):
    code = "unknown_asset"


class UnknownCustomer(NotFound):
    code = "unknown_customer"


class UnknownAuthorization(NotFound):
    code = "unknown_hold"


class UnknownGrant(NotFound):
    code = "unknown_lot"


class UnknownMember(NotFound):
    code = "unknown_member"


class UnknownBudget(NotFound):
    code = "unknown_budget"


class Conflict(CreditgateError):
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class IdempotencyKeyRequired(InvalidRequest):
    """The request moves money or creates a billable object and came without an
    Idempotency-Key (this SDK always sends one; seen only from other callers' requests)."""

    code = "idempotency_key_required"


class IdempotencyConflict(Conflict):
    """The idempotency key was used before with a different request; nothing was applied."""

    code = "idempotency_conflict"


class HoldNotPending(Conflict):
    """The authorization has already been resolved; a hold resolves exactly once."""

    code = "hold_not_pending"


class HoldAlreadySettled(HoldNotPending):
    code = "hold_already_settled"


class HoldAlreadyVoided(HoldNotPending):
    code = "hold_already_voided"


class HoldExpired(HoldNotPending):
    code = "hold_expired"


class GrantNotActive(Conflict):
    code = "lot_not_active"


class MemberRemoved(Conflict):
    """A removed member cannot be changed or given a budget."""

    code = "member_removed"


class RateLimited(CreditgateError):
    """Too many requests; `retry_after` says how long the server asked to wait."""

    code = "too_many_requests"


class ServerError(CreditgateError):
    code = "internal_error"


class ServiceUnavailable(ServerError):
    code = "unavailable"


# Raised by the guard only: `Client.authorize` answers a decline as a value.


class Declined(CreditgateError):
    """The gate declined the hold; raised before the guarded call runs."""

    code = "declined"

    def __init__(self, authorization: Authorization) -> None:
        reason = authorization.decline_reason or "declined"
        # What the server said about it, e.g. what a member's budget has left this period.
        said = "".join(f"; {w}" for w in authorization.warnings)
        super().__init__(
            f"authorization {authorization.id} for {authorization.requested} {authorization.asset}"
            f" was declined: {reason} (available {authorization.available}){said}",
            field="amount",
        )
        self.authorization = authorization
        self.reason = reason
        self.available = authorization.available
        self.requested = authorization.requested


class ChargeShortfall(CreditgateError):
    """A strict guard's settle charged less than the usage was priced at: the wallet could
    not pay the rest. The charge stands (the hold is settled); `settlement` is its answer."""

    code = "charge_shortfall"

    def __init__(self, settlement: Settlement) -> None:
        charge = settlement.charge
        super().__init__(
            f"authorization {settlement.authorization.id} was settled with a shortfall: charge"
            f" {charge.id} took {charge.amount} of the {charge.requested} {charge.asset} the"
            f" usage was priced at; {charge.shortfall} went unbilled",
            field="amount",
        )
        self.settlement = settlement
        self.charge = charge
        self.shortfall = charge.shortfall


class UnbilledCall(CreditgateError):
    """A strict guard was left without `settle` or `void`: its hold was voided, so the call
    it guarded was not billed."""

    code = "unbilled_call"

    def __init__(self, authorization: Authorization) -> None:
        super().__init__(
            f"the guard of authorization {authorization.id} was left without settle or void:"
            " its hold was voided and the call went unbilled"
        )
        self.authorization = authorization


_BY_CODE: dict[str, type[CreditgateError]] = {
    cls.code: cls
    for cls in (
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
        UnknownMember,
        UnknownBudget,
        AlreadyExists,
        IdempotencyKeyRequired,
        IdempotencyConflict,
        HoldNotPending,
        HoldAlreadySettled,
        HoldAlreadyVoided,
        HoldExpired,
        GrantNotActive,
        MemberRemoved,
        RateLimited,
        ServiceUnavailable,
    )
}
# Other codes the server uses, mapped to the class a caller would catch them by.
_BY_CODE.update(
    {
        "malformed_request": InvalidRequest,
        "malformed_json": InvalidRequest,
        "body_too_large": InvalidRequest,
        "unsupported_media_type": InvalidRequest,
        "database_unavailable": ServiceUnavailable,
        "internal_error": ServerError,
    }
)

_BY_STATUS: dict[int, type[CreditgateError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_class(status: int, code: str | None) -> type[CreditgateError]:
    """The most specific class for a problem: by its code, else by its HTTP status."""
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return CreditgateError


def problem_from(data: Any, status: int | None = None) -> Problem:
    """Read a problem document leniently (a batch item's `error` may be a reduced form)."""
    if not isinstance(data, dict):
        return Problem(code="error", detail=str(data)[:500], status=status)

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    raw_status = data.get("status")
    raw_errors = data.get("errors")
    errors = tuple(
        FieldError(
            field=e.get("field") if isinstance(e.get("field"), str) else None,
            detail=str(e.get("detail", "")),
        )
        for e in (raw_errors if isinstance(raw_errors, list) else [])
        if isinstance(e, dict)
    )
    return Problem(
        code=text("code") or "error",
        detail=text("detail") or text("message") or text("title") or "",
        status=raw_status if isinstance(raw_status, int) else status,
        title=text("title") or "",
        type=text("type") or "about:blank",
        field=text("field"),
        errors=errors,
    )


def error_from_problem(
    problem: Problem,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> CreditgateError:
    status = problem.status if problem.status is not None else 0
    cls = error_class(status, problem.code)
    return cls(
        problem.detail or problem.title or f"HTTP {status}",
        status=problem.status,
        code=problem.code if problem.code != "error" else None,
        field=problem.field,
        problem=problem,
        request_id=request_id,
        retry_after=retry_after,
    )
