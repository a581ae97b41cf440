"""Margin reports: revenue, vendor cost and gross margin of posted charges, and of a rate card.

Over the charges of one tenant and asset created in [start, end):

- revenue = Σ charge.revenue (credit drawn from each lot * the lot's cost basis; promotional
  credit earns nothing); a charge without a recorded revenue counts 0;
- vendor cost = Σ charge.vendor_cost (USD) over charges whose cost is known; the others are
  counted in `cost_unknown`, so a margin is never silently flattered without saying so;
- gross margin = revenue - vendor cost; margin = gross margin / revenue (0.6 is 60%);
- list value = credits charged * the card's credit_value_usd (the list price of a credit);
  credit-to-cost ratio = list value / vendor cost (1 credit at $0.10 costing $0.04 is 2.5);
- `loss` is true when vendor cost exceeds revenue (or list value). With no revenue and a
  cost, the margin is a loss without a finite rate: `margin` is null and `loss` true, never
  100%.
- shortfall = Σ charge.shortfall: usage settled past what the wallet's policy let it pay,
  so not charged (each such charge raised `charge.shortfall`), with the number of charges;
  its value = shortfall credits * credit_value_usd, the revenue lost at the list price. Its
  vendor cost is in vendor cost: the call happened.

Ratios are computed from the exact sums and rounded once, half to even, to 6 decimal places;
sums are exact.

Across customers: the median margin (the mean of the two middle values for an even count)
and the 10th and 90th percentiles (nearest rank: the ⌈p·n⌉-th smallest) over customers with
revenue; the worst customers are those with the lowest gross margin in USD (the largest
losses first), customers with cost and no revenue included.

The worst case of a rate card, per action (`card_ratios`): every distinct way a request can
be priced — each reachable rule with each set of multipliers that can apply together
(`pricing.dimension_combinations`) — is priced, rounded as a charge would be, at probe
quantities: the reference request (by default 1,000 input and 500 output tokens, and 1,000 of
any other quantity the rule prices; cache reads and writes 0) and each quantity alone at its
reference amount (cache reads and writes: 1,000), so that a flat price or a minimum cannot
hide a quantity priced below cost. The worst case is the lowest credit-to-cost ratio found;
a quantity the card prices at 0 that costs something is a ratio of 0 and a loss.

What-if: every vendor cost scaled by (1 + change), default +20%; actions and customers whose
margin then falls below the target (default 0.5) are listed, and so are card actions whose
worst-case list-price margin (1 - 1/ratio) does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any, Literal, TypeVar

from creditgate.domain.amounts import Asset
from creditgate.domain.errors import InvalidInput
from creditgate.domain.margin import (
    ZERO,
    MarginTotals,
    below_target,
    case_figures,
    changed_cost,
    changed_vendor_price,
    spread,
)

# The arithmetic the reports' readers (the CLI, the dashboard) also use, re-exported.
from creditgate.domain.margin import credit_to_cost as credit_to_cost
from creditgate.domain.margin import is_loss as is_loss
from creditgate.domain.margin import list_margin as list_margin
from creditgate.domain.margin import margin_rate as margin_rate
from creditgate.domain.pricing import (
    LLM_QUANTITIES,
    PriceRule,
    RateCard,
    TokenPrices,
    dimension_combinations,
)
from creditgate.domain.pricing_errors import NoPrice
from creditgate.services.context import Tx
from creditgate.services.pricing import rate_cards, vendor_cost
from creditgate.services.results import DecimalString, Result
from creditgate.storage import reports

GroupBy = Literal["action", "model", "customer", "member", "day"]
GROUPINGS: tuple[GroupBy, ...] = ("action", "model", "customer", "member", "day")

DEFAULT_CHANGE = Decimal("0.2")
DEFAULT_TARGET = Decimal("0.5")
DEFAULT_WORST = 10
MAX_WORST = 1_000

REFERENCE_REQUEST: Mapping[str, Decimal] = {
    "input_tokens": Decimal(1_000),
    "output_tokens": Decimal(500),
    "cached_tokens": ZERO,
    "cache_write_tokens": ZERO,
}
REFERENCE_AMOUNT = Decimal(1_000)


class Shortfall(Result):
    """Usage settled past what the wallet's policy let it pay, and so not charged."""

    charges: int  # charges that could not charge all their usage
    amount: int  # minor units of the asset
    credits: DecimalString  # units of the asset
    value: DecimalString | None  # credits * credit_value_usd: revenue lost at the list price


