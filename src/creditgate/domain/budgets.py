"""Members of an organization and budgets: how much of one asset a member (or the whole
customer) may use per period, and the alerts along the way.

A budget counts what the holds placed under it reserve (`held`) and what their settles and
one-step charges take (`spent`), per period (`domain/periods.py`). Under a `hard` budget
held + spent never passes its amount, under concurrency, as `available` never passes the
policy's floor: a hold that would take it past is declined, a settle charges at most what
the period has left beyond its hold (the rest is a shortfall). A `soft` budget lets the call
through and raises its alerts.

A hold counts in the period it was opened, until it is settled (its charge is then spent in
that period), voided or expired (given back to that period); a refund gives back to the
period its charge was spent in.

Alerts: each threshold, a percentage of the amount, raises one event the first time held +
spent reaches it in a period. Going back under it (a void, a refund) and over again in the
same period raises nothing more; the next period starts with no threshold crossed. 100 is
always a threshold.

Storage restates `fits`, `settle_fits` and `quiet` in SQL for the writes (`storage/budgets.py`);
`tests/integration/test_sql_rules.py` pins them to the functions here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from creditgate.domain.amounts import MAX_BALANCE, check_amount
from creditgate.domain.errors import Conflict, InvalidInput, NotFound
from creditgate.domain.periods import Period, Span, span


class BudgetMode(StrEnum):
    HARD = "hard"  # decline past the amount
    SOFT = "soft"  # let the call through, raise the alerts


class MemberStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"  # set by the tenant; may be made active again
    REMOVED = "removed"  # final: the id stays taken, its history stays


class BudgetDecline(StrEnum):
    """Why a call naming a member is declined, besides the wallet policy's reasons."""

    MEMBER_INACTIVE = "member_inactive"
    MEMBER_REMOVED = "member_removed"
    BUDGET_EXCEEDED = "budget_exceeded"


class UnknownMember(NotFound):
    code = "unknown_member"


class UnknownBudget(NotFound):
    code = "unknown_budget"


class MemberRemoved(Conflict):
    """A removed member cannot be changed or given a budget."""

    code = "member_removed"


MAX_THRESHOLDS = 10
# Percentages a threshold may be: a soft budget may be used past its amount.
MAX_PERCENT = 1_000
FULL = 100


def check_mode(value: object, field: str = "mode") -> BudgetMode:
    try:
        return BudgetMode(value)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidInput(f"{field} must be hard or soft", field=field) from None


def check_budget_amount(value: object, field: str = "amount") -> int:
    amount = check_amount(value, field)
    if amount > MAX_BALANCE:
        raise InvalidInput(f"{field} must be at most {MAX_BALANCE}", field=field)
    return amount


def check_thresholds(value: object, mode: BudgetMode, field: str = "thresholds") -> tuple[int, ...]:
    """Percentages of the amount, each once, ascending: 1-100 under a hard budget (it never
    passes 100), 1-1000 under a soft one."""
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidInput(f"{field} must be a list of percentages", field=field)
    if len(value) > MAX_THRESHOLDS:
        raise InvalidInput(f"{field} takes at most {MAX_THRESHOLDS} thresholds", field=field)
    top = FULL if mode is BudgetMode.HARD else MAX_PERCENT
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= top:
            raise InvalidInput(
                f"{field} must be whole percentages from 1 to {top} under a {mode.value} budget",
                field=field,
            )
    return tuple(sorted(set(value)))


@dataclass(frozen=True, slots=True)
class Budget:
    """At most `amount` (minor units of `asset`) per `period` counted from `anchor`, for a
    member (`member`: its external id) or the whole customer (`member` None)."""

    id: str
    member: str | None
    asset: str
    amount: int
    period: Period
    anchor: datetime
    mode: BudgetMode
    thresholds: tuple[int, ...] = ()

    def span(self, at: datetime) -> Span:
        return span(self.period, self.anchor, at)

    @property
    def cap(self) -> int | None:
        """The most held + spent may reach in a period; None: no cap (soft)."""
        return self.amount if self.mode is BudgetMode.HARD else None

    def levels(self) -> list[tuple[int, int]]:
        """Each threshold (a percentage, 100 included) with the held + spent that reaches it:
        the least `used` with used * 100 >= percent * amount."""
        percents = sorted({*self.thresholds, FULL})
        return [(p, -(-p * self.amount // FULL)) for p in percents]


def fits(cap: int | None, held: int, spent: int, asked: int) -> bool:
    """Whether `asked` more keeps held + spent within `cap` (None: always)."""
    return cap is None or held + spent + asked <= cap


def settle_fits(cap: int | None, held: int, spent: int, released: int, charged: int) -> bool:
    """Whether a settle that releases its hold's `released` and charges `charged` keeps the
    period within `cap`: always when it charges no more than it held (held + spent only
    goes down), else as a reservation of the difference would."""
    return charged <= released or fits(cap, held - released, spent, charged)


def room(cap: int, held: int, spent: int) -> int:
    """What a period with `held` and `spent` has left under `cap`."""
    return max(cap - held - spent, 0)


def most_chargeable(reserved: int, cap: int, held: int, spent: int) -> int:
    """The most a settle of a hold of `reserved` may charge under a cap: the hold, and what
    the period has left beyond it (`held` counts the hold itself)."""
    return reserved + room(cap, held, spent)


def crossed(levels: Sequence[tuple[int, int]], alerted: int, used: int) -> list[int]:
    """The thresholds (percentages) a period whose highest alerted threshold is `alerted`
    crosses when held + spent becomes `used`: each once per period."""
    return [percent for percent, reached_at in levels if percent > alerted and used >= reached_at]


def quiet(levels: Sequence[tuple[int, int]], alerted: int, used: int) -> bool:
    """Whether held + spent becoming `used` raises no alert: a write sent with the commit,
    which cannot raise one, is allowed only then."""
    return not crossed(levels, alerted, used)
