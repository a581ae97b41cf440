"""A wallet's lots: the open lots, read in burn order, and the draws on them.

Burn order is `domain.lots.burn_key`; the statements here restate it as sort keys
(`burn_keys`), pinned to it by `tests/integration/test_gate.py`
(`test_the_first_lots_a_debit_reads_are_the_start_of_the_burn_order`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select, union_all, update

from creditgate.domain.lots import LotBalance, LotStatus
from creditgate.storage.guards import require_rows
from creditgate.storage.prepared import Pending, Prepared
from creditgate.storage.tables import OPEN_LOT, lots
from creditgate.storage.types import UtcDateTime
from creditgate.storage.unit_of_work import UnitOfWork

# How many lots a debit reads first (see `submit_first_lots`).
LOT_WINDOW = 64

_LOT_COLUMNS = (
    lots.c.id,
    lots.c.remaining,
    lots.c.priority,
    lots.c.expires_at,
    lots.c.created_at,
    lots.c.cost_basis,
)
_THIS_WALLETS_OPEN_LOTS = (
    lots.c.wallet_id == bindparam("wallet_id"),
    lots.c.asset == bindparam("asset"),
    OPEN_LOT,
)
_OPEN_LOTS = Prepared(select(*_LOT_COLUMNS).where(*_THIS_WALLETS_OPEN_LOTS))


def burn_keys(c: Any, byte_order_ids: bool) -> tuple[Any, ...]:
    """`domain.lots.burn_key` after its first key, over columns `c` (as `ix_lots_burn_order`
    orders them, then the id). Ids tie-break as Python compares them: by code point ("C"
    collation on PostgreSQL; SQLite's default collation already is)."""
    return (
        c.priority,
        c.expires_at.is_(None),
        func.coalesce(c.expires_at, c.created_at),
        c.created_at,
        c.id.collate("C") if byte_order_ids else c.id,
    )


def _down_burn_order(byte_order_ids: bool) -> Any:
    """The wallet's first `LOT_WINDOW` open lots in `ix_lots_burn_order`'s order."""
    return (
        select(*_LOT_COLUMNS)
        .where(*_THIS_WALLETS_OPEN_LOTS)
        .order_by(*burn_keys(lots.c, byte_order_ids))
        .limit(LOT_WINDOW)
    )


def _first_lots(byte_order_ids: bool) -> Prepared:
    """`_OPEN_LOTS` in burn order (`domain.lots.burn_key`), the first `LOT_WINDOW` only.

    Burn order puts lots kept back for holds past their expiry first; the rest follow in the
    order of `ix_lots_burn_order`. Each part's first `LOT_WINDOW` is read down that index, so
    the read stops after a few rows however many lots the wallet has used up, and the two
    parts (at most twice the window) are put in order and cut to the window."""
    now = bindparam("now", type_=UtcDateTime())
    expires_at = lots.c.expires_at

    def part(which: Any) -> Any:
        first = _down_burn_order(byte_order_ids).where(which).subquery()
        return select(*first.c)

    kept = and_(expires_at.is_not(None), expires_at <= now)
    both = union_all(part(kept), part(or_(expires_at.is_(None), expires_at > now))).subquery()
    overdue = case((and_(both.c.expires_at.is_not(None), both.c.expires_at <= now), 0), else_=1)
    return Prepared(
        select(*both.c).order_by(overdue, *burn_keys(both.c, byte_order_ids)).limit(LOT_WINDOW)
    )


_FIRST_LOTS = _first_lots(False)
_FIRST_LOTS_C = _first_lots(True)
# The first `LOT_WINDOW` open lots in the plain burn order (`burn_key(lot, None)`), the order
# `held_shares` spreads open holds over: straight down `ix_lots_burn_order`.
_PLAIN_FIRST_LOTS = Prepared(_down_burn_order(False))
_PLAIN_FIRST_LOTS_C = Prepared(_down_burn_order(True))

_CONSUME_LOT = Prepared(
    update(lots)
    .where(
        lots.c.id == bindparam("lot_id"),
        lots.c.status == LotStatus.ACTIVE.value,
        lots.c.remaining >= bindparam("take"),
    )
    .values(
        remaining=lots.c.remaining - bindparam("take"),
        consumed=lots.c.consumed + bindparam("take"),
    )
)
_DRAWN = (
    update(lots)
    .where(
        lots.c.id == bindparam("lot_id"),
        lots.c.status == LotStatus.ACTIVE.value,
        lots.c.remaining >= bindparam("take"),
    )
    .values(
        remaining=lots.c.remaining - bindparam("take"),
        consumed=lots.c.consumed + bindparam("take"),
    )
    .returning(lots.c.id)
    .cte("drawn")
)
_CONSUME_LOT_OR_MISS = Prepared(select(require_rows(_DRAWN).label("took")))


def _key(wallet_id: str, asset: str) -> dict[str, str]:
    return {"wallet_id": wallet_id, "asset": asset}


def lot_balances(rows: list[Any]) -> list[LotBalance]:
    return [
        LotBalance(r.id, r.remaining, r.priority, r.expires_at, r.created_at, r.cost_basis)
        for r in rows
    ]


def open_lots(uow: UnitOfWork, wallet_id: str, asset: str) -> list[LotBalance]:
    """Every open lot of the wallet in this asset (in no particular order)."""
    return lot_balances(_OPEN_LOTS.rows(uow.conn, _key(wallet_id, asset)))


def first_lots(dialect: str) -> Prepared:
    """The read of the first `LOT_WINDOW` open lots in burn order, for `dialect`."""
    return _FIRST_LOTS_C if dialect == "postgresql" else _FIRST_LOTS


def submit_first_lots(uow: UnitOfWork, wallet_id: str, asset: str, now: Any) -> Pending:
    """Send the read of the first `LOT_WINDOW` open lots in burn order at `now`; its rows
    go through `lot_balances`."""
    return first_lots(uow.dialect).submit(uow.conn, {**_key(wallet_id, asset), "now": now})


def plain_first_lots(uow: UnitOfWork, wallet_id: str, asset: str) -> list[LotBalance]:
    """The first `LOT_WINDOW` open lots in the plain burn order (`burn_key(lot, None)`)."""
    first = _PLAIN_FIRST_LOTS_C if uow.dialect == "postgresql" else _PLAIN_FIRST_LOTS
    return lot_balances(first.rows(uow.conn, _key(wallet_id, asset)))


def submit_draw(uow: UnitOfWork, lot_id: str, take: int) -> Pending:
    """Take `take` from an active lot that still holds it; the row count says if it did."""
    return _CONSUME_LOT.submit(uow.conn, {"lot_id": lot_id, "take": take})


def draw_at_commit(uow: UnitOfWork, lot_id: str, take: int) -> None:
    """`submit_draw`, sent with the commit and guarded: the transaction fails at the commit
    unless the lot still holds `take` (`storage.guards`)."""
    uow.defer(_CONSUME_LOT_OR_MISS, {"lot_id": lot_id, "take": take})
