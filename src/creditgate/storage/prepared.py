"""Statements compiled once per dialect and run straight on the driver.

The gate's hot path runs a dozen small statements per request; SQLAlchemy's per-execution
work (cache keys, compiled-cache lookups, result set-up) costs more than the SQL itself on
SQLite. A `Prepared` statement is still written in SQLAlchemy Core and still binds through
the column types (UTC timestamps, exact decimals, JSON), but it is compiled once per
dialect and set of parameter names, then executed inside the unit of work's transaction:
on PostgreSQL through the connection's `storage.wire.Wire` (libpq directly, prepared
statements of its own, pipelines), elsewhere on the DBAPI cursor of the connection.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from creditgate.storage.begin import BEGIN_SQL, begin_due, send_begin
from creditgate.storage.unit_of_work import UnitOfWork
from creditgate.storage.wire import Sent, Wire, positional

Params = Mapping[str, Any]


@dataclass(slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # bind names in positional order (qmark dialects)
    positional: bool
    defaults: dict[str, Any]  # values the statement itself carries (literals)
    binders: tuple[tuple[str, Callable[[Any], Any]], ...]
    row: Any  # a namedtuple class, or None for statements that return no rows
    types: tuple[Any, ...]  # the result columns' SQLAlchemy types, adapted to the dialect
    readers: tuple[Callable[[Any], Any] | None, ...] | None = None  # set on first fetch
    wire_sql: bytes = b""  # PostgreSQL: the statement with numbered parameters ($1, $2, ...)
    wire_names: tuple[str, ...] = ()  # the parameters' names in number order
    # The bound values in that order, as a tuple (`operator.itemgetter` of `wire_names`).
    wire_values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = lambda _values: ()


class Prepared:
    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, frozenset[str] | None], _Plan] = {}

    def _plan(self, dialect: Dialect, keys: frozenset[str] | None) -> _Plan:
        cache_key = (dialect.name, keys)
        plan = self._plans.get(cache_key)
        if plan is not None:
            return plan
        compiled = cast(
            SQLCompiler,
            self.statement.compile(
                dialect=dialect, column_keys=sorted(keys) if keys is not None else None
            ),
        )
        is_positional = bool(dialect.positional)
        names = tuple(compiled.positiontup or ())
        carried = dict(compiled.params)
        defaults = {k: v for k, v in carried.items() if v is not None}
        binders = []
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                binders.append((name, process))
        columns = _result_columns(self.statement)
        row: Any = namedtuple("Row", [key for key, _ in columns], rename=True) if columns else None
        types = tuple(type_.dialect_impl(dialect) for _, type_ in columns)
        plan = _Plan(compiled.string, names, is_positional, defaults, tuple(binders), row, types)
        if dialect.name == "postgresql":
            plan.wire_sql, plan.wire_names = positional(compiled.string)
            plan.wire_values = _in_order(plan.wire_names)
        self._plans[cache_key] = plan
        return plan

    def _bind(self, plan: _Plan, params: Params) -> Any:
        values = {**plan.defaults, **params} if plan.defaults else dict(params)
        for name, process in plan.binders:
            if name in values:
                values[name] = process(values[name])
        if plan.positional:
            return tuple(values[name] for name in plan.names)
        return values

    def _values(self, plan: _Plan, params: Params) -> tuple[Any, ...]:
        return plan.wire_values(self._bind(plan, params))

    def _send(
        self, conn: Connection, wire: Wire, plan: _Plan, batch: Sequence[Params]
    ) -> list[Sent]:
        """PostgreSQL: queue the statement on the connection's wire (after the transaction's
        BEGIN, if it is the first), and sync at once unless a pipeline block is open."""
        try:
            try:
                values = [self._values(plan, p) for p in batch]
                if begin_due(conn):
                    wire.begin(BEGIN_SQL)
                sent = [wire.send(plan.wire_sql, v) for v in values]
            except BaseException:
                if not wire.depth:  # (a block ends its pipeline itself)
                    with suppress(Exception):  # this error is the one to raise
                        wire.sync()
                raise
            if not wire.depth:
                wire.sync()
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, exc, plan.sql) from exc
        return sent

    def _run(self, conn: Connection, batch: Sequence[Params], many: bool) -> tuple[_Plan, Any]:
        dialect = conn.dialect
        is_insert = getattr(self.statement, "is_insert", False)
        plan = self._plan(dialect, frozenset(batch[0]) if is_insert else None)
        if plan.wire_sql:
            wire = Wire.of(conn)
            # (A driver out of autocommit begins its transactions itself: its cursor then.)
            if wire.driver.autocommit:
                return plan, self._send(conn, wire, plan, batch)
        cursor = None
        try:
            send_begin(conn)  # the transaction's BEGIN, if this is its first statement
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            if many:
                cursor.executemany(plan.sql, [self._bind(plan, p) for p in batch])
            else:
                cursor.execute(plan.sql, self._bind(plan, batch[0]))
        except dialect.loaded_dbapi.Error as exc:
            if cursor is not None:
                cursor.close()
            raise _wrapped(conn, exc, plan.sql) from exc
        return plan, cursor

    def submit(self, conn: Connection, params: Params) -> Pending:
        """Send the statement; inside `pipeline()` its results arrive when the pipeline ends
        (or when they are first read)."""
        plan, sent = self._run(conn, (params,), many=False)
        if isinstance(sent, list):
            return Pending(conn, plan, None, sent[0])
        return Pending(conn, plan, sent, None)

    def rows(self, conn: Connection, params: Params) -> list[Any]:
        return self.submit(conn, params).rows()

    def first(self, conn: Connection, params: Params) -> Any | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def execute(self, conn: Connection, params: Params) -> int:
        return self.submit(conn, params).rowcount()

    def executemany(self, conn: Connection, params: Sequence[Params]) -> None:
        if params:
            _plan, sent = self._run(conn, params, many=True)
            if not isinstance(sent, list):
                sent.close()


def _in_order(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function taking the values of `names`, in that order, from a mapping, as a tuple."""
    if not names:
        return lambda _values: ()
    if len(names) == 1:
        one = itemgetter(names[0])
        return lambda values: (one(values),)
    return itemgetter(*names)


