"""Billing rules without I/O: periods from an anchor, unit value, rollover, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditgate.domain.amounts import Asset
from creditgate.domain.billing import (
    Period,
    add_months,
    backoff,
    month_of,
    overage_money,
    period_bounds,
    refunded_money,
    rollover,
    unit_value,
)

JAN_31 = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)


def test_months_are_added_with_the_day_clamped_to_the_month() -> None:
    assert add_months(JAN_31, 1) == datetime(2026, 2, 28, 9, 30, tzinfo=UTC)
    assert add_months(JAN_31, 13) == datetime(2027, 2, 28, 9, 30, tzinfo=UTC)
    assert add_months(datetime(2028, 1, 31, tzinfo=UTC), 1).day == 29  # leap year
    assert add_months(datetime(2026, 12, 15, tzinfo=UTC), 1) == datetime(2027, 1, 15, tzinfo=UTC)


def test_periods_are_counted_from_the_anchor_not_chained() -> None:
    # Feb 28 -> Mar 28 if chained; from the anchor it is back to the 31st.
    assert period_bounds(JAN_31, Period.MONTHLY, 1) == (
        datetime(2026, 2, 28, 9, 30, tzinfo=UTC),
        datetime(2026, 3, 31, 9, 30, tzinfo=UTC),
    )
    assert period_bounds(JAN_31, Period.YEARLY, 2)[0] == datetime(2028, 1, 31, 9, 30, tzinfo=UTC)


def test_unit_value_is_money_per_whole_unit() -> None:
    credits = Asset("credits", 2)
    assert unit_value(Decimal("20"), 100_000, credits) == Decimal("0.02")
    assert unit_value(Decimal("9.99"), 200_000, credits) == Decimal("0.004995")
    # Never more than 18 decimal places, rounded half to even.
    assert unit_value(Decimal("10"), 300, credits) == Decimal("3.333333333333333333")
    assert unit_value(Decimal("10"), 0, credits) == 0


def test_rollover_is_capped_and_never_negative() -> None:
    assert rollover(80, 30) == 30
    assert rollover(20, 30) == 20
    assert rollover(-5, 30) == 0
    assert rollover(50, 0) == 0


def test_backoff_doubles_up_to_a_day() -> None:
    assert backoff(0) == timedelta(0)
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (5, 10, 20)]
    assert backoff(50) == timedelta(hours=24)
    assert month_of(JAN_31) == "2026-01"


def test_refund_money_rounds_half_even_on_the_running_total() -> None:
    price = Decimal("10.00")
    totals = [refunded_money(price, 300, n, 2) for n in (0, 100, 200, 300)]
    assert totals == [Decimal("0.00"), Decimal("3.33"), Decimal("6.67"), Decimal("10.00")]
    assert refunded_money(Decimal("0.05"), 2, 1, 2) == Decimal("0.02")  # 0.025: to even
    assert refunded_money(Decimal("0.07"), 2, 1, 2) == Decimal("0.04")  # 0.035: to even
    assert refunded_money(Decimal("1000"), 3, 1, 0) == Decimal("333")  # JPY: no minor unit
    with pytest.raises(ValueError):
        refunded_money(price, 300, 301, 2)


@given(
    cents=st.integers(min_value=1, max_value=10**12),
    amount=st.integers(min_value=1, max_value=10**15),
    parts=st.lists(st.integers(min_value=1, max_value=10**15), min_size=1, max_size=8),
)
def test_refunds_in_parts_never_pay_more_than_the_price(
    cents: int, amount: int, parts: list[int]
) -> None:
    price = Decimal(cents).scaleb(-2)
    done = Decimal(0)
    refunded = 0
    for part in parts:
        refunded = min(amount, refunded + part)
        total = refunded_money(price, amount, refunded, 2)
        assert total >= done  # each refund pays zero or more
        done = total
    assert done <= price
    assert refunded_money(price, amount, amount, 2) == price


def test_overage_money_is_the_price_per_unit_rounded_once_half_to_even() -> None:
    credits = Asset("credits", 2)
    assert overage_money(Decimal("0.05"), 4_000, credits, 2) == Decimal("2.00")
    # 0.125 USD rounds to even (0.12); 0.135 to 0.14.
    assert overage_money(Decimal("0.05"), 250, credits, 2) == Decimal("0.12")
    assert overage_money(Decimal("0.05"), 270, credits, 2) == Decimal("0.14")
    assert overage_money(Decimal("0.003"), 1, credits, 2) == Decimal("0.00")  # waits for more
    assert overage_money(Decimal("7"), 3, Asset("gpu_minutes", 0), 0) == Decimal("21")
