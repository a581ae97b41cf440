"""Billing rules without I/O: periods from an anchor, unit value, rollover, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from creditgate.domain.amounts import Asset
from creditgate.domain.billing import (
    Period,
    add_months,
    backoff,
    month_of,
    period_bounds,
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
