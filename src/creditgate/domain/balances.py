"""A wallet's balance in one asset, and the rules a move of it follows.

Storage restates some of these rules in SQL, to check them against the row as it is at the
moment of the write (`storage.balances`); `tests/integration/test_sql_rules.py` pins each
SQL restatement to the function here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from creditgate.domain.amounts import (
    EXACT,
    MAX_BALANCE,
    MAX_WHOLE_DIGITS,
    fits_money,
    stored_money,
)
from creditgate.domain.errors import AmountOverflow, InvalidInput
from creditgate.domain.lots import Draw, LotBalance, plan_draws
from creditgate.domain.policy import WalletPolicy

# The most alert thresholds a wallet's balance takes in one asset.
MAX_BALANCE_THRESHOLDS = 10


@dataclass(frozen=True, slots=True)
class WalletBalance:
    """One wallet's balance row in one asset."""

    wallet_id: str
    asset: str
    posted: int
    held: int
    debt: int
    policy: WalletPolicy
    low_balance_alerted: bool
    top_up_threshold: int | None = None
    # Alert thresholds of `available` (`thresholds_crossed`), and whether the customer as a
    # whole has a budget in this asset (a call that has not read its budgets must then).
    thresholds: tuple[int, ...] = ()
    budgeted: bool = False

    @property
    def available(self) -> int:
        return self.posted - self.held


def low_balance_alert(policy: WalletPolicy, after: int, alerted: bool) -> tuple[bool, bool]:
    """Whether `balance.low` fires at `available` = `after` (once per downward crossing),
    and the wallet's new alert flag."""
    if policy.is_low(after):
        return (not alerted), True
    return False, False


def depletes(before: int, after: int) -> bool:
    """Whether a move from `available` = `before` to `after` raises `balance.depleted`."""
    return after <= 0 < before


def crosses(threshold: int | None, before: int, after: int) -> bool:
    """Whether a move from `available` = `before` to `after` crosses an auto top-up
    threshold (falling below it fires the top-up; rising to it re-arms it)."""
    return threshold is not None and (before >= threshold) != (after >= threshold)


def check_balance_thresholds(value: object, field: str = "thresholds") -> tuple[int, ...]:
    """Alert thresholds of a wallet's `available`: whole minor units within the balance
    range (below zero too, under overdraft), each once, in descending order."""
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidInput(f"{field} must be a list of amounts in minor units", field=field)
    if len(value) > MAX_BALANCE_THRESHOLDS:
        raise InvalidInput(
            f"{field} takes at most {MAX_BALANCE_THRESHOLDS} thresholds", field=field
        )
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or abs(item) > MAX_BALANCE:
            raise InvalidInput(
                f"{field} must be whole minor units from -{MAX_BALANCE} to {MAX_BALANCE}",
                field=field,
            )
    return tuple(sorted(set(value), reverse=True))


def thresholds_crossed(thresholds: Sequence[int], before: int, after: int) -> list[int]:
    """The thresholds a move from `available` = `before` to `after` falls below (from at or
    above): each raises `balance.threshold_crossed`. Rising back to one re-arms it, so the
    next fall raises it again. Movers of one balance row serialize on its lock, so each fall
    is seen by exactly one of them."""
    return [t for t in thresholds if before >= t > after]


def moves_quietly(balance: WalletBalance, change: int) -> bool:
    """Whether adding `change` to `available` needs nothing but the move itself: no balance
    event, no low-balance flag to flip, no auto top-up threshold crossed, no alert threshold
    fallen below. A move sent with the commit (which cannot react) is allowed only then.
    Without a low-balance threshold the flag is not looked at (it says nothing until a
    threshold is set)."""
    before = balance.available
    after = before + change
    fire, flag = low_balance_alert(balance.policy, after, balance.low_balance_alerted)
    flag_stays = balance.policy.low_balance_threshold is None or (
        flag == balance.low_balance_alerted
    )
    return (
        not depletes(before, after)
        and not fire
        and flag_stays
        and not crosses(balance.top_up_threshold, before, after)
        and not thresholds_crossed(balance.thresholds, before, after)
    )


@dataclass(frozen=True, slots=True)
class DebitAsk:
    """A debit asked of a wallet: up to `requested`, releasing `reserved` of its held credit.

    With `decline`, a wallet that cannot pay all of it, or cannot pay `least` (one minor
    unit for a priced call its card's rounding made 0), is declined and nothing is taken;
    without, what it cannot pay is a shortfall. `most` (what the caps the call counts
    against have left for it: its hard budgets, its spend limit; the smallest when several
    apply) caps the debit as the policy does: past it, a settle's usage is a shortfall too,
    and a charge with `decline` is declined."""

    requested: int
    reserved: int = 0
    least: int = 0
    decline: bool = False
    most: int | None = None


@dataclass(frozen=True, slots=True)
class DebitPlan:
    """What a debit takes: `debit` in all, `draws` from lots in burn order, `debt` beyond
    them (under overdraft or allow), and `shortfall`, what was asked but not taken."""

    debit: int
    draws: list[Draw]
    debt: int
    shortfall: int

    def revenue(self, scale: int) -> Decimal:
        """The money recognized by the draws: each drawn amount at its lot's cost basis, summed
        exactly and rounded once as stored (half to even, 18 places).

        Raises AmountOverflow (on `amount`) past what a charge stores, NUMERIC(38, 18): each
        lot's value is below 10^20 (`grants.check_lot_value`), but a debit drawing several
        can add up past it, and is refused on every backend before anything is written."""
        with localcontext(EXACT):
            total = sum(
                (Decimal(d.amount).scaleb(-scale) * d.cost_basis for d in self.draws), Decimal(0)
            )
        revenue = stored_money(total)
        if not fits_money(revenue):
            raise AmountOverflow(
                f"amount draws credit worth {revenue.normalize():f} at its lots' cost basis; a"
                f" charge records revenue below 10^{MAX_WHOLE_DIGITS}: charge or settle less at"
                " a time",
                field="amount",
            )
        return revenue


def plan_debit(
    ask: DebitAsk, balance: WalletBalance, lots: Sequence[LotBalance], now: datetime
) -> DebitPlan | None:
    """How a debit draws on a wallet, from its balance and open lots; None if declined.

    What the reservation covers is debited in full; anything past it only as far as the
    policy allows (`WalletPolicy.capacity`), the rest a shortfall. Lots are drawn in burn
    order; what they cannot cover becomes debt."""
    capacity = balance.policy.capacity(balance.available + ask.reserved)
    if ask.most is not None:
        capacity = min(capacity, ask.most)
    if ask.decline and max(ask.requested, ask.least) > capacity:
        return None
    debit = min(ask.requested, capacity)
    draws: list[Draw] = []
    debt = 0
    if debit:
        draws, debt = plan_draws(lots, debit, now)
    return DebitPlan(debit, draws, debt, ask.requested - debit)
