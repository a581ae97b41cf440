"""Steps shared by the use cases that move credit: balance rows, lots, postings, events."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NotRequired, TypedDict, Unpack

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from creditgate.domain.amounts import MAX_BALANCE
from creditgate.domain.ledger import Entry, is_balanced
from creditgate.domain.lots import LotBalance, LotStatus, held_shares
from creditgate.domain.policy import PolicyMode, WalletPolicy
from creditgate.services.context import Tx
from creditgate.services.results import AssetBalance
from creditgate.storage.database import Deferred, RetryTransaction, careful, defer
from creditgate.storage.ids import new_id
from creditgate.storage.prepared import Prepared, pipeline
from creditgate.storage.tables import (
    OPEN_LOT,
    customers,
    events,
    ledger_entries,
    ledger_transactions,
    lots,
    wallet_balances,
)
from creditgate.storage.types import UtcDateTime


@dataclass(frozen=True, slots=True)
class BalanceRow:
    wallet_id: str
    asset: str
    posted: int
    held: int
    debt: int
    policy: WalletPolicy
    low_balance_alerted: bool
    top_up_threshold: int | None = None

    @property
    def available(self) -> int:
        return self.posted - self.held


def _policy_of(row: Any) -> WalletPolicy:
    mode = PolicyMode(row.policy)
    return WalletPolicy(mode, row.overdraft_limit, row.low_balance_threshold)


def ensure_balance_row(tx: Tx, wallet_id: str, asset: str) -> None:
    """Create the wallet's row for this asset (with the wallet's default policy) if missing."""
    default = tx.conn.execute(
        select(customers.c.policy, customers.c.overdraft_limit).where(
            customers.c.wallet_id == wallet_id
        )
    ).one()
    ins = postgresql.insert if tx.conn.dialect.name == "postgresql" else sqlite.insert
    tx.conn.execute(
        ins(wallet_balances)
        .values(
            tenant_id=tx.tenant_id,
            wallet_id=wallet_id,
            asset=asset,
            posted=0,
            held=0,
            debt=0,
            policy=default.policy,
            overdraft_limit=default.overdraft_limit,
            low_balance_threshold=None,
            low_balance_alerted=0,
            updated_at=tx.now,
        )
        .on_conflict_do_nothing()
    )


BALANCE_COLUMNS = (
    wallet_balances.c.posted,
    wallet_balances.c.held,
    wallet_balances.c.debt,
    wallet_balances.c.policy,
    wallet_balances.c.overdraft_limit,
    wallet_balances.c.low_balance_threshold,
    wallet_balances.c.low_balance_alerted,
    wallet_balances.c.top_up_threshold,
)
_THIS_BALANCE = (
    wallet_balances.c.wallet_id == bindparam("wallet_id"),
    wallet_balances.c.asset == bindparam("asset"),
)
_READ_BALANCE = Prepared(select(*BALANCE_COLUMNS).where(*_THIS_BALANCE))
_LOCK_BALANCE = Prepared(select(*BALANCE_COLUMNS).where(*_THIS_BALANCE).with_for_update())


def lock_balance(tx: Tx, wallet_id: str, asset: str, *, create: bool = True) -> BalanceRow:
    """Lock the wallet's balance row for this asset; every credit movement takes it first."""
    params = {"wallet_id": wallet_id, "asset": asset}
    row = _LOCK_BALANCE.first(tx.conn, params)
    if row is None:
        if not create:
            raise LookupError(asset)
        ensure_balance_row(tx, wallet_id, asset)
        row = _LOCK_BALANCE.rows(tx.conn, params)[0]
    return BalanceRow(
        wallet_id,
        asset,
        row.posted,
        row.held,
        row.debt,
        _policy_of(row),
        bool(row.low_balance_alerted),
        row.top_up_threshold,
    )


def _alert(policy: WalletPolicy, after: int, alerted: bool) -> tuple[bool, bool]:
    """Whether `balance.low` fires now (once per downward crossing) and the new alert flag."""
    if policy.is_low(after):
        return (not alerted), True
    return False, False