class MarginRow(Result):
    key: str | None  # the action, model, customer, member or day (None: not recorded)
    # by member: the member's customer (member ids are unique within a customer only)
    customer: str | None = None
    charges: int
    amount: int  # minor units of the asset
    credits: DecimalString  # units of the asset
    revenue: DecimalString
    vendor_cost: DecimalString
    cost_unknown: int  # charges without a known vendor cost, left out of vendor_cost
    gross_margin: DecimalString
    margin: DecimalString | None  # gross_margin / revenue; None without revenue
    loss: bool  # vendor cost above revenue (with no revenue: any cost)
    list_value: DecimalString | None  # credits * credit_value_usd
    credit_to_cost: DecimalString | None  # list_value / vendor_cost
    shortfall: Shortfall


class MarginReport(Result):
    asset: str
    start: datetime
    end: datetime
    by: str
    credit_value_usd: DecimalString | None
    rows: list[MarginRow]
    total: MarginRow


class MarginDistribution(Result):
    customers: int
    with_revenue: int
    median: DecimalString | None
    p10: DecimalString | None
    p90: DecimalString | None
    worst: list[MarginRow]


class RatioCase(Result):
    dimensions: dict[str, str]
    rule: int
    multipliers: list[int]
    quantities: dict[str, DecimalString]
    units: DecimalString  # the exact price, in units of the asset
    credits: DecimalString  # as charged: rounded to the asset's scale by the card's rounding
    list_value: DecimalString
    vendor_cost: DecimalString | None
    ratio: DecimalString | None
    # (list_value - vendor_cost) / list_value: the margin at the list price; None when the
    # list value is 0 (with a cost, a loss)
    list_margin: DecimalString | None
    loss: bool  # the vendor cost is above the list value
    reason: str | None  # why there is no ratio


class ActionRatio(Result):
    action: str
    worst: RatioCase | None  # the lowest ratio among cases with a known, non-zero cost
    cases: list[RatioCase]
    complete: bool  # False if there were too many combinations to try them all


class CardRatios(Result):
    asset: str
    credit_value_usd: DecimalString
    actions: list[ActionRatio]


class WhatIfRow(Result):
    key: str | None
    revenue: DecimalString
    vendor_cost: DecimalString  # after the change
    gross_margin: DecimalString
    margin: DecimalString | None
    margin_before: DecimalString | None
    loss: bool  # after the change


class WhatIfCardAction(Result):
    action: str
    ratio: DecimalString  # the worst case, with vendor costs changed
    list_margin: DecimalString | None  # None: the list value is 0, a loss
    loss: bool


class WhatIf(Result):
    change: DecimalString
    target: DecimalString
    actions: list[WhatIfRow]  # below the target after the change
    customers: list[WhatIfRow]
    card_actions: list[WhatIfCardAction]


class FullMarginReport(Result):
    report: MarginReport
    customers: MarginDistribution
    card: CardRatios | None
    what_if: WhatIf


# Aggregation


K = TypeVar("K")

# A group's key: the action, model, customer or day; by member, the customer and the member
# (None: a charge that named no member).
GroupKey = str | tuple[str, str] | None


@dataclass
class _Charges:
    groups: dict[GroupKey, MarginTotals]
    actions: dict[str | None, MarginTotals]
    customers: dict[str | None, MarginTotals]
    total: MarginTotals


