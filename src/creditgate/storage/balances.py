"""A wallet's balance rows: read, lock, and move them, now or with the commit.

Every credit movement locks the balance row first, then the lots. The conditional moves
restate two domain rules in SQL, so that the database checks them against the row as it is
at the moment of the write: the policy's floor (`WalletPolicy.allows`, as `FLOOR`) and, for
a move sent with the commit, that the move needs no reaction (`domain.balances.moves_quietly`).
`tests/integration/test_sql_rules.py` pins each to its domain function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    exists,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import ExternallyTraversible, replacement_traverse

from creditgate.domain.amounts import MAX_BALANCE
from creditgate.domain.balances import WalletBalance
from creditgate.domain.lots import LotBalance
from creditgate.domain.policy import PolicyMode, WalletPolicy
from creditgate.storage import lots as lot_rows
from creditgate.storage.database import RetryTransaction
from creditgate.storage.guards import require_rows
from creditgate.storage.prepared import Pending, Prepared, pipeline
from creditgate.storage.tables import customers, holds, wallet_balances
from creditgate.storage.unit_of_work import Deferred, PendingView, UnitOfWork

BALANCE_COLUMNS = (
    wallet_balances.c.posted,
    wallet_balances.c.held,
    wallet_balances.c.debt,
    wallet_balances.c.policy,
    wallet_balances.c.overdraft_limit,
    wallet_balances.c.low_balance_threshold,
    wallet_balances.c.low_balance_alerted,
    wallet_balances.c.top_up_threshold,
    wallet_balances.c.thresholds,
    wallet_balances.c.budgeted,
)
_THIS_BALANCE = (
    wallet_balances.c.wallet_id == bindparam("wallet_id"),
    wallet_balances.c.asset == bindparam("asset"),
)
_THIS_ROW = (
    wallet_balances.c.wallet_id == bindparam("w"),
    wallet_balances.c.asset == bindparam("a"),
)
_READ_BALANCE = Prepared(select(*BALANCE_COLUMNS).where(*_THIS_BALANCE))
_LOCK_BALANCE = Prepared(select(*BALANCE_COLUMNS).where(*_THIS_BALANCE).with_for_update())

# How far below zero `available` may go under the row's policy (`WalletPolicy.effective_limit`;
# allow: the balance bound).
FLOOR = case(
    (wallet_balances.c.policy == PolicyMode.ALLOW.value, literal_column(str(MAX_BALANCE))),
    else_=wallet_balances.c.overdraft_limit,
)
AVAILABLE = wallet_balances.c.posted - wallet_balances.c.held
# `WalletPolicy.allows(available, need)`, over the row.
ROOM_FOR_NEED = AVAILABLE + FLOOR >= bindparam("need")  # noqa: SIM300

_SHIFT = Prepared(
    update(wallet_balances)
    .where(*_THIS_ROW)
    .values(
        posted=wallet_balances.c.posted + bindparam("dp"),
        held=wallet_balances.c.held + bindparam("dh"),
        debt=wallet_balances.c.debt + bindparam("dd"),
        updated_at=bindparam("now"),
    )
    .returning(*BALANCE_COLUMNS)
)
_SHIFT_GUARDED = Prepared(
    update(wallet_balances)
    .where(*_THIS_ROW, ROOM_FOR_NEED)
    .values(
        posted=wallet_balances.c.posted + bindparam("dp"),
        held=wallet_balances.c.held + bindparam("dh"),
        debt=wallet_balances.c.debt + bindparam("dd"),
        updated_at=bindparam("now"),
    )
    .returning(*BALANCE_COLUMNS)
)
# A hold's reservation: the same floor as every other debit. `need` is the amount, or one
# minor unit for a price above zero that its card's rounding made 0.
_RESERVE = Prepared(
    update(wallet_balances)
    .where(*_THIS_ROW, ROOM_FOR_NEED)
    .values(held=wallet_balances.c.held + bindparam("amount"), updated_at=bindparam("now"))
    .returning(*BALANCE_COLUMNS)
)
_FLIP_ALERT = Prepared(
    update(wallet_balances)
    .where(*_THIS_ROW, wallet_balances.c.low_balance_alerted == bindparam("old"))
    .values(low_balance_alerted=bindparam("new"))
)

_AFTER = AVAILABLE + bindparam("change")
_THRESHOLD = wallet_balances.c.low_balance_threshold
_TOP_UP = wallet_balances.c.top_up_threshold


class _json_elements(FunctionElement[Any]):
    """The elements of a JSON array, as a table with one column, `value`."""

    name = "json_elements"
    inherit_cache = True


@compiles(_json_elements, "postgresql")
def _json_elements_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    return f"json_array_elements_text({compiler.process(element.clauses, **kw)})"


@compiles(_json_elements, "sqlite")
def _json_elements_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"json_each({compiler.process(element.clauses, **kw)})"


_ALERTS = _json_elements(wallet_balances.c.thresholds).table_valued("value")
_ALERT = cast(_ALERTS.c.value, BigInteger)
# `domain.balances.thresholds_crossed` is not empty, over the row: the move adding `change`
# to `available` falls below one of the row's alert thresholds.
FALLS_BELOW_A_THRESHOLD = and_(
    wallet_balances.c.thresholds.is_not(None),
    exists(select(_ALERT).select_from(_ALERTS).where(_ALERT <= AVAILABLE, _ALERT > _AFTER)),
)
# `domain.balances.moves_quietly`, over the row: the move adding `change` to `available`
# needs no reaction.
MOVES_QUIETLY = and_(
    # No balance.depleted: the move does not take available from above zero to zero or less.
    or_(_AFTER > 0, AVAILABLE <= 0),
    # No balance.low and no flag to flip: the flag already says what `after` is.
    or_(
        _THRESHOLD.is_(None),
        and_(_AFTER >= _THRESHOLD, wallet_balances.c.low_balance_alerted == 0),
        and_(_AFTER < _THRESHOLD, wallet_balances.c.low_balance_alerted == 1),
    ),
    # No auto top-up to re-arm or fire: the move does not cross its threshold.
    or_(
        _TOP_UP.is_(None),
        and_(AVAILABLE >= _TOP_UP, _AFTER >= _TOP_UP),
        and_(AVAILABLE < _TOP_UP, _AFTER < _TOP_UP),
    ),
    # No alert threshold to raise.
    ~FALLS_BELOW_A_THRESHOLD,
)
# A call that did not read the customer's budgets (`known` 0: it names no member) moves the
# balance with the commit only while the customer as a whole has no budget in the asset.
BUDGETS_KNOWN = or_(
    wallet_balances.c.budgeted == literal_column("0"),
    bindparam("known", type_=Integer) == literal_column("1"),
)
_MOVED = (
    update(wallet_balances)
    .where(*_THIS_ROW, bindparam("need") <= AVAILABLE + FLOOR, MOVES_QUIETLY, BUDGETS_KNOWN)
    .values(
        posted=wallet_balances.c.posted + bindparam("dp"),
        held=wallet_balances.c.held + bindparam("dh"),
        updated_at=bindparam("now"),
    )
    .returning(wallet_balances.c.posted, wallet_balances.c.held)
    .cte("moved")
)
_SHIFT_QUIET_OR_MISS = Prepared(
    select(
        require_rows(_MOVED).label("took"),
        select(_MOVED.c.posted).scalar_subquery().label("posted"),
        select(_MOVED.c.held).scalar_subquery().label("held"),
    )
)


def policy_of(row: Any) -> WalletPolicy:
    return WalletPolicy(PolicyMode(row.policy), row.overdraft_limit, row.low_balance_threshold)


def balance_of(wallet_id: str, asset: str, row: Any) -> WalletBalance:
    """A balance row (`BALANCE_COLUMNS`) as the domain's value."""
    return WalletBalance(
        wallet_id,
        asset,
        row.posted,
        row.held,
        row.debt,
        policy_of(row),
        bool(row.low_balance_alerted),
        row.top_up_threshold,
        tuple(row.thresholds or ()),
        bool(row.budgeted),
    )


