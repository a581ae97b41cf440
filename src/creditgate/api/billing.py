"""The in-process API of billing: plans, subscriptions, packs, purchases, auto top-up, campaigns.

`TenantLedger` takes these methods; each runs as one transaction, except the flows that
call a payment provider, which run a transaction before and after the call.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from creditgate.domain.billing import Period
from creditgate.domain.grants import DEFAULT_CURRENCY
from creditgate.domain.policy import PolicyMode
from creditgate.services.billing import (
    auto_top_up,
    campaigns,
    overage,
    payments,
    plan_fees,
    plans,
    purchase_refunds,
    purchases,
)
from creditgate.services.billing.plans import When
from creditgate.services.billing.requests import NewCampaign, NewPack, NewPlan, PurchaseOrder
from creditgate.services.billing.results import (
    AutoTopUp,
    AutoTopUpReport,
    BillingRound,
    Campaign,
    ClockAdvance,
    ExchangeRate,
    Invoice,
    OverageReport,
    OverageSetting,
    Pack,
    PaymentMethod,
    Plan,
    ProviderAccount,
    ProviderEventOutcome,
    Purchase,
    PurchaseRefund,
    Redemption,
    RenewalReport,
    Subscription,
)
from creditgate.services.catalog import test_clock
from creditgate.services.context import Tx
from creditgate.services.ledger import consumption
from creditgate.services.results import ConsumptionOrder, SweepReport, TestClock

T = TypeVar("T")
P = ParamSpec("P")


def _invoices(tx: Tx, *, customer: str) -> list[Invoice]:
    """Both kinds of a customer's invoices, read in one transaction."""
    fees = plan_fees.customer_invoices(tx, customer=customer)
    bills = overage.customer_bills(tx, customer=customer)
    return sorted([*fees, *bills], key=lambda i: i.created_at, reverse=True)