@dataclass(frozen=True, slots=True)
class MarginRequest:
    """What a margin report covers: the charges created in [start, end) in `asset` (None:
    the card's asset, else credits), grouped `by`; the `worst` customers; and the what-if
    of vendor prices changed by `change` against the `target` margin."""

    start: datetime
    end: datetime
    by: str = "action"
    asset: str | None = None
    worst: int = DEFAULT_WORST
    change: Decimal = DEFAULT_CHANGE
    target: Decimal = DEFAULT_TARGET


def _row(
    key: GroupKey, totals: MarginTotals, asset: Asset, credit_value: Decimal | None
) -> MarginRow:
    credits = asset.to_units(totals.amount)
    gross = totals.gross_margin
    list_value = None if credit_value is None else credits * credit_value
    customer, key = key if isinstance(key, tuple) else (None, key)
    return MarginRow(
        key=key,
        customer=customer,
        charges=totals.charges,
        amount=totals.amount,
        credits=credits,
        revenue=totals.revenue,
        vendor_cost=totals.vendor_cost,
        cost_unknown=totals.cost_unknown,
        gross_margin=gross,
        margin=margin_rate(totals.revenue, totals.vendor_cost),
        loss=is_loss(totals.revenue, totals.vendor_cost),
        list_value=list_value,
        credit_to_cost=None
        if list_value is None
        else credit_to_cost(list_value, totals.vendor_cost),
        shortfall=_shortfall(totals, asset, credit_value),
    )


def _shortfall(totals: MarginTotals, asset: Asset, credit_value: Decimal | None) -> Shortfall:
    credits = asset.to_units(totals.shortfall)
    return Shortfall(
        charges=totals.shortfall_charges,
        amount=totals.shortfall,
        credits=credits,
        value=None if credit_value is None else credits * credit_value,
    )


def _check_period(start: object, end: object) -> tuple[datetime, datetime]:
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidInput(f"{name} must be a timezone-aware timestamp", field=name)
    assert isinstance(start, datetime) and isinstance(end, datetime)
    if not start < end:
        raise InvalidInput("start must be before end", field="start")
    return start, end


def _check_by(by: object) -> GroupBy:
    for grouping in GROUPINGS:
        if by == grouping:
            return grouping
    raise InvalidInput(f"by must be one of {', '.join(GROUPINGS)}", field="by")


def _load(tx: Tx, start: datetime, end: datetime, asset: str, by: GroupBy) -> _Charges:
    loaded = _Charges({}, {}, {}, MarginTotals())

    def add(bucket: dict[K, MarginTotals], key: K, row: Any) -> None:
        totals = bucket.get(key)
        if totals is None:
            totals = bucket[key] = MarginTotals()
        totals.add(row.amount, row.revenue, row.vendor_cost, row.shortfall)

    with localcontext() as ctx:
        ctx.prec = 100  # sums of NUMERIC(38, 18) values stay exact
        for row in reports.charges_in_period(tx.conn, tx.tenant_id, asset, start, end):
            add(loaded.groups, _key(row, by), row)
            add(loaded.actions, row.action, row)
            add(loaded.customers, row.customer, row)
            loaded.total.add(row.amount, row.revenue, row.vendor_cost, row.shortfall)
    return loaded


def _key(row: Any, by: GroupBy) -> GroupKey:
    if by == "day":
        return str(row.created_at.date().isoformat())
    if by == "member":
        return None if row.member is None else (row.customer, row.member)
    key: str | None = getattr(row, by)
    return key


def _sorted_keys(keys: Iterable[GroupKey]) -> list[GroupKey]:
    def order(k: GroupKey) -> tuple[bool, str, str]:
        if isinstance(k, tuple):
            return (False, *k)
        return (k is None, k or "", "")

    return sorted(keys, key=order)


