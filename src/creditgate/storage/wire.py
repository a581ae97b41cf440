"""The hot path's statements on PostgreSQL, sent on libpq directly in pipelines of their own.

psycopg's cursors cost about 25 µs of Python per statement (a cursor, the query's conversion
and the parameters' dumping through several layers, a generator per send, the results'
bookkeeping), more than half of the gate's database side per call, against about 5 µs for the
same statement sent on the connection's libpq handle. A `Wire` keeps, for one connection:

- the statements it has prepared under names of its own (`cg_1`, `cg_2`, ...), by text and
  parameter types, as psycopg keys its own (an integer is dumped as the smallest type that
  holds it, so one statement may be prepared under a few names);
- the statements sent and not yet answered, in order: a pipeline, which one Sync ends.

Statements are queued with `send` and answered together by `sync`, one round trip; a caller
outside a pipeline block (`storage.prepared.pipeline`) syncs after each. Results are read
with psycopg's own loaders (`psycopg.adapt.Transformer`), so a row holds what a cursor would
have given, and errors are psycopg's own exceptions (`psycopg.errors.error_from_result`).

What keeps the connection usable by psycopg too:

- the pipeline is ended (synced, its results read, pipeline mode left) before control goes
  back to the caller of a block, on errors too, before any statement psycopg sends itself
  (`storage.begin`'s `before_cursor_execute` listener calls `end_pipeline`), and before
  a rollback or the pool's reset (`abandon_pipeline`); a pipeline that cannot be ended
  (cut, interrupted) closes the connection, which the pool then drops;
- the transaction's `BEGIN` and `COMMIT` go in the pipeline; psycopg reads the transaction
  status from libpq, so its `commit()` then finds nothing to end, as before;
- psycopg prepares nothing itself on these connections (`prepare_threshold=None`, set by
  `storage.database.make_engine`), so it never sends the `DEALLOCATE ALL` with which it
  follows a rollback once it has prepared statements of its own, and the wire's names stay
  valid for the session's life. A statement the session has lost anyway (dropped, or its
  plan made stale by an `ALTER TABLE`) fails: the wire forgets its names and the
  transaction is run again (`statement_lost`, `storage.database.is_retryable`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.generators import fetch_many, send
from sqlalchemy import Connection

_INFO_KEY = "creditgate.wire"
_FATAL = pq.ExecStatus.FATAL_ERROR
_ABORTED = pq.ExecStatus.PIPELINE_ABORTED
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_OK = pq.ExecStatus.COMMAND_OK
_BAD = pq.ConnStatus.BAD
_PIPELINE_OFF = pq.PipelineStatus.OFF
_IDLE = pq.TransactionStatus.IDLE
NAME_LOST = "26000"  # invalid_sql_statement_name: a prepared statement the server has not got
STALE_PLAN = "0A000"  # feature_not_supported, as "cached plan must not change result type"

_names = itertools.count(1)
_PLACEHOLDER = re.compile(r"%%|%\(([^)]+)\)s")


def positional(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """A pyformat statement (`%(name)s`, `%%`), as SQLAlchemy compiles it for psycopg, in
    libpq's numbered form (`$1`), with the parameters' names in number order."""
    order: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in order:
            order[name] = len(order) + 1
        return f"${order[name]}"

    return _PLACEHOLDER.sub(number, sql).encode(), tuple(order)


class Sent:
    """One statement sent on a wire; its results are there once the wire has synced."""

    __slots__ = ("results", "wire")

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.results: list[Any] | None = None

    def arrived(self) -> Any:
        """The statement's result (a `psycopg.pq.PGresult`), syncing the wire if need be.
        Raises, as psycopg does, for a statement that failed or that an earlier failure in
        its pipeline aborted."""
        if self.results is None:
            self.wire.sync()
        result = self.results[-1] if self.results else None
        if result is None or result.status == _ABORTED:
            raise errors.PipelineAborted("pipeline aborted")
        if result.status == _FATAL:
            raise self.wire.error(result)
        return result

    def rows(self) -> tuple[Any, list[Any]]:
        """The result and its rows (tuples) loaded by psycopg's loaders."""
        result = self.arrived()
        loader = self.wire.loader
        loader.set_pgresult(result)
        rows = loader.load_rows(0, result.ntuples, tuple)
        loader.set_pgresult(None)
        return result, rows

    def rowcount(self) -> int:
        count = self.arrived().command_tuples
        return -1 if count is None else int(count)


# What `Wire.waiting` holds: a statement sent, or a prepare (the key it is prepared under).
_Waiting = Sent | tuple[bytes, tuple[int, ...]]


