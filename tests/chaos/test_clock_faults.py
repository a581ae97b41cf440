"""Clock faults: time jumping forward and back between operations. Expiry and TTLs follow
the clock each operation reads; nothing comes back to life and nothing expires twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from creditgate.api import TenantLedger
from creditgate.domain.errors import HoldNotPending
from creditgate.domain.ledger import Account, TransactionKind
from creditgate.storage.tables import ledger_entries, ledger_transactions
from tests.conftest import FakeClock


def _expired_postings(ledger: TenantLedger, lot_id: str) -> tuple[int, int]:
    """(number of expiry transactions touching the lot, credit they expired)."""

    def read(conn: object) -> tuple[int, int]:
        e, x = ledger_entries, ledger_transactions
        row = conn.execute(  # type: ignore[attr-defined]
            select(func.count(), func.coalesce(func.sum(e.c.amount), 0))
            .join(x, (x.c.id == e.c.transaction_id) & (x.c.tenant_id == e.c.tenant_id))
            .where(
                e.c.lot_id == lot_id,
                e.c.account == Account.WALLET.value,
                x.c.kind == TransactionKind.EXPIRE.value,
            )
        ).one()
        return int(row[0]), -int(row[1])

    return ledger.cg.db.run(read, read_only=True)


def _lot(ledger: TenantLedger, lot_id: str) -> object:
    return next(lot for lot in ledger.lots("c1", include_closed=True) if lot.id == lot_id)


def _swept(ledger: TenantLedger) -> int:
    report = ledger.run_sweeps()
    return report.holds_expired + report.lots_expired + report.credit_expired


@pytest.fixture
def funded(ledger: TenantLedger) -> TenantLedger:
    ledger.create_customer("c1")
    return ledger


def test_a_lot_expires_once_whatever_the_clock_does(funded: TenantLedger, clock: FakeClock) -> None:
    t0 = clock.now
    lot = funded.grant("c1", "credits", 100, expires_at=t0 + timedelta(minutes=10))
    hold = funded.authorize("c1", "credits", 30, ttl_seconds=15 * 60)
    assert hold.approved

    clock.set(t0 + timedelta(minutes=10, seconds=1))
    funded.run_sweeps()
    assert _lot(funded, lot.id).expired == 70  # the held 30 stays for the call in flight

    # Back before the expiry: nothing comes back, nothing expires again.
    clock.set(t0 + timedelta(minutes=5))
    assert _swept(funded) == 0
    assert funded.wallet("c1").balances[0].available == 0
    settled = funded.settle(hold.id, amount=20)  # the hold is still within its TTL
    assert settled.charge.amount == 20

    for minutes in (20, 1, 30, 9, 60):
        clock.set(t0 + timedelta(minutes=minutes))
        funded.run_sweeps()
    final = _lot(funded, lot.id)
    count, expired = _expired_postings(funded, lot.id)
    assert final.expired == expired == 80  # 100 - 20 used; the rest expired, once
    assert final.remaining == 0
    assert count <= 2  # the unheld part, then the part the hold gave back
    assert _swept(funded) == 0
    assert funded.cg.verify(funded.tenant_id).ok


def test_a_hold_expires_once_and_stays_expired(funded: TenantLedger, clock: FakeClock) -> None:
    t0 = clock.now
    funded.grant("c1", "credits", 100)
    hold = funded.authorize("c1", "credits", 40, ttl_seconds=60)
    clock.set(t0 + timedelta(minutes=2))
    assert funded.run_sweeps().holds_expired == 1
    resolved_at = funded.authorization(hold.id).resolved_at

    clock.set(t0 + timedelta(seconds=30))  # back inside the TTL
    with pytest.raises(HoldNotPending):
        funded.settle(hold.id, amount=10)
    with pytest.raises(HoldNotPending):
        funded.void(hold.id)
    assert funded.run_sweeps().holds_expired == 0
    after = funded.authorization(hold.id)
    assert after.status == "expired" and after.resolved_at == resolved_at
    balance = funded.wallet("c1").balances[0]
    assert (balance.posted, balance.held, balance.available) == (100, 0, 100)
    assert funded.cg.verify(funded.tenant_id).ok


def test_a_clock_that_goes_back_does_not_expire_a_live_hold(
    funded: TenantLedger, clock: FakeClock
) -> None:
    t0 = clock.now
    funded.grant("c1", "credits", 100)
    clock.set(t0 + timedelta(minutes=10))
    hold = funded.authorize("c1", "credits", 40, ttl_seconds=60)  # expires at t0 + 11 min
    clock.set(t0)
    assert funded.run_sweeps().holds_expired == 0
    clock.set(t0 + timedelta(minutes=10, seconds=59))
    assert funded.run_sweeps().holds_expired == 0
    assert funded.settle(hold.id, amount=40).charge.amount == 40
    clock.set(t0 + timedelta(hours=1))
    assert funded.run_sweeps().holds_expired == 0
    assert funded.wallet("c1").balances[0].posted == 60
    assert funded.cg.verify(funded.tenant_id).ok


def test_a_lot_not_yet_effective_waits_for_its_time(funded: TenantLedger, clock: FakeClock) -> None:
    t0 = clock.now
    funded.grant(
        "c1",
        "credits",
        50,
        effective_at=t0 + timedelta(hours=1),
        expires_at=t0 + timedelta(hours=2),
    )
    clock.set(t0 + timedelta(hours=3))
    funded.run_sweeps()  # activated and expired in one pass or two: never both twice
    clock.set(t0 + timedelta(minutes=30))
    funded.run_sweeps()
    clock.set(t0 + timedelta(hours=4))
    funded.run_sweeps()
    lots = funded.lots("c1", include_closed=True)
    assert len(lots) == 1 and lots[0].expired == 50 and lots[0].remaining == 0
    assert funded.wallet("c1").balances[0].posted == 0
    assert funded.cg.verify(funded.tenant_id).ok
