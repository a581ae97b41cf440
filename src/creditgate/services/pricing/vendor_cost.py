"""Vendor cost of LLM calls from genai-prices' bundled data, and quotes that carry their cost.

genai-prices refreshes prices over the network only once its `UpdatePrices` is started;
creditgate never starts it, so no request leaves the machine and LLM prices change only when
the package is upgraded (or the tenant overrides a model in its rate card) — and then only
for later charges, since each charge stores the vendor cost it was priced with.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext

from genai_prices import Usage, data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

from creditgate.domain import pricing
from creditgate.domain.amounts import Asset
from creditgate.domain.pricing import (
    LLM_QUANTITIES,
    CostSource,
    PriceRule,
    Quote,
    RateCard,
    TokenPrices,
    VendorCost,
    exact_decimal,
    text,
)
from creditgate.domain.vendor_cost import LlmPriceTable, LlmUsage, unknown, vendor_cost

MILLION = 1_000_000

# One million tokens of each kind (cache reads and writes count inside input_tokens there),
# and nothing: a model's price is linear in these unless it has tiers.
_PROBES = (
    Usage(),
    Usage(input_tokens=MILLION),
    Usage(output_tokens=MILLION),
    Usage(input_tokens=MILLION, cache_read_tokens=MILLION),
    Usage(input_tokens=MILLION, cache_write_tokens=MILLION),
)

_linear_lock = threading.Lock()
# id(ModelPrice) -> (the ModelPrice, kept alive so the id stays its own; its cost per request
# and per million tokens of each kind, or None when it is not linear).
_linear: dict[int, tuple[ModelPrice, tuple[Decimal, ...] | None]] = {}


def _coefficients(price: ModelPrice) -> tuple[Decimal, ...] | None:
    found = _linear.get(id(price))
    if found is not None:
        return found[1]
    coefficients: tuple[Decimal, ...] | None = None
    if not any(isinstance(value, TieredPrices) for value in vars(price).values()):
        fixed, *per_million = (price.calc_price(probe)["total_price"] for probe in _PROBES)
        coefficients = (fixed, *(cost - fixed for cost in per_million))
    with _linear_lock:
        _linear[id(price)] = (price, coefficients)
    return coefficients


# (snapshot, provider, model) -> why genai-prices does not know the model. genai-prices
# keeps the models it found, not the ones it did not: looking one of those up again walks
# every provider's patterns (~50 µs against ~3 for a known model), on each hold and settle
# of a model priced by vendor cost that it does not list (a tenant's own or fine-tuned one).
_unknown: dict[tuple[int, str | None, str], str] = {}
UNKNOWN_MODELS_KEPT = 10_000


def _find(
    snapshot: data_snapshot.DataSnapshot, provider: str | None, model: str
) -> tuple[Provider, ModelInfo]:
    key = (id(snapshot), provider, model.lower())
    missing = _unknown.get(key)
    if missing is not None:
        raise LookupError(missing)
    try:
        return snapshot.find_provider_model(model, None, provider, None)
    except LookupError as exc:
        if len(_unknown) >= UNKNOWN_MODELS_KEPT:
            _unknown.clear()
        _unknown[key] = str(exc)
        raise


def _count(value: Decimal) -> int | Decimal:
    return int(value) if value == value.to_integral_value() else value


def genai_prices_cost(
    provider: str | None, model: str, usage: LlmUsage, *, at: datetime | None = None
) -> VendorCost:
    """The USD cost of one LLM call by genai-prices, or unknown (with the reason) if it can't.

    Uses the price data bundled with the installed package, in effect at `at` (default now).
    genai-prices' own calculation takes ~0.1 ms; for a model priced linearly (no tiers) it is
    done once per price, on a million tokens of each kind, and scaled.
    """
    snapshot = data_snapshot.get_snapshot()
    try:
        found, info = _find(snapshot, provider, model)
        price = info.get_prices(at or datetime.now(UTC))
        coefficients = _coefficients(price)
        if coefficients is not None:
            fixed, per_input, per_output, per_read, per_write = coefficients
            with localcontext() as ctx:
                ctx.prec = 200
                per_tokens = (
                    usage.input_tokens * per_input
                    + usage.output_tokens * per_output
                    + usage.cached_tokens * per_read
                    + usage.cache_write_tokens * per_write
                )
                total = fixed + per_tokens / MILLION
        else:
            cached = usage.cached_tokens
            written = usage.cache_write_tokens
            total = price.calc_price(
                Usage(
                    input_tokens=_count(usage.input_tokens + cached + written),
                    output_tokens=_count(usage.output_tokens),
                    cache_read_tokens=_count(cached),
                    cache_write_tokens=_count(written),
                )
            )["total_price"]
    except LookupError as exc:
        return unknown(f"genai-prices does not know it: {exc}", provider=provider, model=model)
    except ValueError as exc:
        return unknown(f"genai-prices cannot price it: {exc}", provider=provider, model=model)
    return VendorCost(total, CostSource.PRICE_TABLE, None, found.id, model)


def _price_table(at: datetime | None) -> LlmPriceTable:
    def table(provider: str | None, model: str, usage: LlmUsage) -> VendorCost:
        return genai_prices_cost(provider, model, usage, at=at)

    return table


def quote(
    card: RateCard,
    action: str,
    dimensions: Mapping[str, object],
    quantities: Mapping[str, object],
    *,
    asset: Asset,
    vendor_cost_usd: Decimal | str | int | None = None,
    model_prices: Mapping[str, TokenPrices] | None = None,
    at: datetime | None = None,
) -> Quote:
    """Price an action by the card, with its vendor cost.

    The vendor cost is `vendor_cost_usd` if given; else the rule's vendor price, where an LLM
    model is priced by the tenant's `model_prices` (model name, lower case -> TokenPrices)
    if listed, else by genai-prices at `at`.
    """
    explicit = None if vendor_cost_usd is None else exact_decimal(vendor_cost_usd, "vendor_cost")
    table = _price_table(at)

    def source(
        rule: PriceRule, dims: Mapping[str, str], amounts: Mapping[str, Decimal]
    ) -> VendorCost:
        return vendor_cost(
            rule,
            dims,
            amounts,
            explicit=explicit,
            model_prices=model_prices,
            price_table=table,
        )

    return pricing.quote(card, action, dimensions, quantities, asset=asset, vendor_cost=source)


@dataclass(frozen=True, slots=True)
class UnpricedQuantity:
    """A quantity a rule prices at 0 that its LLM vendor charges for."""

    field: str  # the card's path of the price that is missing, e.g. actions.x.prices[0]...
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def unpriced_costs(
    card: RateCard,
    *,
    model_prices: Mapping[str, TokenPrices] | None = None,
    at: datetime | None = None,
) -> list[UnpricedQuantity]:
    """Each token quantity a rule prices at 0 (or not at all) while its `llm` vendor charges
    for it: a call using it costs money and earns nothing. Rules priced from vendor cost
    (`vendor_multiple`) are covered; a rule whose model is not known before the request (no
    `llm.model` and no `model` in its match) is not checked."""
    found: list[UnpricedQuantity] = []
    table = _price_table(at)
    for action, prices in card.actions.items():
        for rule in prices.rules:
            llm = rule.vendor.llm if rule.vendor is not None else None
            model = None if llm is None else llm.model or rule.match.get("model")
            if model is None or rule.vendor_multiple is not None:
                continue
            dims = {**rule.match, "model": model}
            base = vendor_cost(rule, dims, {}, model_prices=model_prices, price_table=table).usd
            for name in LLM_QUANTITIES:
                if rule.per_unit.get(name):
                    continue
                alone = {name: Decimal(MILLION)}
                used = vendor_cost(
                    rule, dims, alone, model_prices=model_prices, price_table=table
                ).usd
                if used is None or base is None or used <= base:
                    continue
                found.append(
                    UnpricedQuantity(
                        f"actions.{action}.prices[{rule.index}].per_unit.{name}",
                        f"{model} costs ${text(used - base)} per million {name} and the card "
                        "prices them at 0",
                    )
                )
    return found
