"""What the API answers with, as frozen dataclasses mirroring the server's result models.

Amounts are integers in the asset's minor unit; cost bases are `Decimal`; times are aware
`datetime`s. Fields the server adds later are ignored, so an older SDK keeps working.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from creditgate_sdk.errors import Problem


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


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargeEvent:
    """One usage event of a batch; its idempotency key makes a resent batch safe."""

    customer: str
    asset: str
    amount: int
    action: str | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchItem:
    """The answer for one event of a batch: a charge, or the problem that stopped it."""

    idempotency_key: str
    status: str
    charge: Charge | None = None
    error: Problem | None = None
