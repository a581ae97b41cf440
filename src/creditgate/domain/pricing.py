"""Rate cards: parse and validate a card, match an action to its price rule, and price it.

A card is a dict (as loaded from YAML or JSON)::

    asset: credits                 # the asset the card prices in
    description: "…"               # optional
    rounding: up                   # how a price becomes minor units (below); default up
    credit_value_usd: "0.10"       # list price of one unit of the asset in USD; needed by
                                   # `vendor_multiple` rules and by the margin reports
    actions:
      chat.completion:             # an action name
        prices:                    # price rules, tried in order: the first whose match fits wins
          - match: {model: claude-sonnet-4}   # every key must equal the request's dimension;
                                              # {} or no match: the default rule
            flat: "0"                         # credits per action
            per_unit: {input_tokens: "0.003", output_tokens: "0.015"}  # credits per unit
            vendor_multiple: "1.5"            # credits += vendor cost * 1.5 / credit_value_usd
            minimum: "1"                      # credits at least
            vendor:                           # what the action costs the product, in USD
              flat: "0.04"                    # per action
              per_unit: {characters: "0.00018"}   # per unit of a quantity
              llm: {provider: anthropic}      # the model's price: the tenant's override, else
                                              # genai-prices; `model:` defaults to the
                                              # request's `model` dimension
        multipliers:               # every multiplier whose match fits applies
          - match: {complexity: high}
            factor: "1.5"
        margin_guard:              # optional: decline (or, mode warn, flag) a call whose
          headroom: "0.2"          # estimated vendor cost * (1 + headroom) is more than its
          mode: decline            # credit is worth at credit_value_usd (MarginGuard)

Dimension keys and quantity names are the tenant's own (`model`, `quality`, `complexity`,
`region`…; `input_tokens`, `characters`, `seconds`, `images`…). A rule must set at least one
of flat, per_unit, vendor_multiple or minimum: an action is never free by omission. Numbers
are decimal strings, Decimals or integers, never floats (`creditgate rate-cards load` reads
YAML and JSON decimals as their text). Actions and rules may carry a `description`. A
request may name only quantities the action's rules mention; a missing quantity counts as
zero. Anything else is an InvalidInput whose `field` is its path, e.g.
`actions.image.generate.prices[1].per_unit.characters`.

LLM token quantities are disjoint, as in Anthropic's usage: `input_tokens` excludes cache
reads (`cached_tokens`) and cache writes (`cache_write_tokens`); `output_tokens`.

The price, in units of the asset (e.g. credits)::

    units = max(minimum, (flat + Σ per_unit[q] * quantity[q]
                          + vendor_cost * vendor_multiple / credit_value_usd)
                         * Π factor of every matching multiplier)

All in Decimal and exact; only the division by credit_value_usd is carried to 60 significant
digits. `amount` (minor units) is `units` rounded once, to the asset's scale, by the card's
`rounding`: no line is rounded on its own, so 1,001 characters at 0.5 credits is 500.5
credits, 50050 minor units at scale 2. `up` (the default) rounds any fraction of a minor unit
up, so a price above zero never costs zero and a price is never undercharged: $0.0028 of USD
at scale 2 is 1 cent. `down`, `half_up`, `half_down` and `half_even` apply only where the card
says so; under them a price above zero may round to 0, and such a call is still approved only
for a wallet that can pay one minor unit (`Quote.need`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from enum import StrEnum
from typing import Any

from creditgate.domain.amounts import (
    EXACT,
    MAX_AMOUNT,
    ROUNDING,
    Asset,
    check_asset_code,
    check_decimal,
    decimal_text,
)
from creditgate.domain.errors import AmountOverflow, InvalidInput
from creditgate.domain.pricing_errors import NoPrice, VendorCostUnknown

ZERO = Decimal(0)
ONE = Decimal(1)

MAX_ACTIONS = 1_000
MAX_RULES = 1_000
MAX_MULTIPLIERS = 16
MAX_KEYS = 64
MAX_DIGITS = 40
MAX_TEXT = 200

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
ACTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")

# Sums and products of card values (≤ 40 digits each, ≤ 16 multipliers) are exact in
# `amounts.EXACT`.
_DIVIDE = Context(prec=60, rounding=ROUNDING, traps=[InvalidOperation, Overflow, DivisionByZero])

# A card's `rounding`: its name in the card -> the `decimal` rounding mode. Prices are never
# negative, so `up` is the ceiling and `down` the floor.
ROUNDINGS: Mapping[str, str] = {
    "up": ROUND_UP,
    "down": ROUND_DOWN,
    "half_up": ROUND_HALF_UP,
    "half_down": ROUND_HALF_DOWN,
    "half_even": ROUND_HALF_EVEN,
}
DEFAULT_ROUNDING = "up"
# The rate card a request is priced by when it names none.
DEFAULT_RATE_CARD = "default"


@dataclass(frozen=True, slots=True)
class LlmVendor:
    """Vendor cost from an LLM price table; `model` None means the request's `model` dimension."""

    provider: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class VendorPrice:
    flat: Decimal | None = None
    per_unit: Mapping[str, Decimal] = field(default_factory=dict)
    llm: LlmVendor | None = None


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """A tenant's price of an LLM model, USD per million tokens."""

    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceRule:
    index: int
    match: Mapping[str, str] = field(default_factory=dict)
    flat: Decimal | None = None
    per_unit: Mapping[str, Decimal] = field(default_factory=dict)
    vendor_multiple: Decimal | None = None
    minimum: Decimal | None = None
    vendor: VendorPrice | None = None
    description: str = ""

    def matches(self, dimensions: Mapping[str, str]) -> bool:
        return all(dimensions.get(key) == value for key, value in self.match.items())


