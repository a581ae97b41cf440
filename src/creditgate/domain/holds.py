"""The hold state machine: pending, then settled, voided or expired, exactly once."""

from __future__ import annotations

from enum import StrEnum

from creditgate.domain.errors import (
    HoldAlreadySettled,
    HoldAlreadyVoided,
    HoldExpired,
    HoldNotPending,
    InvalidInput,
)


class HoldStatus(StrEnum):
    PENDING = "pending"
    SETTLED = "settled"
    VOIDED = "voided"
    EXPIRED = "expired"
    DECLINED = "declined"  # an authorization that never reserved anything


_TERMINAL_ERRORS: dict[HoldStatus, type[HoldNotPending]] = {
    HoldStatus.SETTLED: HoldAlreadySettled,
    HoldStatus.VOIDED: HoldAlreadyVoided,
    HoldStatus.EXPIRED: HoldExpired,
    HoldStatus.DECLINED: HoldNotPending,
}


def require_pending(hold_id: str, status: HoldStatus) -> None:
    """Raise the named error for a hold that can no longer be resolved."""
    if status is HoldStatus.PENDING:
        return
    raise _TERMINAL_ERRORS[status](f"hold {hold_id} is already {status.value}", field="hold")


MIN_TTL_SECONDS = 1
MAX_TTL_SECONDS = 7 * 24 * 3600
DEFAULT_TTL_SECONDS = 600


def check_ttl(ttl_seconds: object) -> int:
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise InvalidInput("ttl_seconds must be a whole number of seconds", field="ttl_seconds")
    if not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidInput(
            f"ttl_seconds must be from {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS}", field="ttl_seconds"
        )
    return ttl_seconds
