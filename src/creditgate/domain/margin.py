"""Margin arithmetic without I/O: sums of charges, margins, ratios and their spread.

Sums are exact; a ratio is computed from the exact sums and rounded once, half to even, to
6 decimal places. A margin without revenue is None (with a cost, a loss: `is_loss`), never
100%.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from creditgate.domain.amounts import quantized

ZERO = Decimal(0)
ONE = Decimal(1)
PLACES = Decimal("0.000001")


@dataclass
class MarginTotals:
    """What a group of charges adds up to."""

    charges: int = 0
    amount: int = 0  # minor units of the asset
    revenue: Decimal = ZERO
    vendor_cost: Decimal = ZERO  # over the charges whose cost is known
    cost_unknown: int = 0  # charges without a known vendor cost
    shortfall_charges: int = 0
    shortfall: int = 0  # minor units settled past the policy, not charged

    def add(
        self, amount: int, revenue: Decimal | None, cost: Decimal | None, shortfall: int = 0
    ) -> None:
        self.charges += 1
        self.amount += amount
        if shortfall:
            self.shortfall_charges += 1
            self.shortfall += shortfall
        if revenue is not None:
            self.revenue += revenue
        if cost is None:
            self.cost_unknown += 1
        else:
            self.vendor_cost += cost

    @property
    def gross_margin(self) -> Decimal:
        return self.revenue - self.vendor_cost


def exact_ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """numerator / denominator to 60 digits; None when the denominator is 0."""
    if not denominator:
        return None
    with localcontext() as ctx:
        ctx.prec = 60
        return numerator / denominator


def rounded(value: Decimal | None) -> Decimal | None:
    """A ratio as reported: rounded once, at the end, half to even to 6 places, however many
    whole digits it has (a card's list price can be many orders of magnitude above its
    vendor cost)."""
    if value is None:
        return None
    return quantized(value, PLACES)


def margin_rate(revenue: Decimal, vendor_cost: Decimal) -> Decimal | None:
    """Gross margin as a fraction of revenue: $0.10 earned on $0.04 of cost is 0.6; None
    without revenue (with a cost, a loss: see `is_loss`)."""
    return rounded(exact_ratio(revenue - vendor_cost, revenue))


def is_loss(revenue: Decimal, vendor_cost: Decimal) -> bool:
    return vendor_cost > revenue


def credit_to_cost(list_value: Decimal, vendor_cost: Decimal) -> Decimal | None:
    """Credit value at list price per dollar of vendor cost: $0.10 on $0.04 is 2.5."""
    return rounded(exact_ratio(list_value, vendor_cost))


def list_margin(list_value: Decimal, vendor_cost: Decimal) -> Decimal | None:
    """The margin at list price, from the exact values: $0.10 of credit costing $0.04 is 0.6
    (a credit-to-cost ratio of 2.5). None when the list value is 0."""
    return margin_rate(list_value, vendor_cost)


def changed_cost(cost: Decimal, change: Decimal) -> Decimal:
    """A vendor cost after prices change by `change` (0.2 is +20%)."""
    return cost * (ONE + change)


def changed_vendor_price(cost: Decimal, change: Decimal) -> Decimal:
    """A vendor price changed by `change`, to 40 digits, as a rule priced from it is requoted."""
    with localcontext() as ctx:
        ctx.prec = 40
        return cost * (ONE + change)


def below_target(margin: Decimal | None, cost: Decimal, target: Decimal) -> bool:
    """A margin under the target; without revenue, any cost is below it."""
    if margin is None:
        return cost > 0
    return margin < target


def median(values: Sequence[Decimal]) -> Decimal | None:
    """The middle of sorted values; the mean of the two middle ones for an even count."""
    if not values:
        return None
    middle = len(values) // 2
    if len(values) % 2:
        return values[middle]
    return (values[middle - 1] + values[middle]) / 2


def nearest_rank(values: Sequence[Decimal], percent: int) -> Decimal | None:
    """The `percent`-th percentile of sorted values by nearest rank: the ⌈p·n⌉-th smallest."""
    if not values:
        return None
    rank = -(-percent * len(values) // 100)  # ceil(p·n / 100)
    return values[max(rank, 1) - 1]


@dataclass(frozen=True, slots=True)
class Spread:
    """How margins are spread: the median and the 10th and 90th percentiles, rounded once."""

    count: int
    median: Decimal | None
    p10: Decimal | None
    p90: Decimal | None


def spread(totals: Sequence[MarginTotals]) -> Spread:
    """The spread of the exact margins of the groups with revenue."""
    exact = (exact_ratio(t.gross_margin, t.revenue) for t in totals)
    margins = sorted(m for m in exact if m is not None)
    return Spread(
        count=len(margins),
        median=rounded(median(margins)),
        p10=rounded(nearest_rank(margins, 10)),
        p90=rounded(nearest_rank(margins, 90)),
    )


@dataclass(frozen=True, slots=True)
class CaseFigures:
    """A priced request at list price against its vendor cost."""

    list_value: Decimal
    ratio: Decimal | None
    list_margin: Decimal | None
    loss: bool
    reason: str | None  # why there is no ratio


def case_figures(
    credits: Decimal, credit_value: Decimal, cost: Decimal | None, no_cost_reason: str | None
) -> CaseFigures:
    """`credits` charged, valued at `credit_value` each, against `cost` (None: unknown, for
    `no_cost_reason`); a zero cost has no ratio."""
    value = credits * credit_value
    if cost is None:
        return CaseFigures(value, None, None, False, no_cost_reason)
    if not cost:
        return CaseFigures(value, None, None, is_loss(value, cost), "the vendor cost is zero")
    return CaseFigures(
        value,
        credit_to_cost(value, cost),
        list_margin(value, cost),
        is_loss(value, cost),
        None,
    )
