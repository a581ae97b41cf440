"""The budgets a hold or charge counts against: read with the call, added to with the
balance's move, settled, given back (`domain/budgets.py`; rows in `storage/budgets.py`).

A call that names a member reads the member and its budgets (its own and the customer's) in
the pipeline of its first reads. A call that names none counts against the customer's own
budget only: it reads it when the balance row says there is one (`WalletBalance.budgeted`);
sent with the commit, its balance move misses when there is one, and the careful run reads.

A hold or charge records the budgets it counted against, with the start of each one's period
(`recorded`), so each later step finds the period it counts in whatever the time is then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from creditgate.domain.budgets import (
    Budget,
    BudgetDecline,
    UnknownMember,
    crossed,
    most_chargeable,
    room,
)
from creditgate.domain.periods import Period
from creditgate.domain.webhooks import EventType
from creditgate.services.context import Tx
from creditgate.services.wallet import emit_once
from creditgate.storage import budgets as usage_rows
from creditgate.storage import members as member_rows
from creditgate.storage.budgets import PeriodKey, Usage
from creditgate.storage.members import budget_of
from creditgate.storage.prepared import Pending


@dataclass(frozen=True, slots=True)
class Scope:
    """What a call naming a member counts against: the member's refusal (inactive, removed)
    if any, and every budget that applies to it (its own and the customer's, any asset)."""

    member: str
    refusal: BudgetDecline | None
    budgets: tuple[Budget, ...]

    def applying(self, asset: str) -> list[Budget]:
        return [b for b in self.budgets if b.asset == asset]


@dataclass(slots=True)
class SentScope:
    """`read_scope` sent inside a caller's pipeline; `result()` once it is over."""

    tx: Tx
    wallet_id: str
    member: str
    rows: Pending

    def result(self) -> Scope:
        found = member_rows.scope_of(self.tx.uow, self.wallet_id, self.member, self.rows.rows())
        return _scope(self.member, found)


def _scope(member: str, found: list[Any]) -> Scope:
    if not found:
        raise UnknownMember(f"member {member!r} does not exist", field="member")
    first = found[0]
    if first.removed_at is not None:
        refusal: BudgetDecline | None = BudgetDecline.MEMBER_REMOVED
    elif not first.active:
        refusal = BudgetDecline.MEMBER_INACTIVE
    else:
        refusal = None
    budgets = tuple(budget_of(r, "b_") for r in found if r.b_id is not None)
    return Scope(member, refusal, budgets)


def submit_scope(tx: Tx, wallet_id: str, member: str) -> SentScope:
    return SentScope(tx, wallet_id, member, member_rows.submit_scope(tx.uow, wallet_id, member))


def known_scope(tx: Tx, wallet_id: str, member: str) -> Scope | None:
    """What a member counts against, if this transaction has read it already (an earlier
    call of a combined batch): no round trip."""
    found = member_rows.known_scope(tx.uow, wallet_id, member)
    return None if found is None else _scope(member, found)


def read_scope(tx: Tx, wallet_id: str, member: str) -> Scope:
    return submit_scope(tx, wallet_id, member).result()


def customer_budgets(tx: Tx, wallet_id: str, asset: str) -> list[Budget]:
    """The budget of the customer as a whole in `asset`, if it has one."""
    return [budget_of(r) for r in member_rows.customer_budgets(tx.uow, wallet_id, asset)]


@dataclass(frozen=True, slots=True)
class Counted:
    """A budget and the start of the period a call counts in."""

    budget: Budget
    start: datetime


def counted(budgets: Sequence[Budget], now: datetime) -> list[Counted]:
    return [Counted(b, b.span(now).start) for b in budgets]


def recorded(counts: Sequence[Counted]) -> list[list[str]] | None:
    """The hold's or charge's `budgets` column: [[budget id, ISO start of the period]]."""
    return [[c.budget.id, c.start.isoformat()] for c in counts] or None


def _parse(column: Any) -> list[tuple[str, datetime]]:
    return [(budget_id, datetime.fromisoformat(start)) for budget_id, start in column or ()]


def _key(tx: Tx, wallet_id: str, asset: str, budget_id: str, start: datetime) -> PeriodKey:
    return PeriodKey(tx.tenant_id, wallet_id, budget_id, start, asset)


def over_cap(counts: Sequence[Counted], amount: int) -> Counted | None:
    """A hard budget the amount is past whatever its period holds: declined with no write."""
    for c in counts:
        cap = c.budget.cap
        if cap is not None and amount > cap:
            return c
    return None


def can_add_at_commit(counts: Sequence[Counted], amount: int) -> bool:
    """Whether adding `amount` may go with the commit: it raises no alert in a new period (in
    one already under way, the guard checks the row)."""
    return all(not crossed(c.budget.levels(), 0, amount) for c in counts)


def add_at_commit(
    tx: Tx, wallet_id: str, counts: Sequence[Counted], *, held: int = 0, spent: int = 0
) -> None:
    """Count a hold (`held`) or a charge (`spent`) in each budget's period, with the commit
    after the balance's move, guarded: past a hard cap, or raising an alert, it misses and
    the call runs again carefully."""
    for c in counts:
        b = c.budget
        key = _key(tx, wallet_id, b.asset, b.id, c.start)
        usage_rows.add_at_commit(tx.uow, key, b.cap, b.levels(), held=held, spent=spent)


@dataclass(frozen=True, slots=True)
class Whose:
    """Whose call it is: for the alerts' payload."""

    customer: str
    member: str | None


def add(
    tx: Tx,
    wallet_id: str,
    whose: Whose,
    counts: Sequence[Counted],
    *,
    held: int = 0,
    spent: int = 0,
) -> Counted | None:
    """Count a hold or a charge in each budget's period now: None, with the alerts it
    crosses raised; or the budget it does not fit, with nothing counted."""
    done: list[tuple[Counted, Usage]] = []
    for c in counts:
        b = c.budget
        key = _key(tx, wallet_id, b.asset, b.id, c.start)
        # Past the cap whatever the period holds: no write (a new period's row would take it).
        past = b.cap is not None and held + spent > b.cap
        left = None if past else usage_rows.add(tx.uow, key, b.cap, held=held, spent=spent)
        if left is None:
            for earlier, _ in done:
                # At once, not with the commit: a later call of a combined batch reads it.
                undo = _key(tx, wallet_id, b.asset, earlier.budget.id, earlier.start)
                usage_rows.give_back(tx.uow, undo, held=held, spent=spent, now=True)
            return c
        done.append((c, left))
    for c, left in done:
        _alert(tx, wallet_id, whose, c, left)
    return None


def _alert(tx: Tx, wallet_id: str, whose: Whose, c: Counted, left: Usage) -> None:
    """Raise the thresholds the period has just reached (its row locked by the write that
    left it so): once each per period."""
    b = c.budget
    reached = crossed(b.levels(), left.alerted, left.used)
    if not reached:
        return
    key = _key(tx, wallet_id, b.asset, b.id, c.start)
    usage_rows.raise_alerted(tx.uow, key, max(reached))
    end = b.span(c.start).end
    announced = []
    for percent in reached:
        name = f"{b.id}|{c.start.isoformat()}|{percent}"
        event_id = "evt_bgt" + hashlib.sha256(name.encode()).hexdigest()[:29]
        payload = {
            "customer": whose.customer,
            "member": b.member,
            "budget": b.id,
            "asset": b.asset,
            "mode": b.mode.value,
            "amount": b.amount,
            "period": b.period.value,
            "period_start": None if b.period is Period.TOTAL else c.start.isoformat(),
            "period_end": None if end is None else end.isoformat(),
            "threshold": percent,
            "spent": left.spent,
            "held": left.held,
        }
        announced.append((event_id, wallet_id, payload))
    emit_once(tx, EventType.BUDGET_THRESHOLD_CROSSED, announced)


def refusal(tx: Tx, wallet_id: str, c: Counted, amount: int) -> str:
    """Why a call did not fit a budget, for a person: what its period has left."""
    b = c.budget
    left = b.amount
    row = usage_rows.read(tx.uow, _key(tx, wallet_id, b.asset, b.id, c.start))
    if row is not None:
        left = room(b.amount, row.held, row.spent)
    owner = "the customer's budget" if b.member is None else f"member {b.member}'s budget"
    if b.period is Period.TOTAL:
        per = "in total"
    else:
        per = f"this {b.period.value} (since {c.start.isoformat()})"
    return (
        f"{owner} has {left} of {b.amount} {b.asset} left {per}; the call needs {amount} "
        f"(budget {b.id})"
    )


def _definitions(tx: Tx, wallet_id: str, ids: set[str]) -> dict[str, Budget]:
    rows = member_rows.budgets_by_id(tx.uow.conn, wallet_id, ids)
    return {r.id: budget_of(r) for r in rows}


@dataclass(frozen=True, slots=True)
class HoldBudgets:
    """A claimed hold's budgets: the periods it counts in, what it reserved, and, when its
    settle may charge past it, the budgets' definitions as they are now."""

    wallet_id: str
    asset: str
    reserved: int
    periods: list[tuple[str, datetime]]
    definitions: dict[str, Budget]


def of_hold(tx: Tx, hold: Any) -> HoldBudgets | None:
    periods = _parse(getattr(hold, "budgets", None))
    if not periods:
        return None
    return HoldBudgets(hold.wallet_id, hold.asset, hold.amount, periods, {})


def most(tx: Tx, budgets: HoldBudgets | None, amount: int) -> tuple[int | None, HoldBudgets | None]:
    """The most a settle of `amount` may charge under the hold's hard budgets (None: no cap),
    read only when the amount is past the hold; and the budgets with their definitions (for
    the alerts such a settle may raise)."""
    if budgets is None or amount <= budgets.reserved:
        return None, budgets
    ids = {budget_id for budget_id, _ in budgets.periods}
    definitions = _definitions(tx, budgets.wallet_id, ids)
    cap: int | None = None
    for budget_id, start in budgets.periods:
        key = _key(tx, budgets.wallet_id, budgets.asset, budget_id, start)
        row = usage_rows.read(tx.uow, key)
        if row is None or row.cap is None:
            continue
        allowed = most_chargeable(budgets.reserved, row.cap, row.held, row.spent)
        cap = allowed if cap is None else min(cap, allowed)
    with_definitions = HoldBudgets(
        budgets.wallet_id, budgets.asset, budgets.reserved, budgets.periods, definitions
    )
    return cap, with_definitions


def settle(tx: Tx, whose: Whose, budgets: HoldBudgets | None, charged: int) -> None:
    """A settled hold's reservation leaves each period's held; its charge joins its spent.

    A charge past the hold must fit each hard budget's cap (the planned `most` made it so,
    unless the row changed since: then the transaction starts over) and raises the alerts it
    reaches: sent with the commit, it misses if it would, and the careful run raises them."""
    if budgets is None:
        return
    for budget_id, start in budgets.periods:
        key = _key(tx, budgets.wallet_id, budgets.asset, budget_id, start)
        definition = budgets.definitions.get(budget_id)
        levels = definition.levels() if definition is not None else []
        if charged <= budgets.reserved:
            levels = []  # held + spent only goes down: no cap to check, no alert to raise
        if tx.uow.moves_at_commit:
            usage_rows.settle_at_commit(
                tx.uow, key, levels, released=budgets.reserved, charged=charged
            )
            continue
        left = usage_rows.settle_now(tx.uow, key, released=budgets.reserved, charged=charged)
        if definition is not None and levels:
            _alert(tx, budgets.wallet_id, whose, Counted(definition, start), left)


def give_back(
    tx: Tx, wallet_id: str, asset: str, column: Any, *, held: int = 0, spent: int = 0
) -> None:
    """Give a voided or expired hold's reservation (`held`), or a refund (`spent`), back to
    the periods its hold or charge counted in (`column`: its `budgets`)."""
    for budget_id, start in _parse(column):
        key = _key(tx, wallet_id, asset, budget_id, start)
        usage_rows.give_back(tx.uow, key, held=held, spent=spent)
