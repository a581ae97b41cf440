"""Granting lots of credit, activating scheduled ones, and voiding a lot's remainder."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, insert, select, update

from creditgate.domain.amounts import MAX_BALANCE
from creditgate.domain.errors import AmountOverflow, InvalidInput, LotNotActive, UnknownLot
from creditgate.domain.grants import GrantRequest, check_grant, check_lot_value
from creditgate.domain.ledger import (
    Account,
    TransactionKind,
    debt_repayment_entries,
    grant_entries,
    removal_entries,
)
from creditgate.domain.lots import LotKind, LotStatus
from creditgate.domain.webhooks import EventType
from creditgate.services.catalog.catalog import check_external_id, check_id, check_metadata
from creditgate.services.context import Idempotent, Tx
from creditgate.services.ledger.consumption import default_priority
from creditgate.services.results import Lot
from creditgate.services.wallet import emit, held_lot_shares, lock_balance, post, shift_balance
from creditgate.storage.ids import new_id
from creditgate.storage.tables import LOT_SCHEDULED, customers, lots


def lot_result(row: Any, customer: str) -> Lot:
    return Lot(
        id=row.id,
        customer=customer,
        asset=row.asset,
        kind=row.kind,
        status=row.status,
        amount=row.amount,
        remaining=row.remaining,
        consumed=row.consumed,
        expired=row.expired,
        voided=row.voided,
        refunded=row.refunded,
        priority=row.priority,
        effective_at=row.effective_at,
        expires_at=row.expires_at,
        cost_basis=row.cost_basis,
        currency=row.currency,
        metadata=row.metadata,
        created_at=row.created_at,
    )


def grant(tx: Tx, request: GrantRequest, *, idempotency_key: str | None = None) -> Lot:
    """Add a lot of credit to a customer's wallet (now, or when it becomes effective).

    The one way credit is granted: a grant that names no priority takes its kind's from the
    tenant's consumption order.
    """
    priority = request.priority
    if priority is None:
        priority = default_priority(tx, request.kind)
    terms = check_grant(request, priority, tx.now)
    meta = check_metadata(request.metadata)
    customer, asset, currency = request.customer, request.asset, request.currency
    wallet_id = tx.wallet_id(check_external_id(customer))
    check_lot_value(terms.amount, terms.cost_basis, tx.asset(asset))
    idem = Idempotent(
        tx,
        idempotency_key,
        "grant.create",
        {
            "customer": customer,
            "asset": asset,
            "amount": terms.amount,
            "kind": terms.kind.value,
            "priority": priority,
            "effective_at": request.effective_at,
            "expires_at": terms.expires_at,
            "cost_basis": terms.cost_basis,
            "currency": currency,
            "metadata": meta,
        },
    )
    if (replayed := idem.replay(Lot)) is not None:
        return replayed
    # Checked after the replay: a retry arriving after expires_at still gets its answer.
    if terms.expires_at is not None and terms.expires_at <= tx.now:
        raise InvalidInput("expires_at must be in the future", field="expires_at")
    lot_id = new_id("lot")
    scheduled = terms.effective_at > tx.now
    tx.conn.execute(
        insert(lots).values(
            tenant_id=tx.tenant_id,
            wallet_id=wallet_id,
            id=lot_id,
            asset=asset,
            kind=terms.kind.value,
            status=(LotStatus.SCHEDULED if scheduled else LotStatus.ACTIVE).value,
            amount=terms.amount,
            remaining=terms.amount,
            consumed=0,
            expired=0,
            voided=0,
            refunded=0,
            priority=priority,
            effective_at=terms.effective_at,
            expires_at=terms.expires_at,
            cost_basis=terms.cost_basis,
            currency=currency.upper(),
            metadata=meta,
            created_at=tx.now,
        )
    )
    if not scheduled:
        _post_lot(tx, wallet_id, asset, lot_id, terms.kind, terms.amount, request.ledger_kind)
    row = tx.conn.execute(select(lots).where(lots.c.id == lot_id)).one()
    return idem.record(lot_result(row, customer))


def _post_lot(
    tx: Tx,
    wallet_id: str,
    asset: str,
    lot_id: str,
    kind: LotKind,
    amount: int,
    ledger_kind: TransactionKind = TransactionKind.GRANT,
) -> None:
    """Bring a lot's credit into the balance; any debt is paid from it first."""
    before = lock_balance(tx, wallet_id, asset)
    if before.posted + amount > MAX_BALANCE:
        raise AmountOverflow(
            f"this grant would take the {asset} balance past {MAX_BALANCE}", field="amount"
        )
    repay = min(before.debt, amount)
    entries = grant_entries(kind, lot_id, amount)
    if repay:
        entries += debt_repayment_entries(lot_id, repay)
        tx.conn.execute(
            update(lots)
            .where(lots.c.id == lot_id)
            .values(remaining=lots.c.remaining - repay, consumed=lots.c.consumed + repay)
        )
    post(
        tx,
        wallet_id=wallet_id,
        asset=asset,
        kind=ledger_kind,
        entries=entries,
        reference_id=lot_id,
    )
    shift_balance(tx, wallet_id, asset, posted=amount, held=0, debt=-repay, need=0)


