"""Periods from an anchor: every moment falls in exactly one, and they tile time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditgate.domain.errors import InvalidInput
from creditgate.domain.periods import (
    CALENDAR,
    TOTAL_START,
    Period,
    Span,
    add_months,
    check_anchor,
    check_period,
    span,
)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_calendar_periods_are_utc_days_monday_weeks_and_months_from_the_first() -> None:
    moment = at(2026, 3, 18, 15, 30)  # a Wednesday
    assert span(Period.DAY, CALENDAR, moment) == Span(at(2026, 3, 18), at(2026, 3, 19))
    assert span(Period.WEEK, CALENDAR, moment) == Span(at(2026, 3, 16), at(2026, 3, 23))
    assert span(Period.MONTH, CALENDAR, moment) == Span(at(2026, 3, 1), at(2026, 4, 1))
    assert span(Period.TOTAL, CALENDAR, moment) == Span(TOTAL_START, None)


def test_a_period_starts_at_its_boundary_and_the_moment_before_is_the_one_before() -> None:
    anchor = at(2026, 1, 10, 9)
    boundary = at(2026, 2, 10, 9)
    assert span(Period.MONTH, anchor, boundary).start == boundary
    just_before = boundary - timedelta(microseconds=1)
    assert span(Period.MONTH, anchor, just_before) == Span(at(2026, 1, 10, 9), boundary)


def test_months_from_the_31st_end_on_the_last_day_of_shorter_months() -> None:
    anchor = at(2026, 1, 31, 6)
    assert add_months(anchor, 1) == at(2026, 2, 28, 6)
    assert add_months(anchor, 2) == at(2026, 3, 31, 6)
    assert add_months(at(2024, 1, 31), 1) == at(2024, 2, 29)  # a leap year
    assert span(Period.MONTH, anchor, at(2026, 3, 5)) == Span(
        at(2026, 2, 28, 6), at(2026, 3, 31, 6)
    )


def test_an_anchor_in_the_future_counts_periods_back_from_it() -> None:
    anchor = at(2026, 6, 15)
    assert span(Period.WEEK, anchor, at(2026, 5, 31)) == Span(at(2026, 5, 25), at(2026, 6, 1))
    assert span(Period.MONTH, anchor, at(2026, 4, 20)) == Span(at(2026, 4, 15), at(2026, 5, 15))


moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(9990, 1, 1), timezones=st.just(UTC)
)


@given(
    period=st.sampled_from([Period.DAY, Period.WEEK, Period.MONTH]),
    anchor=moments,
    moment=moments,
)
def test_every_moment_is_in_its_period_and_the_next_one_starts_where_it_ends(
    period: Period, anchor: datetime, moment: datetime
) -> None:
    this = span(period, anchor, moment)
    assert this.end is not None
    assert this.start <= moment < this.end
    assert span(period, anchor, this.end).start == this.end
    assert span(period, anchor, this.start) == this


@pytest.mark.parametrize("value", ["hour", "", "Month", None, 3])
def test_an_unknown_period_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_period(value)
    assert caught.value.field == "period"


@pytest.mark.parametrize("value", [datetime(2026, 1, 1), "2026-01-01", at(1969, 12, 31)])
def test_an_anchor_must_be_an_aware_moment_in_range(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_anchor(value)
    assert caught.value.field == "anchor"
