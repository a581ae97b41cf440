"""What the services answer with: typed results, also stored for idempotent replay."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

from creditgate.domain.amounts import decimal_text

# Every Decimal in an answer is written one way (`decimal_text`: "20", "0.1", "0"), the same
# on every backend: PostgreSQL's NUMERIC hands back Decimal("20.000000000000000000") where
# SQLite's text gives Decimal("20.000") or Decimal("20").
DecimalString = Annotated[Decimal, PlainSerializer(decimal_text, return_type=str, when_used="json")]


class Result(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class Tenant(Result):
    id: str
    name: str
    created_at: datetime
    mode: str = "live"  # live | test (a sandbox: may move its own clock)


class TestClock(Result):
    """A test-mode tenant's clock."""

    __test__ = False  # not a pytest class

    now: datetime
    offset_seconds: DecimalString  # how far ahead of the server's clock


class AssetInfo(Result):
    code: str
    scale: int
    name: str


class Customer(Result):
    id: str
    external_id: str
    wallet_id: str
    name: str
    metadata: dict[str, Any]
    policy: str
    overdraft_limit: int
    created_at: datetime


class Policy(Result):
    customer: str
    asset: str
    policy: str
    overdraft_limit: int
    low_balance_threshold: int | None
    thresholds: list[int] = []


class AssetBalance(Result):
    asset: str
    scale: int
    posted: int
    held: int
    available: int
    debt: int
    policy: str
    overdraft_limit: int
    low_balance_threshold: int | None
    thresholds: list[int] = []


class Wallet(Result):
    customer: str
    wallet_id: str
    balances: list[AssetBalance]

    def balance(self, asset: str) -> AssetBalance:
        for item in self.balances:
            if item.asset == asset:
                return item
        raise KeyError(asset)


class Lot(Result):
    id: str
    customer: str
    asset: str
    kind: str
    status: str
    amount: int
    remaining: int
    consumed: int
    expired: int
    voided: int
    refunded: int
    priority: int
    effective_at: datetime
    expires_at: datetime | None
    cost_basis: DecimalString
    currency: str
    metadata: dict[str, Any]
    created_at: datetime


class Draw(Result):
    lot_id: str
    amount: int
    cost_basis: DecimalString


class Charge(Result):
    id: str
    status: str  # posted | declined
    decline_reason: str | None
    customer: str
    asset: str
    hold_id: str | None
    requested: int
    amount: int
    debt: int
    shortfall: int
    draws: list[Draw]
    action: str | None
    metadata: dict[str, Any]
    created_at: datetime
    available: int
    # Pricing: what the charge was priced with, what it cost the product, what it earned.
    model: str | None = None
    dimensions: dict[str, str] | None = None
    quantities: dict[str, str] | None = None
    price: dict[str, Any] | None = None
    rate_card_id: str | None = None
    rate_card_version: int | None = None
    vendor_cost: DecimalString | None = None
    revenue: DecimalString = Decimal(0)
    # As on an authorization: e.g. a margin guard's, when it lets the charge through.
    warnings: list[str] = []
    # The member of the customer the charge is for (its external id), if any.
    member: str | None = None


class Authorization(Result):
    id: str
    customer: str
    asset: str
    status: str
    approved: bool
    amount: int
    requested: int
    decline_reason: str | None
    available: int
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None
    charge_id: str | None
    metadata: dict[str, Any]
    # A priced authorization: the action, what it was estimated at, and the card version.
    action: str | None = None
    dimensions: dict[str, str] | None = None
    quantities: dict[str, str] | None = None
    rate_card_id: str | None = None
    warnings: list[str] = []
    # The member of the customer the hold is for (its external id), if any.
    member: str | None = None


class Settlement(Result):
    authorization: Authorization
    charge: Charge


class LedgerEntry(Result):
    account: str
    asset: str
    amount: int
    lot_id: str | None


