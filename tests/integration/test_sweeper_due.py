"""The worker's round visits only the tenants with something due (`Creditgate.tenants_due`):
each kind of due work is found, on both backends, and a tenant with nothing due is passed
over, at no cost; a tenant left out has nothing the round would have done."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from creditgate.api import Creditgate, TenantLedger
from creditgate.server import worker
from creditgate.services.billing import overage
from creditgate.services.billing.due import reads as due_reads
from creditgate.storage.tables import (
    events,
    holds,
    ledger_transactions,
    lots,
    purchases,
)
from tests.conftest import FakeClock, operator_settings
from tests.stripe_fake import API_KEY, FakeStripe


def live(cg: Creditgate, customer_credit: int | None = 1_000) -> TenantLedger:
    tenant = cg.create_tenant(f"round {uuid.uuid4().hex[:8]}")
    t = cg.tenant(tenant.id)
    t.create_asset("credits", 2, "Credits")
    t.create_customer("c1")
    if customer_credit:
        t.grant("c1", "credits", customer_credit, kind="purchased")
    return t


def count(t: TenantLedger, table: Any, *where: Any) -> int:
    with t.cg.db.engine.connect() as conn:
        found = conn.execute(
            select(func.count()).select_from(table).where(table.c.tenant_id == t.tenant_id, *where)
        ).scalar_one()
    return int(found)


def visited(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tenants whose sweeps the round runs, in order."""
    seen: list[str] = []
    sweeps = TenantLedger.run_sweeps

    def recorded(self: TenantLedger) -> Any:
        seen.append(self.tenant_id)
        return sweeps(self)

    monkeypatch.setattr(TenantLedger, "run_sweeps", recorded)
    return seen


# Each kind of work the round does, set up in a live tenant of its own: (what makes it due,
# what shows the round did it).
Setup = Callable[[TenantLedger, FakeClock], Callable[[], bool]]


def hold_past_its_ttl(t: TenantLedger, clock: FakeClock) -> Callable[[], bool]:
    t.authorize("c1", "credits", 100, ttl_seconds=60, idempotency_key="h")
    clock.advance(seconds=120)
    return lambda: count(t, holds, holds.c.status == "expired") == 1


def scheduled_lot(t: TenantLedger, clock: FakeClock) -> Callable[[], bool]:
    t.grant("c1", "credits", 500, effective_at=clock.now + timedelta(hours=1))
    clock.advance(hours=2)
    return lambda: t.wallet("c1").balance("credits").available == 1_500


def lot_expiring_within_a_day(t: TenantLedger, clock: FakeClock) -> Callable[[], bool]:
    t.grant("c1", "credits", 500, expires_at=clock.now + timedelta(hours=48))
    clock.advance(hours=30)
    return lambda: count(t, events, events.c.type == "grant.expiring") == 1


def lot_past_its_expiry(t: TenantLedger, clock: FakeClock) -> Callable[[], bool]:
    t.grant("c1", "credits", 500, expires_at=clock.now + timedelta(hours=1))
    clock.advance(hours=2)
    return lambda: count(t, lots, lots.c.status == "expired") == 1


def period_ended(t: TenantLedger, clock: FakeClock) -> Callable[[], bool]:
    t.create_plan("free", asset="credits", included=1_000, fee="0")
    sub = t.subscribe("c1", "free", idempotency_key="s")
    clock.advance(days=32)
    return lambda: len(t.subscription(sub.id).periods) == 2


def debt_billed_in_arrears(t: TenantLedger, clock: FakeClock) -> Callable[[], bool]:
    t.create_plan("payg", asset="credits", included=1_000, fee="0", overage_policy="allow")
    t.subscribe("c1", "payg", idempotency_key="s")
    t.set_overage("credits", price="0.05", currency="USD")
    t.charge("c1", "credits", 3_000, idempotency_key="over")  # 1,000 past the 2,000 it had
    clock.advance(days=32)
    return lambda: count(t, purchases, purchases.c.origin == "overage") == 1


def payment_failed_past_its_grace(t: TenantLedger, clock: FakeClock) -> Callable[[], bool]:
    t.create_plan(
        "team",
        asset="credits",
        included=1_000,
        fee="50",
        collection="manual",
        grant_before_payment=True,
        grace_days=3,
    )
    sub = t.subscribe("c1", "team", idempotency_key="s")
    (invoice,) = t.invoices("c1")
    t.mark_invoice_failed(invoice.id, reason="bounced", idempotency_key="f")
    clock.advance(days=4)
    return lambda: t.subscription(sub.id).periods[0].withheld == 1_000


def top_up_set_below_its_threshold(t: TenantLedger, clock: FakeClock) -> Callable[[], bool]:
    t.create_pack("small", asset="credits", amount=5_000, price="5")
    t.set_auto_top_up("c1", "credits", threshold=2_000, pack="small", provider="manual")
    return lambda: count(t, purchases, purchases.c.origin == "auto_top_up") == 1


