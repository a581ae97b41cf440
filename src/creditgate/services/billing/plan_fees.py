"""Plan fees collected by creditgate: each period's fee is an invoice, and its credit waits
for it.

A plan with `collection` manual or stripe makes every period's fee an invoice (`inv_…`),
`open` when the period starts. Its included credit is granted when the invoice is paid
(Stripe's `invoice.paid`, or an operator marking a manual invoice paid), in the same
transaction as the conditional update that marks it paid, so a payment reported twice, late
or out of order grants once. With `grant_before_payment` the credit is granted at the start
and the dunning rule below takes it back if the payment fails for good.

Dunning: a failed attempt (`invoice.payment_failed`, or an operator marking it failed) marks
the invoice `failed`, the subscription `past_due` with the reason, and raises
`subscription.payment_failed`; a later payment (Stripe's retries, the customer paying the
invoice) still grants the credit while the period lasts. With `grant_before_payment`, a
period still unpaid `grace_days` after its first failure has the unused rest of its
included credit withheld (voided; credit open holds reserved is spared until they resolve),
and a payment after that grants back what was withheld.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from creditgate.domain.amounts import currency_digits, decimal_text
from creditgate.domain.billing_errors import PeriodNotIssued, UnknownInvoice
from creditgate.domain.errors import InvalidInput, LotNotActive
from creditgate.domain.webhooks import EventType
from creditgate.services.billing import plans, purchases
from creditgate.services.billing.results import Invoice, Subscription
from creditgate.services.catalog.catalog import check_external_id, check_id
from creditgate.services.context import Idempotent, Tx
from creditgate.services.ledger import grants
from creditgate.services.wallet import emit
from creditgate.storage import billing as billing_store
from creditgate.storage import collection as store
from creditgate.storage.tables import plans as plans_table

# How far Stripe's period start may be from creditgate's for the same period (the two are
# anchored at the same subscribe, a request apart).
PERIOD_SLACK = timedelta(hours=12)
MAX_REASON = 255
MAX_URL = 2048


def _invoice(row: Any) -> Invoice:
    """A period's fee as its customer's invoice (`row`: a period with its customer)."""
    return Invoice(
        id=row.invoice_id,
        kind="plan_fee",
        customer=row.customer,
        status=row.fee_status,
        amount=row.fee,
        currency=row.currency,
        provider=row.provider,
        provider_ref=row.invoice_ref,
        pay_url=row.pay_url,
        failure_reason=row.failure_reason,
        subscription_id=row.subscription_id,
        period_index=row.period_index,
        period_start=row.period_start,
        period_end=row.period_end,
        created_at=row.created_at,
        paid_at=row.paid_at,
    )


def record_paid(
    tx: Tx,
    *,
    subscription_id: str,
    index: int,
    ref: str | None = None,
    pay_url: str | None = None,
    fee: Decimal | None = None,
) -> bool:
    """A period's fee is paid: grant its credit, once; whether this call recorded it."""
    values: dict[str, Any] = {"paid_at": tx.now, "failure_reason": None}
    if fee is not None:
        values["fee"] = fee
    store.attach_invoice(tx.conn, subscription_id, index, ref, pay_url)
    if not store.claim_period_paid(tx.conn, subscription_id, index, values):
        return False
    period = store.period(tx.conn, subscription_id, index)
    lot_id = plans.grant_paid_period(tx, subscription_id, period)
    plans.refresh_payment_status(tx, subscription_id)
    emit(
        tx,
        EventType.SUBSCRIPTION_PAID,
        period.wallet_id,
        {
            "subscription": subscription_id,
            "customer": period.customer,
            "invoice": period.invoice_id,
            "period": index,
            "amount": decimal_text(period.fee),
            "currency": period.currency,
            "lot": lot_id,
        },
    )
    return True


def record_failed(
    tx: Tx,
    *,
    subscription_id: str,
    index: int,
    reason: str,
    ref: str | None = None,
    pay_url: str | None = None,
) -> bool:
    """A payment attempt at a period's fee failed: say so, once per attempt reported."""
    text = (reason or "payment failed")[:MAX_REASON]
    store.attach_invoice(tx.conn, subscription_id, index, None, pay_url)
    if not store.claim_period_failed(tx.conn, subscription_id, index, text, tx.now, ref):
        return False
    period = store.period(tx.conn, subscription_id, index)
    plans.refresh_payment_status(tx, subscription_id)
    emit(
        tx,
        EventType.SUBSCRIPTION_PAYMENT_FAILED,
        period.wallet_id,
        {
            "subscription": subscription_id,
            "customer": period.customer,
            "invoice": period.invoice_id,
            "period": index,
            "amount": decimal_text(period.fee),
            "currency": period.currency,
            "reason": text,
            "attempt": period.attempts,
            "pay_url": period.pay_url,
        },
    )
    return True


