"""Spend limits: at most so much of one asset per period, counted over held and spent credit.

A spend limit (today: a customer gateway key's) caps what the holds placed under it may
reserve and their settles may charge, per period: a day, a week or a month of the calendar
in UTC, or in total. The period is derived from the time of the hold, so nothing has to run
when a period turns: the next hold simply counts in a new one. A hold counts in the period
it was opened, until it is settled (its charge is then spent in that period), voided or
expired (its credit is then given back to that period).

The rule, under concurrency, as for a wallet's floor: in every period, held + spent never
exceeds the limit's amount. A hold that would take it past is declined; a settle charges at
most the hold plus what the period has left (`most_chargeable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from creditgate.domain.amounts import check_amount
from creditgate.domain.errors import Forbidden, InvalidInput

# The reason an authorization declined by its spend limit gives (beside the wallet policy's).
SPEND_LIMIT_REACHED = "spend_limit_reached"


class SpendLimitAssetMismatch(Forbidden):
    """The call is priced in another asset than the spend limit it would count against."""

    code = "spend_limit_asset_mismatch"


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"  # Monday to Sunday
    MONTH = "month"
    TOTAL = "total"  # one period, for as long as the limit lives


# The start of the one period of a `total` limit.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


def check_period(value: object, field: str = "period") -> Period:
    try:
        return Period(value)  # type: ignore[arg-type]
    except ValueError:
        names = ", ".join(p.value for p in Period)
        raise InvalidInput(f"{field} must be one of {names}", field=field) from None


def period_start(period: Period, at: datetime) -> datetime:
    """When the period holding `at` began, in UTC: midnight, the Monday, the 1st of the month,
    or `BEGINNING` for a total."""
    at = at.astimezone(UTC)
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        return midnight
    if period is Period.WEEK:
        return midnight - timedelta(days=midnight.weekday())
    if period is Period.MONTH:
        return midnight.replace(day=1)
    return BEGINNING


def period_end(period: Period, start: datetime) -> datetime | None:
    """When the period that began at `start` ends (None: a total never does)."""
    if period is Period.DAY:
        return start + timedelta(days=1)
    if period is Period.WEEK:
        return start + timedelta(days=7)
    if period is Period.MONTH:
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return start.replace(year=year, month=month)
    return None


@dataclass(frozen=True, slots=True)
class SpendLimit:
    """At most `amount` (minor units of `asset`) per `period`, over the holds placed under
    the limit `id`."""

    id: str
    asset: str
    amount: int
    period: Period

    def __post_init__(self) -> None:
        check_amount(self.amount, "spend_limit.amount", allow_zero=True)


def room(amount: int, held: int, spent: int) -> int:
    """What a period with `held` and `spent` has left under a limit of `amount`."""
    return max(amount - held - spent, 0)


def fits(amount: int, held: int, spent: int, asked: int) -> bool:
    """Whether a hold of `asked` keeps held + spent within `amount` (storage restates it in
    SQL for the write: `storage.spend_limits.FITS`)."""
    return held + spent + asked <= amount


def most_chargeable(reserved: int, amount: int, held: int, spent: int) -> int:
    """The most a settle of a hold of `reserved` may charge: the hold, and what the period has
    left beyond it (`held` counts the hold itself)."""
    return reserved + room(amount, held, spent)