def _report(
    loaded: _Charges,
    asset: Asset,
    start: datetime,
    end: datetime,
    by: GroupBy,
    credit_value: Decimal | None,
) -> MarginReport:
    return MarginReport(
        asset=asset.code,
        start=start,
        end=end,
        by=by,
        credit_value_usd=credit_value,
        rows=[
            _row(key, loaded.groups[key], asset, credit_value)
            for key in _sorted_keys(loaded.groups)
        ],
        total=_row(None, loaded.total, asset, credit_value),
    )


def _distribution(loaded: _Charges, asset: Asset, worst: int) -> MarginDistribution:
    rows = [_row(key, totals, asset, None) for key, totals in loaded.customers.items()]
    # From each customer's exact margin, rounded once at the end like every ratio.
    spread_of = spread(list(loaded.customers.values()))
    ranked = sorted(rows, key=lambda r: (r.gross_margin, r.margin is not None, r.margin or 0))
    return MarginDistribution(
        customers=len(rows),
        with_revenue=spread_of.count,
        median=spread_of.median,
        p10=spread_of.p10,
        p90=spread_of.p90,
        worst=ranked[:worst],
    )


def _what_if_rows(
    groups: Mapping[str | None, MarginTotals], change: Decimal, target: Decimal
) -> list[WhatIfRow]:
    below: list[WhatIfRow] = []
    for key in sorted(groups, key=lambda k: (k is None, k or "")):
        totals = groups[key]
        cost = changed_cost(totals.vendor_cost, change)
        gross = totals.revenue - cost
        margin = margin_rate(totals.revenue, cost)
        if below_target(margin, cost, target):
            below.append(
                WhatIfRow(
                    key=key,
                    revenue=totals.revenue,
                    vendor_cost=cost,
                    gross_margin=gross,
                    margin=margin,
                    margin_before=margin_rate(totals.revenue, totals.vendor_cost),
                    loss=is_loss(totals.revenue, cost),
                )
            )
    return below


def _what_if(
    loaded: _Charges, change: Decimal, target: Decimal, card_after: CardRatios | None
) -> WhatIf:
    card_actions: list[WhatIfCardAction] = []
    for action in card_after.actions if card_after is not None else []:
        worst = action.worst
        if worst is None or worst.ratio is None:
            continue
        below = worst.list_margin < target if worst.list_margin is not None else worst.loss
        if below:
            card_actions.append(
                WhatIfCardAction(
                    action=action.action,
                    ratio=worst.ratio,
                    list_margin=worst.list_margin,
                    loss=worst.loss,
                )
            )
    return WhatIf(
        change=change,
        target=target,
        actions=_what_if_rows(loaded.actions, change, target),
        customers=_what_if_rows(loaded.customers, change, target),
        card_actions=card_actions,
    )


def _check_options(change: object, target: object, worst: object) -> tuple[Decimal, Decimal, int]:
    for name, value in (("change", change), ("target", target)):
        if not isinstance(value, Decimal) or not value.is_finite():
            raise InvalidInput(f"{name} must be a finite Decimal", field=name)
    assert isinstance(change, Decimal) and isinstance(target, Decimal)
    if change <= -1:
        raise InvalidInput(
            "change must be above -1 (a price cannot fall below zero)", field="change"
        )
    if isinstance(worst, bool) or not isinstance(worst, int) or not 1 <= worst <= MAX_WORST:
        raise InvalidInput(f"worst must be a whole number from 1 to {MAX_WORST}", field="worst")
    return change, target, worst


# Reports


def margin_by(
    tx: Tx,
    *,
    start: datetime,
    end: datetime,
    by: str = "action",
    asset: str = "credits",
    credit_value_usd: Decimal | None = None,
) -> MarginReport:
    """Credits, revenue, vendor cost and margin of the period's charges, per group."""
    start, end = _check_period(start, end)
    grouping = _check_by(by)
    found = tx.asset(asset)
    return _report(
        _load(tx, start, end, found.code, grouping), found, start, end, grouping, credit_value_usd
    )


