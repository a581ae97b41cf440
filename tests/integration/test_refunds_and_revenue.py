"""Refunds return credit to the lots it came from; revenue is recognized from the ledger."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from creditgate.api import TenantLedger
from creditgate.domain.errors import IdempotencyConflict, InvalidInput
from creditgate.services.ledger.refunds import UnknownCharge
from tests.conftest import FakeClock


def lots_by_id(ledger: TenantLedger, customer: str = "c1") -> dict[str, object]:
    return {lot.id: lot for lot in ledger.lots(customer, include_closed=True)}


def test_a_whole_refund_puts_credit_back_where_it_came_from(ledger: TenantLedger) -> None:
    ledger.create_customer("c1")
    promo = ledger.grant("c1", "credits", 1_000)
    paid = ledger.grant("c1", "credits", 500, kind="purchased", cost_basis="0.25", priority=5)
    charge = ledger.charge("c1", "credits", 1_200, action="image.generate")
    assert [(d.lot_id, d.amount) for d in charge.draws] == [(promo.id, 1_000), (paid.id, 200)]

    refund = ledger.refund_charge(charge.id, reason="image was blank")
    assert refund.amount == 1_200 and refund.charge_refunded == 1_200
    assert [(x.lot_id, x.amount) for x in refund.lines] == [(paid.id, 200), (promo.id, 1_000)]
    after = lots_by_id(ledger)
    assert after[promo.id].remaining == 1_000 and after[promo.id].refunded == 1_000
    assert after[paid.id].remaining == 500 and after[paid.id].refunded == 200
    assert ledger.wallet("c1").balance("credits").posted == 1_500
    newest = ledger.ledger("c1").data[0]
    assert (newest.kind, newest.reference_id, newest.wallet_change) == ("refund", charge.id, 1_200)
    with pytest.raises(InvalidInput) as info:
        ledger.refund_charge(charge.id, reason="again")
    assert info.value.field == "amount"


def test_partial_refunds_come_back_last_drawn_first_and_never_exceed_the_charge(
    ledger: TenantLedger,
) -> None:
    ledger.create_customer("c1")
    promo = ledger.grant("c1", "credits", 1_000)
    paid = ledger.grant("c1", "credits", 500, kind="purchased", cost_basis="0.25", priority=5)
    charge = ledger.charge("c1", "credits", 1_200)
    first = ledger.refund_charge(charge.id, amount=300, reason="partly wrong")
    assert [(x.lot_id, x.amount) for x in first.lines] == [(paid.id, 200), (promo.id, 100)]
    second = ledger.refund_charge(charge.id, amount=900, reason="the rest")
    assert [(x.lot_id, x.amount) for x in second.lines] == [(promo.id, 900)]
    assert second.charge_refunded == 1_200
    with pytest.raises(InvalidInput):
        ledger.refund_charge(charge.id, amount=1, reason="too much")


def test_credit_of_a_lot_that_expired_meanwhile_goes_to_a_new_refund_lot(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    ledger.create_customer("c1")
    pack = ledger.grant(
        "c1", "credits", 1_000, kind="purchased", cost_basis="0.25",
        expires_at=clock.now + timedelta(days=1),
    )  # fmt: skip
    charge = ledger.charge("c1", "credits", 400)
    clock.advance(days=2)
    ledger.run_sweeps()
    refund = ledger.refund_charge(charge.id, reason="outage credit")
    (line,) = refund.lines
    assert line.lot_id == pack.id and line.to_lot != pack.id
    new = lots_by_id(ledger)[line.to_lot]
    assert (new.kind, new.remaining, new.cost_basis, new.expires_at) == (
        "refund",
        400,
        Decimal("0.25"),
        None,
    )
    assert lots_by_id(ledger)[pack.id].status == "expired"


def test_refunding_usage_that_became_debt_pays_the_debt_back(ledger: TenantLedger) -> None:
    ledger.create_customer("c1", policy="allow")
    ledger.grant("c1", "credits", 100)
    charge = ledger.charge("c1", "credits", 300)
    assert charge.debt == 200
    refund = ledger.refund_charge(charge.id, amount=250, reason="bug")
    assert (refund.lines[0].lot_id, refund.lines[0].amount) == (None, 200)
    balance = ledger.wallet("c1").balance("credits")
    assert (balance.posted, balance.debt) == (50, 0)


def test_refund_errors_and_replays(ledger: TenantLedger) -> None:
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 1_000)
    charge = ledger.charge("c1", "credits", 100)
    with pytest.raises(UnknownCharge):
        ledger.refund_charge("chg_missing", reason="x")
    with pytest.raises(InvalidInput) as info:
        ledger.refund_charge(charge.id, reason=" ")
    assert info.value.field == "reason"
    first = ledger.refund_charge(charge.id, amount=40, reason="late", idempotency_key="r1")
    assert ledger.refund_charge(charge.id, amount=40, reason="late", idempotency_key="r1") == first
    with pytest.raises(IdempotencyConflict):
        ledger.refund_charge(charge.id, amount=41, reason="late", idempotency_key="r1")
    assert ledger.wallet("c1").balance("credits").posted == 940


def test_revenue_a_pack_bought_partly_used_refunded_and_expired(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    start = clock.now
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 500)  # promotional: no revenue either way
    ledger.grant(
        "c1", "credits", 10_000, kind="purchased", cost_basis="0.25", priority=5,
        expires_at=clock.now + timedelta(days=30),
    )  # fmt: skip  # 100 credits for $25
    clock.advance(days=1)
    used = ledger.charge("c1", "credits", 3_500)  # 5 promo credits, then 30 paid
    ledger.refund_charge(used.id, amount=1_000, reason="failed job")  # 10 paid credits back
    mid = clock.advance(days=1)
    clock.advance(days=40)
    ledger.run_sweeps()  # the rest of the pack expires: breakage
    end = clock.advance(seconds=1)

    whole = ledger.revenue_report(start=start, end=end).lines
    assert len(whole) == 1
    line = whole[0]
    assert line.currency == "USD"
    assert line.opening_deferred == 0 and line.sold == Decimal("25")
    assert line.recognized == Decimal("7.5") and line.refunded == Decimal("2.5")
    assert line.breakage == Decimal("20") and line.closing_deferred == 0
    # Money received = deferred + recognized + breakage (net of refunds), at every point.
    first_days = ledger.revenue_report(start=start, end=mid).lines[0]
    later = ledger.revenue_report(start=mid, end=end).lines[0]
    assert first_days.closing_deferred == later.opening_deferred == Decimal("20")
    assert later.breakage == Decimal("20") and later.closing_deferred == 0
    assert ledger.revenue_report(start=start, end=end, customer="c1").lines == whole


def test_grant_expiring_is_announced_once_a_day_ahead(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    from sqlalchemy import select

    from creditgate.storage.tables import events

    ledger.create_customer("c1")
    soon = ledger.grant("c1", "credits", 500, expires_at=clock.now + timedelta(hours=30))
    ledger.grant("c1", "credits", 500, expires_at=clock.now + timedelta(days=30))
    ledger.run_sweeps()  # 30 hours ahead: not yet

    def announced() -> list[dict[str, object]]:
        with ledger.cg.db.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.payload).where(
                    events.c.tenant_id == ledger.tenant_id, events.c.type == "grant.expiring"
                )
            )
            return [r.payload for r in rows]

    assert announced() == []
    clock.advance(hours=7)
    ledger.run_sweeps()
    ledger.run_sweeps()
    assert [p["lot"] for p in announced()] == [soon.id]
    assert announced()[0]["remaining"] == 500


def test_a_sweep_announces_only_lots_not_yet_announced(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    """The sweep's read leaves out announced lots: a small limit still reaches every lot."""
    from sqlalchemy import func, select

    from creditgate.services.ledger.sweeps import warn_expiring
    from creditgate.storage.tables import events

    ledger.create_customer("c1")
    for hours in (2, 3, 4, 5, 6):
        ledger.grant("c1", "credits", 100, expires_at=clock.now + timedelta(hours=hours))
    ledger.grant("c1", "credits", 100, expires_at=clock.now + timedelta(days=9))
    rounds = [ledger._run(warn_expiring, limit=2) for _ in range(4)]
    assert rounds == [2, 2, 1, 0]
    with ledger.cg.db.engine.connect() as conn:
        count = conn.execute(
            select(func.count()).where(
                events.c.tenant_id == ledger.tenant_id, events.c.type == "grant.expiring"
            )
        ).scalar_one()
    assert count == 5


