"""Plans and subscriptions: included credit per period, rollover caps, renewals exactly once,
plan changes and cancellation, on both backends with the clock in the test's hands."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from creditgate.api import TenantLedger
from creditgate.domain.billing_errors import AlreadySubscribed, SubscriptionNotActive
from creditgate.domain.errors import IdempotencyConflict, InvalidInput
from creditgate.storage.tables import events
from tests.conftest import FakeClock

INCLUDED = 100_000  # 1,000.00 credits a month
CAP = 30_000


def events_of(t: TenantLedger, event_type: str) -> list[dict[str, Any]]:
    with t.cg.db.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.payload)
            .where(events.c.tenant_id == t.tenant_id, events.c.type == event_type)
            .order_by(events.c.id)
        )
        return [r.payload for r in rows]


@pytest.fixture
def pro(ledger: TenantLedger) -> TenantLedger:
    ledger.create_customer("c1")
    ledger.create_plan(
        "pro", asset="credits", included=INCLUDED, fee="20.00", rollover_cap=CAP, name="Pro"
    )
    return ledger


def available(t: TenantLedger, customer: str = "c1") -> int:
    return t.wallet(customer).balance("credits").available


def test_a_year_of_monthly_renewals_with_a_rollover_cap(
    pro: TenantLedger, clock: FakeClock
) -> None:
    # Anchored on the 31st: short months end on their last day, long ones come back to the 31st.
    clock.set(datetime(2026, 1, 31, 12, tzinfo=UTC))
    sub = pro.subscribe("c1", "pro")
    ends = [
        datetime(y, m, d, 12, tzinfo=UTC)
        for y, m, d in [
            (2026, 2, 28), (2026, 3, 31), (2026, 4, 30), (2026, 5, 31), (2026, 6, 30),
            (2026, 7, 31), (2026, 8, 31), (2026, 9, 30), (2026, 10, 31), (2026, 11, 30),
            (2026, 12, 31), (2027, 1, 31), (2027, 2, 28),
        ]
    ]  # fmt: skip
    usage = [20_000, 95_000, 130_000, 0, 50_000, 100_000, 75_000, 110_000, 10_000, 99_999,
             60_000, 128_000]  # fmt: skip
    carry = 0
    carried: list[int] = []
    start = clock.now
    for month, used in enumerate(usage):
        assert available(pro) == INCLUDED + carry
        # The job runs all through the period; nothing is due before its end.
        clock.set(start + timedelta(days=1))
        assert pro.renew_due().renewed == 0
        if used:
            assert pro.charge("c1", "credits", used).status == "posted"
        clock.set(ends[month] - timedelta(seconds=1))
        assert pro.renew_due().renewed == 0
        clock.set(ends[month] + timedelta(minutes=5))
        if month % 2:
            # The expiry sweep may run before the renewal: the rollover must not depend on it.
            pro.run_sweeps()
        first, again, third = pro.renew_due(), pro.renew_due(), pro.renew_due()
        assert (first.renewed, again.renewed, third.renewed) == (1, 0, 0)
        pro.run_sweeps()
        unused = INCLUDED - max(0, used - carry)
        carry = min(unused, CAP)
        carried.append(carry)
        assert first.rolled_over == carry
        balance = pro.wallet("c1").balance("credits")
        assert (balance.posted, balance.held) == (INCLUDED + carry, 0)
        start = ends[month]
    assert carried == [30_000, 30_000, 0, 30_000, 30_000, 30_000, 30_000, 20_000, 30_000,
                       30_000, 30_000, 2_000]  # fmt: skip

    sub = pro.subscription(sub.id)
    assert [p.index for p in sub.periods] == list(range(13))
    assert [p.period_end for p in sub.periods] == ends
    assert [p.rolled_over for p in sub.periods] == [0, *carried]
    assert sub.current_period_end == ends[12]
    lots = {lot.id: lot for lot in pro.lots("c1", include_closed=True)}
    assert len(lots) == 13 + sum(1 for c in carried if c)
    rollover_in = [0, *carried]
    for month, used in enumerate(usage):
        period = sub.periods[month]
        included = lots[period.lot_id]  # type: ignore[index]
        from_rollover = min(used, rollover_in[month])
        unused = INCLUDED - (used - from_rollover)
        assert (included.status, included.kind, included.amount) == (
            "expired",
            "included",
            INCLUDED,
        )
        assert included.expires_at == ends[month]
        assert included.consumed == used - from_rollover
        assert included.voided == carried[month]  # carried into the next period
        assert included.expired == unused - carried[month]  # breakage
        assert included.remaining == 0
        assert included.cost_basis == Decimal("0.02")  # $20 over 1,000 credits
        if period.rollover_lot_id:
            rolled = lots[period.rollover_lot_id]
            assert rolled.amount == rollover_in[month]
            assert rolled.consumed == from_rollover
            assert rolled.expired == rollover_in[month] - from_rollover
            assert rolled.metadata["rollover_from"] == sub.periods[month - 1].lot_id
            assert rolled.expires_at == ends[month]
            assert rolled.cost_basis == Decimal("0.02")
    open_lots = pro.lots("c1")
    assert sorted(lot.amount for lot in open_lots) == [2_000, INCLUDED]
    # Carried credit is spent before the period's own.
    assert open_lots[0].amount == 2_000
    renewed = events_of(pro, "subscription.renewed")
    assert [e["period"] for e in renewed] == list(range(1, 13))
    assert [e["rolled_over"] for e in renewed] == carried


def test_concurrent_renewal_jobs_issue_a_period_once(pro: TenantLedger, clock: FakeClock) -> None:
    pro.subscribe("c1", "pro")
    clock.advance(days=32)
    reports = []
    barrier = threading.Barrier(4)

    def job() -> None:
        barrier.wait()
        reports.append(pro.renew_due())

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.renewed for r in reports) == 1
    assert sum(r.rolled_over for r in reports) == CAP
    assert available(pro) == INCLUDED * 2  # this period's lot + the carry, before the sweep
    pro.run_sweeps()
    assert available(pro) == INCLUDED + CAP


def test_a_job_that_missed_periods_issues_each_once_and_only_live_credit(
    pro: TenantLedger, clock: FakeClock
) -> None:
    sub = pro.subscribe("c1", "pro")
    clock.advance(days=100)  # three periods end unseen
    report = pro.renew_due()
    assert report.renewed == 3
    pro.run_sweeps()
    periods = pro.subscription(sub.id).periods
    assert [p.index for p in periods] == [0, 1, 2, 3]
    # Periods that ended before the job saw them get no credit; the current one does.
    assert [p.lot_id is not None for p in periods] == [True, False, False, True]
    assert available(pro) == INCLUDED
    assert pro.renew_due().renewed == 0


def test_changing_plan_now_and_at_period_end(pro: TenantLedger, clock: FakeClock) -> None:
    pro.create_plan("max", asset="credits", included=500_000, fee="80", overage_policy="allow")
    pro.create_plan("lite", asset="credits", included=10_000, fee="5", period="yearly")
    sub = pro.subscribe("c1", "pro")
    clock.advance(days=10)
    changed = pro.change_plan(sub.id, "max")
    # A new period starts now on the new plan; the old included credit keeps its expiry.
    assert changed.current_period_start == clock.now
    assert changed.current_period_end == clock.now.replace(month=2)
    assert [p.index for p in changed.periods] == [0, 1]
    assert available(pro) == INCLUDED + 500_000
    assert pro.wallet("c1").balance("credits").policy == "allow"
    new_lot = next(lot for lot in pro.lots("c1") if lot.amount == 500_000)
    assert new_lot.cost_basis == Decimal("0.016")  # $80 over 5,000 credits

    pending = pro.change_plan(sub.id, "lite", at="period_end")
    assert pending.pending_plan_id is not None and pending.plan_id == changed.plan_id
    clock.set(changed.current_period_end + timedelta(hours=1))
    assert pro.renew_due().renewed == 1
    pro.run_sweeps()
    renewed = pro.subscription(sub.id)
    lite = next(p for p in pro.plans() if p.code == "lite")
    assert renewed.plan_id == lite.id and renewed.pending_plan_id is None
    # Yearly from the change: the anchor moved to the day the new plan began.
    assert renewed.current_period_end == renewed.current_period_start.replace(year=2027)
    assert available(pro) == 10_000  # max's rollover cap is 0: nothing carried
    assert pro.wallet("c1").balance("credits").policy == "block"


def test_cancel_at_period_end_and_now(pro: TenantLedger, clock: FakeClock) -> None:
    pro.create_customer("c2")
    first = pro.subscribe("c1", "pro")
    second = pro.subscribe("c2", "pro")
    with pytest.raises(AlreadySubscribed):
        pro.subscribe("c1", "pro")
    assert pro.cancel_subscription(first.id).cancel_at_period_end
    canceled = pro.cancel_subscription(second.id, at="now")
    assert canceled.status == "canceled" and canceled.canceled_at == clock.now
    with pytest.raises(SubscriptionNotActive):
        pro.change_plan(second.id, "pro")
    # Included credit already granted stays until it expires.
    assert available(pro, "c2") == INCLUDED
    clock.advance(days=40)
    report = pro.renew_due()
    assert (report.renewed, report.canceled) == (0, 1)
    pro.run_sweeps()
    assert pro.subscription(first.id).status == "canceled"
    assert available(pro) == available(pro, "c2") == 0
    assert len(events_of(pro, "subscription.canceled")) == 2
    # A canceled customer may subscribe again.
    assert pro.subscribe("c2", "pro").status == "active"


def test_subscribe_is_idempotent_and_validated(pro: TenantLedger) -> None:
    a = pro.subscribe("c1", "pro", idempotency_key="sub-1")
    assert pro.subscribe("c1", "pro", idempotency_key="sub-1") == a
    with pytest.raises(IdempotencyConflict):
        pro.subscribe("c1", "other", idempotency_key="sub-1")
    with pytest.raises(InvalidInput):
        pro.create_plan("bad", asset="credits", included=100, fee="1", period="weekly")
    with pytest.raises(InvalidInput):
        pro.change_plan(a.id, "pro", at="tomorrow")
    assert len(pro.lots("c1")) == 1
