"""Members of a customer and their budgets: the rows, and what a call naming a member reads.

A call naming a member reads the member and every budget it counts against (its own and the
customer's) in one statement, sent in the pipeline of the call's first reads (`submit_scope`),
with those of the wallet's other members for the later calls of its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    case,
    delete,
    insert,
    literal,
    or_,
    select,
    update,
)

from creditgate.domain.budgets import Budget, BudgetMode
from creditgate.domain.periods import Period
from creditgate.storage.prepared import Pending, Prepared
from creditgate.storage.tables import budgets, members, wallet_balances
from creditgate.storage.unit_of_work import UnitOfWork

# The `member` of a budget of the customer as a whole.
WHOLE_CUSTOMER = ""

BUDGET_COLUMNS = (
    budgets.c.id,
    budgets.c.member,
    budgets.c.asset,
    budgets.c.amount,
    budgets.c.period,
    budgets.c.anchor,
    budgets.c.mode,
    budgets.c.thresholds,
)


def budget_of(row: Any, prefix: str = "") -> Budget:
    """A budget row (or its columns under `prefix`) as the domain's value."""

    def get(name: str) -> Any:
        return getattr(row, prefix + name)

    member = get("member")
    return Budget(
        id=get("id"),
        member=None if member == WHOLE_CUSTOMER else member,
        asset=get("asset"),
        amount=get("amount"),
        period=Period(get("period")),
        anchor=get("anchor"),
        mode=BudgetMode(get("mode")),
        thresholds=tuple(get("thresholds") or ()),
    )


# The most rows a call's read of its member brings back: its own first, then the wallet's
# other members and their budgets, so that the later calls of a combined batch (other
# members of the same organization, on the same wallet) find theirs already read.
SCOPE_ROWS = 64

_SCOPE_JOIN = members.outerjoin(
    budgets,
    (budgets.c.wallet_id == members.c.wallet_id)
    & or_(
        budgets.c.member == members.c.external_id,
        budgets.c.member == literal(WHOLE_CUSTOMER),
    ),
)
_SCOPE_COLUMNS = (
    members.c.external_id,
    members.c.active,
    members.c.removed_at,
    *(c.label(f"b_{c.name}") for c in BUDGET_COLUMNS),
)
_SCOPES = Prepared(
    select(*_SCOPE_COLUMNS)
    .select_from(_SCOPE_JOIN)
    .where(members.c.wallet_id == bindparam("w"))
    .order_by(case((members.c.external_id == bindparam("m"), 0), else_=1), members.c.external_id)
    .limit(SCOPE_ROWS)
)
_SCOPE = Prepared(
    select(*_SCOPE_COLUMNS)
    .select_from(_SCOPE_JOIN)
    .where(members.c.wallet_id == bindparam("w"), members.c.external_id == bindparam("m"))
)
_CUSTOMER_BUDGETS = Prepared(
    select(*BUDGET_COLUMNS).where(
        budgets.c.wallet_id == bindparam("w"),
        budgets.c.member == literal(WHOLE_CUSTOMER),
        budgets.c.asset == bindparam("a"),
    )
)


def submit_scope(uow: UnitOfWork, wallet_id: str, member: str) -> Pending:
    """Send the read of a member (`external_id`, `active`, `removed_at`) with every budget it
    counts against (columns `b_…`, NULL if none), one row per budget; its rows come first,
    then, where later calls of a combined batch could skip their reads (the writes go with
    the commit), other members' of the wallet (up to `SCOPE_ROWS` rows in all). `scope_of`
    sorts them out."""
    statement = _SCOPES if uow.moves_at_commit else _SCOPE
    return statement.submit(uow.conn, {"w": wallet_id, "m": member})


