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

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from creditgate.domain.amounts import check_amount, currency_digits
from creditgate.domain.balances import WalletBalance
from creditgate.domain.billing_errors import (
    PurchaseNotRefundable,
    RefundPending,
    UnknownPurchase,
    UnknownRefund,
)
from creditgate.domain.errors import InvalidInput
from creditgate.domain.ledger import Account, Entry, TransactionKind, debt_repayment_entries
from creditgate.domain.lots import LotStatus
from creditgate.domain.refunds import (
    ConsumedDebit,
    RefundablePurchase,
    RefundPlan,
    check_consumed_covered,
    consumed_debit_entries,
    consumed_still_held,
    debit_consumed,
    plan_purchase_refund,
    refund_entries,
    unused_credit,
)
from creditgate.domain.webhooks import EventType
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
from creditgate.storage import billing as store
from creditgate.storage.database import RetryTransaction
from creditgate.storage.ids import new_id
from creditgate.storage.tables import purchase_refunds
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
    row = store.tenant_row(tx.conn, table, tx.tenant_id, row_id)
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
    rows = store.refunds_of(tx.conn, purchase_id)
    return PurchaseRefundList(data=[_result(r) for r in rows])


def unanswered(tx: Tx, *, purchase_id: str) -> list[PurchaseRefund]:
    """Refunds of a purchase still waiting for the provider's answer."""
    return [_result(r) for r in store.pending_refunds(tx.conn, tx.tenant_id, purchase_id)]


@dataclass(frozen=True, slots=True)
class _Refund:
    """A refund being made: its request, the purchase and lot, the plan, the wallet's debit."""

    id: str
    purchase: Any
    lot: Any
    plan: RefundPlan
    debit: ConsumedDebit
    reason: str
    metadata: dict[str, Any]


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
    _check_refundable(tx, found)
    # The balance row first, as every credit movement does; it also serializes the refunds
    # of this purchase, so two cannot both take its last credit or money.
    before = lock_balance(tx, found.wallet_id, found.asset)
    row = _purchase(tx, purchase_id)
    _check_none_pending(tx, row)
    lot = store.lot(tx.conn, row.lot_id)
    plan = plan_purchase_refund(
        _refundable(tx, row, lot, before, include_consumed), wanted, include_consumed
    )
    debit = ConsumedDebit([], 0)
    if plan.from_consumed:
        check_consumed_covered(plan, before.policy, before.available, tx.asset(row.asset))
        others = [x for x in open_lots(tx, row.wallet_id, row.asset) if x.id != lot.id]
        debit = debit_consumed(plan, others, tx.now)
    refund = _Refund(new_id("rfd"), row, lot, plan, debit, reason, meta)
    _take_back(tx, refund)
    _record(tx, refund)
    return idem.record(_result(_refund_row(tx, refund.id)))


def _check_refundable(tx: Tx, found: Any) -> None:
    """Only a paid purchase is refunded, through a payment its provider knows of."""
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


def _check_none_pending(tx: Tx, row: Any) -> None:
    waiting = store.first_pending_refund(tx.conn, row.id)
    if waiting is not None:
        raise RefundPending(
            f"refund {waiting} of purchase {row.id} is waiting for {row.provider}'s answer; "
            "retry it first",
            field="purchase",
        )


def _refundable(
    tx: Tx, row: Any, lot: Any, before: WalletBalance, include_consumed: bool
) -> RefundablePurchase:
    """The purchase as the refund plan sees it: what its lot has unused and, if asked for,
    the consumed credit usage still holds."""
    unused = 0
    if lot.status == LotStatus.ACTIVE:
        shares = held_lot_shares(tx, row.wallet_id, row.asset, before.held)
        unused = unused_credit(lot.remaining, shares.get(lot.id, 0))
    consumed = 0
    if include_consumed:
        given_back = store.given_back_to(tx.conn, lot.wallet_id, lot.asset, lot.id)
        consumed = consumed_still_held(int(lot.consumed), int(lot.refunded), given_back)
    return RefundablePurchase(
        id=row.id,
        asset=tx.asset(row.asset),
        amount=row.amount,
        refunded=row.refunded,
        price=row.price,
        refunded_money=row.refunded_money,
        currency=row.currency,
        digits=currency_digits(row.currency),
        unused=unused,
        consumed=consumed,
    )


