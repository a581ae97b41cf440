"""PostgreSQL transactions whose BEGIN goes out with their first statement.

Left to open transactions itself, psycopg sends `BEGIN` before a transaction's first
statement and waits for its answer, in a pipeline too: a round trip of its own per
transaction, two per authorize and settle pair. creditgate's PostgreSQL connections are in
the driver's autocommit mode instead, and open their transactions themselves:

- SQLAlchemy's `begin` event (every transaction, begun or autobegun) marks `BEGIN` due;
- the transaction's first statement sends it just before itself (`send_begin`), so in a
  pipeline (`storage.prepared.pipeline`) the two go in one round trip;
- every statement passes through one of the two places that send it: SQLAlchemy's
  `before_cursor_execute` event (Core, the ORM-less queries, Alembic), through the driver,
  and `storage.prepared` (the hot path's statements), in the connection's wire
  (`storage.wire`), ahead of the statement;
- `COMMIT` and `ROLLBACK` are what they were: the driver sends them for a transaction that
  began (in autocommit it sends nothing when none did), and the commit's pipeline ends with
  its own `COMMIT` (`storage.database._send_commit`).

A connection whose driver is not in autocommit (if SQLAlchemy ever sets another isolation
level on it, which turns autocommit off) is left to the driver, which then begins its
transactions as before: `send_begin` sends nothing there, so no statement can run outside
a transaction either way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, event

from creditgate.storage.wire import abandon_pipeline, end_pipeline

# psycopg's own BEGIN for the engine's READ COMMITTED, as it would send it.
BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
BEGIN_SQL = BEGIN.encode()
_DUE = "creditgate.begin_due"


def begin_due(conn: Connection) -> bool:
    """Whether the transaction's `BEGIN` is due (before its first statement); the caller
    sends it. False once asked: it is sent once."""
    if conn.info.pop(_DUE, False):
        driver: Any = conn.connection.driver_connection
        return bool(driver.autocommit)
    return False


def send_begin(conn: Connection) -> None:
    """Send the transaction's `BEGIN` through the driver if it is due."""
    if begin_due(conn):
        conn.connection.driver_connection.execute(BEGIN, prepare=False)  # type: ignore[union-attr]


def begin_with_first_statement(engine: Engine) -> None:
    """Put a PostgreSQL engine's connections in the driver's autocommit mode, and begin each
    transaction with its first statement."""

    @event.listens_for(engine, "connect")
    def _autocommit(dbapi_conn: Any, _record: Any) -> None:
        # After the dialect's own connect handler, which set the isolation level.
        dbapi_conn.autocommit = True

    @event.listens_for(engine, "begin")
    def _due(conn: Connection) -> None:
        # A connection asked to autocommit (`isolation_level="AUTOCOMMIT"`) runs each
        # statement on its own, as SQLAlchemy promises it.
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn.info[_DUE] = True

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _over(conn: Connection) -> None:
        # An invalidated connection (cut, failed over) has no info to touch, and its
        # transaction is gone with it; its next one is marked at its begin.
        if not conn.invalidated:
            conn.info.pop(_DUE, None)

    @event.listens_for(engine, "rollback")
    def _before_rollback(conn: Connection) -> None:
        # The driver's ROLLBACK must not meet a pipeline of the wire's still open.
        if not conn.invalidated:
            abandon_pipeline(conn.connection.info)

    @event.listens_for(engine, "reset")
    def _before_reset(_dbapi_conn: Any, record: Any, _state: Any) -> None:
        abandon_pipeline(record.info)

    @event.listens_for(engine, "before_cursor_execute")
    def _first(
        conn: Connection,
        _cursor: Any,
        _statement: str,
        _parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        end_pipeline(conn)  # the wire's statements first: psycopg sends this one itself
        send_begin(conn)
