"""Organizations: a customer's members, the budgets of members and of the customer as a
whole, and their usage per period (`domain/budgets.py`).

The gate counts calls in the budgets (`services/ledger/budgets.py`); here they are defined
and read. A budget's period and anchor never change: setting another period or anchor makes
a new budget, counted from zero; another amount, mode or thresholds keep its count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from creditgate.domain.amounts import check_asset_code
from creditgate.domain.budgets import (
    Budget,
    MemberRemoved,
    MemberStatus,
    UnknownBudget,
    UnknownMember,
    check_budget_amount,
    check_mode,
    check_thresholds,
    room,
)
from creditgate.domain.errors import AlreadyExists, InvalidInput
from creditgate.domain.pages import DEFAULT_CUSTOMER_PAGE, MAX_PAGE
from creditgate.domain.periods import CALENDAR, Period, check_anchor, check_period, span
from creditgate.services.catalog.catalog import (
    check_external_id,
    check_metadata,
    check_name,
    check_new_external_id,
)
from creditgate.services.context import Idempotent, Tx
from creditgate.services.results import (
    Budget as BudgetResult,
)
from creditgate.services.results import (
    BudgetList,
    BudgetPeriod,
    Member,
    MemberList,
    MemberUsage,
)
from creditgate.storage import budgets as usage_rows
from creditgate.storage import members as rows
from creditgate.storage.balances import ensure_balance_row
from creditgate.storage.ids import new_id
from creditgate.storage.members import WHOLE_CUSTOMER, budget_of

# The most periods of each budget a usage read goes back.
MAX_PERIODS = 24


def _status(row: Any) -> MemberStatus:
    if row.removed_at is not None:
        return MemberStatus.REMOVED
    return MemberStatus.ACTIVE if row.active else MemberStatus.INACTIVE


def _member(row: Any) -> Member:
    return Member(
        id=row.id,
        customer=row.customer,
        external_id=row.external_id,
        name=row.name,
        metadata=row.metadata,
        status=_status(row).value,
        created_at=row.created_at,
        updated_at=row.updated_at,
        removed_at=row.removed_at,
    )


def _check_active(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("active must be true or false", field="active")
    return value


def _found(tx: Tx, wallet_id: str, member: str, *, lock: bool = False) -> Any:
    read = rows.lock_member if lock else rows.read_member
    row = read(tx.conn, wallet_id, member)
    if row is None:
        raise UnknownMember(f"member {member!r} does not exist", field="member")
    return row


def create_member(
    tx: Tx,
    *,
    customer: str,
    external_id: str,
    name: str = "",
    metadata: dict[str, Any] | None = None,
    active: bool = True,
    idempotency_key: str | None = None,
) -> Member:
    """Add a member to a customer, under the tenant's own id for it (unique in the customer)."""
    external_id = check_new_external_id(external_id)
    name = check_name(name, "name", required=False)
    meta = check_metadata(metadata)
    active = _check_active(active)
    wallet_id = tx.wallet_id(check_external_id(customer))
    request = {
        "customer": customer,
        "external_id": external_id,
        "name": name,
        "metadata": meta,
        "active": active,
    }
    idem = Idempotent(tx, idempotency_key, "member.create", request)
    if (replayed := idem.replay(Member)) is not None:
        return replayed
    if rows.read_member(tx.conn, wallet_id, external_id) is not None:
        raise AlreadyExists(
            f"customer {customer!r} already has a member {external_id!r}", field="external_id"
        )
    row = {
        "tenant_id": tx.tenant_id,
        "wallet_id": wallet_id,
        "id": new_id("mbr"),
        "customer": customer,
        "external_id": external_id,
        "name": name,
        "metadata": meta,
        "active": int(active),
        "created_at": tx.now,
        "updated_at": tx.now,
        "removed_at": None,
    }
    rows.insert_member(tx.conn, row)
    return idem.record(_member(_Row(row)))


class _Row:
    """A row written from a dict, read as the database's rows are (by attribute)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def get_member(tx: Tx, *, customer: str, member: str) -> Member:
    wallet_id = tx.wallet_id(check_external_id(customer))
    return _member(_found(tx, wallet_id, check_external_id(member, "member")))


def list_members(
    tx: Tx,
    *,
    customer: str,
    include_removed: bool = False,
    after: str | None = None,
    limit: int = DEFAULT_CUSTOMER_PAGE,
) -> MemberList:
    """A customer's members in order of external id, a page at a time (`after`: the last
    external id of the previous page)."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    if after is not None:
        check_external_id(after, "after")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", field="limit")
    found = rows.list_members(
        tx.conn, wallet_id, include_removed=include_removed, after=after, limit=limit
    )
    return MemberList(data=[_member(r) for r in found])