def _key(wallet_id: str, asset: str) -> dict[str, str]:
    return {"wallet_id": wallet_id, "asset": asset}


def ensure_balance_row(
    uow: UnitOfWork, tenant_id: str, wallet_id: str, asset: str, now: datetime
) -> None:
    """Create the wallet's row for this asset (with the wallet's default policy) if missing."""
    conn = uow.conn
    default = conn.execute(
        select(customers.c.policy, customers.c.overdraft_limit).where(
            customers.c.wallet_id == wallet_id
        )
    ).one()
    ins = postgresql.insert if uow.dialect == "postgresql" else sqlite.insert
    conn.execute(
        ins(wallet_balances)
        .values(
            tenant_id=tenant_id,
            wallet_id=wallet_id,
            asset=asset,
            posted=0,
            held=0,
            debt=0,
            policy=default.policy,
            overdraft_limit=default.overdraft_limit,
            low_balance_threshold=None,
            low_balance_alerted=0,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )


@dataclass(frozen=True, slots=True)
class Where:
    """Which balance row: a wallet's in one asset, of a tenant, at a time (for the row
    created on first use)."""

    tenant_id: str
    wallet_id: str
    asset: str
    now: datetime


def lock_balance(uow: UnitOfWork, where: Where, *, create: bool = True) -> WalletBalance:
    """Lock the wallet's balance row for this asset; every credit movement takes it first.
    Without `create`, a missing row raises LookupError."""
    params = _key(where.wallet_id, where.asset)
    row = _LOCK_BALANCE.first(uow.conn, params)
    if row is None:
        if not create:
            raise LookupError(where.asset)
        ensure_balance_row(uow, where.tenant_id, where.wallet_id, where.asset, where.now)
        row = _LOCK_BALANCE.rows(uow.conn, params)[0]
    return balance_of(where.wallet_id, where.asset, row)


def _balance_or_create(uow: UnitOfWork, where: Where, row: Any) -> WalletBalance:
    if row is None:
        return lock_balance(uow, where)  # creates the row on first use
    return balance_of(where.wallet_id, where.asset, row)


def read_balance(uow: UnitOfWork, where: Where) -> WalletBalance:
    """Read a balance row without locking it (created, and locked, on first use)."""
    found = _READ_BALANCE.first(uow.conn, _key(where.wallet_id, where.asset))
    return _balance_or_create(uow, where, found)


def read_available(uow: UnitOfWork, wallet_id: str, asset: str) -> int:
    """A balance row's `available`, or 0 if the wallet has none in this asset."""
    row = _READ_BALANCE.first(uow.conn, _key(wallet_id, asset))
    return 0 if row is None else int(row.posted - row.held)


@dataclass(slots=True)
class SentReads:
    """`read_balance_and_lots` sent inside a caller's pipeline; `result()` once it is over."""

    uow: UnitOfWork
    where: Where
    balance: Pending
    lots: Pending

    @property
    def asset(self) -> str:
        return self.where.asset

    def result(self) -> tuple[WalletBalance, list[LotBalance]]:
        row = self.balance.first()
        found = lot_rows.lot_balances(self.lots.rows())
        return _balance_or_create(self.uow, self.where, row), found


def submit_balance_and_lots(uow: UnitOfWork, where: Where) -> SentReads:
    balance = _READ_BALANCE.submit(uow.conn, _key(where.wallet_id, where.asset))
    first = lot_rows.submit_first_lots(uow, where.wallet_id, where.asset, where.now)
    return SentReads(uow, where, balance, first)


def _of_the_hold(statement: ClauseElement) -> Prepared:
    """`statement`, which reads a wallet's rows by `wallet_id` and `asset`, reading instead
    those of the wallet and asset of hold `hold_id` (of tenant `tenant`)."""

    def of_hold(column: Any) -> Any:
        found = holds.c.id == bindparam("hold_id"), holds.c.tenant_id == bindparam("tenant")
        return select(column).where(*found).scalar_subquery()

    by_name = {"wallet_id": of_hold(holds.c.wallet_id), "asset": of_hold(holds.c.asset)}

    def swap(element: ExternallyTraversible, **_: Any) -> ExternallyTraversible | None:
        return by_name.get(element.key) if isinstance(element, BindParameter) else None

    no_options: dict[str, Any] = {}
    traversed = replacement_traverse(statement, no_options, swap)
    assert isinstance(traversed, ClauseElement)
    return Prepared(traversed)


_READ_BALANCE_OF_HOLD = _of_the_hold(_READ_BALANCE.statement)
_FIRST_LOTS_OF_HOLD = _of_the_hold(lot_rows.first_lots("postgresql").statement)


@dataclass(slots=True)
class HoldReads:
    """The balance row and first lots of a hold's wallet, sent inside a caller's pipeline
    before the hold itself has arrived: `of(where)` once it has."""

    uow: UnitOfWork
    balance: Pending
    lots: Pending

    def of(self, where: Where) -> SentReads:
        return SentReads(self.uow, where, self.balance, self.lots)


def submit_balance_and_lots_of_hold(
    uow: UnitOfWork, tenant_id: str, hold_id: str, now: datetime
) -> HoldReads | None:
    """`submit_balance_and_lots` for the wallet and asset of a hold, by its id: a settle
    sends it in the round trip of the hold's claim (after it, so it sees the claim).

    PostgreSQL only (in a pipeline, the rows arrive whole with the round trip; SQLite's
    cursor would keep its statement, and with it an old snapshot, open until read): None,
    sending nothing, on SQLite, whose settle reads them after the claim."""
    if uow.conn.dialect.name != "postgresql":
        return None
    params = {"hold_id": hold_id, "tenant": tenant_id}
    balance = _READ_BALANCE_OF_HOLD.submit(uow.conn, params)
    lots = _FIRST_LOTS_OF_HOLD.submit(uow.conn, {**params, "now": now})
    return HoldReads(uow, balance, lots)


def read_balance_and_lots(uow: UnitOfWork, where: Where) -> tuple[WalletBalance, list[LotBalance]]:
    """The balance row and the first `LOT_WINDOW` open lots in burn order, unlocked, in one
    round trip where the driver can.

    A debit draws a prefix of the burn order, so these lots plan any debit they can cover;
    one they cannot cover comes out as debt, and the careful pass that plans debt reads
    every lot (`open_lots`). A wallet with hundreds of small lots costs no more per debit."""
    with pipeline(uow.conn):
        sent = submit_balance_and_lots(uow, where)
    return sent.result()


def pending_view(uow: UnitOfWork, wallet_id: str, asset: str) -> PendingView | None:
    """The balance row and lots as an earlier debit in this transaction (a batch of
    `Database.run_combined`) left them, its writes still to go with the commit; None unless
    that debit recorded them and nothing has moved the balance since.

    Reading them again would show the rows without those writes. A later debit planned
    from this view draws what is really left, and its writes are guarded all the same."""
    return uow.views.get((wallet_id, asset))


def _record_view(
    uow: UnitOfWork, rows: PendingView, *, posted: int, held: int, draws: Sequence[tuple[str, int]]
) -> None:
    """Keep the rows as a move sent with the commit will leave them, for the next debit."""
    taken = dict(draws)
    left = [
        replace(lot, remaining=lot.remaining - taken.get(lot.id, 0))
        for lot in rows.lots
        if lot.remaining > taken.get(lot.id, 0)
    ]
    balance = rows.balance
    after = replace(balance, posted=balance.posted + posted, held=balance.held + held)
    uow.views[(balance.wallet_id, balance.asset)] = PendingView(after, left)


@dataclass(frozen=True, slots=True)
class Move:
    """A conditional move of a balance row: deltas of posted, held and debt; `need`, how far
    `available` must reach above the policy's floor (0 or less: no condition); `draws`,
    what is taken from which lot; `budgets_known`, False for a hold or charge that has not
    read the customer's budgets (sent with the commit, it misses if the customer has one)."""

    posted: int
    held: int
    debt: int = 0
    need: int = 0
    draws: Sequence[tuple[str, int]] = ()
    budgets_known: bool = True

    @property
    def change(self) -> int:
        """What the move adds to `available`."""
        return self.posted - self.held


def move_balance(uow: UnitOfWork, where: Where, move: Move) -> WalletBalance:
    """Take the move's draws from their lots and move the balance row by its deltas,
    conditionally.

    The conditions are checked by the database against the rows as they are at that moment
    (`available` reaches `need` above the floor; each lot still holds what is drawn from
    it), so concurrent movers need no lock taken earlier, and the rows are locked only from
    these writes to the commit (on PostgreSQL they go in one round trip). If a condition
    fails, the whole transaction starts over (`RetryTransaction`). Returns the balance row
    as moved.
    """
    uow.views.pop((where.wallet_id, where.asset), None)
    params = {
        "w": where.wallet_id,
        "a": where.asset,
        "dp": move.posted,
        "dh": move.held,
        "dd": move.debt,
        "need": move.need,
        "now": where.now,
    }
    # The balance row before the lots, as every credit movement locks them (grants, refunds,
    # sweeps): one order, so two movers of one wallet never wait on each other in a cycle.
    with pipeline(uow.conn):
        moved = (_SHIFT_GUARDED if move.need > 0 else _SHIFT).submit(uow.conn, params)
        taken = [lot_rows.submit_draw(uow, lot_id, take) for lot_id, take in move.draws]
    row = moved.first()
    if row is None or any(t.rowcount() != 1 for t in taken):
        raise RetryTransaction
    return balance_of(where.wallet_id, where.asset, row)


def move_at_commit(
    uow: UnitOfWork, where: Where, move: Move, *, planned_from: PendingView | None = None
) -> Deferred:
    """`move_balance` (without debt), sent with the commit: the rows are locked only for the
    commit's round trip. Each write is guarded (the lot still holds its draw; the balance has
    room; the move needs no reaction, `MOVES_QUIETLY`). A guard that fails rolls the
    transaction back and it runs again carefully. Returns the deferred write, whose `row`
    (the balance row's new posted and held) arrives with the commit.

    The rows as the move will leave them are kept for a later debit in this transaction
    (`pending_view`), from `planned_from` (the rows the caller planned the move from) or
    else from the view an earlier move kept."""
    rows = planned_from or pending_view(uow, where.wallet_id, where.asset)
    if rows is not None:
        _record_view(uow, rows, posted=move.posted, held=move.held, draws=move.draws)
    params = {
        "w": where.wallet_id,
        "a": where.asset,
        "dp": move.posted,
        "dh": move.held,
        "need": move.need,
        "change": move.change,
        "known": int(move.budgets_known),
        "now": where.now,
    }
    # The balance row first, then the lots: the order every credit movement locks them in.
    moved = uow.defer(_SHIFT_QUIET_OR_MISS, params, returns=True)
    for lot_id, take in move.draws:
        lot_rows.draw_at_commit(uow, lot_id, take)
    return moved


def reserve(uow: UnitOfWork, where: Where, amount: int, need: int) -> WalletBalance | None:
    """Hold `amount` more if `available` reaches `need` above the floor: the row as moved,
    or None if it does not (or the row does not exist yet)."""
    params = {
        "w": where.wallet_id,
        "a": where.asset,
        "amount": amount,
        "need": need,
        "now": where.now,
    }
    row = _RESERVE.first(uow.conn, params)
    return None if row is None else balance_of(where.wallet_id, where.asset, row)


def flip_alert(uow: UnitOfWork, wallet_id: str, asset: str, *, alerted: bool) -> bool:
    """Set the row's low-balance flag to `alerted`; whether this call is the one that
    changed it (of several concurrent movers, only one does)."""
    params = {"w": wallet_id, "a": asset, "old": int(not alerted), "new": int(alerted)}
    return _FLIP_ALERT.execute(uow.conn, params) == 1
