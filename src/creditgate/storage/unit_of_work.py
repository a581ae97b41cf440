"""The unit of work: what one transaction keeps besides its connection.

`Database.connect` makes one `UnitOfWork` per transaction (and a fresh one per attempt), and
the transaction a service runs in (`services.context.Tx`) carries it. It holds:

- the mode: `read_only` (SQLite then takes no write lock) and `careful` (an earlier attempt's
  guard missed: take the path that locks, reads and checks as it goes);
- the deferred writes, sent with the commit (on PostgreSQL in the commit's round trip);
- the after-commit actions, through which the unit's result passes once the commit has
  succeeded (one list per unit of a combined batch);
- the pending views: a wallet's balance row and lots as the deferred writes will leave them,
  for a later debit in the same transaction;
- the members already read in it, with the budgets they count against
  (`storage.members.known_scope`), for a later call of a combined batch naming one again;
- the balance whose `available` an answer shows only once the commit has run
  (`storage.balance_at_commit`);
- the pipelines open on its connection (`storage.prepared.pipeline`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from creditgate.domain.balances import WalletBalance
from creditgate.domain.lots import LotBalance

# The one place the connection refers to its unit of work, for the code that holds only the
# connection (SQLite's BEGIN, the prepared statements' pipelines). Everything else reaches
# the unit of work through the transaction that carries it.
_ON_CONNECTION = "creditgate.unit_of_work"


@dataclass(slots=True)
class Deferred:
    """A write sent with the commit; `row` is its first returned row, read at the commit."""

    statement: Any  # a `storage.prepared.Prepared`
    params: Any
    returns: bool = False
    row: Any = None
    last: bool = False  # sent after the transaction's other deferred writes


@dataclass(slots=True)
class PendingView:
    """A wallet's balance row and open lots (in burn order) as this transaction's writes,
    still to go with the commit, will leave them."""

    balance: WalletBalance
    lots: list[LotBalance]

    @property
    def asset(self) -> str:
        return self.balance.asset

    def result(self) -> tuple[WalletBalance, list[LotBalance]]:
        return self.balance, self.lots


@dataclass(slots=True)
class UnitOfWork:
    conn: Connection
    read_only: bool = False
    careful: bool = False
    deferred: list[Deferred] = field(default_factory=list)
    finishers: list[Callable[[Any], Any]] = field(default_factory=list)
    views: dict[tuple[str, str], PendingView] = field(default_factory=dict)
    # (wallet, member) -> the rows `storage.members.submit_scope` read for it.
    scopes: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    # The (wallet, asset) whose balance the current unit's answer shows once the commit ran.
    available_at_commit: tuple[str, str] | None = None
    pipelines: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, conn: Connection) -> UnitOfWork:
        """The unit of work of a transaction `Database.connect` opened on `conn`; for any
        other connection, a fresh one, attached to it."""
        found = conn.info.get(_ON_CONNECTION)
        if found is None:
            found = conn.info[_ON_CONNECTION] = cls(conn)
        return found

    @classmethod
    def begin(cls, conn: Connection, *, read_only: bool, careful: bool) -> UnitOfWork:
        """A new unit of work on `conn` (before its transaction begins: SQLite's BEGIN
        reads `read_only`)."""
        uow = conn.info[_ON_CONNECTION] = cls(conn, read_only=read_only, careful=careful)
        return uow

    def detach(self) -> None:
        if self.conn.info.get(_ON_CONNECTION) is self:
            del self.conn.info[_ON_CONNECTION]

    @staticmethod
    def is_read_only(conn: Connection) -> bool:
        found = conn.info.get(_ON_CONNECTION)
        return bool(found is not None and found.read_only)

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    @property
    def moves_at_commit(self) -> bool:
        """Whether balance moves may be sent with the commit, guarded: on PostgreSQL, unless
        this is a careful attempt (an earlier one's guard missed). Otherwise each move is
        locked, read, checked and written as it goes."""
        return not self.careful and self.dialect == "postgresql"

    @property
    def in_pipeline(self) -> bool:
        return bool(self.pipelines)

    def defer(
        self, statement: Any, params: Any, *, returns: bool = False, last: bool = False
    ) -> Deferred:
        """Send a write with the commit instead of now (the transaction's last writes).

        A unique-key conflict it meets restarts the transaction (`RetryTransaction`); a
        guarded write whose guard fails (`storage.guards`) restarts it carefully
        (`GuardMissed`). With `last`, it goes after every other deferred write, whenever it
        was deferred: for writes that lock nothing another transaction locks first (an
        idempotency record), so that the rows every credit movement locks first (the
        balance row) are still locked first.
        """
        deferred = Deferred(statement, params, returns, last=last)
        self.deferred.append(deferred)
        return deferred

    def in_commit_order(self) -> list[Deferred]:
        deferred = self.deferred
        if any(d.last for d in deferred):
            return [d for d in deferred if not d.last] + [d for d in deferred if d.last]
        return deferred

    def after_commit(self, finish: Callable[[Any], Any]) -> None:
        """Pass the unit of work's result through `finish` once the commit has succeeded."""
        self.finishers.append(finish)

    def next_unit(self) -> None:
        """Start the next unit of work of a combined batch: its own finishers and answer."""
        self.finishers = []
        self.available_at_commit = None

    def take_finishers(self) -> list[Callable[[Any], Any]]:
        finishers, self.finishers = self.finishers, []
        return finishers
