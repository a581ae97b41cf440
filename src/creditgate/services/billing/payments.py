"""Payment providers (manual invoices and Stripe), the checkout flow and Stripe's webhook.

A provider is called between transactions, never inside one: a purchase is made pending in
one transaction, the provider is asked to take the money, and its answer (or its webhook)
completes or fails the purchase in another. Every call to Stripe carries an idempotency key
derived from the purchase, so a call repeated after a crash is the same payment, not a
second one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from creditgate.domain.amounts import check_money
from creditgate.domain.billing_errors import InvalidSignature, PaymentProviderError
from creditgate.domain.errors import InvalidInput
from creditgate.services.billing import (
    overage,
    plan_fees,
    plans,
    purchase_refunds,
    purchases,
)
from creditgate.services.billing._shared import insert_if_new
from creditgate.services.billing.requests import NewPlan, PurchaseOrder
from creditgate.services.billing.results import (
    OverageReport,
    PaymentMethod,
    ProviderEventOutcome,
    Purchase,
    PurchaseRefund,
    Subscription,
)
from creditgate.services.context import Tx
from creditgate.storage import billing as store
from creditgate.storage.tables import provider_events

if TYPE_CHECKING:
    # Imported in the functions that call Stripe: the library takes about 0.15 s to import,
    # and most server processes (those whose tenants use no Stripe) never call it.
    import stripe

T = TypeVar("T")

log = logging.getLogger("creditgate.services.billing.payments")

# How a flow runs one use case in its own transaction: `TenantLedger._run`.
Runner = Callable[..., Any]

PaymentStatus = Literal["succeeded", "processing", "failed"]


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    ref: str | None  # the provider's id for it, e.g. cs_…
    url: str | None  # where to send the customer to pay


@dataclass(frozen=True, slots=True)
class Payment:
    ref: str | None  # the provider's payment, e.g. pi_…
    status: PaymentStatus
    failure_reason: str | None = None


RefundStatus = Literal["succeeded", "processing", "failed"]


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    ref: str | None  # the provider's refund, e.g. re_…
    status: RefundStatus  # processing: taken, paid out later
    failure_reason: str | None = None


class PaymentProvider(Protocol):
    name: str

    def start_checkout(
        self,
        purchase: Purchase,
        *,
        success_url: str | None,
        cancel_url: str | None,
        customer_ref: str | None,
        product: str,
    ) -> CheckoutSession: ...

    def charge_saved_method(self, purchase: Purchase, method: PaymentMethod | None) -> Payment: ...

    def refund(self, payment: Purchase, amount: int, *, refund_id: str) -> ProviderRefund:
        """Pay back `amount` (in the currency's minor unit) of a paid purchase's payment."""
        ...


class ManualProvider:
    """Invoices an operator marks paid or failed: nothing is charged automatically."""

    name = "manual"

    def start_checkout(
        self,
        purchase: Purchase,
        *,
        success_url: str | None,
        cancel_url: str | None,
        customer_ref: str | None,
        product: str,
    ) -> CheckoutSession:
        return CheckoutSession(ref=None, url=None)

    def charge_saved_method(self, purchase: Purchase, method: PaymentMethod | None) -> Payment:
        return Payment(ref=None, status="processing")

    def refund(self, payment: Purchase, amount: int, *, refund_id: str) -> ProviderRefund:
        # The operator pays the money back outside creditgate; the refund records it.
        return ProviderRefund(ref=None, status="succeeded")


class StripeProvider:
    """Stripe through its own client: Checkout Sessions and off-session PaymentIntents."""

    name = "stripe"

    def __init__(
        self,
        api_key: str,
        *,
        tenant_id: str,
        api_base: str | None = None,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        import stripe

        self.tenant_id = tenant_id
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=http_client,
            max_network_retries=2,
        )

    def _metadata(self, purchase: Purchase) -> dict[str, str]:
        return {"creditgate_tenant": self.tenant_id, "creditgate_purchase": purchase.id}

    def start_checkout(
        self,
        purchase: Purchase,
        *,
        success_url: str | None,
        cancel_url: str | None,
        customer_ref: str | None,
        product: str,
    ) -> CheckoutSession:
        """A Checkout Session for the purchase; `product` is what the customer sees they buy
        ("100.00 credits")."""
        import stripe

        params: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": purchase.id,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": purchase.currency.lower(),
                        "unit_amount": purchases.minor_money(purchase.price, purchase.currency),
                        "product_data": {"name": product[:250]},
                    },
                }
            ],
            "metadata": self._metadata(purchase),
            "payment_intent_data": {"metadata": self._metadata(purchase)},
        }
        if success_url:
            params["success_url"] = success_url
        if cancel_url:
            params["cancel_url"] = cancel_url
        if customer_ref:
            params["customer"] = customer_ref
        try:
            session = self.client.v1.checkout.sessions.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"creditgate-checkout-{purchase.id}"},
            )
        except stripe.StripeError as exc:
            unanswered = isinstance(exc, stripe.APIConnectionError) or (exc.http_status or 0) >= 500
            what = "Stripe did not answer" if unanswered else "Stripe refused the checkout"
            raise PaymentProviderError(f"{what}: {_message(exc)}") from exc
        return CheckoutSession(ref=session.id, url=session.url)

    def charge_saved_method(self, purchase: Purchase, method: PaymentMethod | None) -> Payment:
        import stripe

        if method is None:
            return Payment(ref=None, status="failed", failure_reason="no_payment_method")
        params: dict[str, Any] = {
            "amount": purchases.minor_money(purchase.price, purchase.currency),
            "currency": purchase.currency.lower(),
            "payment_method": method.method_ref,
            "off_session": True,
            "confirm": True,
            "metadata": self._metadata(purchase),
        }
        if method.customer_ref:
            params["customer"] = method.customer_ref
        try:
            intent = self.client.v1.payment_intents.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"creditgate-topup-{purchase.id}"},
            )
        except stripe.CardError as exc:
            # Declined, or the bank wants the customer present: the payment failed.
            error = exc.error
            intent_id = None
            if error is not None and error.payment_intent is not None:
                intent_id = error.payment_intent.id
            return Payment(ref=intent_id, status="failed", failure_reason=_message(exc))
        except stripe.StripeError as exc:
            # Unknown outcome (network, Stripe down): retried later under the same key.
            raise PaymentProviderError(f"Stripe did not answer: {_message(exc)}") from exc
        if intent.status == "succeeded":
            return Payment(ref=intent.id, status="succeeded")
        if intent.status in ("canceled", "requires_payment_method"):
            return Payment(ref=intent.id, status="failed", failure_reason=intent.status)
        return Payment(ref=intent.id, status="processing")

    def refund(self, payment: Purchase, amount: int, *, refund_id: str) -> ProviderRefund:
        import stripe

        params: dict[str, Any] = {
            "payment_intent": payment.payment_ref,
            "amount": amount,
            "metadata": {**self._metadata(payment), "creditgate_refund": refund_id},
        }
        try:
            refund = self.client.v1.refunds.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"creditgate-refund-{refund_id}"},
            )
        except stripe.InvalidRequestError as exc:
            # Stripe refuses it (already refunded, more than is left, no such payment).
            return ProviderRefund(ref=None, status="failed", failure_reason=_message(exc))
        except stripe.StripeError as exc:
            # Unknown outcome: asked again later under the same key.
            raise PaymentProviderError(f"Stripe did not answer: {_message(exc)}") from exc
        if refund.status == "succeeded":
            return ProviderRefund(ref=refund.id, status="succeeded")
        if refund.status in ("failed", "canceled"):
            reason = getattr(refund, "failure_reason", None) or refund.status
            return ProviderRefund(ref=refund.id, status="failed", failure_reason=str(reason))
        return ProviderRefund(ref=refund.id, status="processing")

    # Plans billed by Stripe, and Stripe's test clocks

    def price(self, price_id: str) -> Any:
        """A price of the account; InvalidInput naming `stripe_price` if Stripe has none."""
        import stripe

        try:
            return self.client.v1.prices.retrieve(price_id)
        except stripe.InvalidRequestError as exc:
            raise InvalidInput(
                f"stripe_price {price_id!r} is not a price of the tenant's Stripe account: "
                f"{_message(exc)}",
                field="stripe_price",
            ) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderError(f"Stripe did not answer: {_message(exc)}") from exc

    def _create(self, what: str, params: dict[str, Any], key: str) -> Any:
        import stripe

        service = {
            "customer": self.client.v1.customers,
            "subscription": self.client.v1.subscriptions,
            "test clock": self.client.v1.test_helpers.test_clocks,
        }[what]
        try:
            return service.create(params, {"idempotency_key": key})  # type: ignore[attr-defined]
        except stripe.StripeError as exc:
            unanswered = isinstance(exc, stripe.APIConnectionError) or (exc.http_status or 0) >= 500
            verb = "did not answer" if unanswered else f"refused the {what}"
            raise PaymentProviderError(f"Stripe {verb}: {_message(exc)}") from exc

    def create_customer(self, subscription_id: str, customer: str, clock: str | None) -> str:
        params: dict[str, Any] = {
            "description": customer[:200],
            "metadata": {"creditgate_tenant": self.tenant_id, "creditgate_customer": customer},
        }
        if clock:
            params["test_clock"] = clock
        made = self._create("customer", params, f"creditgate-customer-{subscription_id}")
        return str(made.id)

    def create_subscription(
        self, subscription_id: str, customer_ref: str, price: str, method_ref: str | None
    ) -> str:
        metadata = {"creditgate_tenant": self.tenant_id, "creditgate_subscription": subscription_id}
        params: dict[str, Any] = {
            "customer": customer_ref,
            "items": [{"price": price}],
            # Stripe shows it on every invoice of the subscription (its
            # `subscription_details`): the invoice events name the tenant and subscription.
            "metadata": metadata,
        }
        if method_ref:
            params["default_payment_method"] = method_ref
        made = self._create("subscription", params, f"creditgate-subscription-{subscription_id}")
        return str(made.id)

    def create_test_clock(self, frozen_time: datetime) -> str:
        params = {
            "frozen_time": int(frozen_time.timestamp()),
            "name": f"creditgate {self.tenant_id}",
        }
        return str(self._create("test clock", params, f"creditgate-test-clock-{self.tenant_id}").id)

    def advance_test_clock(self, clock: str, frozen_time: datetime) -> None:
        import stripe

        try:
            self.client.v1.test_helpers.test_clocks.advance(
                clock, {"frozen_time": int(frozen_time.timestamp())}
            )
        except stripe.StripeError as exc:
            raise PaymentProviderError(
                f"Stripe refused to advance its test clock: {_message(exc)}"
            ) from exc


MAX_PROVIDER_MESSAGE = 200


def _message(exc: stripe.StripeError) -> str:
    """What Stripe said, bounded: its own error code and message when it answered with one,
    else only what kind of failure it was. Never the body of an answer that is not Stripe's
    error, nor the text of a socket error (both are shown to the tenant)."""
    import stripe

    error = exc.error
    code = getattr(error, "code", None) if error is not None else None
    message = getattr(error, "message", None) if error is not None else None
    parts = [str(p) for p in (code, message) if isinstance(p, str) and p]
    if parts:
        text = ": ".join(parts)
        cleaned = "".join(c if c.isprintable() else " " for c in text)
        return cleaned[:MAX_PROVIDER_MESSAGE]
    if isinstance(exc, stripe.APIConnectionError):
        return "the connection to Stripe failed"
    if exc.http_status:
        return f"HTTP {exc.http_status}, without an error Stripe explains"
    return type(exc).__name__


def provider_for(name: str, config: dict[str, Any], tenant_id: str) -> PaymentProvider:
    if name == "stripe":
        return StripeProvider(
            config["api_key"], tenant_id=tenant_id, api_base=config.get("api_base")
        )
    return ManualProvider()


# Flows over several transactions


def _provider_and_method(
    tx: Tx, *, provider: str, customer: str
) -> tuple[dict[str, Any], PaymentMethod | None]:
    config = purchases.provider_config(tx, provider)
    return config, purchases.payment_method(tx, tx.wallet_id(customer), provider)


def _checkout_inputs(
    tx: Tx, *, purchase: Purchase
) -> tuple[dict[str, Any], PaymentMethod | None, str]:
    """The provider, the saved method and what the checkout says is bought, in the asset's
    units ("100.00 credits"), read in one transaction."""
    config, method = _provider_and_method(
        tx, provider=purchase.provider, customer=purchase.customer
    )
    return config, method, tx.asset(purchase.asset).amount_text(purchase.amount)


def buy(
    run: Runner, tenant_id: str, order: PurchaseOrder, *, idempotency_key: str | None = None
) -> Purchase:
    """Start a purchase; with Stripe, open its Checkout Session (the answer's checkout_url).

    Retried with the same idempotency key, it answers the same purchase and session.
    """
    purchase: Purchase = run(purchases.start_purchase, order=order, idempotency_key=idempotency_key)
    if purchase.provider == "manual" or purchase.status != "pending" or purchase.provider_ref:
        if purchase.provider_ref and purchase.checkout_url is None:
            return run(purchases.get_purchase, read_only=True, purchase_id=purchase.id)  # type: ignore[no-any-return]
        return purchase
    config, method, product = run(_checkout_inputs, read_only=True, purchase=purchase)
    session = provider_for(purchase.provider, config, tenant_id).start_checkout(
        purchase,
        success_url=order.success_url,
        cancel_url=order.cancel_url,
        customer_ref=method.customer_ref if method else None,
        product=product,
    )
    return run(  # type: ignore[no-any-return]
        purchases.attach_provider_ref,
        purchase_id=purchase.id,
        provider_ref=session.ref,
        checkout_url=session.url,
    )


def charge(run: Runner, tenant_id: str, purchase: Purchase) -> Purchase:
    """Charge a pending purchase to the customer's saved payment method, off-session.

    A provider that cannot tell (network) leaves it pending: the caller retries later, and
    the idempotency key makes the retry the same payment.
    """
    config, method = run(
        _provider_and_method, read_only=True, provider=purchase.provider, customer=purchase.customer
    )
    return _charge_with(run, tenant_id, purchase, config, method)


def _charge_with(
    run: Runner,
    tenant_id: str,
    purchase: Purchase,
    config: dict[str, Any],
    method: PaymentMethod | None,
) -> Purchase:
    """`charge` with the provider's account and the saved method already read."""
    payment = provider_for(purchase.provider, config, tenant_id).charge_saved_method(
        purchase, method
    )
    if payment.status == "succeeded":
        return run(  # type: ignore[no-any-return]
            purchases.complete_purchase, purchase_id=purchase.id, payment_ref=payment.ref
        )
    if payment.status == "failed":
        return run(  # type: ignore[no-any-return]
            purchases.fail_purchase,
            purchase_id=purchase.id,
            reason=payment.failure_reason or "payment failed",
            payment_ref=payment.ref,
        )
    if payment.ref:
        return run(  # type: ignore[no-any-return]
            purchases.attach_provider_ref,
            purchase_id=purchase.id,
            provider_ref=payment.ref,
            payment_ref=payment.ref,
        )
    return purchase


def refund(
    run: Runner,
    tenant_id: str,
    *,
    purchase_id: str,
    reason: str,
    amount: int | None = None,
    include_consumed: bool = False,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> PurchaseRefund:
    """Refund a paid purchase: its credit is taken back, then its money paid back.

    A refund of the purchase whose provider answer was lost is asked again first. Retried
    with the same idempotency key, it answers the same refund (asked again if still pending).
    """
    for waiting in run(purchase_refunds.unanswered, read_only=True, purchase_id=purchase_id):
        _pay_back(run, tenant_id, waiting)
    started: PurchaseRefund = run(
        purchase_refunds.start_refund,
        purchase_id=purchase_id,
        reason=reason,
        amount=amount,
        include_consumed=include_consumed,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )
    current: PurchaseRefund = run(purchase_refunds.get_refund, read_only=True, refund_id=started.id)
    if current.status != purchase_refunds.PENDING:
        return current
    return _pay_back(run, tenant_id, current)


def _pay_back(run: Runner, tenant_id: str, refund: PurchaseRefund) -> PurchaseRefund:
    """Ask the purchase's provider to pay a pending refund, and record its answer."""
    purchase: Purchase = run(purchases.get_purchase, read_only=True, purchase_id=refund.purchase_id)
    config = run(purchases.provider_config, read_only=True, provider=refund.provider)
    answer = provider_for(refund.provider, config, tenant_id).refund(
        purchase, purchases.minor_money(refund.money, refund.currency), refund_id=refund.id
    )
    return run(  # type: ignore[no-any-return]
        purchase_refunds.record_answer,
        refund_id=refund.id,
        status=answer.status,
        provider_ref=answer.ref,
        failure_reason=answer.failure_reason,
    )


# Plans collected through Stripe

_INTERVALS = {"monthly": "month", "yearly": "year"}


def check_stripe_price(run: Runner, tenant_id: str, plan: NewPlan) -> None:
    """A plan naming a Stripe price: the price must be the tenant's, recurring every period
    of the plan, in its currency and for its fee (else 422 naming `stripe_price`)."""
    if plan.stripe_price is None:
        return
    plans.check_collection(plan)
    config = run(purchases.provider_config, read_only=True, provider="stripe")
    price = _stripe(config, tenant_id).price(plan.stripe_price)
    recurring = getattr(price, "recurring", None)
    interval = getattr(recurring, "interval", None) if recurring is not None else None
    count = getattr(recurring, "interval_count", 1) if recurring is not None else None
    if interval != _INTERVALS.get(str(plan.period)) or count != 1:
        raise InvalidInput(
            f"stripe_price {plan.stripe_price} does not recur every {plan.period} period",
            field="stripe_price",
        )
    currency = str(getattr(price, "currency", "")).upper()
    fee = check_money(plan.fee, "fee")
    if currency != str(plan.currency).upper() or getattr(price, "unit_amount", None) != (
        purchases.minor_money(fee, currency)
    ):
        raise InvalidInput(
            f"stripe_price {plan.stripe_price} charges {getattr(price, 'unit_amount', None)} "
            f"{currency or '?'} in minor units, not the plan's fee of {plan.fee} {plan.currency}",
            field="stripe_price",
        )


def _stripe(config: dict[str, Any], tenant_id: str) -> StripeProvider:
    return StripeProvider(config["api_key"], tenant_id=tenant_id, api_base=config.get("api_base"))


def start_stripe_subscription(run: Runner, tenant_id: str, sub: Subscription) -> Subscription:
    """Create the Stripe subscription behind a subscription to a plan collected through
    Stripe (once: its idempotency key is derived from the subscription, and a subscription
    that already has one is answered as it is). Stripe then invoices each period and its
    invoice events grant the credit."""
    if sub.provider_ref:
        return sub
    inputs = run(plan_fees.stripe_inputs, read_only=True, subscription_id=sub.id)
    if inputs is None:
        return sub
    provider = _stripe(inputs.config, tenant_id)
    clock = inputs.test_clock
    if inputs.test_mode and clock is None and inputs.config["api_key"].startswith("sk_test_"):
        clock = provider.create_test_clock(inputs.now)
        run(plan_fees.remember_test_clock, clock=clock)
    customer_ref = inputs.customer_ref or provider.create_customer(sub.id, sub.customer, clock)
    ref = provider.create_subscription(sub.id, customer_ref, inputs.price, inputs.method_ref)
    return run(plan_fees.attach_subscription_ref, subscription_id=sub.id, ref=ref)  # type: ignore[no-any-return]


def advance_stripe_test_clock(run: Runner, tenant_id: str, to: datetime) -> str:
    """Move the tenant's Stripe test clock with its own (Stripe test keys only)."""
    found = run(plan_fees.test_clock_inputs, read_only=True)
    if found is None:
        return "none"
    config, clock = found
    try:
        _stripe(config, tenant_id).advance_test_clock(clock, to)
    except PaymentProviderError as exc:
        log.warning(
            "Stripe test clock not advanced", extra={"tenant": tenant_id, "error": str(exc)}
        )
        return "failed"
    return "advanced"


# Overage bills

UNANSWERED_AFTER = timedelta(minutes=2)


def bill_overage(run: Runner, tenant_id: str) -> OverageReport:
    """Bill the debt that is due, then send the bills through their provider; and send again
    a Stripe bill whose answer was lost (a crash, a network failure) two minutes on."""
    made: list[str] = []
    after: tuple[str, str] | None = None
    while True:  # a page of wallets in debt per transaction, until every one has been seen
        page: overage.BillPage = run(overage.bill_due, after=after)
        made.extend(page.made)
        if page.after is None:
            break
        after = page.after
    waiting: list[str] = run(overage.unsent, read_only=True, older_than=UNANSWERED_AFTER)
    sent = 0
    for purchase_id in [*made, *[w for w in waiting if w not in made]]:
        purchase: Purchase = run(purchases.get_purchase, read_only=True, purchase_id=purchase_id)
        if purchase.provider == "manual" or purchase.status != "pending":
            continue
        try:
            send_bill(run, tenant_id, purchase)
            sent += 1
        except PaymentProviderError:
            log.warning(
                "overage bill not sent", extra={"tenant": tenant_id, "purchase": purchase_id}
            )
    return OverageReport(billed=len(made), sent=sent)


def send_bill(run: Runner, tenant_id: str, purchase: Purchase) -> Purchase:
    """Collect a bill of overage through Stripe: off-session from the saved payment method,
    else a Checkout Session whose URL is the bill's pay link (the tenant's `return_url`
    receives the customer after paying); with neither, it fails (`no_payment_method`)."""
    config, method, return_url, product = run(_bill_inputs, read_only=True, purchase=purchase)
    if method is not None:
        return _charge_with(run, tenant_id, purchase, config, method)
    if not return_url:
        return run(  # type: ignore[no-any-return]
            purchases.fail_purchase,
            purchase_id=purchase.id,
            reason="no_payment_method",
        )
    session = provider_for(purchase.provider, config, tenant_id).start_checkout(
        purchase,
        success_url=return_url,
        cancel_url=return_url,
        customer_ref=None,
        product=product,
    )
    return run(  # type: ignore[no-any-return]
        purchases.attach_provider_ref,
        purchase_id=purchase.id,
        provider_ref=session.ref,
        checkout_url=session.url,
    )


def _bill_inputs(
    tx: Tx, *, purchase: Purchase
) -> tuple[dict[str, Any], PaymentMethod | None, str | None, str]:
    """What sending a bill needs, read in one transaction: the provider, the saved method,
    where the tenant's overage setting returns the customer, and what the bill is for."""
    config, method, amount = _checkout_inputs(tx, purchase=purchase)
    setting = overage.setting_for(tx, asset=purchase.asset)
    return_url = setting.return_url if setting is not None else None
    return config, method, return_url, f"Usage beyond your credit: {amount}"


# Stripe's webhook

STRIPE_TOLERANCE_SECONDS = 300
_COMPLETES = {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
_INVOICES = {"invoice.paid", "invoice.payment_failed", "invoice.finalized"}
_FAILS = {
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "payment_intent.payment_failed",
}


def stripe_event_tenant(payload: bytes) -> str | None:
    """The tenant an event names in its metadata, or (an invoice of a subscription) in its
    subscription's metadata (unverified: it only picks whose secret)."""
    try:
        obj = json.loads(payload)["data"]["object"]
        tenant = (obj.get("metadata") or {}).get("creditgate_tenant")
        if tenant is None:
            details = (obj.get("parent") or {}).get("subscription_details") or obj.get(
                "subscription_details"
            )
            tenant = ((details or {}).get("metadata") or {}).get("creditgate_tenant")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None  # RecursionError: JSON nested too deeply for the parser
    return tenant if isinstance(tenant, str) else None


def handle_stripe_webhook(tx: Tx, *, payload: bytes, signature: str | None) -> ProviderEventOutcome:
    """Verify a Stripe event with the tenant's endpoint secret and act on it, exactly once.

    checkout.session.completed (when paid) and payment_intent.succeeded complete the
    purchase; payment_intent.payment_failed and a failed or expired session fail it.
    Replays, duplicates and events out of order change nothing more: the event id is
    recorded, and the purchase moves only from pending (or failed, to paid).
    """
    import stripe

    secret = (purchases.stored_provider_config(tx, "stripe") or {}).get("webhook_secret")
    if not secret:
        raise InvalidSignature("no Stripe webhook secret is set for this tenant")
    try:
        stripe.Webhook.construct_event(
            payload, signature, secret, tolerance=STRIPE_TOLERANCE_SECONDS
        )
        event = json.loads(payload)
        event_id, event_type, obj = event["id"], event["type"], event["data"]["object"]
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(f"the Stripe signature does not verify: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        # AttributeError: a JSON value that is not an object ([], 1, null), which the
        # stripe library reads as one.
        raise InvalidSignature("the payload is not a Stripe event") from None
    if (
        not isinstance(event_id, str)
        or not isinstance(event_type, str)
        or not isinstance(obj, dict)
    ):
        raise InvalidSignature("the payload is not a Stripe event")
    recorded = insert_if_new(
        tx,
        provider_events,
        {
            "tenant_id": tx.tenant_id,
            "provider": "stripe",
            "event_id": event_id[:255],
            "type": event_type[:100],
            "outcome": "received",
            "received_at": tx.now,
        },
    )
    if not recorded:
        return ProviderEventOutcome(event_id=event_id, type=event_type, outcome="duplicate")
    outcome, about = _act(tx, event_type, obj)
    store.set_provider_event_outcome(tx.conn, tx.tenant_id, "stripe", event_id[:255], outcome)
    subscription_id = about if about and about.startswith("sub_") else None
    return ProviderEventOutcome(
        event_id=event_id,
        type=event_type,
        outcome=outcome,
        purchase_id=None if subscription_id else about,
        subscription_id=subscription_id,
    )


def _act(tx: Tx, event_type: str, obj: dict[str, Any]) -> tuple[str, str | None]:
    if event_type in _INVOICES:
        return plan_fees.stripe_invoice_event(tx, event_type, obj)
    if event_type == "customer.subscription.deleted":
        return plan_fees.stripe_subscription_ended(tx, obj)
    if event_type not in _COMPLETES | _FAILS | {"payment_intent.succeeded"}:
        return "ignored", None
    metadata = obj.get("metadata") or {}
    refs = [r for r in (obj.get("id"), obj.get("payment_intent")) if isinstance(r, str)]
    row = purchases.find_purchase(
        tx,
        purchase_id=metadata.get("creditgate_purchase") or obj.get("client_reference_id"),
        refs=refs,
    )
    if row is None or row.provider != "stripe":
        return "unknown_purchase", None
    payment_ref = obj.get("payment_intent") if event_type.startswith("checkout.") else obj.get("id")
    payment_ref = payment_ref if isinstance(payment_ref, str) else None
    if event_type in _COMPLETES or event_type == "payment_intent.succeeded":
        if event_type == "checkout.session.completed" and obj.get("payment_status") != "paid":
            return "awaiting_payment", row.id  # an async method: its own event follows
        paid = obj.get("amount_total" if event_type.startswith("checkout.") else "amount_received")
        expected = purchases.minor_money(row.price, row.currency)
        if paid != expected or str(obj.get("currency", "")).upper() != row.currency:
            return "amount_mismatch", row.id
        _, paid = purchases.record_payment(tx, purchase_id=row.id, payment_ref=payment_ref)
        return ("completed" if paid else "already_paid"), row.id
    error = obj.get("last_payment_error") or {}
    reason = error.get("code") or error.get("message") or event_type.rsplit(".", 1)[-1]
    ended, failed = purchases.record_failure(
        tx, purchase_id=row.id, reason=str(reason), payment_ref=payment_ref
    )
    return ("failed" if failed else f"already_{ended.status}"), row.id