class Wire:
    """Statements sent on one psycopg connection's libpq handle, outside psycopg."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.pgconn = driver.pgconn
        self.dumper = Transformer(driver)
        self.loader = Transformer(driver)
        self.names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.waiting: list[_Waiting] = []
        self.depth = 0  # open `storage.prepared.pipeline` blocks
        # Whether a transaction is open once what is queued has run: libpq reports "active"
        # while a pipeline is out, so it is read when the pipeline opens and after each Sync.
        self.in_transaction = False

    @classmethod
    def of(cls, conn: Connection) -> Wire:
        """The wire of `conn`'s driver connection, made on first use and kept for its life."""
        record = conn.connection
        wire: Wire | None = record.info.get(_INFO_KEY)
        driver = record.driver_connection
        if wire is None or wire.driver is not driver:
            wire = cls(driver)
            record.info[_INFO_KEY] = wire
        return wire

    def _open(self) -> None:
        pgconn = self.pgconn
        if pgconn.pipeline_status == _PIPELINE_OFF:
            self.in_transaction = pgconn.transaction_status != _IDLE
            pgconn.enter_pipeline_mode()

    def begin(self, sql: bytes) -> None:
        """Queue the transaction's `BEGIN`."""
        self.command(sql)
        self.in_transaction = True

    def transaction_open(self) -> bool:
        """Whether a transaction is open, or will be once the queued statements have run."""
        if self.waiting:
            return self.in_transaction
        return bool(self.pgconn.transaction_status != _IDLE)

    def error(self, result: Any) -> errors.Error:
        """psycopg's exception for a failed statement's result."""
        return errors.error_from_result(result, encoding=self.driver.info.encoding)

    def command(self, sql: bytes) -> Sent:
        """Queue a statement without parameters (`BEGIN`, `COMMIT`), not prepared."""
        self._open()
        self.pgconn.send_query_params(sql, None)
        sent = Sent(self)
        self.waiting.append(sent)
        return sent

    def send(self, sql: bytes, values: Sequence[Any]) -> Sent:
        """Queue a prepared statement's execution with `values` for its `$n` parameters."""
        dumper = self.dumper
        # Dumped before anything is queued: a value psycopg cannot dump changes nothing.
        params = dumper.dump_sequence(values, [PyFormat.AUTO] * len(values)) if values else None
        self._open()
        types: tuple[int, ...] = (dumper.types or ()) if values else ()
        key = (sql, types)
        name = self.names.get(key)
        if name is None:
            name = b"cg_%d" % next(_names)
            self.pgconn.send_prepare(name, sql, param_types=types or None)
            self.names[key] = name
            self.waiting.append(key)
        self.pgconn.send_query_prepared(
            name, params, param_formats=dumper.formats if values else None
        )
        sent = Sent(self)
        self.waiting.append(sent)
        return sent

    def sync(self) -> None:
        """End the pipeline: one Sync, every result read, pipeline mode left. Raises the
        first failed statement's error (the statements after it are then aborted)."""
        pgconn = self.pgconn
        if pgconn.pipeline_status == _PIPELINE_OFF:
            return
        waiting, self.waiting = self.waiting, []
        try:
            pgconn.pipeline_sync()
            answered = self.driver.wait(_round_trip(pgconn))
            if len(answered) != len(waiting):
                # Something was queued and not recorded (an interruption between the two):
                # no result can be trusted to be its statement's.
                raise errors.InternalError("the pipeline's results are out of step")
            pgconn.exit_pipeline_mode()
        except BaseException:
            # Cut, interrupted or out of step: which results arrived is unknown, so the
            # connection is closed, for the pool to drop, rather than left half way through
            # a pipeline.
            self.names.clear()
            for item in waiting:
                if isinstance(item, Sent):
                    item.results = []
            if pgconn.status != _BAD:
                self.driver.close()
            raise
        self.in_transaction = pgconn.transaction_status != _IDLE
        failed: BaseException | None = None
        for item, results in zip(waiting, answered, strict=True):
            last = results[-1] if results else None
            if isinstance(item, Sent):
                item.results = results
            elif last is None or last.status != _OK:
                # Not prepared: the prepare failed, or an earlier statement did.
                self.names.pop(item, None)
            if failed is None and last is not None and last.status == _FATAL:
                failed = self.error(last)
        if failed is not None:
            if statement_lost(failed):
                self.names.clear()  # prepared again on the transaction's next run
            raise failed


def statement_lost(exc: BaseException | None) -> bool:
    """A prepared statement the session no longer has as prepared: dropped (`DEALLOCATE`),
    or made stale by a change of a table it reads (`cached plan must not change result
    type`, after an `ALTER TABLE`). Preparing it again, in a new transaction, mends it."""
    state = getattr(exc, "sqlstate", None)
    return state == NAME_LOST or (state == STALE_PLAN and "cached plan" in str(exc))


def _round_trip(pgconn: Any) -> Any:
    """Flush what is queued, then read every statement's results up to the Sync's."""
    yield from send(pgconn)
    answered: list[list[Any]] = []
    while True:
        results = yield from fetch_many(pgconn)
        if results and results[0].status == _SYNC:
            return answered
        answered.append(results)


def end_pipeline(conn: Connection) -> None:
    """Answer and close the wire's pipeline, if one is open, before psycopg sends anything."""
    wire = conn.connection.info.get(_INFO_KEY)
    if wire is not None and wire.pgconn.pipeline_status != _PIPELINE_OFF:
        wire.sync()


def abandon_pipeline(info: Any) -> None:
    """Before a rollback or the pool's reset: a pipeline still open (an error between its
    statements and its Sync) is ended, its errors dropped (the rollback is what follows
    them); one that cannot be ended closes the connection, for the pool to drop."""
    wire = info.get(_INFO_KEY)
    if wire is None or wire.pgconn.status == _BAD:
        return
    if wire.pgconn.pipeline_status != _PIPELINE_OFF:
        try:
            wire.sync()
        except Exception:
            if wire.pgconn.status != _BAD and wire.pgconn.pipeline_status != _PIPELINE_OFF:
                wire.driver.close()
