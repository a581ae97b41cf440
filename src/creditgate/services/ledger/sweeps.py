"""Time-driven work: expiring holds past their TTL, expiring lots, activating scheduled lots.

Each sweep takes the time from its caller and is idempotent: running it twice at the same
time changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, String, func, literal, select, update

from creditgate.domain.holds import HoldStatus
from creditgate.domain.ledger import Account, TransactionKind, removal_entries
from creditgate.domain.lots import LotStatus
from creditgate.domain.webhooks import EventType
from creditgate.services.context import Tx
from creditgate.services.ledger.gate import release
from creditgate.services.ledger.grants import activate_lots, tenants_with_lots_to_activate
from creditgate.services.results import SweepReport
from creditgate.services.wallet import (
    emit,
    emit_once,
    held_lot_shares,
    lock_balance,
    post,
    read_balance,
    shift_balance,
)
from creditgate.storage.tables import HOLD_PENDING, LOT_EXPIRING, events, holds, lots


def _holds_past_ttl(now: datetime) -> tuple[ColumnElement[bool], ...]:
    # HOLD_PENDING is the partial index's own predicate, so every plan can use it.
    return (HOLD_PENDING, holds.c.expires_at <= now)


def _lots_past_expiry(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (LOT_EXPIRING, lots.c.expires_at <= now)


def _unannounced(
    columns: Sequence[ColumnElement[Any]], now: datetime, within: timedelta
) -> Select[Any]:
    """Lots with credit left that expire within `within` and have not been announced."""
    event_id = literal(EXPIRING_PREFIX, String) + func.substr(lots.c.id, len("lot_") + 1)
    return (
        select(*columns)
        .outerjoin(events, events.c.id == event_id)
        .where(
            lots.c.status == LotStatus.ACTIVE.value,
            lots.c.remaining > 0,
            lots.c.expires_at > now,
            lots.c.expires_at <= now + within,
            events.c.id.is_(None),
        )
    )


def tenants_with_sweeps_due(now: datetime) -> dict[str, Select[Any]]:
    """Reads of the tenants each sweep has work for at `now`, by sweep, on the sweeps' own
    predicates (the worker's round visits only those tenants)."""
    return {
        "expire_holds": select(holds.c.tenant_id).where(*_holds_past_ttl(now)),
        "activate_lots": tenants_with_lots_to_activate(now),
        "warn_expiring": _unannounced([lots.c.tenant_id], now, EXPIRY_WARNING),
        "expire_lots": select(lots.c.tenant_id).where(*_lots_past_expiry(now)),
    }


def expire_holds(tx: Tx, *, limit: int = 500) -> int:
    rows = tx.conn.execute(
        select(holds.c.id)
        .where(holds.c.tenant_id == tx.tenant_id, *_holds_past_ttl(tx.now))
        .order_by(holds.c.expires_at, holds.c.id)
        .limit(limit)
    ).all()
    expired = 0
    for row in rows:
        hold = tx.conn.execute(
            update(holds)
            .where(holds.c.id == row.id, holds.c.status == HoldStatus.PENDING.value)
            .values(status=HoldStatus.EXPIRED.value, resolved_at=tx.now)
            .returning(
                holds.c.wallet_id,
                holds.c.asset,
                holds.c.amount,
                holds.c.budgets,
                holds.c.spend_limit_id,
                holds.c.spend_period,
            )
        ).first()
        if hold is not None:  # another sweep or a settle may have resolved it meanwhile
            release(tx, hold)
            expired += 1
    return expired


@dataclass(frozen=True, slots=True)
class _Expiry:
    """What expiring one overdue lot does: `amount` goes now, `left` stays for open holds."""

    lot_id: str
    lot_amount: int
    amount: int
    left: int

    @property
    def changes(self) -> bool:
        return self.amount > 0 or self.left == 0  # credit goes, or the lot ends


def _expiries(tx: Tx, wallet_id: str, asset: str, held: int) -> list[_Expiry]:
    shares = held_lot_shares(tx, wallet_id, asset, held)
    rows = tx.conn.execute(
        select(lots.c.id, lots.c.amount, lots.c.remaining)
        .where(
            lots.c.wallet_id == wallet_id,
            lots.c.asset == asset,
            LOT_EXPIRING,
            lots.c.expires_at <= tx.now,
        )
        .order_by(lots.c.expires_at, lots.c.id)
    ).all()
    plan = []
    for row in rows:
        # All but its share of the open holds goes (unlocked, a debit may have drawn on the
        # lot between the two reads: never keep more than it has).
        keep = min(shares.get(row.id, 0), row.remaining)
        plan.append(_Expiry(row.id, row.amount, row.remaining - keep, keep))
    return plan


def expire_lots(tx: Tx, *, limit: int = 500) -> SweepReport:
    """Expire lots past their expiry, sparing the credit that open holds still need.

    A wallet whose overdue lots are all still wholly held by open holds has nothing to do
    until a hold ends; an unlocked read finds that, so the sweep leaves its balance row to the
    calls that need it rather than locking it on every tick. Whatever the read finds is
    planned again under the lock before anything is written.
    """
    due = tx.conn.execute(
        select(lots.c.wallet_id, lots.c.asset)
        .where(lots.c.tenant_id == tx.tenant_id, *_lots_past_expiry(tx.now))
        .group_by(lots.c.wallet_id, lots.c.asset)
        .order_by(lots.c.wallet_id, lots.c.asset)
        .limit(limit)
    ).all()
    count = credit = kept = 0
    for wallet_id, asset in due:
        glance = _expiries(tx, wallet_id, asset, read_balance(tx, wallet_id, asset).held)
        if not any(e.changes for e in glance):
            kept += sum(e.left for e in glance)
            continue
        before = lock_balance(tx, wallet_id, asset, create=False)
        removed = 0
        for e in _expiries(tx, wallet_id, asset, before.held):
            kept += e.left
            if not e.changes:
                continue
            removed += e.amount
            tx.conn.execute(
                update(lots)
                .where(lots.c.id == e.lot_id)
                .values(
                    remaining=e.left,
                    expired=lots.c.expired + e.amount,
                    status=LotStatus.ACTIVE.value if e.left else LotStatus.EXPIRED.value,
                )
            )
            if e.amount:
                post(
                    tx,
                    wallet_id=wallet_id,
                    asset=asset,
                    kind=TransactionKind.EXPIRE,
                    entries=removal_entries(Account.EXPIRED, e.lot_id, e.amount),
                    reference_id=e.lot_id,
                )
            if not e.left:
                count += 1
                emit(
                    tx,
                    EventType.GRANT_EXPIRED,
                    wallet_id,
                    {"lot": e.lot_id, "asset": asset, "expired": e.amount, "amount": e.lot_amount},
                )
        credit += removed
        if removed:
            shift_balance(tx, wallet_id, asset, posted=-removed, held=0, debt=0, need=0)
    return SweepReport(lots_expired=count, credit_expired=credit, credit_kept_for_holds=kept)


EXPIRY_WARNING = timedelta(hours=24)
EXPIRING_PREFIX = "evt_x"  # + the lot id without its "lot_": one announcement per lot


def warn_expiring(tx: Tx, *, within: timedelta = EXPIRY_WARNING, limit: int = 500) -> int:
    """Raise `grant.expiring` once for each lot with credit left that expires within `within`.

    The event's id is derived from the lot's, so however often the sweep runs (in however
    many processes) a lot is announced once. Lots already announced are left out by the read
    itself, so a sweep that finds nothing new writes nothing.
    """
    columns = (lots.c.id, lots.c.wallet_id, lots.c.asset, lots.c.remaining, lots.c.expires_at)
    rows = tx.conn.execute(
        _unannounced(columns, tx.now, within)
        .where(lots.c.tenant_id == tx.tenant_id)
        .order_by(lots.c.expires_at, lots.c.id)
        .limit(limit)
    ).all()
    return emit_once(
        tx,
        EventType.GRANT_EXPIRING,
        [
            (
                EXPIRING_PREFIX + lot.id.removeprefix("lot_"),
                lot.wallet_id,
                {
                    "lot": lot.id,
                    "asset": lot.asset,
                    "remaining": lot.remaining,
                    "expires_at": lot.expires_at.isoformat(),
                },
            )
            for lot in rows
        ],
    )


def run_sweeps(tx: Tx) -> SweepReport:
    """Everything due at `tx.now`: holds past TTL first, so their credit can expire with its lot."""
    held = expire_holds(tx)
    activated = activate_lots(tx)
    warn_expiring(tx)
    report = expire_lots(tx)
    return report.model_copy(update={"holds_expired": held, "lots_activated": activated})
