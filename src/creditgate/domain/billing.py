"""Billing rules without I/O: plan periods, the value of included credit, rollover, backoff."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from enum import StrEnum

from creditgate.domain.amounts import ROUNDING, Asset, stored_money


class Period(StrEnum):
    MONTHLY = "monthly"
    YEARLY = "yearly"

    @property
    def months(self) -> int:
        return 1 if self is Period.MONTHLY else 12


def add_months(start: datetime, months: int) -> datetime:
    """The same day and time `months` later, clamped to the month's last day (Jan 31 -> Feb 28)."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def period_bounds(anchor: datetime, period: Period, n: int) -> tuple[datetime, datetime]:
    """Start and end of the n-th period counted from the anchor.

    Counted from the anchor rather than chained, so a period anchored on the 31st comes
    back to the 31st after a short month.
    """
    return add_months(anchor, n * period.months), add_months(anchor, (n + 1) * period.months)


def unit_value(money: Decimal, amount: int, asset: Asset) -> Decimal:
    """Money per whole unit of the asset (the cost basis) when `money` bought `amount`."""
    if amount <= 0:
        return Decimal(0)
    return stored_money(money / asset.to_units(amount))


def refunded_money(price: Decimal, amount: int, refunded: int, digits: int) -> Decimal:
    """The money paid back once `refunded` of a purchase's `amount` credits are refunded.

    price x refunded / amount, rounded half to even to the currency's minor unit (`digits`
    decimal places). Each refund pays the difference this makes to the running total, so
    refunding a purchase in parts adds up to what refunding it at once would, never more
    than was paid, and exactly the price once every credit is refunded.
    """
    if not 0 <= refunded <= amount or amount <= 0:
        raise ValueError(f"refunded {refunded} outside 0..{amount}")
    with localcontext() as ctx:
        ctx.prec = 60  # exact: only the final rounding happens
        exact = price * refunded / amount
        return exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUNDING)


def rollover(unused: int, cap: int) -> int:
    """What of a period's unused included credit carries into the next period."""
    return max(0, min(unused, cap))


def month_of(moment: datetime) -> str:
    """The calendar month (UTC) an auto top-up counts against its monthly limit."""
    return moment.strftime("%Y-%m")


BACKOFF_BASE = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=24)


def backoff(failures: int) -> timedelta:
    """How long auto top-up waits after its n-th failure in a row: doubling, capped at a day."""
    if failures <= 0:
        return timedelta(0)
    wait: timedelta = BACKOFF_BASE * (1 << min(failures - 1, 20))
    return min(BACKOFF_MAX, wait)


def overage_money(price: Decimal, debt: int, asset: Asset, digits: int) -> Decimal:
    """What a debt of `debt` minor units of an asset costs at `price` per whole unit,
    rounded once, half to even, to the currency's minor unit (`digits` decimal places)."""
    with localcontext() as ctx:
        ctx.prec = 60  # exact: only the final rounding happens
        exact = price * asset.to_units(debt)
        return exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUNDING)