def _lots_to_activate(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (LOT_SCHEDULED, lots.c.effective_at <= now)


def tenants_with_lots_to_activate(now: datetime) -> Select[Any]:
    """The tenants `activate_lots` has work for at `now`, on its own predicate."""
    return select(lots.c.tenant_id).where(*_lots_to_activate(now))


def activate_lots(tx: Tx, *, limit: int = 500) -> int:
    """Post scheduled lots whose effective time has come; safe to run any number of times."""
    rows = tx.conn.execute(
        select(lots.c.id, lots.c.wallet_id, lots.c.asset, lots.c.kind, lots.c.amount)
        .where(lots.c.tenant_id == tx.tenant_id, *_lots_to_activate(tx.now))
        .order_by(lots.c.effective_at, lots.c.id)
        .limit(limit)
    ).all()
    done = 0
    for row in rows:
        claimed = tx.conn.execute(
            update(lots)
            .where(lots.c.id == row.id, lots.c.status == LotStatus.SCHEDULED.value)
            .values(status=LotStatus.ACTIVE.value)
        ).rowcount
        if claimed:
            _post_lot(tx, row.wallet_id, row.asset, row.id, LotKind(row.kind), row.amount)
            done += 1
    return done


def void_lot(tx: Tx, *, lot_id: str, reason: str = "", idempotency_key: str | None = None) -> Lot:
    """Remove what is left of a lot. Credit that backs open holds cannot be voided."""
    check_id(lot_id, "lot")
    idem = Idempotent(tx, idempotency_key, "grant.void", {"lot": lot_id, "reason": reason})
    if (replayed := idem.replay(Lot)) is not None:
        return replayed
    found = tx.conn.execute(
        select(lots.c.wallet_id, lots.c.asset).where(
            lots.c.id == lot_id, lots.c.tenant_id == tx.tenant_id
        )
    ).first()
    if found is None:
        raise UnknownLot(f"lot {lot_id!r} does not exist", field="lot")
    before = lock_balance(tx, found.wallet_id, found.asset)
    row = tx.conn.execute(select(lots).where(lots.c.id == lot_id)).one()
    if row.status not in (LotStatus.ACTIVE, LotStatus.SCHEDULED):
        raise LotNotActive(f"lot {lot_id} is already {row.status}", field="lot")
    amount = row.remaining
    if row.status == LotStatus.ACTIVE:
        shares = held_lot_shares(tx, found.wallet_id, found.asset, before.held)
        if shares.get(lot_id, 0):
            raise LotNotActive(
                f"lot {lot_id} backs open holds; void or settle them first", field="lot"
            )
        if amount:
            post(
                tx,
                wallet_id=found.wallet_id,
                asset=found.asset,
                kind=TransactionKind.VOID_LOT,
                entries=removal_entries(Account.VOIDED, lot_id, amount),
                reference_id=lot_id,
            )
            shift_balance(tx, found.wallet_id, found.asset, posted=-amount, held=0, debt=0, need=0)
    tx.conn.execute(
        update(lots)
        .where(lots.c.id == lot_id)
        .values(remaining=0, voided=lots.c.voided + amount, status=LotStatus.VOIDED.value)
    )
    row = tx.conn.execute(select(lots).where(lots.c.id == lot_id)).one()
    customer = tx.conn.execute(
        select(customers.c.external_id).where(customers.c.wallet_id == found.wallet_id)
    ).scalar_one()
    emit(
        tx,
        EventType.GRANT_VOIDED,
        found.wallet_id,
        {"lot": lot_id, "amount": amount, "reason": reason},
    )
    return idem.record(lot_result(row, customer))
