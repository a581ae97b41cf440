"""Refunding a charge: its credit goes back to the lots it was drawn from.

A refund returns credit in the reverse of the order it was taken (the plan is
`domain/refunds.py`): first any part of the charge that became debt (the debt shrinks),
then the lots, last-drawn first, so the credit a customer would keep longest comes back
first. A lot that has since expired or been
voided does not come back to life: its share goes to a new `refund` lot with the same cost
basis (so the revenue it reverses is recognized again when it is used). Every refund names
its reason; a charge can be refunded in parts, never past what it debited.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update

from creditgate.domain.amounts import check_amount
from creditgate.domain.charge_refunds import ChargeRefundPlan, ChargeTaken, plan_charge_refund
from creditgate.domain.errors import InvalidInput, NotFound
from creditgate.domain.ledger import Account, Entry, TransactionKind
from creditgate.domain.lots import LotKind, LotStatus
from creditgate.domain.webhooks import EventType
from creditgate.services.catalog.catalog import check_id, check_metadata
from creditgate.services.context import Idempotent, Tx
from creditgate.services.ledger import budgets
from creditgate.services.ledger.consumption import default_priority
from creditgate.services.results import Result
from creditgate.services.wallet import emit, lock_balance, post, shift_balance
from creditgate.storage.ids import new_id
from creditgate.storage.tables import charges, ledger_entries, ledger_transactions, lots

MAX_REASON = 500


class UnknownCharge(NotFound):
    code = "unknown_charge"


class RefundedLine(Result):
    lot_id: str | None  # None: the charge's debt
    amount: int
    to_lot: str | None  # the lot credited (a new refund lot if the original had closed)


class Refund(Result):
    id: str
    charge_id: str
    customer: str
    asset: str
    amount: int
    reason: str
    lines: list[RefundedLine]
    charge_refunded: int  # refunded from this charge so far, this refund included
    available: int


def check_reason(reason: object) -> str:
    """Every refund names its reason."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise InvalidInput(f"reason must be 1-{MAX_REASON} characters", field="reason")
    return reason


