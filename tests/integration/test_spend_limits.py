"""Spend limits on holds (a customer gateway key's): a hold counts against its period in the
same transaction as the wallet's reservation, its settle moves it to spent, its void or
expiry gives it back, and held + spent never passes the limit, under concurrency too.

The `ledger` fixture verifies the books (invariant 9 included) after each test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from creditgate.api import TenantLedger
from creditgate.api.gateway import TenantGateway
from creditgate.domain.periods import Period
from creditgate.domain.spend_limits import (
    SPEND_LIMIT_REACHED,
    SpendLimit,
    SpendLimitAssetMismatch,
    current_period,
)
from creditgate.services.results import Authorization
from tests.conftest import FakeClock
from tests.integration.test_concurrency import THREADS, no_errors, race
from tests.integration.test_grants_and_expiry import events_of

FUNDS = 100_000


@pytest.fixture
def limited(ledger: TenantLedger) -> TenantLedger:
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", FUNDS, kind="purchased", cost_basis="0.01")
    return ledger


def _key(ledger: TenantLedger, amount: int, period: str = "day") -> SpendLimit:
    created = TenantGateway(ledger).create_customer_key(
        "c1", spend_limit={"asset": "credits", "amount": amount, "period": period}
    )
    return SpendLimit(created.id, "credits", amount, Period(period))


def _usage(ledger: TenantLedger, limit: SpendLimit) -> tuple[int, int, int]:
    (key,) = [k for k in TenantGateway(ledger).customer_keys("c1") if k.id == limit.id]
    assert key.usage is not None
    return key.usage.held, key.usage.spent, key.usage.remaining


def _authorize(ledger: TenantLedger, amount: int, limit: SpendLimit, key: str) -> bool:
    auth = ledger.authorize("c1", "credits", amount, spend_limit=limit, idempotency_key=key)
    return auth.approved


def test_a_hold_past_the_limit_is_declined_with_what_is_left(limited: TenantLedger) -> None:
    limit = _key(limited, 1_000)
    first = limited.authorize("c1", "credits", 600, spend_limit=limit, idempotency_key="a1")
    assert first.approved and first.available == FUNDS - 600
    second = limited.authorize("c1", "credits", 600, spend_limit=limit, idempotency_key="a2")
    assert not second.approved and second.decline_reason == SPEND_LIMIT_REACHED
    assert second.amount == 0 and second.available == FUNDS - 600  # the wallet could have paid
    (detail,) = second.warnings
    assert "has 400 of 1000 credits left today" in detail and "needs 600" in detail
    # Nothing of the declined hold stays held, in the wallet or the period.
    assert limited.wallet("c1").balance("credits").held == 600
    assert _usage(limited, limit) == (600, 0, 400)
    # What is left still fits; a hold larger than the whole limit never does.
    assert _authorize(limited, 400, limit, "a3")
    assert not _authorize(limited, 1_001, limit, "a4")
    assert _usage(limited, limit) == (1_000, 0, 0)


def test_settle_moves_the_hold_to_spent_and_void_gives_it_back(limited: TenantLedger) -> None:
    limit = _key(limited, 1_000)
    a = limited.authorize("c1", "credits", 500, spend_limit=limit, idempotency_key="a")
    b = limited.authorize("c1", "credits", 300, spend_limit=limit, idempotency_key="b")
    assert _usage(limited, limit) == (800, 0, 200)
    limited.settle(a.id, 420, idempotency_key="sa")
    assert _usage(limited, limit) == (300, 420, 280)
    limited.void(b.id, idempotency_key="vb")
    assert _usage(limited, limit) == (0, 420, 580)
    assert _authorize(limited, 580, limit, "c") and not _authorize(limited, 1, limit, "d")


def test_an_expired_hold_gives_its_credit_back_to_its_period(
    limited: TenantLedger, clock: FakeClock
) -> None:
    limit = _key(limited, 1_000)
    limited.authorize("c1", "credits", 700, spend_limit=limit, ttl_seconds=60)
    clock.advance(seconds=61)
    assert limited.expire_holds() == 1
    assert _usage(limited, limit) == (0, 0, 1_000)


def test_a_settle_past_the_hold_charges_only_what_the_limit_has_left(
    limited: TenantLedger,
) -> None:
    limit = _key(limited, 1_000)
    a = limited.authorize("c1", "credits", 400, spend_limit=limit, idempotency_key="a")
    limited.authorize("c1", "credits", 500, spend_limit=limit, idempotency_key="b")
    # The usage came to 700: the hold and the 100 the period has left are charged, the rest
    # is a shortfall, said to be the limit's.
    settled = limited.settle(a.id, 700, idempotency_key="sa")
    assert (settled.charge.amount, settled.charge.shortfall) == (500, 200)
    assert _usage(limited, limit) == (500, 500, 0)
    assert limited.wallet("c1").balance("credits").available == FUNDS - 1_000
    (event,) = events_of(limited, "charge.shortfall")
    assert event["limited_by"] == "spend_limit" and event["shortfall"] == 200


def test_each_period_starts_afresh_and_a_hold_counts_in_the_one_it_opened_in(
    limited: TenantLedger, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 3, 31, 23, 59, tzinfo=UTC))
    limit = _key(limited, 1_000, "month")
    late = limited.authorize("c1", "credits", 1_000, spend_limit=limit, idempotency_key="m")
    assert not _authorize(limited, 1, limit, "m2")
    clock.set(datetime(2026, 4, 1, 0, 1, tzinfo=UTC))
    # April has its whole limit, and March's hold, settled in April, is spent in March.
    assert _usage(limited, limit) == (0, 0, 1_000)
    limited.settle(late.id, 900, idempotency_key="s")
    assert _usage(limited, limit) == (0, 0, 1_000)
    assert _authorize(limited, 1_000, limit, "april")


@pytest.mark.parametrize(
    ("period", "at", "start", "end"),
    [
        ("day", "2026-05-14T17:30:00+00:00", "2026-05-14T00:00:00+00:00", "2026-05-15"),
        ("week", "2026-05-14T17:30:00+00:00", "2026-05-11T00:00:00+00:00", "2026-05-18"),
        ("week", "2026-05-11T00:00:00+00:00", "2026-05-11T00:00:00+00:00", "2026-05-18"),
        ("month", "2026-12-31T23:59:59+00:00", "2026-12-01T00:00:00+00:00", "2027-01-01"),
        ("month", "2026-05-01T00:30:00+02:00", "2026-04-01T00:00:00+00:00", "2026-05-01"),
        ("total", "2026-05-14T17:30:00+00:00", "1970-01-01T00:00:00+00:00", None),
    ],
)
def test_periods_are_calendar_periods_in_utc(
    period: str, at: str, start: str, end: str | None
) -> None:
    found = current_period(Period(period), datetime.fromisoformat(at))
    assert found.start == datetime.fromisoformat(start)
    assert (found.end.date().isoformat() if found.end else None) == end
    # The period of its own start is itself: a hold counts in one period, whenever read.
    assert current_period(Period(period), found.start) == found


def test_a_call_priced_in_another_asset_is_refused(limited: TenantLedger) -> None:
    limited.create_asset("usd", 2)
    created = TenantGateway(limited).create_customer_key(
        "c1", spend_limit={"asset": "usd", "amount": 1_000, "period": "total"}
    )
    limit = SpendLimit(created.id, "usd", 1_000, Period.TOTAL)
    with pytest.raises(SpendLimitAssetMismatch):
        limited.authorize("c1", "credits", 10, spend_limit=limit)
    assert limited.wallet("c1").balance("credits").held == 0


def test_concurrent_holds_approve_exactly_what_the_limit_fits(limited: TenantLedger) -> None:
    # The wallet could pay every one: only the limit stops them.
    limit = _key(limited, 1_000, "total")
    results = no_errors(race(THREADS * 2, lambda i: _authorize(limited, 150, limit, f"race-{i}")))
    assert results.count(True) == 1_000 // 150
    assert _usage(limited, limit) == (900, 0, 100)
    assert limited.wallet("c1").balance("credits").held == 900


def test_concurrent_holds_and_settles_never_pass_the_limit(limited: TenantLedger) -> None:
    limit = _key(limited, 2_000, "total")

    def call(i: int) -> bool:
        auth = limited.authorize(
            "c1", "credits", 100, spend_limit=limit, idempotency_key=f"call-{i}"
        )
        if auth.approved:
            # Usage of 100 too: the settle neither frees nor takes more than the hold.
            limited.settle(auth.id, 100, idempotency_key=f"settle-{i}")
        return auth.approved

    results = no_errors(race(THREADS * 3, call))
    assert results.count(True) == 20
    assert _usage(limited, limit) == (0, 2_000, 0)
    assert limited.wallet("c1").balance("credits").available == FUNDS - 2_000


# A hold for a member under a spend limit counts against both: the member's budgets and the
# limit's period, in the transaction of the wallet's hold.


def _member_with_budget(ledger: TenantLedger, amount: int) -> None:
    ledger.create_member("c1", "m1")
    ledger.set_budget("c1", "credits", amount, period="day", member="m1")


def _member_usage(ledger: TenantLedger) -> tuple[int, int]:
    (period,) = ledger.usage("c1", member="m1").data
    return period.held, period.spent


def test_a_hold_under_a_budget_and_a_limit_must_fit_both(limited: TenantLedger) -> None:
    limit = _key(limited, 1_000)
    _member_with_budget(limited, 700)

    def hold(amount: int, key: str) -> Authorization:
        return limited.authorize(
            "c1", "credits", amount, member="m1", spend_limit=limit, idempotency_key=key
        )

    assert hold(500, "a").approved
    alerts = len(events_of(limited, "budget.threshold_crossed"))
    past_budget = hold(300, "b")  # the limit has 500 left, the budget 200
    assert past_budget.decline_reason == "budget_exceeded"
    # Neither the limit nor the wallet keeps anything of the declined hold.
    assert _usage(limited, limit) == (500, 0, 500) and _member_usage(limited) == (500, 0)
    assert limited.wallet("c1").balance("credits").held == 500
    assert len(events_of(limited, "budget.threshold_crossed")) == alerts  # none for a decline
    limited.set_budget("c1", "credits", 5_000, period="day", member="m1")
    assert hold(500, "c").approved
    past_limit = hold(100, "d")  # the budget has 4,000 left, the limit none
    assert past_limit.decline_reason == SPEND_LIMIT_REACHED
    assert _usage(limited, limit) == (1_000, 0, 0) and _member_usage(limited) == (1_000, 0)
    assert limited.wallet("c1").balance("credits").held == 1_000


@pytest.mark.parametrize(
    ("budget", "limit_amount", "capped"), [(650, 900, "budget"), (900, 650, "spend_limit")]
)
def test_a_settle_past_its_hold_is_capped_by_the_smaller_of_budget_and_limit(
    limited: TenantLedger, budget: int, limit_amount: int, capped: str
) -> None:
    limit = _key(limited, limit_amount)
    _member_with_budget(limited, budget)
    auth = limited.authorize(
        "c1", "credits", 500, member="m1", spend_limit=limit, idempotency_key="a"
    )
    settled = limited.settle(auth.id, 800, idempotency_key="s")
    assert (settled.charge.amount, settled.charge.shortfall) == (650, 150)
    (event,) = events_of(limited, "charge.shortfall")
    assert event["limited_by"] == capped and event["member"] == "m1"
    assert _usage(limited, limit)[:2] == (0, 650) and _member_usage(limited) == (0, 650)


def test_concurrent_holds_under_a_budget_and_a_limit_approve_what_the_smaller_fits(
    limited: TenantLedger,
) -> None:
    limit = _key(limited, 1_000)
    _member_with_budget(limited, 700)

    def calls(round_: str) -> int:
        def call(i: int) -> bool:
            key = f"{round_}-{i}"
            return limited.authorize(
                "c1", "credits", 100, member="m1", spend_limit=limit, idempotency_key=key
            ).approved

        return no_errors(race(THREADS * 2, call)).count(True)

    assert calls("budget") == 7  # the budget is the smaller: 700 of the limit's 1,000
    limited.set_budget("c1", "credits", 5_000, period="day", member="m1")
    assert calls("limit") == 3  # now the limit is: 300 left of it, 4,300 of the budget
    assert _usage(limited, limit) == (1_000, 0, 0) and _member_usage(limited) == (1_000, 0)
    assert limited.wallet("c1").balance("credits").held == 1_000
