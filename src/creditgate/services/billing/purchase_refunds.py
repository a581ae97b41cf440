"""Refunding a purchase: its credit taken back, its money paid back through its provider.

What is refunded is an amount of the purchase's credit: by default all that is still
unused in the lot it bought (credit that open holds reserved stays with them). Consumed
credit is refunded only on request (`include_consumed`), after the unused: the usage it
paid for is then debited from the wallet again, from its other lots in burn order and,
where they do not cover it, as debt within the wallet's policy (under `block` a refund the
wallet cannot cover is refused).

The money is the purchase's price x credits refunded / credits bought, taken over the
running total and rounded half to even to the currency's minor unit
(`domain.billing.refunded_money`): refunds in parts add up to what one refund of the whole
would pay, never more than was paid less the refunds before.

A refund takes the credit, is recorded `pending` and raises `refund.created` in one
transaction; the provider is asked outside any transaction; its answer is recorded in
another: `succeeded`, `processing` (the provider pays out later) or `failed`, which gives
the credit back (to the lot, or to a new refund lot if it has closed). A refund whose
answer was lost stays `pending` and is asked again, under the same provider idempotency
key, before the purchase is refunded any further.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update

from creditgate.domain.amounts import check_amount
from creditgate.domain.billing import refunded_money
from creditgate.domain.billing_errors import (
    PurchaseNotRefundable,
    RefundNotCovered,
    RefundPending,
    UnknownPurchase,
    UnknownRefund,
)
from creditgate.domain.errors import InvalidInput
from creditgate.domain.ledger import (
    Account,
    Entry,
    TransactionKind,
    charge_entries,
    debt_repayment_entries,
)
from creditgate.domain.lots import LotKind, LotStatus, plan_draws
from creditgate.services.billing import purchases
from creditgate.services.billing.results import PurchaseRefund, PurchaseRefundList
from creditgate.services.catalog.catalog import check_id, check_metadata
from creditgate.services.context import Idempotent, Tx
from creditgate.services.ledger.refunds import check_reason, credit_lot
from creditgate.services.wallet import (
    emit,
    held_lot_shares,
    lock_balance,
    open_lots,
    post,
    shift_balance,
)
from creditgate.storage.database import RetryTransaction
from creditgate.storage.ids import new_id
from creditgate.storage.tables import lots, purchase_refunds
from creditgate.storage.tables import purchases as purchase_table

PENDING, SUCCEEDED, PROCESSING, FAILED = "pending", "succeeded", "processing", "failed"
MAX_FAILURE = 255


def _result(row: Any) -> PurchaseRefund:
    return PurchaseRefund(
        id=row.id,
        purchase_id=row.purchase_id,
        customer=row.customer,
        lot_id=row.lot_id,
        asset=row.asset,
        amount=row.amount,
        unused=row.unused,
        consumed=row.consumed,
        money=row.money,
        currency=row.currency,
        reason=row.reason,
        metadata=row.metadata,
        provider=row.provider,
        provider_ref=row.provider_ref,
        status=row.status,
        failure_reason=row.failure_reason,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
    )


def _tenant_row(tx: Tx, table: Any, row_id: str, missing: Exception) -> Any:
    row = tx.conn.execute(
        select(table).where(table.c.id == row_id, table.c.tenant_id == tx.tenant_id)
    ).first()
    if row is None:
        raise missing
    return row


def _purchase(tx: Tx, purchase_id: str) -> Any:
    missing = UnknownPurchase(f"purchase {purchase_id!r} does not exist", field="purchase")
    return _tenant_row(tx, purchase_table, purchase_id, missing)


def _refund_row(tx: Tx, refund_id: str) -> Any:
    missing = UnknownRefund(f"refund {refund_id!r} does not exist", field="refund")
    return _tenant_row(tx, purchase_refunds, refund_id, missing)


def get_refund(tx: Tx, *, refund_id: str) -> PurchaseRefund:
    check_id(refund_id, "refund")
    return _result(_refund_row(tx, refund_id))


def list_refunds(tx: Tx, *, purchase_id: str) -> PurchaseRefundList:
    """A purchase's refunds, oldest first."""
    check_id(purchase_id, "purchase")
    _purchase(tx, purchase_id)
    rows = tx.conn.execute(
        select(purchase_refunds)
        .where(purchase_refunds.c.purchase_id == purchase_id)
        .order_by(purchase_refunds.c.created_at, purchase_refunds.c.id)
    )
    return PurchaseRefundList(data=[_result(r) for r in rows])


