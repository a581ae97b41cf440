"""What the API answers with, as frozen dataclasses mirroring the server's result models.

Amounts are integers in the asset's minor unit; cost bases, prices and USD amounts are
`Decimal`; times are aware `datetime`s. Fields the server adds later are ignored, so an older
SDK keeps working.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from creditgate_sdk.problems import Problem


@dataclass(frozen=True, kw_only=True, slots=True)
class Asset:
    code: str
    scale: int
    name: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Customer:
    id: str
    external_id: str
    wallet_id: str
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    policy: str
    overdraft_limit: int = 0
    created_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    customer: str
    asset: str
    policy: str
    overdraft_limit: int = 0
    low_balance_threshold: int | None = None
    thresholds: tuple[int, ...] = ()  # alert thresholds of available, highest first


@dataclass(frozen=True, kw_only=True, slots=True)
class AssetBalance:
    asset: str
    scale: int
    posted: int
    held: int
    available: int
    debt: int = 0
    policy: str
    overdraft_limit: int = 0
    low_balance_threshold: int | None = None
    thresholds: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Wallet:
    customer: str
    wallet_id: str
    balances: tuple[AssetBalance, ...]

    def balance(self, asset: str) -> AssetBalance:
        for item in self.balances:
            if item.asset == asset:
                return item
        raise KeyError(asset)


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayKeyLimit:
    """At most `amount` of `asset` (minor units) per `period`: day, week, month or total."""

    asset: str
    amount: int
    period: str


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayKeyUsage:
    """What a gateway key's holds hold and its charges spent in the current period."""

    period_start: datetime
    period_end: datetime | None = None  # None for a `total` limit
    held: int
    spent: int
    remaining: int


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayKey:
    """A customer gateway key (`cgk_<prefix>_<secret>`) for calling the LLM gateway directly.

    `key` is the key itself, only in the answer that created it (None in a replay and in
    listings): give it to the customer's OpenAI or Anthropic client as its API key."""

    id: str
    customer: str
    name: str = ""
    prefix: str
    spend_limit: GatewayKeyLimit | None = None
    models: tuple[str, ...] | None = None
    usage: GatewayKeyUsage | None = None
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    key: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Lot:
    """A grant of credit in a wallet, drawn down in burn order."""

    id: str
    customer: str
    asset: str
    kind: str
    status: str
    amount: int
    remaining: int
    consumed: int = 0
    expired: int = 0
    voided: int = 0
    refunded: int = 0
    priority: int = 0
    effective_at: datetime
    expires_at: datetime | None = None
    cost_basis: Decimal = Decimal(0)
    currency: str = "USD"
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Draw:
    lot_id: str
    amount: int
    cost_basis: Decimal


@dataclass(frozen=True, kw_only=True, slots=True)
class Charge:
    id: str
    status: str  # posted | declined
    decline_reason: str | None = None
    customer: str
    asset: str
    hold_id: str | None = None
    requested: int
    amount: int
    debt: int = 0
    shortfall: int = 0
    draws: tuple[Draw, ...] = ()
    action: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime
    available: int
    # Pricing: what the charge was priced with, what it cost the product, what it earned.
    model: str | None = None
    dimensions: dict[str, str] | None = None
    quantities: dict[str, str] | None = None  # decimal strings
    price: dict[str, Any] | None = None
    rate_card_id: str | None = None
    rate_card_version: int | None = None
    vendor_cost: Decimal | None = None
    revenue: Decimal = Decimal(0)
    warnings: tuple[str, ...] = ()  # e.g. a margin guard's, when it lets the charge through
    member: str | None = None  # the member of the customer it was for


@dataclass(frozen=True, kw_only=True, slots=True)
class Authorization:
    """A hold: `pending` until settled, voided or expired; `declined` holds nothing."""

    id: str
    customer: str
    asset: str
    status: str  # pending | declined | settled | voided | expired
    approved: bool
    amount: int
    requested: int
    decline_reason: str | None = None
    available: int
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None = None
    charge_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # A priced authorization: the action, what it was estimated at, and the rate card.
    action: str | None = None
    dimensions: dict[str, str] | None = None
    quantities: dict[str, str] | None = None  # decimal strings
    rate_card_id: str | None = None
    warnings: tuple[str, ...] = ()  # e.g. a margin guard's, when it approves with a warning
    member: str | None = None  # the member of the customer it is for


