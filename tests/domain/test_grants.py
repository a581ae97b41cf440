"""A grant's terms: what a lot may be, checked before the database is asked anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from creditgate.domain.amounts import MAX_BALANCE
from creditgate.domain.errors import AmountOverflow, InvalidInput
from creditgate.domain.grants import (
    MAX_PRIORITY,
    GrantRequest,
    check_grant,
    check_priority,
)
from creditgate.domain.lots import LotKind

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_grant_takes_effect_now_unless_it_names_a_time() -> None:
    terms = check_grant(GrantRequest("c1", "credits", 100), 0, NOW)
    assert terms.effective_at == NOW
    assert terms.kind is LotKind.PROMOTIONAL
    assert terms.cost_basis == 0
    later = NOW + timedelta(days=1)
    scheduled = check_grant(GrantRequest("c1", "credits", 100, effective_at=later), 0, NOW)
    assert scheduled.effective_at == later


def test_the_priority_given_is_the_lots_priority() -> None:
    request = GrantRequest("c1", "credits", 100, kind="purchased", cost_basis="0.25")
    terms = check_grant(request, 20, NOW)
    assert (terms.priority, terms.kind, terms.cost_basis) == (
        20,
        LotKind.PURCHASED,
        Decimal("0.25"),
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"kind": "gift"}, "kind"),
        ({"effective_at": datetime(2026, 1, 2)}, "effective_at"),
        ({"expires_at": NOW - timedelta(days=1), "effective_at": NOW}, "expires_at"),
        ({"cost_basis": "-1", "kind": "purchased"}, "cost_basis"),
        ({"cost_basis": "0.5"}, "cost_basis"),  # promotional credit has no cost basis
        ({"currency": "US"}, "currency"),
        ({"currency": "U5D"}, "currency"),
    ],
)
def test_terms_that_make_no_lot_are_refused(changes: dict[str, object], field: str) -> None:
    terms: dict[str, object] = {"customer": "c1", "asset": "credits", "amount": 100, **changes}
    request = GrantRequest(**terms)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as refused:
        check_grant(request, 0, NOW)
    assert refused.value.field == field


def test_a_grant_past_the_balance_bound_overflows() -> None:
    with pytest.raises(AmountOverflow):
        check_grant(GrantRequest("c1", "credits", MAX_BALANCE + 1), 0, NOW)


def test_an_expiry_already_past_is_left_to_the_replay_check() -> None:
    # A retry of a grant that has since expired still gets its answer.
    request = GrantRequest("c1", "credits", 100, expires_at=NOW - timedelta(seconds=1))
    assert check_grant(request, 0, NOW).expires_at == NOW - timedelta(seconds=1)


@pytest.mark.parametrize("priority", [-1, MAX_PRIORITY + 1, True, 1.5])
def test_priorities_are_whole_numbers_in_range(priority: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_priority(priority)
    assert refused.value.field == "priority"
    assert check_priority(MAX_PRIORITY) == MAX_PRIORITY