def _balance_events(
    tx: Tx, wallet_id: str, asset: str, policy: WalletPolicy, before: int, after: int, low: bool
) -> None:
    if low:
        emit(
            tx,
            "balance.low",
            wallet_id,
            {"asset": asset, "available": after, "threshold": policy.low_balance_threshold},
        )
    if after <= 0 < before:
        emit(tx, "balance.depleted", wallet_id, {"asset": asset, "available": after})


def read_balance(tx: Tx, wallet_id: str, asset: str) -> BalanceRow:
    """Read a balance row without locking it (see `shift_balance`)."""
    return _balance_row(tx, wallet_id, asset, _READ_BALANCE.first(tx.conn, _key(wallet_id, asset)))


def read_balance_and_lots(
    tx: Tx, wallet_id: str, asset: str
) -> tuple[BalanceRow, list[LotBalance]]:
    """The balance row and the first `LOT_WINDOW` open lots in burn order, unlocked, in one
    round trip where the driver can.

    A debit draws a prefix of the burn order, so these lots plan any debit they can cover;
    one they cannot cover comes out as debt, and the careful pass that plans debt reads
    every lot (`open_lots`). A wallet with hundreds of small lots costs no more per debit."""
    with pipeline(tx.conn):
        sent = submit_balance_and_lots(tx, wallet_id, asset)
    return sent.result()


@dataclass(slots=True)
class SentReads:
    """`read_balance_and_lots` sent inside a caller's pipeline; `result()` once it is over."""

    tx: Tx
    wallet_id: str
    asset: str
    balance: Any
    lots: Any

    def result(self) -> tuple[BalanceRow, list[LotBalance]]:
        row = self.balance.first()
        found = _lot_balances(self.lots.rows())
        return _balance_row(self.tx, self.wallet_id, self.asset, row), found


def submit_balance_and_lots(tx: Tx, wallet_id: str, asset: str) -> SentReads:
    balance = _READ_BALANCE.submit(tx.conn, _key(wallet_id, asset))
    first = _FIRST_LOTS_C if tx.conn.dialect.name == "postgresql" else _FIRST_LOTS
    found = first.submit(tx.conn, {**_key(wallet_id, asset), "now": tx.now})
    return SentReads(tx, wallet_id, asset, balance, found)


@dataclass(slots=True)
class KnownReads:
    """`SentReads` already known: the balance and lots as this transaction's earlier writes,
    sent with the commit, will leave them (see `pending_view`)."""

    balance: BalanceRow
    lots: list[LotBalance]

    @property
    def asset(self) -> str:
        return self.balance.asset

    def result(self) -> tuple[BalanceRow, list[LotBalance]]:
        return self.balance, self.lots


def pending_view(tx: Tx, wallet_id: str, asset: str) -> KnownReads | None:
    """The balance row and lots as an earlier debit in this transaction (a batch of
    `Database.run_combined`) left them, its writes still to go with the commit; None unless
    that debit recorded them and nothing has moved the balance since.

    Reading them again would show the rows without those writes. A later debit planned
    from this view draws what is really left, and its writes are guarded all the same."""
    views: dict[tuple[str, str], KnownReads] = tx.conn.info.get("scratch", {}).get("views", {})
    return views.get((wallet_id, asset))