@dataclass(frozen=True, slots=True)
class Multiplier:
    index: int
    match: Mapping[str, str]
    factor: Decimal

    def matches(self, dimensions: Mapping[str, str]) -> bool:
        return all(dimensions.get(key) == value for key, value in self.match.items())


@dataclass(frozen=True, slots=True)
class MarginGuard:
    """Refuse (or flag) a priced authorization whose estimated vendor cost, with headroom,
    is more than the credit it holds is worth at the card's list price."""

    headroom: Decimal  # 0.2: the vendor cost plus 20% must fit in the credit value
    mode: str = "decline"  # or "warn": approve, with a warning on the answer

    def check(self, quote: Quote) -> str | None:
        """Why the guard objects to this quote, or None."""
        cost = quote.vendor_cost.usd if quote.vendor_cost is not None else None
        if cost is None or quote.credit_value_usd is None:
            return None
        with localcontext(EXACT):
            value = quote.units * quote.credit_value_usd
            needed = cost * (ONE + self.headroom)
        if needed <= value:
            return None
        return (
            f"estimated vendor cost ${text(cost)} with {text(self.headroom * 100)}% headroom "
            f"is more than the ${text(value)} the held credit is worth"
        )


@dataclass(frozen=True, slots=True)
class ActionPrices:
    action: str
    rules: tuple[PriceRule, ...]
    multipliers: tuple[Multiplier, ...] = ()
    # Every quantity a request for this action may name.
    quantities: frozenset[str] = frozenset()
    description: str = ""
    margin_guard: MarginGuard | None = None

    def rule_for(self, dimensions: Mapping[str, str]) -> PriceRule:
        for rule in self.rules:
            if rule.matches(dimensions):
                return rule
        shown = ", ".join(f"{k}={v}" for k, v in sorted(dimensions.items())) or "none"
        raise NoPrice(
            f"the rate card has no price for {self.action} with dimensions {shown}",
            field="dimensions",
        )