def refund_charge(
    tx: Tx,
    *,
    charge_id: str,
    reason: str,
    amount: int | None = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Refund:
    """Give back `amount` (default: all that is left) of a charge's credit."""
    check_id(charge_id, "charge")
    check_reason(reason)
    wanted = None if amount is None else check_amount(amount)
    meta = check_metadata(metadata)
    idem = Idempotent(
        tx,
        idempotency_key,
        "charge.refund",
        {"charge": charge_id, "amount": wanted, "reason": reason, "metadata": meta},
    )
    if (replayed := idem.replay(Refund)) is not None:
        return replayed
    charge = tx.conn.execute(
        select(charges).where(charges.c.id == charge_id, charges.c.tenant_id == tx.tenant_id)
    ).first()
    if charge is None:
        raise UnknownCharge(f"charge {charge_id!r} does not exist", field="charge")
    # The balance row first, as every credit movement does; it also serializes refunds of
    # this charge, so two cannot both give back its last credit.
    before = lock_balance(tx, charge.wallet_id, charge.asset, create=False)
    refunded = tx.conn.execute(
        select(charges.c.refunded).where(charges.c.id == charge_id)
    ).scalar_one()
    drawn = _drawn(tx, charge)
    asset = tx.asset(charge.asset)
    taken = ChargeTaken(charge_id, charge.amount, charge.debt, drawn, refunded, asset)
    plan = plan_charge_refund(taken, wanted, before.debt)
    lines, entries = _give_back(tx, charge, plan)
    refund_id = new_id("rfd")
    post(
        tx,
        wallet_id=charge.wallet_id,
        asset=charge.asset,
        kind=TransactionKind.REFUND,
        entries=entries,
        reference_id=charge_id,
        member=charge.member,
    )
    tx.conn.execute(
        update(charges).where(charges.c.id == charge_id).values(refunded=refunded + plan.amount)
    )
    shift_balance(
        tx, charge.wallet_id, charge.asset, posted=plan.amount, held=0, debt=-plan.debt_back, need=0
    )
    # What the charge spent of its member's (or its customer's) budgets comes back to the
    # periods it was spent in.
    budgets.give_back(tx, charge.wallet_id, charge.asset, charge.budgets, spent=plan.amount)
    emit(
        tx,
        EventType.REFUND_CREATED,
        charge.wallet_id,
        {
            "refund": refund_id,
            "charge": charge_id,
            "customer": charge.customer,
            "asset": charge.asset,
            "amount": plan.amount,
            "reason": reason,
            "metadata": meta,
        },
    )
    return idem.record(
        Refund(
            id=refund_id,
            charge_id=charge_id,
            customer=charge.customer,
            asset=charge.asset,
            amount=plan.amount,
            reason=reason,
            lines=lines,
            charge_refunded=refunded + plan.amount,
            available=before.available + plan.amount,
        )
    )


def _give_back(
    tx: Tx, charge: Any, plan: ChargeRefundPlan
) -> tuple[list[RefundedLine], list[Entry]]:
    """Carry out `plan`: credit its lots (or new refund lots); the lines and the entries."""
    lines: list[RefundedLine] = []
    entries: list[Entry] = []
    if plan.debt_back:
        entries.append(Entry(Account.WALLET, plan.debt_back))
        lines.append(RefundedLine(lot_id=None, amount=plan.debt_back, to_lot=None))
    if plan.paid_off:
        # Debt that later credit has since paid off is owed no more: it comes back as
        # credit, in a new refund lot.
        target = _paid_off_lot(tx, charge, plan.paid_off)
        entries.append(Entry(Account.WALLET, plan.paid_off, target))
        lines.append(RefundedLine(lot_id=None, amount=plan.paid_off, to_lot=target))
    for share in plan.lots:
        target = credit_lot(tx, share.lot_id, share.amount)
        entries.append(Entry(Account.WALLET, share.amount, target))
        lines.append(RefundedLine(lot_id=share.lot_id, amount=share.amount, to_lot=target))
    entries.append(Entry(Account.USAGE, -plan.amount))
    return lines, entries


def _paid_off_lot(tx: Tx, charge: Any, amount: int) -> str:
    """A refund lot for refunded debt that a later grant had already paid."""
    return _new_refund_lot(
        tx,
        wallet_id=charge.wallet_id,
        asset=charge.asset,
        amount=amount,
        priority=default_priority(tx, LotKind.REFUND.value),
        cost_basis=Decimal(0),
        currency="USD",
        metadata={"refund_of_debt": charge.id},
    )


def _drawn(tx: Tx, charge: Any) -> list[tuple[str, int]]:
    """The lots a charge drew from, in the order it drew them.

    Its ledger transaction is the wallet's at the charge's own time (both are written with
    the transaction's `now`), read down `ix_ledger_transactions_wallet_time`: a few rows,
    however long the wallet's history. Should those draws not add up to what the charge
    took from lots, every transaction of the wallet that names the charge is read instead."""
    found = _draws_of(
        tx,
        charge.id,
        ledger_transactions.c.wallet_id == charge.wallet_id,
        ledger_transactions.c.created_at == charge.created_at,
    )
    if sum(taken for _, taken in found) == charge.amount - charge.debt:
        return found
    return _draws_of(tx, charge.id, ledger_transactions.c.wallet_id == charge.wallet_id)


def _draws_of(tx: Tx, charge_id: str, *where: Any) -> list[tuple[str, int]]:
    rows = tx.conn.execute(
        select(ledger_entries.c.lot_id, ledger_entries.c.amount)
        .join(ledger_transactions, ledger_transactions.c.id == ledger_entries.c.transaction_id)
        .where(
            *where,
            ledger_transactions.c.reference_id == charge_id,
            ledger_transactions.c.kind == TransactionKind.CHARGE.value,
            ledger_entries.c.account == Account.WALLET.value,
            ledger_entries.c.lot_id.is_not(None),
        )
        .order_by(ledger_entries.c.seq)
    ).all()
    return [(r.lot_id, -r.amount) for r in rows]


def credit_lot(
    tx: Tx,
    lot_id: str,
    amount: int,
    *,
    undo_void: bool = False,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Put credit back into a lot, or into a new refund lot if that one has closed.

    `undo_void` gives back credit that was voided out of the lot (a purchase refund the
    provider refused) rather than credit that was used. A new lot gets `metadata`, by
    default `refund_of` the lot.
    """
    lot = tx.conn.execute(select(lots).where(lots.c.id == lot_id)).one()
    open_ = lot.status == LotStatus.ACTIVE and (lot.expires_at is None or lot.expires_at > tx.now)
    if open_:
        back = (
            {"voided": lots.c.voided - amount}
            if undo_void
            else {"refunded": lots.c.refunded + amount}
        )
        tx.conn.execute(
            update(lots)
            .where(lots.c.id == lot_id)
            .values(remaining=lots.c.remaining + amount, **back)
        )
        return lot_id
    return _new_refund_lot(
        tx,
        wallet_id=lot.wallet_id,
        asset=lot.asset,
        amount=amount,
        priority=lot.priority,
        cost_basis=lot.cost_basis,
        currency=lot.currency,
        metadata={"refund_of": lot_id} if metadata is None else metadata,
    )


def _new_refund_lot(
    tx: Tx,
    *,
    wallet_id: str,
    asset: str,
    amount: int,
    priority: int,
    cost_basis: Decimal,
    currency: str,
    metadata: dict[str, Any],
) -> str:
    new = new_id("lot")
    tx.conn.execute(
        insert(lots).values(
            tenant_id=tx.tenant_id,
            wallet_id=wallet_id,
            id=new,
            asset=asset,
            kind=LotKind.REFUND.value,
            status=LotStatus.ACTIVE.value,
            amount=amount,
            remaining=amount,
            consumed=0,
            expired=0,
            voided=0,
            refunded=0,
            priority=priority,
            effective_at=tx.now,
            expires_at=None,
            cost_basis=cost_basis,
            currency=currency,
            metadata=metadata,
            created_at=tx.now,
        )
    )
    return new