def customer_margins(
    tx: Tx,
    *,
    start: datetime,
    end: datetime,
    asset: str = "credits",
    worst: int = DEFAULT_WORST,
) -> MarginDistribution:
    """How margin is spread across customers, and the customers losing the most."""
    start, end = _check_period(start, end)
    _, _, worst = _check_options(DEFAULT_CHANGE, DEFAULT_TARGET, worst)
    found = tx.asset(asset)
    return _distribution(_load(tx, start, end, found.code, "customer"), found, worst)


def what_if(
    tx: Tx,
    *,
    start: datetime,
    end: datetime,
    asset: str = "credits",
    change: Decimal = DEFAULT_CHANGE,
    target: Decimal = DEFAULT_TARGET,
    card: RateCard | None = None,
    model_prices: Mapping[str, TokenPrices] | None = None,
) -> WhatIf:
    """With vendor prices changed by `change`, what falls below the `target` margin."""
    start, end = _check_period(start, end)
    change, target, _ = _check_options(change, target, DEFAULT_WORST)
    found = tx.asset(asset)
    after = (
        None
        if card is None
        else card_ratios(tx, card=card, model_prices=model_prices, change=change)
    )
    return _what_if(_load(tx, start, end, found.code, "action"), change, target, after)


def margin_report(
    tx: Tx,
    *,
    request: MarginRequest,
    card: RateCard | None = None,
    model_prices: Mapping[str, TokenPrices] | None = None,
) -> FullMarginReport:
    """Every margin report at once, from one read of the period's charges (asset None is
    credits).

    With a card (in the report's asset) that has a credit_value_usd: list values and ratios,
    and the card's worst cases, also in the what-if.
    """
    start, end = _check_period(request.start, request.end)
    grouping = _check_by(request.by)
    change, target, worst = _check_options(request.change, request.target, request.worst)
    asset = request.asset or "credits"
    found = tx.asset(asset)
    if card is not None and card.asset != found.code:
        raise InvalidInput(f"the rate card prices {card.asset!r}, not {asset!r}", field="asset")
    ratios = after = None
    if card is not None and card.credit_value_usd is not None:
        ratios = card_ratios(tx, card=card, model_prices=model_prices)
        after = card_ratios(tx, card=card, model_prices=model_prices, change=change)
    credit_value = None if card is None else card.credit_value_usd
    loaded = _load(tx, start, end, found.code, grouping)
    return FullMarginReport(
        report=_report(loaded, found, start, end, grouping, credit_value),
        customers=_distribution(loaded, found, worst),
        card=ratios,
        what_if=_what_if(loaded, change, target, after),
    )


def tenant_margin_report(
    tx: Tx, *, request: MarginRequest, rate_card: str = rate_cards.DEFAULT_CARD
) -> FullMarginReport:
    """margin_report with the tenant's card in effect at the end of the period, if any, and
    its model prices; the request's asset defaults to the card's (else credits)."""
    _, end = _check_period(request.start, request.end)
    try:
        card: RateCard | None = rate_cards.in_effect(
            tx, rate_card, end - timedelta(microseconds=1)
        ).spec
    except NoPrice:
        card = None
    code = request.asset or (card.asset if card is not None else "credits")
    if card is not None and card.asset != code:
        card = None  # the card prices another asset: report without it
    return margin_report(
        tx,
        request=replace(request, asset=code),
        card=card,
        model_prices=rate_cards.model_prices(tx),
    )


# The rate card's worst case


def _rule_quantities(rule: PriceRule) -> list[str]:
    names = list(rule.per_unit)
    if rule.vendor is not None:
        names += [name for name in rule.vendor.per_unit if name not in names]
        if rule.vendor.llm is not None:
            names += [name for name in LLM_QUANTITIES if name not in names]
    return names


def _probes(rule: PriceRule, reference: Mapping[str, Decimal]) -> list[dict[str, Decimal]]:
    names = _rule_quantities(rule)
    request = {
        name: amount for name in names if (amount := reference.get(name, REFERENCE_AMOUNT)) > 0
    }
    probes = [request]
    for name in names:
        alone = {name: reference.get(name) or REFERENCE_AMOUNT}
        if alone not in probes:
            probes.append(alone)
    return probes


