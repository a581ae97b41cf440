"""A gate request's asset and amount: given raw, or priced by the rate card in effect."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from creditgate.domain.amounts import (
    check_amount,
    check_asset_code,
    check_money,
    fits_money,
    stored_money,
)
from creditgate.domain.errors import InvalidInput
from creditgate.domain.pricing import Quote, check_dimensions, text
from creditgate.services.context import Tx
from creditgate.services.pricing import rate_cards

MAX_ACTION = 100
MARGIN_GUARD = "margin_guard"


@dataclass(frozen=True, slots=True)
class Pricing:
    """What a charge was priced with; stored on the charge so it stays explainable."""

    dimensions: dict[str, str] | None = None
    quantities: dict[str, str] | None = None
    price: dict[str, Any] | None = None
    rate_card_id: str | None = None
    rate_card_version: int | None = None
    vendor_cost: Decimal | None = None

    @classmethod
    def of(cls, card: rate_cards.CardVersion, quote: Quote, *, keep: bool = True) -> Pricing:
        """`keep`: the full price snapshot, for a charge (a hold needs only its inputs)."""
        quantities = {name: text(value) for name, value in quote.quantities.items()}
        snapshot = quote.snapshot() if keep else None
        usd = quote.vendor_cost.usd if quote.vendor_cost is not None else None
        cost = None if usd is None else stored_money(usd)
        if cost is not None and not fits_money(cost):
            # Past what a charge stores (NUMERIC(38, 18)): the vendor cost is unknown, as when
            # the card names none, rather than the usage refused or the commit failing.
            cost = None
        return cls(dict(quote.dimensions), quantities, snapshot, card.id, card.version, cost)

    @property
    def model(self) -> str | None:
        return (self.dimensions or {}).get("model")

    def fields(self) -> dict[str, Any]:
        """The pricing as a charge's answer and row carry it."""
        return {
            "model": self.model,
            "dimensions": self.dimensions,
            "quantities": self.quantities,
            "price": self.price,
            "rate_card_id": self.rate_card_id,
            "rate_card_version": self.rate_card_version,
            "vendor_cost": self.vendor_cost,
        }


@dataclass(frozen=True, slots=True)
class Objection:
    """A margin guard's verdict on a priced request: decline it, or approve with a warning."""

    mode: str
    reason: str

    @property
    def warning(self) -> str:
        return f"{MARGIN_GUARD}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Priced:
    """A request's asset and amount, given raw or priced by the rate card."""

    asset: str
    amount: int
    # What the wallet must be able to pay for the request to be approved (`Quote.need`).
    need: int
    pricing: Pricing
    objection: Objection | None = None


@dataclass(frozen=True, slots=True)
class PriceRequest:
    """What a request gives to price it. `charging`: the price is charged now (a charge
    keeps the full price snapshot; a hold, only its inputs)."""

    asset: str | None
    amount: int | None
    action: str | None
    dimensions: dict[str, Any] | None
    quantities: dict[str, Any] | None
    rate_card: str
    vendor_cost: Any = None
    charging: bool = False


def price(tx: Tx, request: PriceRequest) -> Priced:
    """The asset and amount of a request: given raw, or priced from its action's quantities.

    With a priced action whose card sets a margin guard, also what the guard objects to.

    Without an amount, an action is priced by the rate card (with no quantities, as a
    flat-priced action such as an image).
    """
    cost = None if request.vendor_cost is None else check_money(request.vendor_cost, "vendor_cost")
    if request.quantities is None and (request.amount is not None or request.action is None):
        return _raw(tx, request, cost)
    if request.amount is not None:
        raise InvalidInput("give an amount or quantities to price, not both", field="amount")
    if request.action is None:
        raise InvalidInput("action is required to price quantities", field="action")
    asset, action = request.asset, request.action
    card = rate_cards.in_effect(tx, request.rate_card)
    with rate_cards.confirming(tx):
        if asset is not None and check_asset_code(asset) != card.spec.asset:
            raise InvalidInput(
                f"the rate card prices in {card.spec.asset!r}, not {asset!r}", field="asset"
            )
    quote = rate_cards.price(
        tx,
        card,
        action=action,
        dimensions=request.dimensions,
        quantities=request.quantities or {},
        vendor_cost_usd=cost,
    )
    guard = card.spec.prices(action).margin_guard
    reason = guard.check(quote) if guard is not None else None
    objection = Objection(guard.mode, reason) if guard is not None and reason else None
    amount = check_amount(quote.amount, allow_zero=True)
    pricing = Pricing.of(card, quote, keep=request.charging)
    return Priced(quote.asset, amount, quote.need, pricing, objection)


def _raw(tx: Tx, request: PriceRequest, cost: Decimal | None) -> Priced:
    """A raw amount of an asset, with the dimensions given for the record."""
    if request.amount is None:
        raise InvalidInput(
            "amount is required, or action and quantities to price it", field="amount"
        )
    if request.asset is None:
        raise InvalidInput("asset is required with a raw amount", field="asset")
    tx.asset(check_asset_code(request.asset))
    dims = None if request.dimensions is None else check_dimensions(request.dimensions)
    raw = check_amount(request.amount)
    return Priced(request.asset, raw, raw, Pricing(dimensions=dims, vendor_cost=cost))


def check_action(action: object) -> str | None:
    if action is None:
        return None
    if (
        not isinstance(action, str)
        or not 1 <= len(action) <= MAX_ACTION
        or not action.isprintable()
    ):
        raise InvalidInput(f"action must be 1-{MAX_ACTION} printable characters", field="action")
    return action
