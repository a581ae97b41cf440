"""Statements compiled once per dialect and run straight on the driver's cursor.

The gate's hot path runs a dozen small statements per request; SQLAlchemy's per-execution
work (cache keys, compiled-cache lookups, result set-up) costs more than the SQL itself on
SQLite. A `Prepared` statement is still written in SQLAlchemy Core and still binds through
the column types (UTC timestamps, exact decimals, JSON), but it is compiled once per
dialect and set of parameter names, then executed on the DBAPI cursor of the connection
the unit of work already holds, inside the same transaction.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from creditgate.storage.begin import send_begin
from creditgate.storage.unit_of_work import UnitOfWork

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
        positional = bool(dialect.positional)
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
        plan = _Plan(compiled.string, names, positional, defaults, tuple(binders), row, types)
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

    def _run(self, conn: Connection, batch: Sequence[Params], many: bool) -> tuple[_Plan, Any]:
        dialect = conn.dialect
        is_insert = getattr(self.statement, "is_insert", False)
        plan = self._plan(dialect, frozenset(batch[0]) if is_insert else None)
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
            raise DBAPIError.instance(
                plan.sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        return plan, cursor

    def submit(self, conn: Connection, params: Params) -> Pending:
        """Send the statement; inside `pipeline()` its results arrive when the pipeline ends."""
        plan, cursor = self._run(conn, (params,), many=False)
        return Pending(conn, plan, cursor)

    def rows(self, conn: Connection, params: Params) -> list[Any]:
        return self.submit(conn, params).rows()

    def first(self, conn: Connection, params: Params) -> Any | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def execute(self, conn: Connection, params: Params) -> int:
        return self.submit(conn, params).rowcount()

    def executemany(self, conn: Connection, params: Sequence[Params]) -> None:
        if params:
            _plan, cursor = self._run(conn, params, many=True)
            cursor.close()


def _result_columns(statement: ClauseElement) -> list[tuple[str, Any]]:
    """The names and types of the rows a statement returns (a SELECT's columns, an INSERT,
    UPDATE or DELETE's RETURNING), in order; none for a statement that returns no rows."""
    exported = getattr(statement, "exported_columns", None)
    if exported is None:
        return []
    return [(key, column.type) for key, column in exported.items()]


class Pending:
    """A sent statement whose rows or row count are read once they have arrived."""

    def __init__(self, conn: Connection, plan: _Plan, cursor: Any) -> None:
        self.conn, self.plan, self.cursor = conn, plan, cursor

    def rowcount(self) -> int:
        open_pipelines = UnitOfWork.of(self.conn).pipelines
        if open_pipelines:
            open_pipelines[-1].sync()  # the count arrives only with the results
        count = int(self.cursor.rowcount)
        self.cursor.close()
        return count

    def rows(self) -> list[Any]:
        plan, cursor = self.plan, self.cursor
        try:
            fetched = cursor.fetchall()
            if plan.readers is None:
                # The driver's column type codes decide the converters (as SQLAlchemy does).
                plan.readers = tuple(
                    t.result_processor(self.conn.dialect, d[1])
                    for t, d in zip(plan.types, cursor.description, strict=True)
                )
        finally:
            cursor.close()
        make, readers = plan.row, plan.readers
        return [
            make(*[r(v) if r else v for r, v in zip(readers, raw, strict=True)]) for raw in fetched
        ]

    def first(self) -> Any | None:
        found = self.rows()
        return found[0] if found else None


@contextmanager
def pipeline(conn: Connection) -> Iterator[None]:
    """Send the statements submitted inside in one round trip where the driver can (psycopg).

    Elsewhere they simply run one after another. Read results only after the block.
    """
    driver = conn.connection.driver_connection
    if conn.dialect.name != "postgresql":
        yield
        return
    dbapi_error = conn.dialect.loaded_dbapi.Error
    stack = UnitOfWork.of(conn).pipelines
    try:
        with driver.pipeline() as open_pipeline:  # type: ignore[union-attr]
            stack.append(open_pipeline)
            try:
                yield
            finally:
                stack.pop()
    except dbapi_error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi_error, dialect=conn.dialect) from exc