def _take_back(tx: Tx, refund: _Refund) -> None:
    """Post the refund (and the wallet's debit for consumed credit), void its credit on the
    lot and move the balance."""
    row, plan = refund.purchase, refund.plan
    post(
        tx,
        wallet_id=row.wallet_id,
        asset=row.asset,
        kind=TransactionKind.PURCHASE_REFUND,
        entries=refund_entries(plan, refund.lot.id),
        reference_id=refund.id,
    )
    if plan.from_consumed:
        post(
            tx,
            wallet_id=row.wallet_id,
            asset=row.asset,
            kind=TransactionKind.CHARGE,
            entries=consumed_debit_entries(refund.debit),
            reference_id=refund.id,
        )
    taken = store.take_refunded_credit(
        tx.conn, refund.lot.id, from_unused=plan.from_unused, from_consumed=plan.from_consumed
    )
    if not taken:
        raise RetryTransaction
    shift_balance(
        tx,
        row.wallet_id,
        row.asset,
        posted=-plan.amount,
        held=0,
        debt=refund.debit.debt,
        need=plan.amount if plan.from_consumed else 0,
        draws=[(d.lot_id, d.amount) for d in refund.debit.draws],
    )


def _record(tx: Tx, refund: _Refund) -> None:
    """The purchase's refunded totals, the pending refund, and `refund.created`."""
    row, plan = refund.purchase, refund.plan
    store.set_refunded(tx.conn, row.id, row.refunded + plan.amount, plan.money_total)
    store.insert_refund(
        tx.conn,
        {
            "tenant_id": tx.tenant_id,
            "wallet_id": row.wallet_id,
            "id": refund.id,
            "purchase_id": row.id,
            "customer": row.customer,
            "lot_id": refund.lot.id,
            "asset": row.asset,
            "amount": plan.amount,
            "unused": plan.from_unused,
            "consumed": plan.from_consumed,
            "money": plan.money,
            "currency": row.currency,
            "reason": refund.reason,
            "metadata": refund.metadata,
            "provider": row.provider,
            "provider_ref": None,
            "status": PENDING,
            "failure_reason": None,
            "created_at": tx.now,
            "resolved_at": None,
        },
    )
    emit(
        tx,
        EventType.REFUND_CREATED,
        row.wallet_id,
        {
            "refund": refund.id,
            "purchase": row.id,
            "customer": row.customer,
            "asset": row.asset,
            "amount": plan.amount,
            "unused": plan.from_unused,
            "consumed": plan.from_consumed,
            "debt": refund.debit.debt,
            "money": f"{plan.money:f}",
            "currency": row.currency,
            "provider": row.provider,
            "reason": refund.reason,
            "metadata": refund.metadata,
        },
    )


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
    store.answer_refund(
        tx.conn,
        row.id,
        {
            "status": status,
            "provider_ref": None if provider_ref is None else provider_ref[:255],
            "resolved_at": tx.now,
        },
    )
    return _result(_refund_row(tx, refund_id))


def _give_back(tx: Tx, row: Any, failure_reason: str) -> PurchaseRefund:
    """The provider refused: the credit comes back and the purchase's totals go back down."""
    digits = currency_digits(row.currency)
    before = lock_balance(tx, row.wallet_id, row.asset)
    claimed = store.answer_refund(
        tx.conn,
        row.id,
        {"status": FAILED, "failure_reason": failure_reason[:MAX_FAILURE], "resolved_at": tx.now},
    )
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
        store.repay_debt_from_lot(tx.conn, target, repay)
    post(
        tx,
        wallet_id=row.wallet_id,
        asset=row.asset,
        kind=TransactionKind.REFUND_REVERSAL,
        entries=entries,
        reference_id=row.id,
    )
    shift_balance(tx, row.wallet_id, row.asset, posted=row.amount, held=0, debt=-repay, need=0)
    store.unrefund(
        tx.conn,
        row.purchase_id,
        row.amount,
        _purchase(tx, row.purchase_id).refunded_money - row.money,
    )
    emit(
        tx,
        EventType.REFUND_FAILED,
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