def update_member(
    tx: Tx,
    *,
    customer: str,
    member: str,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    active: bool | None = None,
    idempotency_key: str | None = None,
) -> Member:
    """Change a member's name, metadata or active flag (what is not given stays). An
    inactive member's calls are declined (`member_inactive`) until it is active again."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    member = check_external_id(member, "member")
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = check_name(name, "name", required=False)
    if metadata is not None:
        changes["metadata"] = check_metadata(metadata)
    if active is not None:
        changes["active"] = int(_check_active(active))
    request = {"customer": customer, "member": member, **changes}
    idem = Idempotent(tx, idempotency_key, "member.update", request)
    if (replayed := idem.replay(Member)) is not None:
        return replayed
    row = _found(tx, wallet_id, member, lock=True)
    if row.removed_at is not None:
        raise MemberRemoved(f"member {member!r} was removed", field="member")
    changes["updated_at"] = tx.now
    rows.update_member(tx.conn, row.id, changes)
    return idem.record(_member(_Row(dict(row._mapping) | changes)))


def remove_member(
    tx: Tx, *, customer: str, member: str, idempotency_key: str | None = None
) -> Member:
    """Remove a member for good: its calls are declined (`member_removed`), its id stays
    taken, and its holds, charges, ledger entries, budgets and usage stay (read-only)."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    member = check_external_id(member, "member")
    idem = Idempotent(
        tx, idempotency_key, "member.remove", {"customer": customer, "member": member}
    )
    if (replayed := idem.replay(Member)) is not None:
        return replayed
    row = _found(tx, wallet_id, member, lock=True)
    if row.removed_at is not None:
        return idem.record(_member(row))
    changes = {"active": 0, "removed_at": tx.now, "updated_at": tx.now}
    rows.update_member(tx.conn, row.id, changes)
    return idem.record(_member(_Row(dict(row._mapping) | changes)))