def _record_view(
    tx: Tx, rows: KnownReads, *, posted: int, held: int, draws: Sequence[tuple[str, int]]
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
    views = tx.conn.info.setdefault("scratch", {}).setdefault("views", {})
    views[(balance.wallet_id, balance.asset)] = KnownReads(after, left)


def _forget_view(tx: Tx, wallet_id: str, asset: str) -> None:
    views = tx.conn.info.get("scratch", {}).get("views")
    if views:
        views.pop((wallet_id, asset), None)


def _key(wallet_id: str, asset: str) -> dict[str, str]:
    return {"wallet_id": wallet_id, "asset": asset}


def _balance_row(tx: Tx, wallet_id: str, asset: str, row: Any) -> BalanceRow:
    if row is None:
        return lock_balance(tx, wallet_id, asset)  # creates the row on first use
    return BalanceRow(
        wallet_id,
        asset,
        row.posted,
        row.held,
        row.debt,
        _policy_of(row),
        bool(row.low_balance_alerted),
        row.top_up_threshold,
    )


class Move(TypedDict):
    """A conditional move of a balance row (see `move_balance`)."""

    posted: int
    held: int
    debt: int
    need: int
    draws: NotRequired[Sequence[tuple[str, int]]]


def move_balance(tx: Tx, wallet_id: str, asset: str, **move: Unpack[Move]) -> Any:
    """Take `draws` from their lots and move the balance row by deltas, conditionally.

    `need` is how far `available` must reach above the policy's floor for the move to be
    allowed (0 or less: the move never takes `available` down); each lot must still hold
    what is drawn from it. The conditions are checked by the database against the rows as
    they are at that moment, so concurrent movers need no lock taken earlier, and the rows
    are locked only from these writes to the commit (on PostgreSQL they go in one round
    trip). If a condition fails, the whole transaction starts over. Returns the balance
    row as moved, for `after_move` (which `shift_balance` calls at once).
    """
    _forget_view(tx, wallet_id, asset)
    need, draws = move["need"], move.get("draws", ())
    params = {
        "w": wallet_id,
        "a": asset,
        "dp": move["posted"],
        "dh": move["held"],
        "dd": move["debt"],
        "need": need,
        "now": tx.now,
    }
    # The balance row before the lots, as every credit movement locks them (grants, refunds,
    # sweeps): one order, so two movers of one wallet never wait on each other in a cycle.
    with pipeline(tx.conn):
        moved = (_SHIFT_GUARDED if need > 0 else _SHIFT).submit(tx.conn, params)
        taken = [
            _CONSUME_LOT.submit(tx.conn, {"lot_id": lot_id, "take": take}) for lot_id, take in draws
        ]
    row = moved.first()
    if row is None or any(t.rowcount() != 1 for t in taken):
        raise RetryTransaction
    return row


def shift_balance(tx: Tx, wallet_id: str, asset: str, **move: Unpack[Move]) -> BalanceRow:
    """`move_balance`, then the events and auto top-up its move causes (`after_move`)."""
    row = move_balance(tx, wallet_id, asset, **move)
    return after_move(tx, wallet_id, asset, row, move["posted"] - move["held"])


# CREDITGATE_MOVES_AT_COMMIT=0 turns the single-round-trip debit off (every debit then takes
# the careful path), for comparing the two in benchmarks.
_MOVES_AT_COMMIT = os.environ.get("CREDITGATE_MOVES_AT_COMMIT", "1") != "0"


def can_move_at_commit(tx: Tx) -> bool:
    """Whether this transaction may send its balance move with the commit (`move_at_commit`):
    on PostgreSQL, unless an earlier attempt's guard missed."""
    return _MOVES_AT_COMMIT and tx.conn.dialect.name == "postgresql" and not careful(tx.conn)


def move_at_commit(
    tx: Tx,
    wallet_id: str,
    asset: str,
    *,
    posted: int,
    held: int,
    need: int,
    draws: Sequence[tuple[str, int]] = (),
    planned_from: KnownReads | None = None,
) -> Deferred:
    """`shift_balance`, sent with the commit: the rows are locked only for the commit's round
    trip. Each write is guarded (the lot still holds its draw; the balance has room; and the
    move raises no balance event, leaves the low-balance flag as it is and does not cross the
    auto top-up threshold, which is the rule for most debits far from a threshold). A guard
    that fails rolls the transaction back and it runs again the careful way
    (`shift_balance`). Returns the balance row's new values, which arrive with the commit.

    The rows as the move will leave them are kept for a later debit in this transaction
    (`pending_view`), from `planned_from` (the rows the caller planned the move from) or
    else from the view an earlier move kept."""
    rows = planned_from or pending_view(tx, wallet_id, asset)
    if rows is not None:
        _record_view(tx, rows, posted=posted, held=held, draws=draws)
    params = {
        "w": wallet_id,
        "a": asset,
        "dp": posted,
        "dh": held,
        "need": need,
        "change": posted - held,
        "now": tx.now,
    }
    # The balance row first, then the lots: the order every credit movement locks them in.
    moved = defer(tx.conn, _SHIFT_QUIET_OR_MISS, params, returns=True)
    for lot_id, take in draws:
        defer(tx.conn, _CONSUME_LOT_OR_MISS, {"lot_id": lot_id, "take": take})
    return moved


def after_move(tx: Tx, wallet_id: str, asset: str, row: Any, change: int) -> BalanceRow:
    """Raise the balance events a conditional move caused, given the row it returned, and
    re-arm or fire the wallet's auto top-up if the move crossed its threshold.

    `change` is what the move added to `available`. `balance.low` fires once per crossing:
    of several concurrent movers, only the one that flips the row's alert flag raises it.
    Not inside a `pipeline`: the auto top-up reads as it goes.
    """
    policy = _policy_of(row)
    after = row.posted - row.held
    low, alerted = _alert(policy, after, bool(row.low_balance_alerted))
    if alerted != bool(row.low_balance_alerted):
        flipped = _FLIP_ALERT.execute(
            tx.conn, {"w": wallet_id, "a": asset, "old": int(not alerted), "new": int(alerted)}
        )
        low = low and flipped == 1
    _balance_events(tx, wallet_id, asset, policy, after - change, after, low)
    threshold = row.top_up_threshold
    if threshold is not None and (after - change >= threshold) != (after >= threshold):
        tx.reactions.threshold_crossed(tx, wallet_id, asset, rising=after >= threshold)
    return BalanceRow(wallet_id, asset, row.posted, row.held, row.debt, policy, alerted, threshold)


def open_lots(tx: Tx, wallet_id: str, asset: str) -> list[LotBalance]:
    return _lot_balances(_OPEN_LOTS.rows(tx.conn, _key(wallet_id, asset)))


def _lot_balances(rows: list[Any]) -> list[LotBalance]:
    return [
        LotBalance(r.id, r.remaining, r.priority, r.expires_at, r.created_at, r.cost_basis)
        for r in rows
    ]


_SHIFT = Prepared(
    update(wallet_balances)
    .where(wallet_balances.c.wallet_id == bindparam("w"), wallet_balances.c.asset == bindparam("a"))
    .values(
        posted=wallet_balances.c.posted + bindparam("dp"),
        held=wallet_balances.c.held + bindparam("dh"),
        debt=wallet_balances.c.debt + bindparam("dd"),
        updated_at=bindparam("now"),
    )
    .returning(*BALANCE_COLUMNS)
)
# How far below zero `available` may go under the row's policy (allow: the balance bound).
FLOOR = case(
    (wallet_balances.c.policy == PolicyMode.ALLOW.value, literal_column(str(MAX_BALANCE))),
    else_=wallet_balances.c.overdraft_limit,
)
_SHIFT_GUARDED = Prepared(
    update(wallet_balances)
    .where(
        wallet_balances.c.wallet_id == bindparam("w"),
        wallet_balances.c.asset == bindparam("a"),
        wallet_balances.c.posted - wallet_balances.c.held + FLOOR >= bindparam("need"),
    )
    .values(
        posted=wallet_balances.c.posted + bindparam("dp"),
        held=wallet_balances.c.held + bindparam("dh"),
        debt=wallet_balances.c.debt + bindparam("dd"),
        updated_at=bindparam("now"),
    )
    .returning(*BALANCE_COLUMNS)
)
_FLIP_ALERT = Prepared(
    update(wallet_balances)
    .where(
        wallet_balances.c.wallet_id == bindparam("w"),
        wallet_balances.c.asset == bindparam("a"),
        wallet_balances.c.low_balance_alerted == bindparam("old"),
    )
    .values(low_balance_alerted=bindparam("new"))
)

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

LOT_WINDOW = 64


def _burn_keys(c: Any, byte_order_ids: bool) -> tuple[Any, ...]:
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
        .order_by(*_burn_keys(lots.c, byte_order_ids))
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
        select(*both.c).order_by(overdue, *_burn_keys(both.c, byte_order_ids)).limit(LOT_WINDOW)
    )


