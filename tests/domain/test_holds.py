"""The hold state machine: a hold resolves exactly once, and says why it cannot again."""

from __future__ import annotations

import pytest

from creditgate.domain.errors import (
    Conflict,
    HoldAlreadySettled,
    HoldAlreadyVoided,
    HoldExpired,
    HoldNotPending,
    InvalidInput,
)
from creditgate.domain.holds import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    HoldStatus,
    check_ttl,
    require_pending,
)


def test_a_pending_hold_may_be_resolved() -> None:
    require_pending("hld_1", HoldStatus.PENDING)


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (HoldStatus.SETTLED, HoldAlreadySettled, "hold_already_settled"),
        (HoldStatus.VOIDED, HoldAlreadyVoided, "hold_already_voided"),
        (HoldStatus.EXPIRED, HoldExpired, "hold_expired"),
        (HoldStatus.DECLINED, HoldNotPending, "hold_not_pending"),
    ],
)
def test_a_resolved_hold_names_what_happened_to_it(
    status: HoldStatus, error: type[HoldNotPending], code: str
) -> None:
    with pytest.raises(HoldNotPending) as info:
        require_pending("hld_1", status)
    assert type(info.value) is error
    assert info.value.code == code
    assert isinstance(info.value, Conflict)
    assert "hld_1" in info.value.message and status.value in info.value.message


def test_every_status_other_than_pending_is_final() -> None:
    for status in HoldStatus:
        if status is HoldStatus.PENDING:
            continue
        with pytest.raises(HoldNotPending):
            require_pending("hld_x", status)


@pytest.mark.parametrize("ttl", [MIN_TTL_SECONDS, DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS])
def test_ttls_in_range(ttl: int) -> None:
    assert check_ttl(ttl) == ttl


@pytest.mark.parametrize("ttl", [0, -1, MAX_TTL_SECONDS + 1, 1.5, 60.0, True, "60", None, 10**30])
def test_bad_ttls_name_the_field(ttl: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_ttl(ttl)
    assert info.value.field == "ttl_seconds"
