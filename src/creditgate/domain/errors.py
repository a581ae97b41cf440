"""Named failures of the credit domain; the edges map each to a status and a message."""

from __future__ import annotations


class CreditgateError(Exception):
    """A failure a caller can act on. `code` is stable; `field` names the input at fault."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}


class InvalidInput(CreditgateError):
    code = "invalid_input"
    status = 422


class AmountOverflow(InvalidInput):
    code = "amount_overflow"


class NotFound(CreditgateError):
    code = "not_found"
    status = 404


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
    status = 401


class AlreadyExists(CreditgateError):
    code = "already_exists"
    status = 409


class IdempotencyConflict(CreditgateError):
    code = "idempotency_conflict"
    status = 409


class HoldNotPending(CreditgateError):
    """The hold has already been resolved; a hold resolves exactly once."""

    code = "hold_not_pending"
    status = 409


class HoldAlreadySettled(HoldNotPending):
    code = "hold_already_settled"


class HoldAlreadyVoided(HoldNotPending):
    code = "hold_already_voided"


class HoldExpired(HoldNotPending):
    code = "hold_expired"


class PolicyNotSatisfied(CreditgateError):
    """The wallet's balance already breaks the policy asked for."""

    code = "policy_not_satisfied"
    status = 409


class LotNotActive(CreditgateError):
    code = "lot_not_active"
    status = 409


class ApiKeyRevoked(CreditgateError):
    code = "api_key_revoked"
    status = 409