_FIRST_LOTS = _first_lots(False)
_FIRST_LOTS_C = _first_lots(True)


def _plain_first_lots(byte_order_ids: bool) -> Prepared:
    """The first `LOT_WINDOW` open lots in the plain burn order (`burn_key(lot, None)`), the
    order `held_shares` spreads open holds over: straight down `ix_lots_burn_order`."""
    return Prepared(_down_burn_order(byte_order_ids))


_PLAIN_FIRST_LOTS = _plain_first_lots(False)
_PLAIN_FIRST_LOTS_C = _plain_first_lots(True)


def held_lot_shares(tx: Tx, wallet_id: str, asset: str, held: int) -> dict[str, int]:
    """`domain.lots.held_shares` of the wallet's open lots: which lots the open holds will
    draw on. The holds draw on a prefix of the plain burn order, so the first lots are read,
    and every lot only when those do not cover `held`."""
    if held <= 0:
        return {}
    first = _PLAIN_FIRST_LOTS_C if tx.conn.dialect.name == "postgresql" else _PLAIN_FIRST_LOTS
    found = _lot_balances(first.rows(tx.conn, _key(wallet_id, asset)))
    if len(found) == LOT_WINDOW and sum(lot.remaining for lot in found) < held:
        found = open_lots(tx, wallet_id, asset)
    return held_shares(found, held)


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