@dataclass(frozen=True, slots=True)
class RateCard:
    asset: str
    actions: Mapping[str, ActionPrices]
    credit_value_usd: Decimal | None = None
    description: str = ""
    rounding: str = DEFAULT_ROUNDING  # a key of ROUNDINGS

    def prices(self, action: str) -> ActionPrices:
        found = self.actions.get(check_action(action))
        if found is None:
            raise NoPrice(f"the rate card has no price for action {action!r}", field="action")
        return found

    def spec(self) -> dict[str, Any]:
        """The card as a canonical JSON-safe spec; parse_rate_card(card.spec()) == card."""
        out: dict[str, Any] = {"asset": self.asset}
        if self.description:
            out["description"] = self.description
        if self.credit_value_usd is not None:
            out["credit_value_usd"] = text(self.credit_value_usd)
        out["rounding"] = self.rounding
        out["actions"] = {name: _action_spec(prices) for name, prices in self.actions.items()}
        return out


# What an action cost the product (see `vendor_cost`), carried by each quote.
class CostSource(StrEnum):
    EXPLICIT = "explicit"
    CARD = "card"  # the rate card's flat and per-unit vendor prices
    TENANT_OVERRIDE = "tenant_override"  # the card's model_prices
    PRICE_TABLE = "genai_prices"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class VendorCost:
    usd: Decimal | None
    source: CostSource
    reason: str | None = None
    provider: str | None = None
    model: str | None = None

    def snapshot(self) -> dict[str, str | None]:
        return {
            "usd": None if self.usd is None else text(self.usd),
            "source": self.source.value,
            "reason": self.reason,
            "provider": self.provider,
            "model": self.model,
        }


# Given the matched rule, the request's dimensions and quantities: what the action cost.
VendorCostSource = Callable[["PriceRule", Mapping[str, str], Mapping[str, Decimal]], VendorCost]


@dataclass(frozen=True, slots=True)
class PriceLine:
    name: str  # "flat", a quantity's name, or "vendor_cost"
    quantity: Decimal
    unit_price: Decimal
    subtotal: Decimal


