"""Spend limits: at most so much of one asset per period, counted over held and spent credit.

A spend limit (today: a customer gateway key's) caps what the holds placed under it may
reserve and their settles may charge, per period: a day, a week (Monday to Sunday) or a
month of the calendar in UTC, or in total (`current_period`, over `domain/periods.py`, the
periods budgets count in too). The period is derived from the time of the hold, so nothing
has to run when a period turns: the next hold simply counts in a new one. A hold counts in
the period it was opened, until it is settled (its charge is then spent in that period),
voided or expired (its credit is then given back to that period).

The rule, under concurrency, as for a wallet's floor: in every period, held + spent never
exceeds the limit's amount. A hold that would take it past is declined; a settle charges at
most the hold plus what the period has left (`most_chargeable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from creditgate.domain.amounts import check_amount
from creditgate.domain.errors import Forbidden
from creditgate.domain.periods import CALENDAR, Period, Span, span

# The reason an authorization declined by its spend limit gives (beside the wallet policy's).
SPEND_LIMIT_REACHED = "spend_limit_reached"


class SpendLimitAssetMismatch(Forbidden):
    """The call is priced in another asset than the spend limit it would count against."""

    code = "spend_limit_asset_mismatch"


def current_period(period: Period, at: datetime) -> Span:
    """The period of a limit that holds `at`: a calendar period in UTC (`periods.CALENDAR`:
    from midnight, from the Monday, from the 1st of the month), or a total's one period
    (`periods.TOTAL_START`, no end)."""
    return span(period, CALENDAR, at)


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
