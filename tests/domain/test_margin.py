"""Margin arithmetic: sums, margins and ratios rounded once, the spread, a priced case."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from creditgate.domain.margin import (
    MarginTotals,
    below_target,
    case_figures,
    changed_cost,
    changed_vendor_price,
    credit_to_cost,
    exact_ratio,
    is_loss,
    list_margin,
    margin_rate,
    median,
    nearest_rank,
    rounded,
    spread,
)

D = Decimal


def test_totals_sum_exactly_and_count_what_they_could_not_cost() -> None:
    totals = MarginTotals()
    totals.add(100, D("0.1"), D("0.04"))
    totals.add(2_000, D("2.000000000000000001"), None)
    totals.add(300, None, D("0.01"), shortfall=50)
    assert (totals.charges, totals.amount) == (3, 2_400)
    assert totals.revenue == D("2.100000000000000001")
    assert (totals.vendor_cost, totals.cost_unknown) == (D("0.05"), 1)
    assert (totals.shortfall_charges, totals.shortfall) == (1, 50)
    assert totals.gross_margin == D("2.050000000000000001")


def test_ten_cents_earned_on_four_cents_of_cost_is_60_percent_and_2_5x() -> None:
    assert margin_rate(D("0.10"), D("0.04")) == D("0.6")
    assert credit_to_cost(D("0.10"), D("0.04")) == D("2.5")
    assert list_margin(D("0.10"), D("0.04")) == D("0.6")
    assert not is_loss(D("0.10"), D("0.04"))


def test_without_revenue_a_margin_is_none_and_a_cost_is_a_loss_never_100_percent() -> None:
    assert margin_rate(D(0), D("0.04")) is None
    assert is_loss(D(0), D("0.04"))
    assert credit_to_cost(D("0.10"), D(0)) is None
    assert exact_ratio(D(1), D(0)) is None


def test_ratios_are_rounded_once_half_to_even_to_six_places() -> None:
    assert credit_to_cost(D("2.1"), D("0.34")) == D("6.176471")
    assert rounded(D("0.1234565")) == D("0.123456")
    assert rounded(D("0.1234575")) == D("0.123458")
    assert rounded(None) is None
    # 1 - 0.12/0.05 from the exact values: -1.4, not -1.399998 from a rounded ratio.
    assert list_margin(D("0.05"), D("0.12")) == D("-1.4")


def test_a_ratio_with_more_whole_digits_than_the_default_context_holds_is_still_rounded() -> None:
    # $10^8 of credit on $10^-18 of vendor cost: 27 whole digits and 6 places are 33 digits.
    assert credit_to_cost(D("1e8"), D("1e-18")) == D("1e26")
    assert str(rounded(D("12345678901234567890123.4567895"))) == "12345678901234567890123.456790"
    assert str(rounded(D("12345678901234567890123.4567885"))) == "12345678901234567890123.456788"


def test_a_change_in_vendor_prices_scales_the_cost() -> None:
    assert changed_cost(D("0.04"), D("0.2")) == D("0.048")
    assert changed_cost(D("0.04"), D("-0.5")) == D("0.02")
    assert changed_vendor_price(D("0.1"), D("0.2")) == D("0.12")


def test_below_target_counts_a_cost_without_revenue() -> None:
    assert below_target(D("0.49"), D(1), D("0.5"))
    assert not below_target(D("0.5"), D(1), D("0.5"))
    assert below_target(None, D("0.01"), D("0.5"))
    assert not below_target(None, D(0), D("0.5"))


def test_median_and_nearest_rank_percentiles() -> None:
    values = [D(n) for n in range(1, 11)]
    assert median(values) == D("5.5")
    assert median(values[:3]) == D(2)
    assert median([]) is None
    assert (nearest_rank(values, 10), nearest_rank(values, 90)) == (D(1), D(9))
    assert nearest_rank(values[:1], 10) == D(1)
    assert nearest_rank([], 90) is None


def test_the_spread_uses_exact_margins_and_rounds_once() -> None:
    def customer(revenue: str, cost: str) -> MarginTotals:
        totals = MarginTotals()
        totals.add(100, D(revenue), D(cost))
        return totals

    found = spread([customer("1", "0.8765436"), customer("1", "0.8765434"), customer("0", "0.5")])
    # The exact median 0.1234565, rounded half to even; the customer without revenue is
    # not in the spread.
    assert (found.count, found.median) == (2, D("0.123456"))
    assert (found.p10, found.p90) == (D("0.123456"), D("0.123457"))
    assert spread([]).median is None


def test_a_case_at_list_price_against_its_vendor_cost() -> None:
    priced = case_figures(D(1), D("0.10"), D("0.04"), "unused")
    assert (priced.list_value, priced.ratio, priced.list_margin) == (D("0.10"), D("2.5"), D("0.6"))
    assert (priced.loss, priced.reason) == (False, None)
    below_cost = case_figures(D(5), D("0.01"), D("0.12"), "unused")
    assert (below_cost.ratio, below_cost.list_margin, below_cost.loss) == (
        D("0.416667"),
        D("-1.4"),
        True,
    )
    unknown = case_figures(D(1), D("0.10"), None, "no vendor cost")
    assert (unknown.ratio, unknown.loss, unknown.reason) == (None, False, "no vendor cost")
    free = case_figures(D(1), D("0.10"), D(0), "unused")
    assert (free.ratio, free.loss, free.reason) == (None, False, "the vendor cost is zero")


@given(
    revenue=st.decimals(min_value=D("0.01"), max_value=D(10**6), places=6),
    cost=st.decimals(min_value=D(0), max_value=D(10**6), places=6),
)
def test_a_margin_is_a_loss_exactly_when_it_is_negative(revenue: Decimal, cost: Decimal) -> None:
    rate = margin_rate(revenue, cost)
    assert rate is not None
    assert is_loss(revenue, cost) == (cost > revenue)
    if is_loss(revenue, cost):
        assert rate <= 0
    else:
        assert rate >= 0
