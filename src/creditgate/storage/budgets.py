"""A budget's usage rows, one per period: added to by holds and charges, moved from held to
spent by settles, given back by voids, expiries and refunds.

Every write here comes after the write that locks the wallet's balance row (a budget belongs
to one wallet), so a usage row is always locked second, whichever path the transaction
takes. The writes that add restate `domain.budgets.fits` in SQL (`fits_sql`), so the database
checks the cap against the row as it is at the write; sent with the commit they also restate
`domain.budgets.quiet` (`quiet_sql`: no alert to raise) and carry both as a guard
(`storage.guards`). `tests/integration/test_sql_rules.py` pins each to its domain function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, and_, bindparam, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from creditgate.storage.database import RetryTransaction
from creditgate.storage.guards import require_rows
from creditgate.storage.prepared import Prepared
from creditgate.storage.tables import budget_usage
from creditgate.storage.unit_of_work import UnitOfWork

_HELD, _SPENT, _CAP, _ALERTED = (
    budget_usage.c.held,
    budget_usage.c.spent,
    budget_usage.c.cap,
    budget_usage.c.alerted,
)
_THIS_PERIOD = (
    budget_usage.c.budget_id == bindparam("b"),
    budget_usage.c.period_start == bindparam("p"),
)
_RETURNED = (_HELD, _SPENT, _ALERTED, _CAP)


@dataclass(frozen=True, slots=True)
class PeriodKey:
    """One period of one budget, and whose it is."""

    tenant_id: str
    wallet_id: str
    budget_id: str
    start: datetime
    asset: str


@dataclass(frozen=True, slots=True)
class Usage:
    """A usage row as a write left it (or as read)."""

    held: int
    spent: int
    alerted: int
    cap: int | None

    @property
    def used(self) -> int:
        return self.held + self.spent


def fits_sql(cap: Any, used_after: Any) -> Any:
    """`domain.budgets.fits`, over a row: held + spent after the write within `cap`."""
    return cap.is_(None) | (used_after <= cap)


def quiet_sql(levels: int, used_after: Any) -> Any:
    """`domain.budgets.quiet`, over a row, for the thresholds given as `pct_<i>` (a
    percentage) and `at_<i>` (the held + spent that reaches it), i < `levels`."""
    return and_(
        *(
            ~(
                (bindparam(f"pct_{i}", type_=Integer) > _ALERTED)
                & (used_after >= bindparam(f"at_{i}", type_=BigInteger))
            )
            for i in range(levels)
        )
    )


_CAP_PARAM = bindparam("cap", type_=BigInteger)
_ADDED = _HELD + _SPENT + bindparam("dh", type_=BigInteger) + bindparam("ds", type_=BigInteger)
# `domain.budgets.fits` of adding `dh` held and `ds` spent under the budget's cap `cap`; and
# `domain.budgets.quiet` of it for `levels` thresholds (the forms the writes use).
ADD_FITS = fits_sql(_CAP_PARAM, _ADDED)


def add_quiet(levels: int) -> Any:
    return quiet_sql(levels, _ADDED)


_ADDS: dict[tuple[str, int, bool], Prepared] = {}


def _add(dialect: str, levels: int, guarded: bool) -> Prepared:
    """Insert the period's row with `dh` held and `ds` spent, or add them to it if they fit
    the cap `cap` (and, `guarded`, raise no alert): the row as left, none if not."""
    key = (dialect, levels, guarded)
    found = _ADDS.get(key)
    if found is not None:
        return found
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = ins(budget_usage).values(
        tenant_id=bindparam("t"),
        wallet_id=bindparam("w"),
        budget_id=bindparam("b"),
        period_start=bindparam("p"),
        asset=bindparam("a"),
        cap=_CAP_PARAM,
        held=bindparam("dh"),
        spent=bindparam("ds"),
        alerted=literal(0),
    )
    condition = ADD_FITS
    if guarded:
        condition = and_(condition, add_quiet(levels))
    upsert = stmt.on_conflict_do_update(
        index_elements=[budget_usage.c.budget_id, budget_usage.c.period_start],
        set_={
            "held": _HELD + stmt.excluded.held,
            "spent": _SPENT + stmt.excluded.spent,
            "cap": stmt.excluded.cap,
        },
        where=condition,
    ).returning(*_RETURNED)
    if guarded:
        found = Prepared(select(require_rows(upsert.cte("added")).label("took")))
    else:
        found = Prepared(upsert)
    return _ADDS.setdefault(key, found)


_RELEASED = bindparam("released", type_=BigInteger)
_CHARGED = bindparam("charged", type_=BigInteger)
_SETTLED_USED = _HELD - _RELEASED + _SPENT + _CHARGED
# `domain.budgets.settle_fits`, over the row.
SETTLE_FITS = (_CHARGED <= _RELEASED) | fits_sql(_CAP, _SETTLED_USED)
_SETTLES: dict[tuple[int, bool], Prepared] = {}


def settle_quiet(levels: int) -> Any:
    return quiet_sql(levels, _SETTLED_USED)


def _settle(levels: int, guarded: bool) -> Prepared:
    key = (levels, guarded)
    found = _SETTLES.get(key)
    if found is not None:
        return found
    condition = SETTLE_FITS
    if levels:
        condition = and_(condition, settle_quiet(levels))
    stmt = (
        update(budget_usage)
        .where(*_THIS_PERIOD, condition)
        .values(held=_HELD - _RELEASED, spent=_SPENT + _CHARGED)
        .returning(*_RETURNED)
    )
    if guarded:
        found = Prepared(select(require_rows(stmt.cte("settled")).label("took")))
    else:
        found = Prepared(stmt)
    return _SETTLES.setdefault(key, found)


_GIVE_BACK = Prepared(
    update(budget_usage)
    .where(*_THIS_PERIOD)
    .values(held=_HELD - bindparam("dh"), spent=_SPENT - bindparam("ds"))
)
_RAISE_ALERTED = Prepared(
    update(budget_usage)
    .where(*_THIS_PERIOD, bindparam("pct") > _ALERTED)
    .values(alerted=bindparam("pct"))
)
_READ = Prepared(select(*_RETURNED).where(*_THIS_PERIOD))


def _params(key: PeriodKey, **more: Any) -> dict[str, Any]:
    return {
        "t": key.tenant_id,
        "w": key.wallet_id,
        "b": key.budget_id,
        "p": key.start,
        "a": key.asset,
        **more,
    }


def _level_params(levels: Sequence[tuple[int, int]]) -> dict[str, int]:
    params: dict[str, int] = {}
    for i, (percent, reached_at) in enumerate(levels):
        params[f"pct_{i}"] = percent
        params[f"at_{i}"] = reached_at
    return params


def _usage(row: Any) -> Usage:
    return Usage(row.held, row.spent, row.alerted, row.cap)


def add(uow: UnitOfWork, key: PeriodKey, cap: int | None, *, held: int, spent: int) -> Usage | None:
    """Add `held` and `spent` to the period if held + spent stays within `cap` (None: no
    cap): the row as left, or None (nothing written) if it would not."""
    params = _params(key, cap=cap, dh=held, ds=spent)
    row = _add(uow.dialect, 0, False).first(uow.conn, params)
    return None if row is None else _usage(row)


def add_at_commit(
    uow: UnitOfWork,
    key: PeriodKey,
    cap: int | None,
    levels: Sequence[tuple[int, int]],
    *,
    held: int,
    spent: int,
) -> None:
    """`add`, sent with the commit (after the balance row's move) and guarded: if it does not
    fit, or would raise an alert, the transaction fails at the commit and runs again
    carefully (PostgreSQL)."""
    params = _params(key, cap=cap, dh=held, ds=spent) | _level_params(levels)
    uow.defer(_add(uow.dialect, len(levels), True), params)


def settle_at_commit(
    uow: UnitOfWork,
    key: PeriodKey,
    levels: Sequence[tuple[int, int]],
    *,
    released: int,
    charged: int,
) -> None:
    """Move a settled hold out of the period's held (`released`) and its charge into its
    spent (`charged`), with the commit and guarded: a charge past the hold must fit the row's
    cap and raise none of `levels` (the budget's thresholds); if not, the transaction fails
    at the commit and runs again carefully (PostgreSQL)."""
    params = _params(key, released=released, charged=charged) | _level_params(levels)
    uow.defer(_settle(len(levels), True), params)


def settle_now(uow: UnitOfWork, key: PeriodKey, *, released: int, charged: int) -> Usage:
    """`settle_at_commit`'s move, now, without the alert condition: the row as left, to
    raise the alerts from. Starts the transaction over if a charge past the hold no longer
    fits the row's cap (it changed since the settle planned from it)."""
    params = _params(key, released=released, charged=charged)
    row = _settle(0, False).first(uow.conn, params)
    if row is None:
        raise RetryTransaction
    return _usage(row)


def give_back(
    uow: UnitOfWork, key: PeriodKey, *, held: int = 0, spent: int = 0, now: bool = False
) -> None:
    """Take `held` (a voided or expired hold) or `spent` (a refund) back out of the period:
    with the commit on PostgreSQL (it checks nothing, and goes after the balance row's
    move, as every write of a usage row does), now elsewhere. `now`: at once on every
    backend, for an addition this transaction made and takes back (the row is locked by
    then): a later call of a combined batch reads the row after it."""
    params = _params(key, dh=held, ds=spent)
    if uow.dialect == "postgresql" and not now:
        uow.defer(_GIVE_BACK, params)
    else:
        _GIVE_BACK.execute(uow.conn, params)


def raise_alerted(uow: UnitOfWork, key: PeriodKey, percent: int) -> None:
    """Record that the period has raised its alerts up to `percent`."""
    _RAISE_ALERTED.execute(uow.conn, _params(key, pct=percent))


def read(uow: UnitOfWork, key: PeriodKey) -> Usage | None:
    row = _READ.first(uow.conn, _params(key))
    return None if row is None else _usage(row)


def _history_statement() -> Any:
    """Each of the budgets' latest periods (`ids`, `limit`), by budget, latest first: built
    once, so that a read binds its values and finds its compiled form in the cache."""
    ranked = (
        select(
            budget_usage,
            func.row_number()
            .over(
                partition_by=budget_usage.c.budget_id, order_by=budget_usage.c.period_start.desc()
            )
            .label("rank"),
        )
        .where(budget_usage.c.budget_id.in_(bindparam("ids", expanding=True)))
        .subquery()
    )
    return (
        select(*(ranked.c[column.key] for column in budget_usage.c))
        .where(ranked.c.rank <= bindparam("limit"))
        .order_by(ranked.c.budget_id, ranked.c.period_start.desc())
    )


_HISTORY = _history_statement()


def history(conn: Any, budget_ids: Sequence[str], limit: int) -> list[Any]:
    """The usage rows of each of the budgets, its latest `limit` periods, in one read: by
    budget, the latest period first."""
    if not budget_ids:
        return []
    return list(conn.execute(_HISTORY, {"ids": sorted(set(budget_ids)), "limit": limit}))
