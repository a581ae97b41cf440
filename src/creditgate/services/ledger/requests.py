"""What the gate's use cases are asked: one typed request each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from creditgate.domain.holds import DEFAULT_TTL_SECONDS
from creditgate.domain.spend_limits import SpendLimit
from creditgate.services.pricing.rate_cards import DEFAULT_CARD


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """Reserve credit before a call: a raw `amount` of `asset`, or the `action` priced by
    the rate card from its `dimensions` and estimated `quantities`. With `member` (a member
    of the customer, by its external id), the hold is for that member and counts against its
    budgets (`services/ledger/budgets.py`); with `spend_limit`, it also counts against that
    limit's current period (`domain/spend_limits.py`). A hold may do both."""

    customer: str
    asset: str | None = None
    amount: int | None = None
    action: str | None = None
    dimensions: dict[str, Any] | None = None
    quantities: dict[str, Any] | None = None
    rate_card: str = DEFAULT_CARD
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    member: str | None = None
    spend_limit: SpendLimit | None = None


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """Authorize and settle in one step: a raw `amount`, or the `action` priced by the rate
    card from its `dimensions` and actual `quantities`; with `member`, for that member of the
    customer, counted in its budgets."""

    customer: str
    asset: str | None = None
    amount: int | None = None
    action: str | None = None
    dimensions: dict[str, Any] | None = None
    quantities: dict[str, Any] | None = None
    vendor_cost: Any = None
    rate_card: str = DEFAULT_CARD
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    member: str | None = None
