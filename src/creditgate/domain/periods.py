"""Periods that reset by time: a day, a week or a month counted from an anchor, or a total.

A budget (or any limit per period) counts in the period that holds the moment of the call,
derived from the clock: nothing has to run when a period turns, the next call simply counts
in a new one. Periods are counted from their anchor both ways, so an anchor in the future
still gives every moment one period. Months keep the anchor's day of the month, or the last
day of a shorter month (an anchor on the 31st: the 28th or 29th of February, the 30th of
April), and its time of day.

`CALENDAR` is the anchor of calendar periods in UTC: days from midnight, weeks from Monday,
months from the 1st.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from creditgate.domain.errors import InvalidInput


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    TOTAL = "total"  # one period, for as long as what it counts lives


# A Monday, the 1st of a month, at midnight UTC: the anchor of calendar periods.
CALENDAR = datetime(2001, 1, 1, tzinfo=UTC)
# The start a `total` period is kept under (it has no start of its own).
TOTAL_START = datetime(1970, 1, 1, tzinfo=UTC)

_STEP = {Period.DAY: timedelta(days=1), Period.WEEK: timedelta(days=7)}


@dataclass(frozen=True, slots=True)
class Span:
    """One period: from `start` (inclusive) to `end` (exclusive); a total has no end."""

    start: datetime
    end: datetime | None


def check_period(value: object, field: str = "period") -> Period:
    try:
        return Period(value)  # type: ignore[arg-type]
    except ValueError:
        names = ", ".join(p.value for p in Period)
        raise InvalidInput(f"{field} must be one of {names}", field=field) from None


def check_anchor(value: object, field: str = "anchor") -> datetime:
    """An aware moment between the years 1970 and 9998, in UTC."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{field} must be a date and time with a time zone", field=field)
    anchor = value.astimezone(UTC)
    if not 1970 <= anchor.year <= 9998:
        raise InvalidInput(f"{field} must be between the years 1970 and 9998", field=field)
    return anchor


def add_months(anchor: datetime, months: int) -> datetime:
    """`anchor` moved by whole months, on its day of the month or the month's last day."""
    years, month0 = divmod(anchor.month - 1 + months, 12)
    year, month = anchor.year + years, month0 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def span(period: Period, anchor: datetime, at: datetime) -> Span:
    """The period counted from `anchor` that holds `at`."""
    if period is Period.TOTAL:
        return Span(TOTAL_START, None)
    if period is Period.MONTH:
        months = (at.year - anchor.year) * 12 + (at.month - anchor.month)
        while add_months(anchor, months) > at:
            months -= 1
        while add_months(anchor, months + 1) <= at:
            months += 1
        return Span(add_months(anchor, months), add_months(anchor, months + 1))
    step = _STEP[period]
    start = anchor + step * ((at - anchor) // step)
    return Span(start, start + step)