@dataclass(frozen=True, kw_only=True, slots=True)
class Member:
    """A member of a customer (an organization): calls naming it draw on the customer's
    wallet under its budgets. `status`: active, inactive or removed."""

    id: str
    customer: str
    external_id: str
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str
    created_at: datetime
    updated_at: datetime
    removed_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Budget:
    """At most `amount` of `asset` per `period` for `member` (None: the customer as a whole)."""

    id: str
    customer: str
    member: str | None = None
    asset: str
    amount: int
    period: str  # day | week | month | total
    anchor: datetime
    mode: str  # hard | soft
    thresholds: tuple[int, ...] = ()  # percentages of amount
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetPeriod:
    """One budget's usage in one period."""

    budget: str
    asset: str
    amount: int
    mode: str
    period: str
    period_start: datetime | None = None  # None: a total
    period_end: datetime | None = None
    spent: int
    held: int
    remaining: int
    thresholds_crossed: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class MemberUsage:
    customer: str
    member: str | None = None  # None: the customer's own budgets
    data: tuple[BudgetPeriod, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Settlement:
    authorization: Authorization
    charge: Charge


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerEntry:
    account: str
    asset: str
    amount: int
    lot_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerTransaction:
    id: str
    kind: str
    asset: str
    reference_id: str | None = None
    created_at: datetime
    entries: tuple[LedgerEntry, ...]
    wallet_change: int


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerPage:
    data: tuple[LedgerTransaction, ...]
    next_cursor: str | None = None


# Refunds and purchases


@dataclass(frozen=True, kw_only=True, slots=True)
class RefundedLine:
    lot_id: str | None  # None: the charge's debt
    amount: int
    to_lot: str | None  # the lot credited (a new refund lot if the original had closed)


@dataclass(frozen=True, kw_only=True, slots=True)
class Refund:
    """Credit given back to a charge's customer, lot by lot."""

    id: str
    charge_id: str
    customer: str
    asset: str
    amount: int
    reason: str
    lines: tuple[RefundedLine, ...]
    charge_refunded: int  # refunded from this charge so far, this refund included
    available: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Purchase:
    """Credit bought with money: `pending` until paid, its credit granted once paid."""

    id: str
    customer: str
    pack_id: str | None = None
    asset: str
    amount: int
    price: Decimal
    currency: str
    status: str
    origin: str
    provider: str
    provider_ref: str | None = None
    payment_ref: str | None = None
    checkout_url: str | None = None
    failure_reason: str | None = None
    lot_id: str | None = None
    created_at: datetime
    paid_at: datetime | None = None
    failed_at: datetime | None = None
    refunded: int = 0  # credits refunded so far
    refunded_money: Decimal = Decimal(0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Invoice:
    """What a customer owes or paid: a period's plan fee (`inv_…`) or a debt billed in
    arrears (`overage`, its id the purchase's `pur_…`)."""

    id: str
    kind: str  # plan_fee | overage
    customer: str
    status: str  # open | paid | failed | written_off
    amount: Decimal
    currency: str
    provider: str
    provider_ref: str | None = None
    pay_url: str | None = None  # where the customer pays it
    failure_reason: str | None = None
    subscription_id: str | None = None
    period_index: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    asset: str | None = None
    debt: int | None = None
    created_at: datetime
    paid_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TestClock:
    """A test-mode tenant's clock: its time, and how far ahead of the server's it runs."""

    __test__ = False  # not a pytest class

    now: datetime
    offset_seconds: Decimal


@dataclass(frozen=True, kw_only=True, slots=True)
class PurchaseRefund:
    """A purchase's credit taken back and its money paid back through its provider."""

    id: str
    purchase_id: str
    customer: str
    lot_id: str
    asset: str
    amount: int  # credits refunded: unused + consumed
    unused: int
    consumed: int
    money: Decimal
    currency: str
    reason: str
    metadata: dict[str, Any] = field(default_factory=dict)
    provider: str
    provider_ref: str | None = None
    status: str  # pending, succeeded, processing or failed
    failure_reason: str | None = None
    created_at: datetime
    resolved_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargeEvent:
    """One usage event of a batch; its idempotency key makes a resent batch safe.

    An `amount` (with `asset`), or no amount and an `action` with its `dimensions` and
    `quantities` for the rate card to price.
    """

    customer: str
    asset: str | None = None
    amount: int | None = None
    action: str | None = None
    dimensions: Mapping[str, str] | None = None
    quantities: Mapping[str, int | Decimal | str] | None = None
    vendor_cost: Decimal | str | int | None = None  # USD; computed by the card if left out
    rate_card: str | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    member: str | None = None  # the member of the customer it is for


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchItem:
    """The answer for one event of a batch: a charge, or the problem that stopped it."""

    idempotency_key: str
    status: str
    charge: Charge | None = None
    error: Problem | None = None


# Pricing


@dataclass(frozen=True, kw_only=True, slots=True)
class RateCardVersion:
    """One published version of a rate card; `spec` is the card as the server keeps it."""

    id: str
    name: str
    version: int
    effective_at: datetime
    spec: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class PublishedRateCard(RateCardVersion):
    """A version as published, with what looks wrong in it: each quantity the card prices at
    0 that its LLM vendor charges for (publishing with `strict=True` refuses such a card)."""

    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class PriceLine:
    name: str  # "flat", a quantity's name, or "vendor_cost"
    quantity: Decimal
    unit_price: Decimal
    subtotal: Decimal


@dataclass(frozen=True, kw_only=True, slots=True)
class AppliedMultiplier:
    index: int
    match: dict[str, str]
    factor: Decimal


@dataclass(frozen=True, kw_only=True, slots=True)
class VendorCostInfo:
    usd: Decimal | None  # None: unknown, and `reason` says why
    source: str  # explicit | card | tenant_override | genai_prices | unknown
    reason: str | None = None
    provider: str | None = None
    model: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PriceQuote:
    """An action priced by a rate card version, line by line, with its vendor cost."""

    rate_card_id: str
    rate_card_version: int
    action: str
    asset: str
    scale: int
    rule: int
    match: dict[str, str]
    dimensions: dict[str, str]
    quantities: dict[str, Decimal]
    lines: tuple[PriceLine, ...]
    multipliers: tuple[AppliedMultiplier, ...] = ()
    subtotal: Decimal
    minimum: Decimal | None = None
    units: Decimal  # exact, in units of the asset
    rounded_units: Decimal  # units rounded by the card's `rounding`: what is charged
    amount: int  # minor units: what a charge of these quantities takes
    rounding: str  # up (default), down, half_up, half_down or half_even
    credit_value_usd: Decimal | None = None
    vendor_cost: VendorCostInfo | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelPrice:
    """A tenant's own price of an LLM model, USD per million tokens."""

    model: str
    provider: str | None = None
    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None = None
    effective_at: datetime


# Margin reports (see the server's `services.margin` for every definition)


@dataclass(frozen=True, kw_only=True, slots=True)
class Shortfall:
    """Usage settled past what the wallet's policy let it pay, and so not charged."""

    charges: int  # charges that could not charge all their usage
    amount: int  # minor units
    credits: Decimal  # units of the asset
    value: Decimal | None = None  # credits at the card's credit_value_usd: revenue lost


@dataclass(frozen=True, kw_only=True, slots=True)
class MarginRow:
    key: str | None  # the action, model, customer, member or day (None: not recorded)
    charges: int
    amount: int  # minor units
    credits: Decimal  # units of the asset
    revenue: Decimal  # USD
    vendor_cost: Decimal  # USD, of the charges whose cost is known
    cost_unknown: int
    gross_margin: Decimal
    margin: Decimal | None = None  # gross_margin / revenue: 0.6 is 60%
    loss: bool = False  # vendor cost above revenue (with no revenue, margin is None)
    list_value: Decimal | None = None  # credits at the card's credit_value_usd
    credit_to_cost: Decimal | None = None  # list_value / vendor_cost
    shortfall: Shortfall | None = None  # None from a server that does not report it
    # by member: the member's customer (member ids are unique within a customer only)
    customer: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MarginReport:
    asset: str
    start: datetime
    end: datetime
    by: str
    credit_value_usd: Decimal | None = None
    rows: tuple[MarginRow, ...]
    total: MarginRow


@dataclass(frozen=True, kw_only=True, slots=True)
class MarginDistribution:
    customers: int
    with_revenue: int
    median: Decimal | None = None
    p10: Decimal | None = None
    p90: Decimal | None = None
    worst: tuple[MarginRow, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class RatioCase:
    dimensions: dict[str, str]
    rule: int
    multipliers: tuple[int, ...]
    quantities: dict[str, Decimal]
    units: Decimal  # the exact price
    credits: Decimal  # as charged, rounded by the card's rounding
    list_value: Decimal
    vendor_cost: Decimal | None = None
    ratio: Decimal | None = None
    list_margin: Decimal | None = None  # None with a list value of 0
    loss: bool = False  # vendor cost above the list value
    reason: str | None = None  # why there is no ratio


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionRatio:
    action: str
    worst: RatioCase | None = None
    cases: tuple[RatioCase, ...] = ()
    complete: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class CardRatios:
    asset: str
    credit_value_usd: Decimal
    actions: tuple[ActionRatio, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class WhatIfRow:
    key: str | None
    revenue: Decimal
    vendor_cost: Decimal  # after the change
    gross_margin: Decimal
    margin: Decimal | None = None
    margin_before: Decimal | None = None
    loss: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class WhatIfCardAction:
    action: str
    ratio: Decimal
    list_margin: Decimal | None = None  # None with a list value of 0: a loss
    loss: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class WhatIf:
    change: Decimal
    target: Decimal
    actions: tuple[WhatIfRow, ...] = ()  # below the target after the change
    customers: tuple[WhatIfRow, ...] = ()
    card_actions: tuple[WhatIfCardAction, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class FullMarginReport:
    """Margin by group, across customers, the rate card's worst cases, and the what-if."""

    report: MarginReport
    customers: MarginDistribution
    card: CardRatios | None = None
    what_if: WhatIf
