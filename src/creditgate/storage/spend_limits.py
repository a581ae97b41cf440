"""A spend limit's period rows: reserved by a hold, spent by its settle, given back when it ends.

Every write here comes after the write that locks the wallet's balance row (a limit belongs
to one wallet), so a period row is always locked second, whichever path the transaction
takes. The reserve and the settle restate `domain.spend_limits.fits` in SQL (`FITS`,
`SETTLE_FITS`), so the database checks the rule against the row as it is at the write; sent
with the commit, they carry it as a guard (`storage.guards`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from creditgate.storage.database import RetryTransaction
from creditgate.storage.guards import require_rows
from creditgate.storage.prepared import Prepared
from creditgate.storage.tables import spend_periods
from creditgate.storage.unit_of_work import UnitOfWork

_THIS_PERIOD = (
    spend_periods.c.limit_id == bindparam("p_limit"),
    spend_periods.c.period_start == bindparam("p_period"),
)
_HELD, _SPENT, _CAP = spend_periods.c.held, spend_periods.c.spent, spend_periods.c.cap
# `fits(amount, held, spent, asked)` over the row, for a reserve of `asked` under `cap`.
FITS = _HELD + _SPENT + bindparam("p_asked") <= bindparam("p_cap")
# The same rule for a settle: the hold's `released` leaves held, its `charged` joins spent.
SETTLE_FITS = _HELD - bindparam("p_released") + _SPENT + bindparam("p_charged") <= _CAP


@dataclass(frozen=True, slots=True)
class PeriodKey:
    """One period of one limit, and whose it is."""

    tenant_id: str
    wallet_id: str
    limit_id: str
    period: datetime
    asset: str


@dataclass(frozen=True, slots=True)
class PeriodRow:
    held: int
    spent: int
    cap: int


def _reserve(dialect: str) -> Any:
    """Insert the period's row with the hold, or add the hold to it if `FITS`; the row as
    left, none if it did not fit."""
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = ins(spend_periods).values(
        tenant_id=bindparam("p_tenant"),
        wallet_id=bindparam("p_wallet"),
        limit_id=bindparam("p_limit"),
        period_start=bindparam("p_period"),
        asset=bindparam("p_asset"),
        cap=bindparam("p_cap"),
        held=bindparam("p_asked"),
        spent=literal(0),
    )
    return stmt.on_conflict_do_update(
        index_elements=[spend_periods.c.limit_id, spend_periods.c.period_start],
        set_={"held": _HELD + stmt.excluded.held, "cap": stmt.excluded.cap},
        where=FITS,
    ).returning(_HELD, _SPENT, _CAP)


_RESERVE = {dialect: _reserve(dialect) for dialect in ("postgresql", "sqlite")}
_RESERVED = _reserve("postgresql").cte("reserved")
_RESERVE_OR_MISS = Prepared(select(require_rows(_RESERVED).label("took")))

_SETTLE = (
    update(spend_periods)
    .where(*_THIS_PERIOD, SETTLE_FITS)
    .values(held=_HELD - bindparam("p_released"), spent=_SPENT + bindparam("p_charged"))
    .returning(_HELD)
)
_SETTLED = _SETTLE.cte("settled")
_SETTLE_OR_MISS = Prepared(select(require_rows(_SETTLED).label("took")))
_RELEASE = (
    update(spend_periods)
    .where(*_THIS_PERIOD)
    .values(held=_HELD - bindparam("p_released"))
    .returning(_HELD)
)
_READ = select(_HELD, _SPENT, _CAP).where(*_THIS_PERIOD)


def _params(key: PeriodKey, **more: int) -> dict[str, Any]:
    # Bound under names of their own: an UPDATE reserves the columns' names for its SET.
    return {
        "p_tenant": key.tenant_id,
        "p_wallet": key.wallet_id,
        "p_limit": key.limit_id,
        "p_period": key.period,
        "p_asset": key.asset,
        **{f"p_{name}": value for name, value in more.items()},
    }


def reserve(uow: UnitOfWork, key: PeriodKey, asked: int, cap: int) -> PeriodRow | None:
    """Hold `asked` more in the period if held + spent stays within `cap`: the row as
    left, or None (nothing written) if it would not."""
    stmt = _RESERVE[uow.dialect]
    row = uow.conn.execute(stmt, _params(key, asked=asked, cap=cap)).first()
    return None if row is None else PeriodRow(row.held, row.spent, row.cap)


def reserve_at_commit(uow: UnitOfWork, key: PeriodKey, asked: int, cap: int) -> None:
    """`reserve`, sent with the commit (after the balance row's move) and guarded: if it does
    not fit, the transaction fails at the commit and runs again carefully (PostgreSQL)."""
    uow.defer(_RESERVE_OR_MISS, _params(key, asked=asked, cap=cap))


def read(uow: UnitOfWork, key: PeriodKey) -> PeriodRow | None:
    row = uow.conn.execute(_READ, _params(key)).first()
    return None if row is None else PeriodRow(row.held, row.spent, row.cap)


def settle(uow: UnitOfWork, key: PeriodKey, released: int, charged: int) -> None:
    """Move a settled hold out of the period's held (`released`) and its charge into its
    spent (`charged`), if that `SETTLE_FITS`; otherwise the row changed since the settle read
    it, and the transaction runs again (with the commit on PostgreSQL, guarded, else now)."""
    params = _params(key, released=released, charged=charged)
    if uow.moves_at_commit:
        uow.defer(_SETTLE_OR_MISS, params)
        return
    if uow.conn.execute(_SETTLE, params).first() is None:
        raise RetryTransaction


def release(uow: UnitOfWork, key: PeriodKey, released: int) -> None:
    """Give a voided or expired hold's `released` back to its period."""
    uow.conn.execute(_RELEASE, _params(key, released=released))