class BillingMethods:
    tenant_id: str

    # `TenantLedger` runs them: see its methods of the same names.
    def _run(self, fn: Callable[Concatenate[Tx, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        raise NotImplementedError

    def _read(self, fn: Callable[Concatenate[Tx, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        raise NotImplementedError

    def _run_step(self, fn: Callable[..., T], /, read_only: bool = False, **kwargs: Any) -> T:
        raise NotImplementedError

    # Plans and subscriptions
    def create_plan(
        self,
        code: str,
        *,
        asset: str,
        included: int,
        fee: Decimal | str | int,
        currency: str = DEFAULT_CURRENCY,
        period: str = Period.MONTHLY,
        name: str = "",
        rollover_cap: int = 0,
        overage_policy: str = PolicyMode.BLOCK,
        overdraft_limit: int | None = None,
        collection: str | None = None,
        stripe_price: str | None = None,
        grant_before_payment: bool = False,
        grace_days: int = 0,
        idempotency_key: str | None = None,
    ) -> Plan:
        """A plan; with `stripe_price` (or `collection="manual"`) creditgate collects its fee
        and grants each period's credit when it is paid (`grant_before_payment`: at once)."""
        plan = NewPlan(
            code=code,
            asset=asset,
            included=included,
            fee=fee,
            currency=currency,
            period=period,
            name=name,
            rollover_cap=rollover_cap,
            overage_policy=overage_policy,
            overdraft_limit=overdraft_limit,
            collection=collection,
            stripe_price=stripe_price,
            grant_before_payment=grant_before_payment,
            grace_days=grace_days,
        )
        payments.check_stripe_price(self._run_step, self.tenant_id, plan)
        return self._run(plans.create_plan, plan=plan, idempotency_key=idempotency_key)

    def plans(self) -> list[Plan]:
        return self._read(plans.list_plans)

    def subscribe(
        self, customer: str, plan: str, *, idempotency_key: str | None = None
    ) -> Subscription:
        """Subscribe now; for a plan Stripe collects, its Stripe subscription is created
        after the subscription is recorded (retried with the same key, the same one)."""
        sub = self._run(
            plans.subscribe, customer=customer, plan=plan, idempotency_key=idempotency_key
        )
        return payments.start_stripe_subscription(self._run_step, self.tenant_id, sub)

    # Invoices: plan fees and overage bills
    def invoices(self, customer: str) -> list[Invoice]:
        """The customer's invoices, newest first: plan fees, then bills of overage."""
        return self._read(_invoices, customer=customer)

    def invoice(self, invoice_id: str) -> Invoice:
        return self._read(plan_fees.get_invoice, invoice_id=invoice_id)

    def mark_invoice_paid(self, invoice_id: str, *, idempotency_key: str | None = None) -> Invoice:
        """An operator records a manual plan invoice paid: the period's credit is granted."""
        return self._run(
            plan_fees.mark_paid, invoice_id=invoice_id, idempotency_key=idempotency_key
        )

    def mark_invoice_failed(
        self, invoice_id: str, *, reason: str = "", idempotency_key: str | None = None
    ) -> Invoice:
        return self._run(
            plan_fees.mark_failed,
            invoice_id=invoice_id,
            reason=reason,
            idempotency_key=idempotency_key,
        )

    def withhold_due(self) -> int:
        return self._run(plan_fees.withhold_due)

    # Overage in arrears
    def set_overage(
        self,
        asset: str,
        *,
        price: Decimal | str | int,
        currency: str = DEFAULT_CURRENCY,
        provider: str = "manual",
        threshold: int | None = None,
        on_failure: str = "keep",
        return_url: str | None = None,
    ) -> OverageSetting:
        return self._run(
            overage.set_overage,
            asset=asset,
            price=price,
            currency=currency,
            provider=provider,
            threshold=threshold,
            on_failure=on_failure,
            return_url=return_url,
        )

    def overage_settings(self) -> list[OverageSetting]:
        return self._read(overage.overage_settings)

    def bill_overage(self) -> OverageReport:
        """Bill the debt that is due and send the bills; safe to run any number of times."""
        return payments.bill_overage(self._run_step, self.tenant_id)

    def write_off(self, purchase_id: str, *, idempotency_key: str | None = None) -> Purchase:
        """Give up collecting a bill of overage: its debt leaves the wallet, worth nothing."""
        return self._run(
            purchases.write_off, purchase_id=purchase_id, idempotency_key=idempotency_key
        )

    def subscription(self, subscription_id: str) -> Subscription:
        return self._read(plans.get_subscription, subscription_id=subscription_id)

    def subscriptions(self, customer: str) -> list[Subscription]:
        return self._read(plans.customer_subscriptions, customer=customer)

    def change_plan(
        self,
        subscription_id: str,
        plan: str,
        *,
        at: str = "now",
        idempotency_key: str | None = None,
    ) -> Subscription:
        return self._run(
            plans.change_plan,
            subscription_id=subscription_id,
            plan=plan,
            at=cast(When, at),  # checked by the use case: anything else is invalid input
            idempotency_key=idempotency_key,
        )

    def cancel_subscription(
        self,
        subscription_id: str,
        *,
        at: str = "period_end",
        idempotency_key: str | None = None,
    ) -> Subscription:
        return self._run(
            plans.cancel,
            subscription_id=subscription_id,
            at=cast(When, at),  # checked by the use case: anything else is invalid input
            idempotency_key=idempotency_key,
        )

    def renew_due(self) -> RenewalReport:
        return self._run(plans.renew_due)

    # Packs, purchases and providers
    def create_pack(
        self,
        code: str,
        *,
        asset: str,
        amount: int,
        price: Decimal | str | int,
        currency: str = DEFAULT_CURRENCY,
        name: str = "",
        expires_after_days: int | None = None,
        idempotency_key: str | None = None,
    ) -> Pack:
        pack = NewPack(
            code=code,
            asset=asset,
            amount=amount,
            price=price,
            currency=currency,
            name=name,
            expires_after_days=expires_after_days,
        )
        return self._run(purchases.create_pack, pack=pack, idempotency_key=idempotency_key)

    def packs(self, *, include_inactive: bool = False) -> list[Pack]:
        return self._read(purchases.list_packs, include_inactive=include_inactive)

    def set_pack_active(self, pack: str, active: bool) -> Pack:
        return self._run(purchases.set_pack_active, pack=pack, active=active)

    def set_exchange_rate(
        self, currency: str, asset: str, rate: Decimal | str | int
    ) -> ExchangeRate:
        return self._run(purchases.set_exchange_rate, currency=currency, asset=asset, rate=rate)

    def exchange_rates(self) -> list[ExchangeRate]:
        return self._read(purchases.list_exchange_rates)

    def set_provider_account(
        self,
        provider: str,
        *,
        api_key: str | None = None,
        webhook_secret: str | None = None,
    ) -> ProviderAccount:
        return self._run(
            purchases.set_provider_account,
            provider=provider,
            api_key=api_key,
            webhook_secret=webhook_secret,
        )

    def provider_accounts(self) -> list[ProviderAccount]:
        return self._read(purchases.list_provider_accounts)

    def save_payment_method(
        self,
        customer: str,
        provider: str,
        method_ref: str,
        *,
        customer_ref: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentMethod:
        return self._run(
            purchases.save_payment_method,
            customer=customer,
            provider=provider,
            method_ref=method_ref,
            customer_ref=customer_ref,
            idempotency_key=idempotency_key,
        )

    def payment_methods(self, customer: str) -> list[PaymentMethod]:
        return self._read(purchases.list_payment_methods, customer=customer)

    def buy(
        self,
        customer: str,
        *,
        pack: str | None = None,
        asset: str | None = None,
        price: Decimal | str | int | None = None,
        currency: str = DEFAULT_CURRENCY,
        provider: str = "manual",
        success_url: str | None = None,
        cancel_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Purchase:
        """A pending purchase of a pack (or of `price` worth of `asset`); with Stripe, its
        Checkout Session URL is the answer's `checkout_url`."""
        order = PurchaseOrder(
            customer=customer,
            pack=pack,
            asset=asset,
            price=price,
            currency=currency,
            provider=provider,
            success_url=success_url,
            cancel_url=cancel_url,
        )
        return payments.buy(self._run_step, self.tenant_id, order, idempotency_key=idempotency_key)

    def purchase(self, purchase_id: str) -> Purchase:
        return self._read(purchases.get_purchase, purchase_id=purchase_id)

    def purchases(self, customer: str) -> list[Purchase]:
        return self._read(purchases.list_purchases, customer=customer)

    def mark_paid(self, purchase_id: str, *, idempotency_key: str | None = None) -> Purchase:
        """An operator records a manual invoice as paid: its credit is granted."""
        return self._run(
            purchases.mark_paid, purchase_id=purchase_id, idempotency_key=idempotency_key
        )

    def mark_failed(
        self, purchase_id: str, *, reason: str = "", idempotency_key: str | None = None
    ) -> Purchase:
        return self._run(
            purchases.mark_failed,
            purchase_id=purchase_id,
            reason=reason,
            idempotency_key=idempotency_key,
        )

    def refund_purchase(
        self,
        purchase_id: str,
        *,
        reason: str,
        amount: int | None = None,
        include_consumed: bool = False,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> PurchaseRefund:
        """Take back `amount` of a paid purchase's credit (default: all its unused credit;
        consumed credit too with `include_consumed`) and pay its money back through the
        purchase's provider."""
        return payments.refund(
            self._run_step,
            self.tenant_id,
            purchase_id=purchase_id,
            reason=reason,
            amount=amount,
            include_consumed=include_consumed,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )

    def purchase_refunds(self, purchase_id: str) -> list[PurchaseRefund]:
        return self._read(purchase_refunds.list_refunds, purchase_id=purchase_id).data

    def handle_stripe_webhook(self, payload: bytes, signature: str | None) -> ProviderEventOutcome:
        return self._run(payments.handle_stripe_webhook, payload=payload, signature=signature)

    # Auto top-up
    def set_auto_top_up(
        self,
        customer: str,
        asset: str,
        *,
        threshold: int,
        pack: str,
        provider: str = "stripe",
        monthly_limit: int | None = None,
        enabled: bool = True,
    ) -> AutoTopUp:
        return self._run(
            auto_top_up.set_auto_top_up,
            customer=customer,
            asset=asset,
            threshold=threshold,
            pack=pack,
            provider=provider,
            monthly_limit=monthly_limit,
            enabled=enabled,
        )

    def auto_top_ups(self, customer: str) -> list[AutoTopUp]:
        return self._read(auto_top_up.get_auto_top_ups, customer=customer)

    def run_auto_top_ups(self) -> AutoTopUpReport:
        return auto_top_up.run_auto_top_ups(self._run_step, self.tenant_id)

    # Campaigns and the consumption order
    def create_campaign(
        self,
        code: str,
        *,
        asset: str,
        amount: int,
        name: str = "",
        per_customer_limit: int = 1,
        max_redemptions: int | None = None,
        expires_at: datetime | None = None,
        credit_valid_days: int | None = None,
        idempotency_key: str | None = None,
    ) -> Campaign:
        campaign = NewCampaign(
            code=code,
            asset=asset,
            amount=amount,
            name=name,
            per_customer_limit=per_customer_limit,
            max_redemptions=max_redemptions,
            expires_at=expires_at,
            credit_valid_days=credit_valid_days,
        )
        return self._run(
            campaigns.create_campaign, campaign=campaign, idempotency_key=idempotency_key
        )

    def campaigns(self) -> list[Campaign]:
        return self._read(campaigns.list_campaigns)

    def redeem(self, customer: str, code: str, *, idempotency_key: str | None = None) -> Redemption:
        return self._run(
            campaigns.redeem, customer=customer, code=code, idempotency_key=idempotency_key
        )

    def consumption_order(self) -> ConsumptionOrder:
        return self._read(consumption.consumption_order)

    def set_kind_priority(self, kind: str, priority: int) -> ConsumptionOrder:
        return self._run(consumption.set_kind_priority, kind=kind, priority=priority)

    # A test-mode tenant's clock
    def run_sweeps(self) -> SweepReport:
        raise NotImplementedError

    def test_clock(self) -> TestClock:
        return self._read(test_clock.test_clock)

    def advance_clock(self, to: datetime, *, idempotency_key: str | None = None) -> ClockAdvance:
        """Move a test-mode tenant's clock forward to `to` (a live tenant is refused), then
        run what the worker runs at that time: the billing round and the sweeps. A period
        boundary crossed is billed and renewed once; advance a period at a time to see each
        period's invoices in turn. A tenant on Stripe test keys moves its Stripe test clock
        with it."""
        moved = self._run(test_clock.advance, to=to, idempotency_key=idempotency_key)
        stripe_clock = payments.advance_stripe_test_clock(self._run_step, self.tenant_id, to)
        billing = self.run_billing()
        return ClockAdvance(
            now=moved.now,
            offset_seconds=moved.offset_seconds,
            billing=billing,
            sweeps=self.run_sweeps(),
            stripe_test_clock=stripe_clock,
        )

    # The worker's billing round
    def run_billing(self) -> BillingRound:
        """Overage first (a cycle's debt is billed before the next period's credit can pay
        it down), then renewals, dunning and auto top-up: each safe to run any number of
        times."""
        billed = self.bill_overage()
        renewals = self.renew_due()
        withheld = self.withhold_due()
        return BillingRound(
            renewals=renewals.model_copy(update={"withheld": withheld}),
            overage=billed,
            top_ups=self.run_auto_top_ups(),
        )