def _period(tx: Tx, invoice_id: object) -> Any:
    """The period whose fee is invoice `invoice_id`, with its customer."""
    row = store.period_by_invoice(tx.conn, tx.tenant_id, check_id(invoice_id, "invoice"))
    if row is None:
        raise UnknownInvoice(f"invoice {invoice_id!r} does not exist", field="invoice")
    return row


def _manual_period(tx: Tx, invoice_id: object) -> Any:
    row = _period(tx, invoice_id)
    if row.provider != "manual":
        raise InvalidInput(
            f"invoice {row.invoice_id} is collected through {row.provider}, not marked by hand",
            field="invoice",
        )
    return row


def get_invoice(tx: Tx, *, invoice_id: str) -> Invoice:
    return _invoice(_period(tx, invoice_id))


def mark_paid(tx: Tx, *, invoice_id: str, idempotency_key: str | None = None) -> Invoice:
    """An operator records a manual plan invoice as paid: the period's credit is granted."""
    idem = Idempotent(tx, idempotency_key, "invoice.mark_paid", {"invoice": invoice_id})
    if (replayed := idem.replay(Invoice)) is not None:
        return replayed
    row = _manual_period(tx, invoice_id)
    record_paid(tx, subscription_id=row.subscription_id, index=row.period_index)
    return idem.record(get_invoice(tx, invoice_id=row.invoice_id))


def mark_failed(
    tx: Tx, *, invoice_id: str, reason: str = "", idempotency_key: str | None = None
) -> Invoice:
    """An operator records a failed attempt at a manual plan invoice (dunning follows)."""
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise InvalidInput(f"reason must be at most {MAX_REASON} characters", field="reason")
    request = {"invoice": invoice_id, "reason": reason}
    idem = Idempotent(tx, idempotency_key, "invoice.mark_failed", request)
    if (replayed := idem.replay(Invoice)) is not None:
        return replayed
    row = _manual_period(tx, invoice_id)
    record_failed(tx, subscription_id=row.subscription_id, index=row.period_index, reason=reason)
    return idem.record(get_invoice(tx, invoice_id=row.invoice_id))


def withhold_due(tx: Tx) -> int:
    """Withhold the unused included credit of periods granted before payment whose payment
    failed `grace_days` ago and is still unpaid; safe to run any number of times."""
    done = 0
    for row in store.due_withholdings(tx.conn, tx.tenant_id, tx.now):
        if row.failed_at + timedelta(days=row.grace_days) > tx.now:
            continue
        lot = billing_store.lot(tx.conn, row.lot_id)
        amount = lot.remaining
        if amount <= 0 or lot.status != "active":
            continue
        try:
            grants.void_lot(tx, lot_id=row.lot_id, reason="payment_failed")
        except LotNotActive:
            continue  # credit backing open holds: once they resolve, the next run does it
        if not store.withhold(tx.conn, row.subscription_id, row.period_index, amount):
            continue
        emit(
            tx,
            EventType.SUBSCRIPTION_CREDIT_WITHHELD,
            row.wallet_id,
            {
                "subscription": row.subscription_id,
                "customer": row.customer,
                "invoice": row.invoice_id,
                "period": row.period_index,
                "lot": row.lot_id,
                "withheld": amount,
            },
        )
        done += 1
    return done


def customer_invoices(tx: Tx, *, customer: str) -> list[Invoice]:
    """A customer's plan invoices, newest first (overage bills are purchases: overage.py)."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    return [_invoice(r) for r in store.periods_of_wallet(tx.conn, wallet_id)]


# Stripe: the subscription behind a plan, and its invoices' events


@dataclass(frozen=True, slots=True)
class StripeInputs:
    """What creating a subscription's Stripe subscription needs, read in one transaction."""

    config: dict[str, Any]
    price: str
    customer_ref: str | None  # the saved payment method's Stripe customer, if any
    method_ref: str | None
    test_mode: bool
    test_clock: str | None
    now: datetime


def stripe_inputs(tx: Tx, *, subscription_id: str) -> StripeInputs | None:
    """The inputs for a subscription whose plan Stripe collects; None for any other plan."""
    row = billing_store.subscription(tx.conn, tx.tenant_id, subscription_id, lock=False)
    if row is None:
        return None
    plan = billing_store.row_by_id(tx.conn, plans_table, row.plan_id)
    if plan.collection != "stripe":
        return None
    config = purchases.provider_config(tx, "stripe")
    method = purchases.payment_method(tx, row.wallet_id, "stripe")
    mode, clock = store.stripe_test_clock(tx.conn, tx.tenant_id)
    return StripeInputs(
        config=config,
        price=plan.stripe_price,
        customer_ref=method.customer_ref if method else None,
        method_ref=method.method_ref if method else None,
        test_mode=mode == "test",
        test_clock=clock,
        now=tx.now,
    )


def remember_test_clock(tx: Tx, *, clock: str) -> None:
    store.set_stripe_test_clock(tx.conn, tx.tenant_id, clock[:255])