def or_miss(moved: Any) -> Any:
    """A guard in SQL: divides by zero, failing the transaction, unless `moved` (a write's
    returned rows, or any rows that must exist) has a row."""
    return literal_column("1") / select(func.count()).select_from(moved).scalar_subquery()


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
_CONSUME_LOT_OR_MISS = Prepared(select(or_miss(_DRAWN).label("took")))
_AVAILABLE = wallet_balances.c.posted - wallet_balances.c.held
_AFTER = _AVAILABLE + bindparam("change")
_THRESHOLD = wallet_balances.c.low_balance_threshold
_TOP_UP = wallet_balances.c.top_up_threshold
_MOVED = (
    update(wallet_balances)
    .where(
        wallet_balances.c.wallet_id == bindparam("w"),
        wallet_balances.c.asset == bindparam("a"),
        bindparam("need") <= _AVAILABLE + FLOOR,
        # No balance.depleted: the move does not take available from above zero to zero or less.
        or_(_AFTER > 0, _AVAILABLE <= 0),
        # No balance.low and no flag to flip: the flag already says what `after` is.
        or_(
            _THRESHOLD.is_(None),
            and_(_AFTER >= _THRESHOLD, wallet_balances.c.low_balance_alerted == 0),
            and_(_AFTER < _THRESHOLD, wallet_balances.c.low_balance_alerted == 1),
        ),
        # No auto top-up to re-arm or fire: the move does not cross its threshold.
        or_(
            _TOP_UP.is_(None),
            and_(_AVAILABLE >= _TOP_UP, _AFTER >= _TOP_UP),
            and_(_AVAILABLE < _TOP_UP, _AFTER < _TOP_UP),
        ),
    )
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
        or_miss(_MOVED).label("took"),
        select(_MOVED.c.posted).scalar_subquery().label("posted"),
        select(_MOVED.c.held).scalar_subquery().label("held"),
    )
)
_POSTINGS: dict[tuple[int, str | None, tuple[str, ...]], Prepared] = {}


