"""What the billing use cases are asked to create: typed, immutable requests.

The in-process API (api/billing.py), the CLI and the HTTP routes build these from their
own parameters; the use cases check every field as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from creditgate.domain.billing import Period


@dataclass(frozen=True, slots=True)
class NewPack:
    """A pack of credit for sale, e.g. 100 credits for $25, valid 365 days after purchase."""

    code: str
    asset: str
    amount: int
    price: Decimal | str | int
    currency: str = "USD"
    name: str = ""
    expires_after_days: int | None = None


@dataclass(frozen=True, slots=True)
class NewPlan:
    """A plan: `included` credit of `asset` per period for `fee`, rolling over up to
    `rollover_cap`, with the wallet policy its subscribers get."""

    code: str
    asset: str
    included: int
    fee: Decimal | str | int
    currency: str = "USD"
    period: str = Period.MONTHLY
    name: str = ""
    rollover_cap: int = 0
    overage_policy: str = "block"
    overdraft_limit: int | None = None
    # Who collects the fee (external | manual | stripe; stripe when a price is named).
    collection: str | None = None
    stripe_price: str | None = None
    grant_before_payment: bool = False
    grace_days: int = 0


@dataclass(frozen=True, slots=True)
class NewCampaign:
    """A code worth `amount` of promotional credit, with its limits and expiries."""

    code: str
    asset: str
    amount: int
    name: str = ""
    per_customer_limit: int = 1
    max_redemptions: int | None = None
    expires_at: datetime | None = None
    credit_valid_days: int | None = None


@dataclass(frozen=True, slots=True)
class PurchaseOrder:
    """A purchase to start: of a pack, or of `price` worth of `asset` (a money top-up),
    through `provider`. `origin` says who started it (checkout, api, auto top-up) and
    `purchase_id` fixes its id in advance (auto top-up names it before the call)."""

    customer: str
    pack: str | None = None
    asset: str | None = None
    price: Decimal | str | int | None = None
    currency: str = "USD"
    provider: str = "manual"
    success_url: str | None = None
    cancel_url: str | None = None
    origin: str = "checkout"
    purchase_id: str | None = None
