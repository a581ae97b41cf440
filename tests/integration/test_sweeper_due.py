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
from creditgate.services.billing.due import reads as due_reads
from creditgate.storage.tables import events, holds, lots, purchases
from tests.conftest import FakeClock


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
        # (Debt stays owed until paid; the top-up's purchase is an invoice until then.)
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


def test_a_tenant_left_out_has_nothing_the_round_would_do(cg: Creditgate) -> None:
    """Over the tenants earlier tests left on this database, in every state they left them:
    each live tenant the read leaves out is given the whole round anyway, which must find
    nothing to do."""
    due = set(cg.tenants_due())
    left_out = [t for t in cg.tenants() if t.mode == "live" and t.id not in due]
    for tenant in random.Random(7).sample(left_out, min(len(left_out), 150)):
        t = TenantLedger(cg, tenant.id)
        before = count(t, events)
        billing, sweeps = t.run_billing(), t.run_sweeps()
        renewals, overage, top_ups = billing.renewals, billing.overage, billing.top_ups
        assert renewals.renewed == renewals.canceled == renewals.withheld == 0, tenant.id
        assert overage.billed == overage.sent == 0, tenant.id
        assert top_ups.started == top_ups.capped == 0, tenant.id
        assert sweeps.holds_expired == sweeps.lots_expired == sweeps.lots_activated == 0
        assert count(t, events) == before, tenant.id  # not an announcement either