class LedgerTransaction(Result):
    id: str
    kind: str
    asset: str
    reference_id: str | None
    created_at: datetime
    entries: list[LedgerEntry]
    wallet_change: int


class LedgerPage(Result):
    data: list[LedgerTransaction]
    next_cursor: str | None


class SweepReport(Result):
    holds_expired: int = 0
    lots_expired: int = 0
    credit_expired: int = 0
    credit_kept_for_holds: int = 0
    lots_activated: int = 0


class ApiKey(Result):
    """An API key as listed: its prefix identifies it; the secret is never stored."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class CreatedApiKey(ApiKey):
    """A new key with its secret, shown this once (null when the answer is a replay)."""

    key: str | None


class RateCardVersion(Result):
    id: str
    name: str
    version: int
    effective_at: datetime
    spec: dict[str, Any]


class PublishedRateCard(RateCardVersion):
    """A version as published, with what looks wrong in it (e.g. a quantity its LLM vendor
    charges for that the card prices at 0)."""

    warnings: list[str] = []


class ModelPrice(Result):
    """A tenant's own price of an LLM model, USD per million tokens, from `effective_at` on."""

    model: str
    provider: str | None
    input_mtok: DecimalString
    output_mtok: DecimalString
    cache_read_mtok: DecimalString | None
    effective_at: datetime


class PriceLine(Result):
    name: str  # "flat", a quantity's name, or "vendor_cost"
    quantity: DecimalString
    unit_price: DecimalString
    subtotal: DecimalString


class AppliedMultiplier(Result):
    index: int
    match: dict[str, str]
    factor: DecimalString


class VendorCostInfo(Result):
    usd: DecimalString | None  # None: unknown, and `reason` says why
    source: str  # explicit | card | tenant_override | genai_prices | unknown
    reason: str | None
    provider: str | None
    model: str | None


class PriceQuote(Result):
    """An action priced by a rate card version, line by line, with its vendor cost: the
    breakdown a charge keeps as its `price`."""

    rate_card_id: str
    rate_card_version: int
    action: str
    asset: str
    scale: int
    rule: int
    match: dict[str, str]
    dimensions: dict[str, str]
    quantities: dict[str, DecimalString]
    lines: list[PriceLine]
    multipliers: list[AppliedMultiplier]
    subtotal: DecimalString  # Σ lines x Π multipliers, before the minimum
    minimum: DecimalString | None
    units: DecimalString  # exact, in units of the asset
    rounded_units: DecimalString  # units rounded to the asset's scale by `rounding`: as charged
    amount: int  # minor units of the asset: units rounded once
    rounding: str  # the card's: up (default), down, half_up, half_down or half_even
    credit_value_usd: DecimalString | None
    vendor_cost: VendorCostInfo | None


class KindPriority(Result):
    kind: str
    priority: int
    is_default: bool


class ConsumptionOrder(Result):
    """The default priority per lot kind, lowest first: the order credit is used in."""

    data: list[KindPriority]


# Organizations: members, budgets, usage per period.


class Member(Result):
    id: str
    customer: str
    external_id: str
    name: str
    metadata: dict[str, Any]
    status: str  # active | inactive | removed
    created_at: datetime
    updated_at: datetime
    removed_at: datetime | None


class MemberList(Result):
    data: list[Member]


class Budget(Result):
    id: str
    customer: str
    member: str | None  # None: the customer as a whole
    asset: str
    amount: int
    period: str
    anchor: datetime
    mode: str
    thresholds: list[int]
    created_at: datetime
    updated_at: datetime


class BudgetList(Result):
    data: list[Budget]


class BudgetPeriod(Result):
    """One budget's usage in one period."""

    budget: str
    asset: str
    amount: int
    mode: str
    period: str
    period_start: datetime | None  # None: a total
    period_end: datetime | None
    spent: int
    held: int
    remaining: int
    thresholds_crossed: list[int]


class MemberUsage(Result):
    customer: str
    member: str | None  # None: the customer's own budgets
    data: list[BudgetPeriod]