def top_up_purchase_to_send(t: TenantLedger, clock: FakeClock) -> Callable[[], bool]:
    t.set_provider_account("stripe", api_key=API_KEY)
    t.create_pack("small", asset="credits", amount=5_000, price="5")
    t.set_auto_top_up("c1", "credits", threshold=500, pack="small")
    t.charge("c1", "credits", 600, idempotency_key="cross")  # 400: a purchase the worker sends
    # No saved payment method: Stripe is not called, and the purchase fails at once.
    return lambda: count(t, purchases, purchases.c.status == "failed") == 1


# Each kind, with the step's read that is to find it (others may too: a period's included
# credit expires as the period ends).
DUE: dict[str, tuple[Setup, str]] = {
    "a hold past its TTL": (hold_past_its_ttl, "expire_holds"),
    "a scheduled lot": (scheduled_lot, "activate_lots"),
    "a lot expiring within a day": (lot_expiring_within_a_day, "warn_expiring"),
    "a lot past its expiry": (lot_past_its_expiry, "expire_lots"),
    "a period ended": (period_ended, "renew_due"),
    "debt billed in arrears": (debt_billed_in_arrears, "wallets_in_debt"),
    "a payment failed past its grace": (payment_failed_past_its_grace, "due_withholdings"),
    "an auto top-up set below its threshold": (
        top_up_set_below_its_threshold,
        "auto_top_up_below_threshold",
    ),
    "an auto top-up's purchase to send": (top_up_purchase_to_send, "auto_top_up_to_send"),
}