@dataclass(frozen=True, slots=True)
class Quote:
    """An action priced by a rate card: the breakdown every charge keeps as its snapshot."""

    action: str
    asset: str
    scale: int
    rule: int
    match: Mapping[str, str]
    dimensions: Mapping[str, str]
    quantities: Mapping[str, Decimal]
    lines: tuple[PriceLine, ...]
    multipliers: tuple[Multiplier, ...]
    subtotal: Decimal  # Σ lines * Π multipliers, before the minimum
    minimum: Decimal | None
    units: Decimal  # exact, before rounding
    amount: int  # minor units of the asset: units rounded once, by `rounding`
    rounding: str = DEFAULT_ROUNDING  # the card's
    credit_value_usd: Decimal | None = None
    vendor_cost: VendorCost | None = None

    @property
    def rounded_units(self) -> Decimal:
        """The price as charged, in units of the asset: `units` rounded to the asset's scale."""
        return Decimal(self.amount).scaleb(-self.scale)

    @property
    def need(self) -> int:
        """What a wallet must be able to pay for the call to be approved: the amount, and at
        least one minor unit for a price above zero that the card's rounding made 0."""
        return 1 if self.units > 0 and self.amount == 0 else self.amount

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe (Decimals as strings), to be stored on the charge."""
        return {
            "action": self.action,
            "asset": self.asset,
            "scale": self.scale,
            "rule": self.rule,
            "match": dict(self.match),
            "dimensions": dict(self.dimensions),
            "quantities": {name: text(value) for name, value in self.quantities.items()},
            "lines": [
                {
                    "name": line.name,
                    "quantity": text(line.quantity),
                    "unit_price": text(line.unit_price),
                    "subtotal": text(line.subtotal),
                }
                for line in self.lines
            ],
            "multipliers": [
                {"index": m.index, "match": dict(m.match), "factor": text(m.factor)}
                for m in self.multipliers
            ],
            "subtotal": text(self.subtotal),
            "minimum": _text_or_none(self.minimum),
            "units": text(self.units),
            "rounded_units": text(self.rounded_units),
            "amount": self.amount,
            "rounding": self.rounding,
            "credit_value_usd": _text_or_none(self.credit_value_usd),
            "vendor_cost": None if self.vendor_cost is None else self.vendor_cost.snapshot(),
        }


def text(value: Decimal) -> str:
    """A Decimal as a plain fixed-point string: "500.5", "0.00018", "20"."""
    return decimal_text(value)


def _text_or_none(value: Decimal | None) -> str | None:
    return None if value is None else text(value)


# Pricing


def quote(
    card: RateCard,
    action: str,
    dimensions: Mapping[str, object],
    quantities: Mapping[str, object],
    *,
    asset: Asset,
    vendor_cost: VendorCostSource | None = None,
) -> Quote:
    """Price `quantities` of `action` under `dimensions`; NoPrice if no rule matches."""
    if asset.code != card.asset:
        raise InvalidInput(
            f"the rate card prices in {card.asset!r}, not {asset.code!r}", field="asset"
        )
    prices = card.prices(action)
    dims = check_dimensions(dimensions)
    amounts = check_quantities(prices, quantities)
    rule = prices.rule_for(dims)
    cost = vendor_cost(rule, dims, amounts) if vendor_cost is not None else None
    lines: list[PriceLine] = []
    if rule.flat is not None:
        lines.append(PriceLine("flat", ONE, rule.flat, rule.flat))
    try:
        with localcontext(EXACT):
            for name, unit_price in rule.per_unit.items():
                count = amounts.get(name, ZERO)
                lines.append(PriceLine(name, count, unit_price, unit_price * count))
            if rule.vendor_multiple is not None:
                lines.append(_vendor_line(card, rule, cost))
            subtotal = sum((line.subtotal for line in lines), ZERO)
            applied = tuple(m for m in prices.multipliers if m.matches(dims))
            for multiplier in applied:
                subtotal *= multiplier.factor
            units = subtotal if rule.minimum is None else max(rule.minimum, subtotal)
    except Inexact:  # pragma: no cover - the digit limits keep every result exact
        raise InvalidInput("the price has too many digits to compute exactly") from None
    amount = asset.to_minor(units, ROUNDINGS[card.rounding])
    if amount > MAX_AMOUNT:
        raise AmountOverflow(
            f"{units} {asset.code} is past the largest supported amount", field="quantities"
        )
    return Quote(
        action=prices.action,
        asset=asset.code,
        scale=asset.scale,
        rule=rule.index,
        match=rule.match,
        dimensions=dims,
        quantities=amounts,
        lines=tuple(lines),
        multipliers=applied,
        subtotal=subtotal,
        minimum=rule.minimum,
        units=units,
        amount=amount,
        rounding=card.rounding,
        credit_value_usd=card.credit_value_usd,
        vendor_cost=cost,
    )


def _vendor_line(card: RateCard, rule: PriceRule, cost: VendorCost | None) -> PriceLine:
    assert rule.vendor_multiple is not None and card.credit_value_usd is not None
    if cost is None or cost.usd is None:
        reason = cost.reason if cost is not None and cost.reason else "no vendor cost was given"
        raise VendorCostUnknown(
            f"rule {rule.index} is priced from vendor cost, which is unknown: {reason}",
            field="vendor_cost",
        )
    per_usd = _DIVIDE.divide(rule.vendor_multiple, card.credit_value_usd)
    return PriceLine("vendor_cost", cost.usd, per_usd, cost.usd * per_usd)


def check_action(action: object) -> str:
    if not isinstance(action, str) or not ACTION.match(action):
        raise InvalidInput(
            "action must be 1-100 letters, digits, '_', '.', ':', '/' or '-'", field="action"
        )
    return action


def check_dimensions(dimensions: object) -> dict[str, str]:
    spec = _mapping(dimensions, "dimensions")
    if len(spec) > MAX_KEYS:
        raise InvalidInput(f"dimensions may have at most {MAX_KEYS} keys", field="dimensions")
    return {
        _name(key, f"dimensions.{key}"): _dimension_value(
            value, f"dimensions.{key}", allow_int=False
        )
        for key, value in spec.items()
    }


def check_quantities(prices: ActionPrices, quantities: object) -> dict[str, Decimal]:
    spec = _mapping(quantities, "quantities")
    out: dict[str, Decimal] = {}
    for name, value in spec.items():
        path = f"quantities.{name}"
        if name not in prices.quantities:
            known = ", ".join(sorted(prices.quantities)) or "none"
            raise InvalidInput(
                f"{prices.action} has no quantity {name!r} (it prices: {known})", field=path
            )
        out[name] = exact_decimal(value, path)
    return out


# Combinations, for reports


def dimension_combinations(
    prices: ActionPrices, limit: int = 4_096
) -> tuple[list[dict[str, str]], bool]:
    """Each distinct way a request can be priced: a rule with the multipliers that can join it.

    A combination is the least set of dimensions that selects rule j (no earlier rule matches
    it) together with a set of multipliers; the multipliers that apply are then all those it
    matches. Returns the combinations and whether the enumeration was complete (within limit).
    """
    found: list[dict[str, str]] = []
    seen: set[frozenset[tuple[str, str]]] = set()
    complete = True
    for j, rule in enumerate(prices.rules):
        earlier = prices.rules[:j]
        frontier: dict[frozenset[tuple[str, str]], dict[str, str]] = {
            frozenset(rule.match.items()): dict(rule.match)
        }
        for multiplier in prices.multipliers:
            for dims in list(frontier.values()):
                merged = _merge(dims, multiplier.match)
                if merged is None:
                    continue
                key = frozenset(merged.items())
                if key in frontier:
                    continue
                if len(frontier) >= limit:
                    complete = False
                    break
                frontier[key] = merged
        for key, dims in frontier.items():
            if key in seen or any(r.matches(dims) for r in earlier):
                continue
            seen.add(key)
            found.append(dims)
    return found, complete


def _merge(dims: Mapping[str, str], match: Mapping[str, str]) -> dict[str, str] | None:
    if any(key in dims and dims[key] != value for key, value in match.items()):
        return None
    return {**dims, **match}


# Parsing


_CARD_FIELDS = ("asset", "description", "credit_value_usd", "rounding", "actions")
_ACTION_FIELDS = ("prices", "multipliers", "description", "margin_guard")
_GUARD_FIELDS = ("headroom", "mode")
GUARD_MODES = ("decline", "warn")
_RULE_FIELDS = (
    "match",
    "flat",
    "per_unit",
    "vendor_multiple",
    "minimum",
    "vendor",
    "description",
)
_VENDOR_FIELDS = ("flat", "per_unit", "llm")
_LLM_FIELDS = ("provider", "model")
_MULTIPLIER_FIELDS = ("match", "factor")
_TOKEN_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
LLM_QUANTITIES = ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens")


def parse_rate_card(spec: object) -> RateCard:
    """A validated RateCard, or InvalidInput whose `field` is the path of the first fault."""
    card = _fields(spec, "", _CARD_FIELDS)
    asset = check_asset_code(card.get("asset"), "asset")
    value = card.get("credit_value_usd")
    credit_value = (
        None if value is None else exact_decimal(value, "credit_value_usd", positive=True)
    )
    actions_spec = _mapping(card.get("actions"), "actions")
    if not actions_spec:
        raise InvalidInput("actions must price at least one action", field="actions")
    if len(actions_spec) > MAX_ACTIONS:
        raise InvalidInput(f"actions may have at most {MAX_ACTIONS} entries", field="actions")
    actions: dict[str, ActionPrices] = {}
    for name, action_spec in actions_spec.items():
        path = f"actions.{name}"
        if not ACTION.match(name):
            raise InvalidInput(
                f"{path}: an action is 1-100 letters, digits, '_', '.', ':', '/' or '-'",
                field=path,
            )
        actions[name] = _action(name, action_spec, path)
        if credit_value is None and actions[name].margin_guard is not None:
            raise InvalidInput(
                f"{path}.margin_guard needs the card's credit_value_usd", field="credit_value_usd"
            )
        if credit_value is None:
            for rule in actions[name].rules:
                if rule.vendor_multiple is not None:
                    raise InvalidInput(
                        f"{path}.prices[{rule.index}].vendor_multiple needs the card's "
                        "credit_value_usd",
                        field="credit_value_usd",
                    )
    return RateCard(
        asset=asset,
        actions=actions,
        credit_value_usd=credit_value,
        description=_text(card.get("description", ""), "description"),
        rounding=_rounding(card.get("rounding", DEFAULT_ROUNDING)),
    )


def _rounding(value: object) -> str:
    if not isinstance(value, str) or value not in ROUNDINGS:
        raise InvalidInput(
            f"rounding must be one of {', '.join(ROUNDINGS)} (default {DEFAULT_ROUNDING})",
            field="rounding",
        )
    return value


def _action(name: str, spec: object, path: str) -> ActionPrices:
    fields = _fields(spec, path, _ACTION_FIELDS)
    rules_spec = _list(fields.get("prices"), f"{path}.prices", MAX_RULES)
    if not rules_spec:
        raise InvalidInput(f"{path}.prices must have at least one rule", field=f"{path}.prices")
    rules = tuple(_rule(i, r, f"{path}.prices[{i}]") for i, r in enumerate(rules_spec))
    multipliers_spec = _list(fields.get("multipliers", []), f"{path}.multipliers", MAX_MULTIPLIERS)
    multipliers = tuple(
        _multiplier(i, m, f"{path}.multipliers[{i}]") for i, m in enumerate(multipliers_spec)
    )
    quantities: set[str] = set()
    for rule in rules:
        quantities.update(rule.per_unit)
        if rule.vendor is not None:
            quantities.update(rule.vendor.per_unit)
            if rule.vendor.llm is not None:
                quantities.update(LLM_QUANTITIES)
    # A card that prices tokens accepts every kind of token a model reports, so a call whose
    # usage includes cache reads is still charged (an unpriced kind adds no credits; the
    # margin report shows its cost) rather than refused at settle.
    if quantities & set(LLM_QUANTITIES):
        quantities.update(LLM_QUANTITIES)
    guard = None
    if fields.get("margin_guard") is not None:
        guard_path = f"{path}.margin_guard"
        guard_spec = _fields(fields["margin_guard"], guard_path, _GUARD_FIELDS)
        mode = guard_spec.get("mode", "decline")
        if mode not in GUARD_MODES:
            raise InvalidInput(
                f"{guard_path}.mode must be one of {', '.join(GUARD_MODES)}",
                field=f"{guard_path}.mode",
            )
        headroom = exact_decimal(guard_spec.get("headroom", "0"), f"{guard_path}.headroom")
        guard = MarginGuard(headroom, str(mode))
    return ActionPrices(
        action=name,
        rules=rules,
        multipliers=multipliers,
        quantities=frozenset(quantities),
        description=_text(fields.get("description", ""), f"{path}.description"),
        margin_guard=guard,
    )


def _rule(index: int, spec: object, path: str) -> PriceRule:
    fields = _fields(spec, path, _RULE_FIELDS)
    rule = PriceRule(
        index=index,
        match=_match(fields.get("match"), f"{path}.match"),
        flat=_optional_decimal(fields.get("flat"), f"{path}.flat"),
        per_unit=_per_unit(fields.get("per_unit"), f"{path}.per_unit"),
        vendor_multiple=_optional_decimal(
            fields.get("vendor_multiple"), f"{path}.vendor_multiple", positive=True
        ),
        minimum=_optional_decimal(fields.get("minimum"), f"{path}.minimum"),
        vendor=_vendor(fields.get("vendor"), f"{path}.vendor"),
        description=_text(fields.get("description", ""), f"{path}.description"),
    )
    priced = (rule.flat, rule.per_unit or None, rule.vendor_multiple, rule.minimum)
    if all(part is None for part in priced):
        raise InvalidInput(
            f"{path} must set flat, per_unit, vendor_multiple or minimum "
            '(flat: "0" for a free action)',
            field=path,
        )
    return rule


def _multiplier(index: int, spec: object, path: str) -> Multiplier:
    fields = _fields(spec, path, _MULTIPLIER_FIELDS)
    if "factor" not in fields:
        raise InvalidInput(f"{path}.factor is required", field=f"{path}.factor")
    return Multiplier(
        index=index,
        match=_match(fields.get("match"), f"{path}.match"),
        factor=exact_decimal(fields["factor"], f"{path}.factor", positive=True),
    )


def _vendor(spec: object, path: str) -> VendorPrice | None:
    if spec is None:
        return None
    fields = _fields(spec, path, _VENDOR_FIELDS)
    llm: LlmVendor | None = None
    if "llm" in fields:
        llm_fields = _fields(fields["llm"], f"{path}.llm", _LLM_FIELDS)
        provider = llm_fields.get("provider")
        model = llm_fields.get("model")
        llm = LlmVendor(
            provider=None if provider is None else _label(provider, f"{path}.llm.provider"),
            model=None if model is None else _label(model, f"{path}.llm.model"),
        )
    vendor = VendorPrice(
        flat=_optional_decimal(fields.get("flat"), f"{path}.flat"),
        per_unit=_per_unit(fields.get("per_unit"), f"{path}.per_unit"),
        llm=llm,
    )
    if vendor.flat is None and not vendor.per_unit and vendor.llm is None:
        raise InvalidInput(f"{path} must set flat, per_unit or llm", field=path)
    return vendor


def parse_model_prices(spec: object, path: str = "model_prices") -> dict[str, TokenPrices]:
    """A tenant's LLM price overrides: {model: {input_mtok, output_mtok, cache_read_mtok?,
    cache_write_mtok?}} in USD per million tokens; keys lower-cased as genai-prices does."""
    if spec is None:
        return {}
    models = _mapping(spec, path)
    if len(models) > MAX_RULES:
        raise InvalidInput(f"{path} may have at most {MAX_RULES} models", field=path)
    out: dict[str, TokenPrices] = {}
    for model, prices_spec in models.items():
        model_path = f"{path}.{model}"
        key = _label(model, model_path).lower()
        if key in out:
            raise InvalidInput(f"{model_path} is listed twice", field=model_path)
        fields = _fields(prices_spec, model_path, _TOKEN_FIELDS)
        for required in ("input_mtok", "output_mtok"):
            if required not in fields:
                raise InvalidInput(
                    f"{model_path}.{required} is required", field=f"{model_path}.{required}"
                )
        out[key] = TokenPrices(
            input_mtok=exact_decimal(fields["input_mtok"], f"{model_path}.input_mtok"),
            output_mtok=exact_decimal(fields["output_mtok"], f"{model_path}.output_mtok"),
            cache_read_mtok=_optional_decimal(
                fields.get("cache_read_mtok"), f"{model_path}.cache_read_mtok"
            ),
            cache_write_mtok=_optional_decimal(
                fields.get("cache_write_mtok"), f"{model_path}.cache_write_mtok"
            ),
        )
    return out


def _per_unit(spec: object, path: str) -> dict[str, Decimal]:
    if spec is None:
        return {}
    units = _mapping(spec, path)
    if len(units) > MAX_KEYS:
        raise InvalidInput(f"{path} may price at most {MAX_KEYS} quantities", field=path)
    return {
        _name(name, f"{path}.{name}"): exact_decimal(value, f"{path}.{name}")
        for name, value in units.items()
    }


def _match(spec: object, path: str) -> dict[str, str]:
    if spec is None:
        return {}
    match = _mapping(spec, path)
    if len(match) > MAX_KEYS:
        raise InvalidInput(f"{path} may name at most {MAX_KEYS} dimensions", field=path)
    return {
        _name(key, f"{path}.{key}"): _dimension_value(value, f"{path}.{key}", allow_int=True)
        for key, value in match.items()
    }


def _fields(spec: object, path: str, allowed: Sequence[str]) -> Mapping[str, object]:
    fields = _mapping(spec, path or "rate card")
    for key in fields:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise InvalidInput(
                f"{where} is not a field here (expected {', '.join(allowed)})",
                field=where or "rate card",  # an empty key: the mapping holding it
            )
    return fields


def _mapping(spec: object, path: str) -> Mapping[str, object]:
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{path} must be a mapping", field=path)
    for key in spec:
        if not isinstance(key, str):
            raise InvalidInput(f"{path} keys must be strings, got {key!r}", field=path)
    return spec


def _list(spec: object, path: str, limit: int) -> Sequence[object]:
    if not isinstance(spec, list | tuple):
        raise InvalidInput(f"{path} must be a list", field=path)
    if len(spec) > limit:
        raise InvalidInput(f"{path} may have at most {limit} entries", field=path)
    return spec


def _name(value: str, path: str) -> str:
    if not NAME.match(value):
        raise InvalidInput(
            f"{path}: a name is 1-64 letters, digits, '_', '.' or '-', starting with a letter",
            field=path,
        )
    return value


def _dimension_value(value: object, path: str, *, allow_int: bool) -> str:
    # YAML reads `tier: 2` as an integer; a card may say so, a request sends strings.
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _label(value, path)


def _label(value: object, path: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TEXT or not value.isprintable():
        raise InvalidInput(f"{path} must be 1-{MAX_TEXT} printable characters", field=path)
    return value


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or len(value) > 1_000:
        raise InvalidInput(f"{path} must be text of at most 1000 characters", field=path)
    return value


def exact_decimal(value: object, path: str, *, positive: bool = False) -> Decimal:
    result = check_decimal(value, path)
    if len(result.as_tuple().digits) > MAX_DIGITS:
        raise InvalidInput(f"{path} may have at most {MAX_DIGITS} digits", field=path)
    if positive and not result:
        raise InvalidInput(f"{path} must be greater than zero", field=path)
    return result if result else ZERO  # no "-0" or "0E+3" in a card


def _optional_decimal(value: object, path: str, *, positive: bool = False) -> Decimal | None:
    return None if value is None else exact_decimal(value, path, positive=positive)


# Canonical spec


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _action_spec(prices: ActionPrices) -> dict[str, Any]:
    out: dict[str, Any] = {"prices": [_rule_spec(rule) for rule in prices.rules]}
    if prices.multipliers:
        out["multipliers"] = [
            {"match": dict(m.match), "factor": text(m.factor)} for m in prices.multipliers
        ]
    if prices.description:
        out["description"] = prices.description
    if prices.margin_guard is not None:
        out["margin_guard"] = {
            "headroom": text(prices.margin_guard.headroom),
            "mode": prices.margin_guard.mode,
        }
    return out


def _rule_spec(rule: PriceRule) -> dict[str, Any]:
    vendor = None
    if rule.vendor is not None:
        llm = rule.vendor.llm
        vendor = _drop_none(
            {
                "flat": _text_or_none(rule.vendor.flat),
                "per_unit": {k: text(v) for k, v in rule.vendor.per_unit.items()} or None,
                "llm": None
                if llm is None
                else _drop_none({"provider": llm.provider, "model": llm.model}),
            }
        )
    return _drop_none(
        {
            "match": dict(rule.match),
            "flat": _text_or_none(rule.flat),
            "per_unit": {k: text(v) for k, v in rule.per_unit.items()} or None,
            "vendor_multiple": _text_or_none(rule.vendor_multiple),
            "minimum": _text_or_none(rule.minimum),
            "vendor": vendor,
            "description": rule.description or None,
        }
    )