def test_a_year_of_renewals_with_rollover_ties_out_month_by_month(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    """Carried-over credit is deferred revenue moved, not sold; its breakage counts once."""
    ledger.create_customer("c1")
    ledger.create_plan("pro", asset="credits", included=100_000, fee="20.00", rollover_cap=30_000)
    usage = [20_000, 95_000, 130_000, 0, 50_000, 100_000, 75_000, 110_000, 10_000, 99_999,
             60_000, 128_000]  # fmt: skip
    marks = [clock.now]
    sub = ledger.subscribe("c1", "pro")
    for month, used in enumerate(usage):
        clock.advance(days=3)
        if used:
            ledger.charge("c1", "credits", used)
        end = ledger.subscription(sub.id).current_period_end
        clock.set(end + timedelta(minutes=5))
        if month % 2:
            ledger.run_sweeps()  # the sweep expires the old lot before the renewal carries it
        marks.append(clock.now)
        assert ledger.renew_due().renewed == 1
        ledger.run_sweeps()
    marks.append(clock.advance(seconds=1))

    lines = []
    for start, end in pairwise(marks):
        (line,) = ledger.revenue_report(start=start, end=end).lines
        lines.append(line)
    for month, line in enumerate(lines):
        # One included grant a period, worth the fee; rollover moves credit, sells nothing.
        assert line.sold == Decimal("20.00"), (month, line)
        assert line.voided == line.refunded == line.purchases_refunded == 0, (month, line)
        assert (
            line.opening_deferred + line.sold - line.recognized - line.breakage - line.refunded
            == line.closing_deferred
        ), (month, line)
        assert line.breakage >= 0
    for before, after in pairwise(lines):
        assert before.closing_deferred == after.opening_deferred
    assert sum(line.recognized for line in lines) == sum(usage) * Decimal("0.0002")
    # Breakage is what expired for good: what the lots say, counted once.
    lots = ledger.lots("c1", include_closed=True)
    expired = sum(lot.expired for lot in lots)
    assert sum(line.breakage for line in lines) == expired * Decimal("0.0002")
    assert sum(line.sold for line in lines) == Decimal("20.00") * 13
    open_value = sum(lot.remaining for lot in lots if lot.status == "active") * Decimal("0.0002")
    assert lines[-1].closing_deferred == open_value
    (whole,) = ledger.revenue_report(start=marks[0], end=marks[-1]).lines
    assert whole.sold == Decimal("260") and whole.breakage == expired * Decimal("0.0002")


def test_refunding_debt_that_a_grant_already_paid_comes_back_as_credit(
    ledger: TenantLedger,
) -> None:
    # The charge ran into debt; a later grant paid that debt; refunding the charge must not
    # leave the wallet owing less than nothing (a later grant would then "repay" a negative
    # debt and push a lot's remaining past its amount).
    ledger.create_customer("od", policy="overdraft", overdraft_limit=500)
    ledger.grant("od", "credits", 100, kind="purchased", cost_basis="0.01")
    charge = ledger.charge("od", "credits", 300)
    assert charge.debt == 200
    ledger.grant("od", "credits", 1_000, kind="purchased", cost_basis="0.01")  # pays the 200
    assert ledger.wallet("od").balance("credits").debt == 0
    refund = ledger.refund_charge(charge.id, reason="outage")
    assert refund.amount == 300
    debt_lines = [line for line in refund.lines if line.lot_id is None]
    assert [(line.amount, line.to_lot is not None) for line in debt_lines] == [(200, True)]
    balance = ledger.wallet("od").balance("credits")
    assert (balance.posted, balance.debt) == (1_100, 0)
    later = ledger.grant("od", "credits", 50, kind="promotional")
    assert later.consumed == 0 and later.remaining == 50
    assert all(0 <= lot.remaining <= lot.amount for lot in ledger.lots("od", include_closed=True))
    assert ledger.cg.verify(ledger.tenant_id).ok