@dataclass(frozen=True, slots=True)
class _Pricing:
    """What pricing a probe of a card needs: the card, its asset and credit value, the
    model prices, the vendor price change, and the moment."""

    card: RateCard
    asset: Asset
    credit_value: Decimal
    model_prices: Mapping[str, TokenPrices] | None
    change: Decimal
    at: datetime


def card_ratios(
    tx: Tx,
    *,
    card: RateCard,
    reference: Mapping[str, Decimal] | None = None,
    model_prices: Mapping[str, TokenPrices] | None = None,
    change: Decimal = ZERO,
) -> CardRatios:
    """Per action, the worst credit-to-cost ratio over its price combinations (see above).

    With `change`, every vendor cost is first scaled by (1 + change); a rule priced from
    vendor cost then charges more too.
    """
    if card.credit_value_usd is None:
        raise InvalidInput(
            "the rate card has no credit_value_usd to value credits at", field="credit_value_usd"
        )
    credit_value = card.credit_value_usd
    pricing = _Pricing(card, tx.asset(card.asset), credit_value, model_prices, change, tx.now)
    amounts = {**REFERENCE_REQUEST, **(reference or {})}
    actions: list[ActionRatio] = []
    for name, prices in card.actions.items():
        combinations, complete = dimension_combinations(prices)
        cases = [
            _case(pricing, name, dims, quantities)
            for dims in combinations
            for quantities in _probes(prices.rule_for(dims), amounts)
        ]
        known = [case for case in cases if case.ratio is not None]
        actions.append(
            ActionRatio(
                action=name,
                worst=min(known, key=lambda c: c.ratio or ZERO) if known else None,
                cases=cases,
                complete=complete,
            )
        )
    return CardRatios(asset=card.asset, credit_value_usd=credit_value, actions=actions)


def _case(
    pricing: _Pricing, action: str, dims: dict[str, str], quantities: dict[str, Decimal]
) -> RatioCase:
    card, asset = pricing.card, pricing.asset
    try:
        quote = vendor_cost.quote(
            card,
            action,
            dims,
            quantities,
            asset=asset,
            model_prices=pricing.model_prices,
            at=pricing.at,
        )
        if pricing.change and quote.vendor_cost is not None and quote.vendor_cost.usd is not None:
            changed = changed_vendor_price(quote.vendor_cost.usd, pricing.change)
            quote = vendor_cost.quote(
                card, action, dims, quantities, asset=asset, vendor_cost_usd=changed
            )
    except NoPrice as exc:  # priced from a vendor cost nobody knows
        return _unpriced_case(card.actions[action].rule_for(dims), dims, quantities, exc.message)
    credits = asset.to_units(quote.amount)
    cost = quote.vendor_cost.usd if quote.vendor_cost is not None else None
    unknown = quote.vendor_cost.reason if quote.vendor_cost is not None else "no vendor cost"
    figures = case_figures(credits, pricing.credit_value, cost, unknown)
    return RatioCase(
        dimensions=dims,
        rule=quote.rule,
        multipliers=[m.index for m in quote.multipliers],
        quantities=quantities,
        units=quote.units,
        credits=credits,
        list_value=figures.list_value,
        vendor_cost=cost,
        ratio=figures.ratio,
        list_margin=figures.list_margin,
        loss=figures.loss,
        reason=figures.reason,
    )


def _unpriced_case(
    rule: PriceRule, dims: dict[str, str], quantities: dict[str, Decimal], reason: str
) -> RatioCase:
    return RatioCase(
        dimensions=dims,
        rule=rule.index,
        multipliers=[],
        quantities=quantities,
        units=ZERO,
        credits=ZERO,
        list_value=ZERO,
        vendor_cost=None,
        ratio=None,
        list_margin=None,
        loss=False,
        reason=reason,
    )