@pytest.mark.parametrize("kind", list(DUE))
def test_each_kind_of_due_work_is_found_and_done(
    kind: str, cg: Creditgate, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle = live(cg)
    due = live(cg)
    setup, step = DUE[kind]
    done = setup(due, clock)
    assert not done()
    with cg.db.engine.connect() as conn:
        by_step = {
            name: {row[0] for row in conn.execute(read)}
            for name, read in due_reads(clock.now).items()
        }
    assert due.tenant_id in by_step[step]
    assert not any(idle.tenant_id in found for found in by_step.values())
    found = cg.tenants_due()
    assert due.tenant_id in found and idle.tenant_id not in found
    seen = visited(monkeypatch)
    worker.sweep_all(cg)
    assert done(), kind
    assert due.tenant_id in seen and idle.tenant_id not in seen
    # Done, it is not due again (an ended period's next one ends a month on).
    if kind not in ("debt billed in arrears", "an auto top-up set below its threshold"):
        # (Debt stays owed until paid; the top-up's purchase is an invoice until then.) A
        # failed top-up backs off: below its threshold, it may not fire again yet.
        assert due.tenant_id not in cg.tenants_due()
    for t in (idle, due):
        report = cg.verify(t.tenant_id)
        assert report.ok, report.violations


def test_a_test_mode_tenant_is_always_visited(
    cg: Creditgate, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its clock runs ahead of the server's by its own offset: nothing can be read of what is
    # due for it at the server's time.
    sandbox = cg.tenant(cg.create_tenant(f"sandbox {uuid.uuid4().hex[:8]}", mode="test").id)
    idle = live(cg)
    assert sandbox.tenant_id in cg.tenants_due()
    seen = visited(monkeypatch)
    worker.sweep_all(cg)
    assert sandbox.tenant_id in seen and idle.tenant_id not in seen


def test_an_idle_round_costs_one_read_however_many_tenants(cg: Creditgate) -> None:
    for _ in range(5):
        live(cg)
    worker.sweep_all(cg)  # whatever earlier tests left due on this database is done
    statements: list[str] = []

    def counted(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(cg.db.engine, "before_cursor_execute", counted)
    try:
        worker.sweep_all(cg)
        first = len(statements)
        for _ in range(5):
            live(cg)
        statements.clear()
        worker.sweep_all(cg)
    finally:
        event.remove(cg.db.engine, "before_cursor_execute", counted)
    # The same statements with five more idle tenants: the read of who is due, and the
    # rounds of the test-mode tenants earlier tests left on this database.
    assert len(statements) == first


def test_a_round_whose_read_fails_visits_every_tenant(
    cg: Creditgate, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    due = live(cg)
    done = hold_past_its_ttl(due, clock)

    def fails(self: Creditgate) -> list[str]:
        raise RuntimeError("the read of who is due failed")

    monkeypatch.setattr(Creditgate, "tenants_due", fails)
    idle = live(cg)
    seen = visited(monkeypatch)
    worker.sweep_all(cg)
    assert done() and {due.tenant_id, idle.tenant_id} <= set(seen)


def test_an_overage_bill_never_answered_is_found_and_sent_again(
    cg: Creditgate, clock: FakeClock, fake_stripe: FakeStripe
) -> None:
    t = live(cg)
    t.set_provider_account("stripe", api_key=API_KEY)
    t.create_plan("payg", asset="credits", included=1_000, fee="0", overage_policy="allow")
    t.subscribe("c1", "payg", idempotency_key="s")
    t.set_overage(
        "credits",
        price="0.05",
        currency="USD",
        provider="stripe",
        return_url="https://shop.example/billing",
    )
    t.charge("c1", "credits", 3_000, idempotency_key="over")
    clock.advance(days=32)
    with operator_settings(cg, stripe_api_base="http://127.0.0.1:9"):  # Stripe unreachable
        t.run_billing()
    unanswered = (purchases.c.origin == "overage", purchases.c.provider_ref.is_(None))
    assert count(t, purchases, *unanswered) == 1
    clock.advance(minutes=3)
    with cg.db.engine.connect() as conn:
        assert t.tenant_id in {row[0] for row in conn.execute(due_reads(clock.now)["unsent_bills"])}
    worker.sweep_all(cg)
    assert count(t, purchases, *unanswered) == 0


def _did_nothing(t: TenantLedger) -> tuple[int, int, int]:
    return count(t, events), count(t, ledger_transactions), count(t, purchases)


def _left_out_do_nothing(cg: Creditgate, mine: list[str], others: int = 0) -> None:
    """Each live tenant the read leaves out (the test's own, and `others` of those earlier
    tests left on this database, in whatever state) given the whole round anyway: it must
    find nothing to do."""
    due = set(cg.tenants_due())
    earlier = [t.id for t in cg.tenants() if t.mode == "live" and t.id not in mine]
    sample = random.Random(7).sample(earlier, min(len(earlier), others))
    for tenant_id in [*mine, *sample]:
        if tenant_id in due:
            continue
        t = TenantLedger(cg, tenant_id)
        before = _did_nothing(t)
        billing, sweeps = t.run_billing(), t.run_sweeps()
        renewals, overage, top_ups = billing.renewals, billing.overage, billing.top_ups
        assert renewals == type(renewals)(), tenant_id
        assert overage == type(overage)(), tenant_id
        assert top_ups == type(top_ups)(), tenant_id
        assert sweeps == type(sweeps)(), tenant_id
        assert _did_nothing(t) == before, tenant_id  # not an announcement either


def test_a_tenant_left_out_has_nothing_the_round_would_do(cg: Creditgate, clock: FakeClock) -> None:
    """Checked as each kind of work above becomes due (the tenants made before it in states
    of their own), and at later times."""
    mine: list[str] = []
    for setup, _ in DUE.values():
        t = live(cg)
        mine.append(t.tenant_id)
        setup(t, clock)
        _left_out_do_nothing(cg, mine)
    for step in (timedelta(hours=1), timedelta(hours=25), timedelta(days=32)):
        worker.sweep_all(cg)  # what was due is done before the clock moves on
        clock.advance(seconds=step.total_seconds())
        _left_out_do_nothing(cg, mine, others=15)


def test_a_wallet_whose_debt_waits_for_its_cycle_is_not_locked_by_the_round(
    cg: Creditgate, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tenant with customers in debt is visited every round; the overage step glances at
    # each wallet unlocked, and takes the balance row's lock (the gate's) only for a bill.
    t = live(cg)
    t.create_plan("payg", asset="credits", included=1_000, fee="0", overage_policy="allow")
    t.subscribe("c1", "payg", idempotency_key="s")
    t.set_overage("credits", price="0.05", currency="USD")
    t.charge("c1", "credits", 3_000, idempotency_key="over")  # 1,000 owed, its cycle running
    locked: list[str] = []
    lock = overage.lock_balance

    def recorded(tx: Any, wallet_id: str, asset: str, **kwargs: Any) -> Any:
        locked.append(wallet_id)
        return lock(tx, wallet_id, asset, **kwargs)

    monkeypatch.setattr(overage, "lock_balance", recorded)
    assert t.tenant_id in cg.tenants_due()
    assert t.run_billing().overage.billed == 0 and locked == []
    clock.advance(days=32)  # the cycle has ended: its bill is decided under the lock
    assert t.run_billing().overage.billed == 1 and len(locked) == 1
    assert t.run_billing().overage.billed == 0 and len(locked) == 1  # billed: nothing more
    report = cg.verify(t.tenant_id)
    assert report.ok, report.violations


def test_every_wallet_in_debt_is_billed_however_many_owe(
    cg: Creditgate, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The step goes through the wallets in debt a page at a time, a transaction each: at two
    # a page, five wallets owing at their cycle's end are all billed in one round, and the
    # first ones, billed and still owing, do not hide the rest at the next.
    monkeypatch.setattr(overage, "BILL_PAGE", 2)
    t = live(cg, customer_credit=None)
    t.create_plan("payg", asset="credits", included=1_000, fee="0", overage_policy="allow")
    t.set_overage("credits", price="0.05", currency="USD")
    for n in range(5):
        t.create_customer(f"d{n}")
        t.subscribe(f"d{n}", "payg", idempotency_key=f"s{n}")
        t.charge(f"d{n}", "credits", 1_500, idempotency_key=f"o{n}")
    clock.advance(days=32)
    assert t.run_billing().overage.billed == 5
    assert t.run_billing().overage.billed == 0
    assert count(t, purchases, purchases.c.origin == "overage") == 5
    report = cg.verify(t.tenant_id)
    assert report.ok, report.violations