def _wrapped(conn: Connection, exc: Exception, sql: str | None) -> StatementError:
    error = conn.dialect.loaded_dbapi.Error
    return DBAPIError.instance(sql, None, exc, error, dialect=conn.dialect)


def _result_columns(statement: ClauseElement) -> list[tuple[str, Any]]:
    """The names and types of the rows a statement returns (a SELECT's columns, an INSERT,
    UPDATE or DELETE's RETURNING), in order; none for a statement that returns no rows."""
    exported = getattr(statement, "exported_columns", None)
    if exported is None:
        return []
    return [(key, column.type) for key, column in exported.items()]


class Pending:
    """A sent statement whose rows or row count are read once they have arrived: a wire's
    `Sent` on PostgreSQL, the DBAPI cursor elsewhere."""

    __slots__ = ("conn", "cursor", "plan", "sent")

    def __init__(self, conn: Connection, plan: _Plan, cursor: Any, sent: Sent | None) -> None:
        self.conn, self.plan, self.cursor, self.sent = conn, plan, cursor, sent

    def rowcount(self) -> int:
        if self.sent is not None:
            try:
                return self.sent.rowcount()
            except self.conn.dialect.loaded_dbapi.Error as exc:
                raise _wrapped(self.conn, exc, self.plan.sql) from exc
        count = int(self.cursor.rowcount)
        self.cursor.close()
        return count

    def rows(self) -> list[Any]:
        plan = self.plan
        if self.sent is not None:
            try:
                result, fetched = self.sent.rows()
            except self.conn.dialect.loaded_dbapi.Error as exc:
                raise _wrapped(self.conn, exc, plan.sql) from exc
            if plan.readers is None:
                # The column types the server sent decide the converters (as SQLAlchemy does).
                plan.readers = tuple(
                    t.result_processor(self.conn.dialect, result.ftype(i))
                    for i, t in enumerate(plan.types)
                )
        else:
            cursor = self.cursor
            try:
                fetched = cursor.fetchall()
                if plan.readers is None:
                    plan.readers = tuple(
                        t.result_processor(self.conn.dialect, d[1])
                        for t, d in zip(plan.types, cursor.description, strict=True)
                    )
            finally:
                cursor.close()
        make, readers = plan.row, plan.readers
        assert readers is not None
        return [
            make(*[r(v) if r else v for r, v in zip(readers, raw, strict=True)]) for raw in fetched
        ]

    def first(self) -> Any | None:
        found = self.rows()
        return found[0] if found else None


@contextmanager
def pipeline(conn: Connection) -> Iterator[None]:
    """Send the statements submitted inside in one round trip where the driver can
    (PostgreSQL, through the connection's wire). Elsewhere they simply run one after
    another. A result read inside the block ends its round trip there."""
    if conn.dialect.name != "postgresql":
        yield
        return
    wire = Wire.of(conn)
    stack = UnitOfWork.of(conn).pipelines
    stack.append(wire)
    wire.depth += 1
    try:
        yield
    except BaseException:
        stack.pop()
        wire.depth -= 1
        if not wire.depth:
            with suppress(Exception):  # the block's own error is the one to raise
                wire.sync()
        raise
    stack.pop()
    wire.depth -= 1
    if not wire.depth:
        try:
            wire.sync()
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, exc, None) from exc