def test_clock_inputs(tx: Tx) -> tuple[dict[str, Any], str] | None:
    """The Stripe account and test clock of a test-mode tenant on Stripe test keys."""
    mode, clock = store.stripe_test_clock(tx.conn, tx.tenant_id)
    stored = purchases.stored_provider_config(tx, "stripe")
    if mode != "test" or clock is None or stored is None:
        return None
    if not str(stored.get("api_key") or "").startswith("sk_test_"):
        return None
    return purchases.provider_config(tx, "stripe"), clock


test_clock_inputs.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def attach_subscription_ref(tx: Tx, *, subscription_id: str, ref: str) -> Subscription:
    row = billing_store.subscription(tx.conn, tx.tenant_id, subscription_id, lock=False)
    if row is not None and not row.provider_ref:
        billing_store.update_subscription(tx.conn, subscription_id, {"provider_ref": ref[:255]})
    return plans.get_subscription(tx, subscription_id=subscription_id)


def _subscription_of_invoice(tx: Tx, obj: dict[str, Any]) -> Any | None:
    parent = obj.get("parent") if isinstance(obj.get("parent"), dict) else {}
    details = (parent or {}).get("subscription_details") or obj.get("subscription_details") or {}
    metadata = details.get("metadata") if isinstance(details, dict) else None
    ours = (metadata or {}).get("creditgate_subscription") if isinstance(metadata, dict) else None
    if isinstance(ours, str) and len(ours) <= 40:
        row = billing_store.subscription(tx.conn, tx.tenant_id, ours, lock=False)
        if row is not None:
            return row
    ref = obj.get("subscription") or (
        details.get("subscription") if isinstance(details, dict) else None
    )
    if isinstance(ref, str) and len(ref) <= 255:
        return store.subscription_by_ref(tx.conn, tx.tenant_id, ref)
    return None


def _line_start(obj: dict[str, Any]) -> datetime | None:
    try:
        start = obj["lines"]["data"][0]["period"]["start"]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < 2**40:
        return None
    return datetime.fromtimestamp(start, UTC)


def stripe_invoice_event(tx: Tx, event_type: str, obj: dict[str, Any]) -> tuple[str, str | None]:
    """Act on a Stripe invoice event of a plan's subscription: `invoice.paid` grants the
    period's credit, `invoice.payment_failed` starts dunning, `invoice.finalized` records
    where it is paid. The period is the one Stripe's invoice line starts; the subscription
    is first brought up to date, so a payment that arrives before the renewal job ran
    still finds its period. A period not issued yet (Stripe ahead) is refused, so that
    Stripe sends the event again later."""
    row = _subscription_of_invoice(tx, obj)
    if row is None:
        return "unknown_subscription", None
    plans.bring_up_to_date(tx, row.id)
    start = _line_start(obj)
    periods = billing_store.periods_of(tx.conn, row.id)
    found = None
    if start is not None:
        for p in periods:
            if abs(p.period_start - start) <= PERIOD_SLACK:
                found = p
    elif obj.get("billing_reason") == "subscription_create" and periods:
        found = periods[0]
    if found is None:
        if start is not None and start > tx.now:
            raise PeriodNotIssued(
                f"the period starting {start.isoformat()} is not issued yet; send it again later",
                field="period",
            )
        return "unknown_period", row.id
    if found.fee_status == "external":
        return "not_collected", row.id
    ref = obj.get("id") if isinstance(obj.get("id"), str) else None
    url = obj.get("hosted_invoice_url")
    pay_url = url[:MAX_URL] if isinstance(url, str) and url.startswith("https://") else None
    if event_type == "invoice.paid":
        currency = str(obj.get("currency", "")).upper()
        paid = obj.get("amount_paid")
        if currency != found.currency or isinstance(paid, bool) or not isinstance(paid, int):
            return "amount_mismatch", row.id
        fee = Decimal(paid).scaleb(-currency_digits(currency))
        done = record_paid(
            tx, subscription_id=row.id, index=found.period_index, ref=ref, pay_url=pay_url, fee=fee
        )
        return ("paid" if done else "already_paid"), row.id
    if event_type == "invoice.payment_failed":
        error = obj.get("last_finalization_error") or {}
        reason = error.get("code") if isinstance(error, dict) else None
        done = record_failed(
            tx,
            subscription_id=row.id,
            index=found.period_index,
            reason=str(reason or "payment_failed"),
            ref=ref,
            pay_url=pay_url,
        )
        return ("failed" if done else f"already_{found.fee_status}"), row.id
    store.attach_invoice(tx.conn, row.id, found.period_index, ref, pay_url)
    return "recorded", row.id


def stripe_subscription_ended(tx: Tx, obj: dict[str, Any]) -> tuple[str, str | None]:
    """`customer.subscription.deleted`: Stripe ended it (its retries ran out, or the
    customer canceled there), so it ends here now; credit already granted stays."""
    ref = obj.get("id")
    row = store.subscription_by_ref(tx.conn, tx.tenant_id, ref) if isinstance(ref, str) else None
    if row is None:
        return "unknown_subscription", None
    return ("canceled" if plans.end_now(tx, row.id) else "already_ended"), row.id
