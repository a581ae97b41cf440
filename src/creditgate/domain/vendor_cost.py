"""Vendor cost: what one action cost the product, in USD at sub-cent precision.

Where it comes from, first that applies:

1. an explicit cost passed with the usage;
2. the rule's vendor price: `flat` + Σ `per_unit` * quantity, plus for `llm` the model's
   price — the tenant's `model_prices` override if the card has one for the model, else the
   LLM price table (genai-prices, looked up in services/vendor_cost.py);
3. otherwise unknown: `usd` is None and `reason` says why. Unknown is an answer, not a crash.

LLM token quantities are disjoint: `input_tokens` excludes `cached_tokens` (cache reads) and
`cache_write_tokens`; cache reads and writes cost input price unless the override says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext

from creditgate.domain.amounts import EXACT
from creditgate.domain.pricing import CostSource, PriceRule, TokenPrices, VendorCost

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class LlmUsage:
    input_tokens: Decimal = ZERO  # not cached
    output_tokens: Decimal = ZERO
    cached_tokens: Decimal = ZERO  # cache reads
    cache_write_tokens: Decimal = ZERO

    @classmethod
    def of(cls, quantities: Mapping[str, Decimal]) -> LlmUsage:
        return cls(
            input_tokens=quantities.get("input_tokens", ZERO),
            output_tokens=quantities.get("output_tokens", ZERO),
            cached_tokens=quantities.get("cached_tokens", ZERO),
            cache_write_tokens=quantities.get("cache_write_tokens", ZERO),
        )


def unknown(reason: str, *, provider: str | None = None, model: str | None = None) -> VendorCost:
    return VendorCost(None, CostSource.UNKNOWN, reason, provider, model)


# An LLM price table: (provider or None, model, usage) -> the cost, or unknown with a reason.
LlmPriceTable = Callable[[str | None, str, LlmUsage], VendorCost]


def token_cost(prices: TokenPrices, usage: LlmUsage) -> Decimal:
    read = prices.input_mtok if prices.cache_read_mtok is None else prices.cache_read_mtok
    write = prices.input_mtok if prices.cache_write_mtok is None else prices.cache_write_mtok
    with localcontext() as ctx:
        ctx.prec = 200  # exact for card-sized numbers; a million divides exactly
        total = (
            usage.input_tokens * prices.input_mtok
            + usage.output_tokens * prices.output_mtok
            + usage.cached_tokens * read
            + usage.cache_write_tokens * write
        )
        return total / MILLION


def vendor_cost(
    rule: PriceRule,
    dimensions: Mapping[str, str],
    quantities: Mapping[str, Decimal],
    *,
    explicit: Decimal | None = None,
    model_prices: Mapping[str, TokenPrices] | None = None,
    price_table: LlmPriceTable | None = None,
) -> VendorCost:
    """What the action cost, from the first source that applies (see the module docstring)."""
    if explicit is not None:
        return VendorCost(explicit, CostSource.EXPLICIT)
    vendor = rule.vendor
    if vendor is None:
        return unknown(f"price rule {rule.index} has no vendor price")
    with localcontext() as ctx:
        ctx.prec = 200
        total = vendor.flat or ZERO
        for name, price in vendor.per_unit.items():
            total += price * quantities.get(name, ZERO)
    if vendor.llm is None:
        return VendorCost(total, CostSource.CARD)
    provider = vendor.llm.provider
    model = vendor.llm.model or dimensions.get("model")
    if model is None:
        return unknown("the LLM's model is neither in the rule nor a `model` dimension")
    usage = LlmUsage.of(quantities)
    override = (model_prices or {}).get(model.lower())
    if override is not None:
        llm = VendorCost(token_cost(override, usage), CostSource.TENANT_OVERRIDE, None, provider)
    elif price_table is not None:
        llm = price_table(provider, model, usage)
    else:
        return unknown("no LLM price table", provider=provider, model=model)
    if llm.usd is None:
        return VendorCost(None, CostSource.UNKNOWN, llm.reason, llm.provider, model)
    with localcontext(EXACT):  # as each part was: rounded once, where it is stored
        usd = total + llm.usd
    return VendorCost(usd, llm.source, None, llm.provider, model)
