"""The spend limit a hold counts against: reserved with the hold, spent by its settle, given
back by its void or expiry (`domain/spend_limits.py`, rows in `storage/spend_limits.py`).

A hold placed under a limit carries the limit's id and the start of the period it was opened
in; each step after the hold finds its period from those, whatever the time is then.
"""

from __future__ import annotations

from typing import Any

from creditgate.domain.periods import Period
from creditgate.domain.spend_limits import SpendLimit, current_period, most_chargeable, room
from creditgate.services.context import Tx
from creditgate.storage import spend_limits
from creditgate.storage.spend_limits import PeriodKey, PeriodRow

_PER = {
    Period.DAY: "today",
    Period.WEEK: "this week",
    Period.MONTH: "this month",
    Period.TOTAL: "in total",
}


def hold_fields(tx: Tx, limit: SpendLimit | None) -> dict[str, Any]:
    """The hold row's columns that tie it to `limit`'s current period (none without one)."""
    if limit is None:
        return {}
    return {"spend_limit_id": limit.id, "spend_period": current_period(limit.period, tx.now).start}


def _field(hold: Any, name: str) -> Any:
    """A column of a hold: a row, or the columns of one about to be written."""
    return hold.get(name) if isinstance(hold, dict) else getattr(hold, name, None)


def _key(tx: Tx, hold: Any) -> PeriodKey | None:
    """The period a hold counts in; None if it has no limit."""
    limit_id = _field(hold, "spend_limit_id")
    if limit_id is None:
        return None
    return PeriodKey(
        tx.tenant_id,
        _field(hold, "wallet_id"),
        limit_id,
        _field(hold, "spend_period"),
        _field(hold, "asset"),
    )


def reserve(tx: Tx, hold: dict[str, Any], limit: SpendLimit) -> PeriodRow | None:
    """Count the hold (its row) in its period now: the period as left, or None if the hold
    does not fit (nothing counted)."""
    key = _key(tx, hold)
    assert key is not None
    if hold["amount"] > limit.amount:
        return None  # never fits, whatever the period holds: no row needed to say so
    return spend_limits.reserve(tx.uow, key, hold["amount"], limit.amount)


def can_reserve_at_commit(hold: dict[str, Any], limit: SpendLimit) -> bool:
    """Whether the hold could fit the limit at all (a larger one is declined at once)."""
    return bool(hold["amount"] <= limit.amount)


def reserve_at_commit(tx: Tx, hold: dict[str, Any], limit: SpendLimit) -> None:
    """`reserve`, sent with the commit after the wallet's move, guarded: a hold that does not
    fit fails the commit, and the careful run declines it."""
    key = _key(tx, hold)
    assert key is not None
    spend_limits.reserve_at_commit(tx.uow, key, hold["amount"], limit.amount)


def refusal(tx: Tx, hold: dict[str, Any], limit: SpendLimit) -> str:
    """Why the hold did not fit, for a person: what the period has left of the limit."""
    key = _key(tx, hold)
    assert key is not None
    row = spend_limits.read(tx.uow, key)
    left = limit.amount if row is None else room(limit.amount, row.held, row.spent)
    per = _PER[limit.period]
    if limit.period is not Period.TOTAL:
        per += f" (since {key.period.date().isoformat()})"
    return (
        f"spend limit {limit.id} has {left} of {limit.amount} {limit.asset} left {per}; "
        f"the call needs {hold['amount']}"
    )


def most(tx: Tx, hold: Any) -> int | None:
    """The most a settle of `hold` may charge under its limit; None without one."""
    key = _key(tx, hold)
    if key is None:
        return None
    row = spend_limits.read(tx.uow, key)
    if row is None:  # cannot be while the hold is pending: its reserve made the row
        return int(hold.amount)
    return most_chargeable(hold.amount, row.cap, row.held, row.spent)


def spend(tx: Tx, hold: Any, charged: int) -> None:
    """A settled hold's credit leaves the period's held; its charge joins its spent."""
    key = _key(tx, hold)
    if key is not None:
        spend_limits.settle(tx.uow, key, hold.amount, charged)


def give_back(tx: Tx, hold: Any) -> None:
    """A voided or expired hold's credit leaves the period's held (or, before it is placed,
    one that another cap declined: the hold's row as about to be written)."""
    key = _key(tx, hold)
    if key is not None:
        spend_limits.release(tx.uow, key, _field(hold, "amount"))