def _posting(entries: int, table: Table | None = None, columns: tuple[str, ...] = ()) -> Prepared:
    """A ledger transaction and its `entries` lines as one INSERT (the header in a CTE), and
    a row of `table` with `columns` in another CTE."""
    cache_key = (entries, None if table is None else table.name, columns)
    found = _POSTINGS.get(cache_key)
    if found is None:
        header = (
            insert(ledger_transactions)
            .values(
                {
                    column: bindparam(f"p_{column}")
                    for column in (
                        "tenant_id",
                        "wallet_id",
                        "id",
                        "kind",
                        "asset",
                        "reference_id",
                        "created_at",
                    )
                }
            )
            .cte("header")
        )
        rows = [
            {
                "tenant_id": bindparam("p_tenant_id"),
                "wallet_id": bindparam("p_wallet_id"),
                "transaction_id": bindparam("p_id"),
                "seq": n,
                "asset": bindparam("p_asset"),
                "account": bindparam(f"account_{n}"),
                "lot_id": bindparam(f"lot_{n}"),
                "amount": bindparam(f"amount_{n}"),
            }
            for n in range(entries)
        ]
        statement = insert(ledger_entries).values(rows).add_cte(header)
        if table is not None:
            extra = insert(table).values({c: bindparam(f"r_{c}") for c in columns}).cte("with_row")
            statement = statement.add_cte(extra)
        found = _POSTINGS.setdefault(cache_key, Prepared(statement))
    return found


_INSERT_TRANSACTION = Prepared(insert(ledger_transactions))
_INSERT_ENTRY = Prepared(insert(ledger_entries))
_INSERT_EVENT = Prepared(insert(events))


def post(
    tx: Tx,
    *,
    wallet_id: str,
    asset: str,
    kind: str,
    entries: Sequence[Entry],
    reference_id: str | None,
    at_commit: bool = False,
    with_row: tuple[Table, dict[str, Any]] | None = None,
) -> str:
    """Write one balanced ledger transaction (now, or with the commit: see `defer`).

    With the commit, `with_row` (a table and a row: the charge the posting is for) is
    written by the same statement."""
    if not is_balanced(entries):
        raise AssertionError(f"unbalanced ledger transaction: {entries}")
    tx_id = new_id("txn")
    header = {
        "tenant_id": tx.tenant_id,
        "wallet_id": wallet_id,
        "id": tx_id,
        "kind": kind,
        "asset": asset,
        "reference_id": reference_id,
        "created_at": tx.now,
    }
    lines = [
        {
            "tenant_id": tx.tenant_id,
            "wallet_id": wallet_id,
            "transaction_id": tx_id,
            "seq": seq,
            "asset": asset,
            "account": entry.account,
            "lot_id": entry.lot_id,
            "amount": entry.amount,
        }
        for seq, entry in enumerate(entries)
    ]
    if at_commit:
        # One statement for the transaction and its entries: fewer statements to send.
        params: dict[str, Any] = {f"p_{k}": v for k, v in header.items()}
        for n, line in enumerate(lines):
            params.update(
                {f"account_{n}": line["account"], f"lot_{n}": line["lot_id"]}
                | {f"amount_{n}": line["amount"]}
            )
        table = None
        if with_row is not None:
            table, row = with_row
            params.update({f"r_{k}": v for k, v in row.items()})
        defer(tx.conn, _posting(len(lines), table, tuple(with_row[1]) if with_row else ()), params)
    else:
        _INSERT_TRANSACTION.submit(tx.conn, header)
        _INSERT_ENTRY.executemany(tx.conn, lines)
    return tx_id


def emit(
    tx: Tx,
    event_type: str,
    wallet_id: str | None,
    payload: dict[str, Any],
    *,
    at_commit: bool = False,
) -> None:
    """Write an event to the outbox in the same transaction as its cause (now, or with the
    commit when the cause's own writes go with it: see `defer`)."""
    params = {
        "tenant_id": tx.tenant_id,
        "id": new_id("evt"),
        "type": event_type,
        "wallet_id": wallet_id,
        "payload": payload,
        "created_at": tx.now,
    }
    if at_commit:
        defer(tx.conn, _INSERT_EVENT, params)
    else:
        _INSERT_EVENT.execute(tx.conn, params)


def balance_result(asset: str, scale: int, row: Any) -> AssetBalance:
    return AssetBalance(
        asset=asset,
        scale=scale,
        posted=row.posted,
        held=row.held,
        available=row.posted - row.held,
        debt=row.debt,
        policy=row.policy,
        overdraft_limit=row.overdraft_limit,
        low_balance_threshold=row.low_balance_threshold,
    )