def _budget(customer: str, row: Any) -> BudgetResult:
    b = budget_of(row)
    return BudgetResult(
        id=b.id,
        customer=customer,
        member=b.member,
        asset=b.asset,
        amount=b.amount,
        period=b.period.value,
        anchor=b.anchor,
        mode=b.mode.value,
        thresholds=list(b.thresholds),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _owner(tx: Tx, wallet_id: str, member: str | None, *, lock: bool = False) -> str:
    """The `member` column of the budgets of `member` (None: the customer as a whole); a
    removed member has none."""
    if member is None:
        return WHOLE_CUSTOMER
    member = check_external_id(member, "member")
    row = _found(tx, wallet_id, member, lock=lock)
    if row.removed_at is not None:
        raise MemberRemoved(f"member {member!r} was removed", field="member")
    return member


def set_budget(
    tx: Tx,
    *,
    customer: str,
    member: str | None,
    asset: str,
    amount: int,
    period: str,
    anchor: datetime | None = None,
    mode: str = "hard",
    thresholds: list[int] | None = None,
    idempotency_key: str | None = None,
) -> BudgetResult:
    """Set the budget of a member (or, `member` None, of the customer as a whole) in one
    asset: `amount` per `period` counted from `anchor` (default: calendar periods in UTC),
    `hard` or `soft`, with alert `thresholds` (percentages)."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    asset = check_asset_code(asset)
    tx.asset(asset)
    amount = check_budget_amount(amount)
    parsed_period = check_period(period)
    start = CALENDAR if anchor is None else check_anchor(anchor)
    parsed_mode = check_mode(mode)
    levels = check_thresholds(thresholds, parsed_mode)
    request = {
        "customer": customer,
        "member": member,
        "asset": asset,
        "amount": amount,
        "period": parsed_period.value,
        "anchor": start,
        "mode": parsed_mode.value,
        "thresholds": list(levels),
    }
    idem = Idempotent(tx, idempotency_key, "budget.set", request)
    if (replayed := idem.replay(BudgetResult)) is not None:
        return replayed
    owner = _owner(tx, wallet_id, member, lock=True)
    if owner == WHOLE_CUSTOMER:
        # The balance row says a call naming no member must read the customer's budgets.
        ensure_balance_row(tx.uow, tx.tenant_id, wallet_id, asset, tx.now)
        rows.mark_budgeted(tx.conn, wallet_id, asset, budgeted=True)
    values = {
        "amount": amount,
        "mode": parsed_mode.value,
        "thresholds": list(levels),
        "updated_at": tx.now,
    }
    found = rows.read_budget(tx.conn, wallet_id, owner, asset)
    same_periods = (
        found is not None and found.period == parsed_period.value and found.anchor == start
    )
    if found is not None and same_periods:
        rows.update_budget(tx.conn, found.id, values)
        row = dict(found._mapping) | values
    else:
        if found is not None:
            rows.delete_budget(tx.conn, found.id)
        row = {
            "tenant_id": tx.tenant_id,
            "wallet_id": wallet_id,
            "id": new_id("bdg"),
            "member": owner,
            "asset": asset,
            "period": parsed_period.value,
            "anchor": start,
            "created_at": tx.now,
            **values,
        }
        rows.insert_budget(tx.conn, row)
    return idem.record(_budget(customer, _Row(row)))


def delete_budget(
    tx: Tx,
    *,
    customer: str,
    member: str | None,
    asset: str,
    idempotency_key: str | None = None,
) -> BudgetResult:
    """Remove a budget: calls no longer count against it (holds open under it still give
    back to it, which changes nothing any call checks). Answers the budget as it was."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    asset = check_asset_code(asset)
    request = {"customer": customer, "member": member, "asset": asset}
    idem = Idempotent(tx, idempotency_key, "budget.delete", request)
    if (replayed := idem.replay(BudgetResult)) is not None:
        return replayed
    owner = _owner(tx, wallet_id, member, lock=True)
    if owner == WHOLE_CUSTOMER:
        rows.mark_budgeted(tx.conn, wallet_id, asset, budgeted=False)
    found = rows.read_budget(tx.conn, wallet_id, owner, asset)
    if found is None:
        whose = "the customer" if member is None else f"member {member!r}"
        raise UnknownBudget(f"{whose} has no budget in {asset}", field="asset")
    rows.delete_budget(tx.conn, found.id)
    return idem.record(_budget(customer, found))


def list_budgets(tx: Tx, *, customer: str, member: str | None) -> BudgetList:
    """The budgets of a member (or of the customer as a whole), one per asset."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    owner = WHOLE_CUSTOMER if member is None else check_external_id(member, "member")
    if member is not None:
        _found(tx, wallet_id, owner)
    found = rows.list_budgets_of(tx.conn, wallet_id, [owner])
    return BudgetList(data=[_budget(customer, r) for r in found])


def usage(tx: Tx, *, customer: str, member: str | None, periods: int = 1) -> MemberUsage:
    """What each budget of a member (or of the customer as a whole) has spent and holds, and
    what remains, in its current period and up to `periods` - 1 earlier ones it was used in."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    if isinstance(periods, bool) or not isinstance(periods, int):
        raise InvalidInput("periods must be a whole number", field="periods")
    if not 1 <= periods <= MAX_PERIODS:
        raise InvalidInput(f"periods must be from 1 to {MAX_PERIODS}", field="periods")
    owner = WHOLE_CUSTOMER if member is None else check_external_id(member, "member")
    if member is not None:
        _found(tx, wallet_id, owner)
    data = budget_periods(tx, wallet_id, owner, periods)
    return MemberUsage(customer=customer, member=member, data=data)


def budget_periods(tx: Tx, wallet_id: str, owner: str, periods: int = 1) -> list[BudgetPeriod]:
    """`usage` of a member already read (or of the customer as a whole, `WHOLE_CUSTOMER`)
    of the wallet: each budget's current period and up to `periods` - 1 earlier ones."""
    return budget_periods_of(tx, wallet_id, [owner], periods)[owner]


def budget_periods_of(
    tx: Tx, wallet_id: str, owners: Sequence[str], periods: int = 1
) -> dict[str, list[BudgetPeriod]]:
    """`budget_periods` of each of `owners`, in two reads however many they are: their
    budgets, then the usage rows of all of them."""
    listed = rows.list_budgets_of(tx.conn, wallet_id, owners)
    found = [(row.member, budget_of(row)) for row in listed]
    used: dict[str, dict[datetime, Any]] = {budget.id: {} for _, budget in found}
    for u in usage_rows.history(tx.conn, list(used), periods):
        used[u.budget_id][u.period_start] = u
    data: dict[str, list[BudgetPeriod]] = {owner: [] for owner in owners}
    for owner, budget in found:
        current = budget.span(tx.now).start
        rows_of = used[budget.id]
        starts = [current, *sorted((s for s in rows_of if s < current), reverse=True)]
        for start in starts[:periods]:
            data[owner].append(_period(budget, start, rows_of.get(start)))
    return data


def _period(budget: Budget, start: datetime, row: Any) -> BudgetPeriod:
    held = 0 if row is None else row.held
    spent = 0 if row is None else row.spent
    alerted = 0 if row is None else row.alerted
    total = budget.period is Period.TOTAL
    return BudgetPeriod(
        budget=budget.id,
        asset=budget.asset,
        amount=budget.amount,
        mode=budget.mode.value,
        period=budget.period.value,
        period_start=None if total else start,
        period_end=span(budget.period, budget.anchor, start).end,
        spent=spent,
        held=held,
        remaining=room(budget.amount, held, spent),
        thresholds_crossed=[p for p, _ in budget.levels() if p <= alerted],
    )