def scope_of(uow: UnitOfWork, wallet_id: str, member: str, found: list[Any]) -> list[Any]:
    """The rows of `member` among those `submit_scope` read (none: there is no such member).
    The other members read whole are kept for the rest of the transaction: nothing in a
    transaction of the gate changes a member or a budget, so a later call of a combined
    batch naming one of them finds what it would read (a new attempt starts without them)."""
    groups: dict[str, list[Any]] = {}
    for row in found:
        groups.setdefault(row.external_id, []).append(row)
    if len(found) == SCOPE_ROWS and found:
        # The last member's rows may go on past the limit: not known whole.
        last = groups.pop(found[-1].external_id)
        if last[0].external_id == member:  # a member with more budgets than the limit
            groups[member] = _SCOPE.rows(uow.conn, {"w": wallet_id, "m": member})
    for external_id, rows in groups.items():
        uow.scopes[(wallet_id, external_id)] = rows
    return groups.get(member, [])


def known_scope(uow: UnitOfWork, wallet_id: str, member: str) -> list[Any] | None:
    """The rows of `member` if this transaction has read them already (`scope_of`)."""
    return uow.scopes.get((wallet_id, member))


def customer_budgets(uow: UnitOfWork, wallet_id: str, asset: str) -> list[Any]:
    """The budget of the customer as a whole in `asset` (none or one row)."""
    return _CUSTOMER_BUDGETS.rows(uow.conn, {"w": wallet_id, "a": asset})


def insert_member(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(members).values(**row))


def read_member(conn: Connection, wallet_id: str, external_id: str) -> Any | None:
    return conn.execute(
        select(members).where(
            members.c.wallet_id == wallet_id, members.c.external_id == external_id
        )
    ).first()


def lock_member(conn: Connection, wallet_id: str, external_id: str) -> Any | None:
    return conn.execute(
        select(members)
        .where(members.c.wallet_id == wallet_id, members.c.external_id == external_id)
        .with_for_update()
    ).first()


def list_members(
    conn: Connection, wallet_id: str, *, include_removed: bool, after: str | None, limit: int
) -> list[Any]:
    query = select(members).where(members.c.wallet_id == wallet_id)
    if not include_removed:
        query = query.where(members.c.removed_at.is_(None))
    if after is not None:
        query = query.where(members.c.external_id > after)
    return list(conn.execute(query.order_by(members.c.external_id).limit(limit)))


def update_member(conn: Connection, member_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(members).where(members.c.id == member_id).values(**values))


def read_budget(conn: Connection, wallet_id: str, member: str, asset: str) -> Any | None:
    return conn.execute(
        select(budgets).where(
            budgets.c.wallet_id == wallet_id,
            budgets.c.member == member,
            budgets.c.asset == asset,
        )
    ).first()


_BUDGETS_OF = (
    select(budgets)
    .where(
        budgets.c.wallet_id == bindparam("wallet_id"),
        budgets.c.member.in_(bindparam("owners", expanding=True)),
    )
    .order_by(budgets.c.member, budgets.c.asset)
)


def list_budgets_of(conn: Connection, wallet_id: str, owners: Sequence[str]) -> list[Any]:
    """The budgets of each of `owners` (members' external ids, or `WHOLE_CUSTOMER`) of the
    wallet, in one read: by owner, then asset."""
    if not owners:
        return []
    params = {"wallet_id": wallet_id, "owners": sorted(set(owners))}
    return list(conn.execute(_BUDGETS_OF, params))


def budgets_by_id(conn: Connection, wallet_id: str, ids: set[str]) -> list[Any]:
    return list(
        conn.execute(
            select(budgets).where(budgets.c.wallet_id == wallet_id, budgets.c.id.in_(sorted(ids)))
        )
    )


def insert_budget(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(budgets).values(**row))


def update_budget(conn: Connection, budget_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(budgets).where(budgets.c.id == budget_id).values(**values))


def delete_budget(conn: Connection, budget_id: str) -> None:
    conn.execute(delete(budgets).where(budgets.c.id == budget_id))


def mark_budgeted(conn: Connection, wallet_id: str, asset: str, *, budgeted: bool) -> None:
    """Say on the balance row whether the customer as a whole has a budget in the asset (a
    call that names no member reads its budgets only then)."""
    conn.execute(
        update(wallet_balances)
        .where(wallet_balances.c.wallet_id == wallet_id, wallet_balances.c.asset == asset)
        .values(budgeted=int(budgeted))
    )