def unanswered(tx: Tx, *, purchase_id: str) -> list[PurchaseRefund]:
    """Refunds of a purchase still waiting for the provider's answer."""
    rows = tx.conn.execute(
        select(purchase_refunds).where(
            purchase_refunds.c.tenant_id == tx.tenant_id,
            purchase_refunds.c.purchase_id == purchase_id,
            purchase_refunds.c.status == PENDING,
        )
    )
    return [_result(r) for r in rows]


def _consumed(tx: Tx, lot: Any) -> int:
    """Credit of a lot that usage still holds: consumed, less what refunds of charges gave
    back (to the lot itself, or to refund lots made for it once it had closed)."""
    given_back: int = sum(
        int(r.amount)
        for r in tx.conn.execute(
            select(lots.c.amount, lots.c.metadata).where(
                lots.c.wallet_id == lot.wallet_id,
                lots.c.asset == lot.asset,
                lots.c.kind == LotKind.REFUND.value,
            )
        )
        if (r.metadata or {}).get("refund_of") == lot.id
    )
    return max(0, int(lot.consumed) - int(lot.refunded) - given_back)


def start_refund(
    tx: Tx,
    *,
    purchase_id: str,
    reason: str,
    amount: int | None = None,
    include_consumed: bool = False,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> PurchaseRefund:
    """Take back `amount` credits of a paid purchase (default: all it can give back) and
    record the refund of their money as pending, for the provider to pay out."""
    check_id(purchase_id, "purchase")
    check_reason(reason)
    wanted = None if amount is None else check_amount(amount)
    if not isinstance(include_consumed, bool):
        raise InvalidInput("include_consumed must be true or false", field="include_consumed")
    meta = check_metadata(metadata)
    request = {
        "purchase": purchase_id,
        "amount": wanted,
        "include_consumed": include_consumed,
        "reason": reason,
        "metadata": meta,
    }
    idem = Idempotent(tx, idempotency_key, "purchase.refund", request)
    if (replayed := idem.replay(PurchaseRefund)) is not None:
        return replayed
    found = _purchase(tx, purchase_id)
    if found.status != purchases.PAID or found.lot_id is None:
        raise PurchaseNotRefundable(
            f"purchase {found.id} is {found.status}: only a paid purchase is refunded",
            field="purchase",
        )
    if found.provider != "manual" and not found.payment_ref:
        raise PurchaseNotRefundable(
            f"purchase {found.id} has no {found.provider} payment on record to refund",
            field="purchase",
        )
    purchases.provider_config(tx, found.provider)
    # The balance row first, as every credit movement does; it also serializes the refunds
    # of this purchase, so two cannot both take its last credit or money.
    before = lock_balance(tx, found.wallet_id, found.asset)
    row = _purchase(tx, purchase_id)
    waiting = tx.conn.execute(
        select(purchase_refunds.c.id).where(
            purchase_refunds.c.purchase_id == row.id, purchase_refunds.c.status == PENDING
        )
    ).first()
    if waiting is not None:
        raise RefundPending(
            f"refund {waiting.id} of purchase {row.id} is waiting for {row.provider}'s answer; "
            "retry it first",
            field="purchase",
        )
    lot = tx.conn.execute(select(lots).where(lots.c.id == row.lot_id)).one()
    unused = 0
    if lot.status == LotStatus.ACTIVE:
        shares = held_lot_shares(tx, row.wallet_id, row.asset, before.held)
        unused = max(0, lot.remaining - shares.get(lot.id, 0))
    consumed = _consumed(tx, lot) if include_consumed else 0
    left = row.amount - row.refunded
    can = min(unused + consumed, left)
    if wanted is None:
        wanted = can
    if wanted == 0 or wanted > can:
        more = (
            "; pass include_consumed to refund credit already used"
            if not include_consumed and left > unused
            else ""
        )
        has = f"has {can} credit to refund, not {wanted}" if can else "has no credit to refund"
        raise InvalidInput(f"purchase {row.id} {has}{more}", field="amount")
    from_unused = min(wanted, unused)
    from_consumed = wanted - from_unused
    digits = purchases.currency_digits(row.currency)
    money_total = refunded_money(row.price, row.amount, row.refunded + wanted, digits)
    money = (money_total - row.refunded_money).quantize(money_total)
    if money <= 0:
        raise InvalidInput(
            f"{wanted} of {row.amount} credits are worth less than one minor unit of "
            f"{row.currency}: there is no money to pay back",
            field="amount",
        )
    draws: list[Any] = []
    debt = 0
    if from_consumed:
        capacity = before.policy.capacity(before.available - from_unused)
        if from_consumed > capacity:
            raise RefundNotCovered(
                f"refunding {from_consumed} consumed credit debits it from the wallet again, "
                f"and its {before.policy.mode.value} policy allows {capacity}",
                field="amount",
            )
        others = [x for x in open_lots(tx, row.wallet_id, row.asset) if x.id != lot.id]
        draws, debt = plan_draws(others, from_consumed, tx.now)

    refund_id = new_id("rfd")
    entries: list[Entry] = []
    if from_consumed:
        # The usage the lot paid for is taken off it, to be paid by the wallet again.
        entries += [
            Entry(Account.USAGE, -from_consumed),
            Entry(Account.WALLET, from_consumed, lot.id),
        ]
    entries += [Entry(Account.WALLET, -wanted, lot.id), Entry(Account.REFUNDED, wanted, lot.id)]
    post(
        tx,
        wallet_id=row.wallet_id,
        asset=row.asset,
        kind=TransactionKind.PURCHASE_REFUND,
        entries=entries,
        reference_id=refund_id,
    )
    if from_consumed:
        post(
            tx,
            wallet_id=row.wallet_id,
            asset=row.asset,
            kind=TransactionKind.CHARGE,
            entries=charge_entries(draws, debt),
            reference_id=refund_id,
        )
    taken = tx.conn.execute(
        update(lots)
        .where(lots.c.id == lot.id, lots.c.remaining >= from_unused)
        .values(
            remaining=lots.c.remaining - from_unused,
            consumed=lots.c.consumed - from_consumed,
            voided=lots.c.voided + wanted,
        )
    ).rowcount
    if taken != 1:
        raise RetryTransaction
    shift_balance(
        tx,
        row.wallet_id,
        row.asset,
        posted=-wanted,
        held=0,
        debt=debt,
        need=wanted if from_consumed else 0,
        draws=[(d.lot_id, d.amount) for d in draws],
    )
    tx.conn.execute(
        update(purchase_table)
        .where(purchase_table.c.id == row.id)
        .values(refunded=row.refunded + wanted, refunded_money=money_total)
    )
    values = {
        "tenant_id": tx.tenant_id,
        "wallet_id": row.wallet_id,
        "id": refund_id,
        "purchase_id": row.id,
        "customer": row.customer,
        "lot_id": lot.id,
        "asset": row.asset,
        "amount": wanted,
        "unused": from_unused,
        "consumed": from_consumed,
        "money": money,
        "currency": row.currency,
        "reason": reason,
        "metadata": meta,
        "provider": row.provider,
        "provider_ref": None,
        "status": PENDING,
        "failure_reason": None,
        "created_at": tx.now,
        "resolved_at": None,
    }
    tx.conn.execute(insert(purchase_refunds).values(**values))
    emit(
        tx,
        "refund.created",
        row.wallet_id,
        {
            "refund": refund_id,
            "purchase": row.id,
            "customer": row.customer,
            "asset": row.asset,
            "amount": wanted,
            "unused": from_unused,
            "consumed": from_consumed,
            "debt": debt,
            "money": f"{money:f}",
            "currency": row.currency,
            "provider": row.provider,
            "reason": reason,
            "metadata": meta,
        },
    )
    return idem.record(_result(_refund_row(tx, refund_id)))


def record_answer(
    tx: Tx,
    *,
    refund_id: str,
    status: str,
    provider_ref: str | None = None,
    failure_reason: str | None = None,
) -> PurchaseRefund:
    """Record the provider's answer to a pending refund, once; a refusal gives the credit back."""
    row = _refund_row(tx, refund_id)
    if row.status != PENDING:
        return _result(row)
    if status == FAILED:
        return _give_back(tx, row, failure_reason or "refused")
    if status not in (SUCCEEDED, PROCESSING):
        raise ValueError(status)
    tx.conn.execute(
        update(purchase_refunds)
        .where(purchase_refunds.c.id == row.id, purchase_refunds.c.status == PENDING)
        .values(
            status=status,
            provider_ref=None if provider_ref is None else provider_ref[:255],
            resolved_at=tx.now,
        )
    )
    return _result(_refund_row(tx, refund_id))


def _give_back(tx: Tx, row: Any, failure_reason: str) -> PurchaseRefund:
    """The provider refused: the credit comes back and the purchase's totals go back down."""
    digits = purchases.currency_digits(row.currency)
    before = lock_balance(tx, row.wallet_id, row.asset)
    claimed = tx.conn.execute(
        update(purchase_refunds)
        .where(purchase_refunds.c.id == row.id, purchase_refunds.c.status == PENDING)
        .values(status=FAILED, failure_reason=failure_reason[:MAX_FAILURE], resolved_at=tx.now)
    ).rowcount
    if not claimed:
        return _result(_refund_row(tx, row.id))
    target = credit_lot(
        tx,
        row.lot_id,
        row.amount,
        undo_void=True,
        metadata={"refund_reversed": row.id, "purchase": row.purchase_id},
    )
    entries = [
        Entry(Account.REFUNDED, -row.amount, row.lot_id),
        Entry(Account.WALLET, row.amount, target),
    ]
    # Credit arriving in a wallet that owes pays that debt first, as a grant does.
    repay = min(before.debt, row.amount)
    if repay:
        entries += debt_repayment_entries(target, repay)
        tx.conn.execute(
            update(lots)
            .where(lots.c.id == target)
            .values(remaining=lots.c.remaining - repay, consumed=lots.c.consumed + repay)
        )
    post(
        tx,
        wallet_id=row.wallet_id,
        asset=row.asset,
        kind=TransactionKind.REFUND_REVERSAL,
        entries=entries,
        reference_id=row.id,
    )
    shift_balance(tx, row.wallet_id, row.asset, posted=row.amount, held=0, debt=-repay, need=0)
    tx.conn.execute(
        update(purchase_table)
        .where(purchase_table.c.id == row.purchase_id)
        .values(
            refunded=purchase_table.c.refunded - row.amount,
            refunded_money=_purchase(tx, row.purchase_id).refunded_money - row.money,
        )
    )
    emit(
        tx,
        "refund.failed",
        row.wallet_id,
        {
            "refund": row.id,
            "purchase": row.purchase_id,
            "customer": row.customer,
            "asset": row.asset,
            "amount": row.amount,
            "money": f"{row.money.quantize(Decimal(1).scaleb(-digits)):f}",
            "currency": row.currency,
            "provider": row.provider,
            "reason": failure_reason[:MAX_FAILURE],
            "lot": target,
        },
    )
    return _result(_refund_row(tx, row.id))
