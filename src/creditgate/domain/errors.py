"""Named failures of the credit domain.

An error carries a stable `code`, a message and the `field` at fault; which kind of failure
it is shows in its base class (`InvalidInput`, `NotFound`, `Conflict`, ...). The edges map
kinds to what they speak: `http/problems.py` to HTTP statuses, in one table.
"""

from __future__ import annotations


class CreditgateError(Exception):
    """A failure a caller can act on. `code` is stable; `field` names the input at fault."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}


class InvalidInput(CreditgateError):
    code = "invalid_input"


class AmountOverflow(InvalidInput):
    code = "amount_overflow"


class NotFound(CreditgateError):
    code = "not_found"


class UnknownTenant(NotFound):
    code = "unknown_tenant"


class UnknownAsset(NotFound):
    code = "unknown_asset"


class UnknownCustomer(NotFound):
    code = "unknown_customer"


class UnknownHold(NotFound):
    code = "unknown_hold"


class UnknownLot(NotFound):
    code = "unknown_lot"


class UnknownApiKey(NotFound):
    code = "unknown_api_key"


class Unauthenticated(CreditgateError):
    """No API key, or one that is malformed, unknown or revoked."""

    code = "unauthenticated"


class Forbidden(CreditgateError):
    """The caller is known, but what it asks is outside what its key may do."""

    code = "forbidden"


class LiveTenant(Forbidden):
    """What only a test-mode tenant may do (move its clock), asked by a live tenant."""

    code = "live_tenant"


class Conflict(CreditgateError):
    """The request is well formed, but the state of what it names refuses it."""

    code = "conflict"


class RateLimited(CreditgateError):
    """Too many requests of this kind from this caller: retry after `retry_after` seconds."""

    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(CreditgateError):
    """The service cannot do this now (overload, missing configuration); retrying may help."""

    code = "unavailable"


class UpstreamFailed(CreditgateError):
    """A service creditgate relies on (a payment provider) failed or refused."""

    code = "upstream_failed"


class AlreadyExists(Conflict):
    code = "already_exists"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


class HoldNotPending(Conflict):
    """The hold has already been resolved; a hold resolves exactly once."""

    code = "hold_not_pending"


class HoldAlreadySettled(HoldNotPending):
    code = "hold_already_settled"


class HoldAlreadyVoided(HoldNotPending):
    code = "hold_already_voided"


class HoldExpired(HoldNotPending):
    code = "hold_expired"


class PolicyNotSatisfied(Conflict):
    """The wallet's balance already breaks the policy asked for."""

    code = "policy_not_satisfied"


class LotNotActive(Conflict):
    code = "lot_not_active"


class ApiKeyRevoked(Conflict):
    code = "api_key_revoked"
