"""What the billing services answer with: plans, subscriptions, packs, purchases, campaigns."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from creditgate.services.results import DecimalString, Lot, Result, SweepReport


class Plan(Result):
    id: str
    code: str
    name: str
    period: str
    fee: DecimalString
    currency: str
    asset: str
    included: int
    rollover_cap: int
    overage_policy: str
    overdraft_limit: int
    created_at: datetime
    collection: str = "external"  # external | manual | stripe: who collects the fee
    stripe_price: str | None = None
    grant_before_payment: bool = False
    grace_days: int = 0


class SubscriptionPeriod(Result):
    index: int
    plan_id: str
    period_start: datetime
    period_end: datetime
    lot_id: str | None
    rollover_lot_id: str | None
    rolled_over: int
    fee_status: str = "external"  # external | open | paid | failed
    invoice_id: str | None = None
    withheld: int = 0


class Invoice(Result):
    """What a customer owes or paid: a period's plan fee, or a debt billed in arrears."""

    id: str  # inv_… for a plan fee, pur_… (the purchase) for overage
    kind: str  # plan_fee | overage
    customer: str
    status: str  # open | paid | failed | written_off
    amount: DecimalString  # money, in `currency`
    currency: str
    provider: str  # manual | stripe
    provider_ref: str | None  # Stripe's in_… or pi_…/cs_…
    pay_url: str | None  # where the customer pays it, when the provider gives one
    failure_reason: str | None
    subscription_id: str | None = None
    period_index: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    asset: str | None = None
    debt: int | None = None  # overage: the debt it bills, in the asset's minor units
    created_at: datetime
    paid_at: datetime | None = None


class Subscription(Result):
    id: str
    customer: str
    plan_id: str
    status: str
    current_period_start: datetime
    current_period_end: datetime
    pending_plan_id: str | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    created_at: datetime
    periods: list[SubscriptionPeriod]
    # none (fee collected outside creditgate) | awaiting_payment | paid | past_due
    payment_status: str = "none"
    payment_failure_reason: str | None = None  # why it is past due
    provider_ref: str | None = None  # Stripe's sub_…


class RenewalReport(Result):
    renewed: int = 0
    canceled: int = 0
    rolled_over: int = 0
    withheld: int = 0  # periods whose credit was withheld after the grace of a failed payment


class OverageSetting(Result):
    asset: str
    price: DecimalString  # money per whole unit of the asset
    currency: str
    provider: str
    threshold: int | None  # bill at once when unbilled debt exceeds it (minor units)
    on_failure: str  # keep | block
    return_url: str | None
    updated_at: datetime


class OverageReport(Result):
    billed: int = 0  # bills made
    sent: int = 0  # sent to the provider


class Pack(Result):
    id: str
    code: str
    name: str
    asset: str
    amount: int
    price: DecimalString
    currency: str
    expires_after_days: int | None
    active: bool
    created_at: datetime


class ExchangeRate(Result):
    currency: str
    asset: str
    rate: DecimalString
    updated_at: datetime


class ProviderAccount(Result):
    """A provider account as shown: whether its secrets are set, never the secrets."""

    provider: str
    api_key_set: bool
    webhook_secret_set: bool
    updated_at: datetime


class Purchase(Result):
    id: str
    customer: str
    pack_id: str | None
    asset: str
    amount: int
    price: DecimalString
    currency: str
    status: str
    origin: str
    provider: str
    provider_ref: str | None
    payment_ref: str | None
    checkout_url: str | None
    failure_reason: str | None
    lot_id: str | None
    created_at: datetime
    paid_at: datetime | None
    failed_at: datetime | None
    refunded: int = 0  # credits refunded so far
    refunded_money: DecimalString = Decimal(0)  # money paid back so far


class PurchaseRefund(Result):
    """A purchase's credit taken back and its money paid back through its provider.

    `pending` until the provider answers; then `succeeded`, `processing` (the provider took
    it and pays out later) or `failed` (it refused: the credit is given back).
    """

    id: str
    purchase_id: str
    customer: str
    lot_id: str
    asset: str
    amount: int  # credits refunded: unused + consumed
    unused: int
    consumed: int  # consumed credit refunded on request: debited from the wallet again
    money: DecimalString
    currency: str
    reason: str
    metadata: dict[str, Any]
    provider: str
    provider_ref: str | None
    status: str
    failure_reason: str | None
    created_at: datetime
    resolved_at: datetime | None


class PurchaseRefundList(Result):
    data: list[PurchaseRefund]


class PaymentMethod(Result):
    id: str
    customer: str
    provider: str
    customer_ref: str | None
    method_ref: str
    created_at: datetime


class AutoTopUp(Result):
    customer: str
    asset: str
    threshold: int
    pack_id: str
    provider: str
    monthly_limit: int | None
    enabled: bool
    armed: bool
    in_flight_purchase_id: str | None
    month: str
    month_count: int
    failures: int
    backoff_until: datetime | None


class AutoTopUpReport(Result):
    started: int = 0  # purchases sent to their provider (or invoiced) for the first time
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    capped: int = 0  # crossings this run found at the monthly limit


class Campaign(Result):
    id: str
    code: str
    name: str
    asset: str
    amount: int
    per_customer_limit: int
    max_redemptions: int | None
    redemptions: int
    expires_at: datetime | None
    credit_valid_days: int | None
    created_at: datetime


class Redemption(Result):
    campaign_id: str
    code: str
    customer: str
    seq: int
    lot: Lot


class ProviderEventOutcome(Result):
    event_id: str
    type: str
    outcome: str  # completed | failed | paid | duplicate | ignored | …
    purchase_id: str | None = None
    subscription_id: str | None = None


class BillingRound(Result):
    """What one billing round did: overage billed, periods renewed (and credit withheld),
    auto top-ups started."""

    renewals: RenewalReport
    overage: OverageReport
    top_ups: AutoTopUpReport


class ClockAdvance(Result):
    """A test-mode tenant's clock moved forward, and what ran at the new time."""

    now: datetime
    offset_seconds: DecimalString
    billing: BillingRound
    sweeps: SweepReport
    stripe_test_clock: str  # none | advanced | failed: the tenant's Stripe test clock
