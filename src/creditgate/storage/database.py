"""Engines and the unit of work: one transaction per use case, retried on conflicts.

SQLite runs in WAL mode and every write transaction takes the write lock up front
(`BEGIN IMMEDIATE`), so two writers never deadlock upgrading a read lock. PostgreSQL runs
at READ COMMITTED; correctness comes from conditional updates and row locks taken in one
order (the wallet balance row first), and any serialization failure or deadlock is retried.

Each backend has one path for the gate (ARCHITECTURE.md, "One path per backend"): on
PostgreSQL a unit of work's moves go with the commit, guarded, and a guard that misses
(`GuardMissed`) runs it once more on the locking path, SQLite's only path (`careful`).
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool

from creditgate.settings import Settings
from creditgate.storage import hosts
from creditgate.storage.begin import begin_with_first_statement
from creditgate.storage.guards import is_guard_miss
from creditgate.storage.prepared import pipeline
from creditgate.storage.secret_keys import SecretKeys
from creditgate.storage.unit_of_work import UnitOfWork
from creditgate.storage.wire import Wire, statement_lost

T = TypeVar("T")

DEFAULT_SQLITE_FILE = "creditgate.db"
RETRYABLE_PG_STATES = {"40001", "40P01", "55P03"}
MAX_ATTEMPTS = 12


class RetryTransaction(Exception):
    """Raised inside a unit of work to roll back and run it again from the start."""


class ConflictAtCommit(RetryTransaction):
    """A write sent with the commit met a unique key another transaction holds (most often
    an idempotency key that the unit of work took as new without looking it up), so the
    transaction rolled back: the work runs again, its unit of work `careful`, which looks
    every key up before it writes. Counted in `Database.stats["careful_reruns"]`."""


class GuardMissed(RetryTransaction):
    """A guarded write sent with the commit found its condition false (`storage.guards`), so
    the transaction rolled back: the work runs again, its unit of work `careful` (the
    locking path), which answers with the reason or makes the reaction the guard refused.
    PostgreSQL's one fallback; counted in `Database.stats["careful_reruns"]`."""


def default_url() -> str:
    """`$CREDITGATE_DB`, else `./creditgate.db`."""
    return Settings().db or f"sqlite:///{Path(DEFAULT_SQLITE_FILE).resolve()}"


def normalize_url(url: str) -> str:
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql"):
        return hosts.one_host_per_parameter(url)
    return url


def sqlite_synchronous() -> str:
    return Settings().sqlite_synchronous


class _SqliteConnection(sqlite3.Connection):
    """A SQLite connection that remembers its cursors, so that going back to the pool closes
    them. A cursor left part-way through its rows (a result half read and still referenced,
    by an exception's traceback for one) keeps its statement running, and with it the read
    snapshot it started: every later transaction on the connection reads that old snapshot,
    as SQLite's BEGIN does not end it and the pool's rollback finds no transaction to end.
    A tenant just created could then be "unknown" to the next read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cursors: list[weakref.ref[sqlite3.Cursor]] = []

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        made: sqlite3.Cursor = super().cursor(*args, **kwargs)
        self._cursors.append(weakref.ref(made))
        return made

    def close_cursors(self) -> None:
        cursors, self._cursors = self._cursors, []
        for ref in cursors:
            cursor = ref()
            if cursor is not None:
                cursor.close()


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "factory": _SqliteConnection},
            poolclass=NullPool if parsed.database in (None, "", ":memory:") else None,
        )

        @event.listens_for(engine, "checkin")
        def _sqlite_checkin(dbapi_conn: Any, _record: Any) -> None:
            # Before another thread may take it: no statement of this use still running.
            if isinstance(dbapi_conn, _SqliteConnection):
                dbapi_conn.close_cursors()

        synchronous = sqlite_synchronous()

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN itself (see below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            read_only = UnitOfWork.is_read_only(conn)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        # No pre-ping (a round trip per checkout on the hot path): a connection found dead
        # by a statement invalidates the whole pool, so one failover costs the requests in
        # flight, not one per pooled connection.
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            isolation_level="READ COMMITTED",
            # The hot path prepares its statements itself (`storage.wire`); psycopg preparing
            # others would follow each rollback with a DEALLOCATE ALL that drops those too.
            connect_args={"prepare_threshold": None},
        )

        begin_with_first_statement(engine)

        @event.listens_for(engine, "handle_error")
        def _postgres_gone(context: ExceptionContext) -> None:
            # A server shutting down for a switchover, or a standby where the primary was,
            # is as gone as a cut connection: never reuse the connection to it.
            state = getattr(context.original_exception, "sqlstate", None)
            if hosts.is_unavailable_state(state):
                context.is_disconnect = True

        return engine
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql+psycopg://")


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryTransaction):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        state = getattr(orig, "sqlstate", None)
        if state in RETRYABLE_PG_STATES or statement_lost(orig):
            return True  # (a lost prepared statement: the wire prepares it again)
        if isinstance(exc, OperationalError) and "database is locked" in str(orig):
            return True
    return False


def is_unavailable(exc: BaseException) -> bool:
    """The database is not there to answer (cut, restarting, failing over, or a standby
    that is not yet the primary): the request can be sent again, with its idempotency key,
    once a primary answers. SQLAlchemy has already invalidated the pool's connections to it."""
    if isinstance(exc, (OperationalError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return hosts.is_unavailable_state(getattr(exc.orig, "sqlstate", None))
    return False


def _unusable(conn: Connection, exc: BaseException) -> bool:
    """The connection must not go back to the pool: the server cut it, is going away, or is a
    standby. The hot path's statements (`storage.prepared`: on PostgreSQL the connection's
    wire, `storage.wire`) and the commit's pipeline raise past SQLAlchemy's own disconnect
    check, so it is made here for them."""
    if conn.invalidated:
        return False
    if isinstance(exc, DBAPIError) and hosts.is_unavailable_state(
        getattr(exc.orig, "sqlstate", None)
    ):
        return True
    # Whatever was raised (an interruption too): a connection the driver or the wire found
    # cut, or closed half way through a pipeline.
    driver = conn.connection.driver_connection
    return bool(getattr(driver, "broken", False) or getattr(driver, "closed", False))


def _send_commit(conn: Connection) -> None:
    """On PostgreSQL, COMMIT sent as the commit pipeline's last statement, in the
    connection's wire: the pipeline's one Sync ends it, where the driver's `commit()` would
    wait for it in a round trip of its own. The driver then finds the transaction over, and
    SQLAlchemy's commit only ends its own. Elsewhere, nothing: SQLAlchemy's commit commits."""
    if conn.dialect.name != "postgresql":
        return
    wire = Wire.of(conn)
    if wire.transaction_open():  # else nothing began: there is no transaction to end
        wire.command(b"COMMIT")


def _commit(uow: UnitOfWork) -> None:
    conn = uow.conn
    deferred = uow.in_commit_order()
    try:
        with pipeline(conn):
            sent = [(d, d.statement.submit(conn, d.params)) for d in deferred]
            _send_commit(conn)
        conn.commit()
        for d, pending in sent:
            if d.returns:
                d.row = pending.first()
    except Exception as exc:
        # The driver's transaction failed at the commit: end it before the connection
        # goes back to the pool.
        try:
            conn.connection.driver_connection.rollback()  # type: ignore[union-attr]
        except Exception:
            conn.invalidate()
        if isinstance(exc, IntegrityError):
            raise ConflictAtCommit from exc
        if isinstance(exc, DBAPIError) and is_guard_miss(getattr(exc.orig, "sqlstate", None)):
            raise GuardMissed from None
        raise


# The most units of work `run_combined` puts in one transaction.
MAX_COMBINED = 32


class _Waiting:
    """A unit of work waiting in `run_combined`: its answer, or the batch it is to lead."""

    __slots__ = ("batch", "done", "error", "result", "token", "work")

    def __init__(self, work: Callable[[Connection], Any], token: Any) -> None:
        self.work = work
        self.token = token
        self.done = threading.Event()
        self.batch: list[_Waiting] | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    def answer(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class Database:
    """An engine plus the unit of work every service runs in."""

    def __init__(self, url: str | None = None, *, pool_size: int = 10) -> None:
        self.url = normalize_url(url or default_url())
        self.engine = make_engine(self.url, pool_size=pool_size)
        self.dialect = self.engine.dialect.name
        # The keys the secrets stored in this database are sealed with.
        self.secret_keys = SecretKeys.for_url(self.url)
        self._combining = threading.Lock()
        self._busy: dict[Any, list[_Waiting]] = {}  # key -> units of work waiting on it
        # Counts for tests and benchmarks.
        self.stats = {"combined_batches": 0, "combined_calls": 0, "careful_reruns": 0}

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def durability(self) -> str:
        if self.is_sqlite:
            return f"sqlite journal_mode=WAL synchronous={sqlite_synchronous()}"
        with self.engine.connect() as conn:
            sync = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            fsync = conn.exec_driver_sql("SHOW fsync").scalar()
            standbys = conn.exec_driver_sql("SHOW synchronous_standby_names").scalar()
        replicated = f" synchronous_standby_names={standbys}" if standbys else ""
        return f"postgresql synchronous_commit={sync} fsync={fsync}{replicated}"

    def upkeep_warnings(self) -> list[str]:
        """What the database server is set to that a service running for long suffers from."""
        if self.is_sqlite:
            return []
        with self.engine.connect() as conn:
            autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
        if autovacuum != "off":
            return []
        return [
            "autovacuum is off on this PostgreSQL server: balances, holds, lots and events "
            "change on every call, and unvacuumed, every read of them walks more dead rows "
            "the longer the service runs; turn autovacuum on, or vacuum them on a schedule"
        ]

    @contextmanager
    def connect(self, *, read_only: bool = False, careful: bool = False) -> Iterator[Connection]:
        """One transaction, with its unit of work (`UnitOfWork.of(conn)`). Writes it defers
        go out with the commit: on PostgreSQL in the same round trip, so rows locked earlier
        are released sooner."""
        with self.engine.connect() as conn:
            uow = UnitOfWork.begin(conn, read_only=read_only, careful=careful)
            try:
                trans = conn.begin()
                try:
                    yield conn
                    _commit(uow)
                except BaseException as exc:
                    if _unusable(conn, exc):
                        conn.invalidate()
                    if trans.is_active:
                        trans.rollback()
                    raise
            finally:
                # A connection the database cut is invalidated and never reused; touching its
                # info would only mask the error that says so.
                if not conn.invalidated:
                    uow.detach()
                else:
                    # The others to that server are as dead (a failover, a restart): drop
                    # them all now, as SQLAlchemy does for a disconnect it sees itself, rather
                    # than fail one request on each.
                    self.engine.dispose(close=False)

    def run(
        self,
        work: Callable[[Connection], T],
        *,
        read_only: bool = False,
    ) -> T:
        """Run `work` in one transaction, again from the start on a retryable conflict.
        After a missed guard or a conflict at the commit, the next run's unit of work is
        `careful`: it locks and reads as it goes, and looks up every key it writes."""
        was_careful = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.connect(read_only=read_only, careful=was_careful) as conn:
                    result = work(conn)
                    finishers = UnitOfWork.of(conn).take_finishers()
                return _finished(result, finishers)  # type: ignore[no-any-return]
            except (GuardMissed, ConflictAtCommit):
                # No pause: the careful path takes the locks it needs, and a unique key's
                # conflict is met only once the other transaction has committed its row.
                if attempt == MAX_ATTEMPTS:
                    raise
                if not was_careful:
                    self._count("careful_reruns")
                    was_careful = True
            except Exception as exc:
                if attempt == MAX_ATTEMPTS or not is_retryable(exc):
                    raise
                time.sleep(min(0.05, 0.001 * 2**attempt) * random.random())
        raise AssertionError("unreachable")

    def run_combined(self, key: Any, work: Callable[[Connection], T], *, token: Any) -> T:
        """`run`, sharing one transaction with other threads' units of work on the same key.

        While a transaction for `key` (one wallet's balance in one asset) is running in this
        process, units of work for it wait; when it ends, the first waiter runs every waiting
        one (up to `MAX_COMBINED`) in one transaction, in arrival order. One wallet then
        costs the database one commit, one lock hand-over and one round trip of writes per
        batch instead of per request, which is what a hot wallet is limited by. Alone, a
        unit of work runs at once, as with `run`. Writes a unit of work sends with the commit
        are not yet in the database when the next one reads: a unit that plans from reads
        either keeps what the earlier ones will leave (`storage.balances.pending_view`) or
        is saved by its writes' guards, which rerun the batch carefully.

        Each unit keeps its own answer. A unit that raises is taken out and run in a
        transaction of its own (so its error is its own), and the others run again
        together. Only work that is safe to run twice may be combined: work under an
        idempotency key, whose second run finds the first one's record if it committed.
        `token` is that key: two units of work with one token never share a transaction.
        """
        me = _Waiting(work, token)
        with self._combining:
            queue = self._busy.get(key)
            if queue is None:
                self._busy[key] = []
                me.batch = [me]
            else:
                queue.append(me)
        if me.batch is None:
            try:
                me.done.wait()
            except BaseException:
                self._abandon(key, me)
                raise
            if me.batch is None:
                return me.answer()  # type: ignore[no-any-return]
        batch = me.batch
        try:
            self._run_batch(batch)
        except BaseException as exc:
            for other in batch[1:]:
                if not other.done.is_set():
                    other.error = BatchInterrupted(
                        "the transaction this call was to share was interrupted; "
                        "its outcome is unknown: retry it with its idempotency key"
                    )
                    other.error.__cause__ = exc
                    other.done.set()
            raise
        finally:
            self._hand_over(key)
        return me.answer()  # type: ignore[no-any-return]

    def _abandon(self, key: Any, me: _Waiting) -> None:
        """A waiter interrupted while it waits: out of the queue, or if it was just made the
        next leader, its batch's other calls are told and the key handed on."""
        with self._combining:
            queue = self._busy.get(key)
            if queue is not None and me in queue:
                queue.remove(me)
                return
        if me.batch is not None:
            for other in me.batch[1:]:
                other.error = BatchInterrupted("the call leading this batch was interrupted")
                other.done.set()
            self._hand_over(key)

    def _hand_over(self, key: Any) -> None:
        """The first unit of work waiting on `key` leads the next batch; none: `key` is free."""
        with self._combining:
            queue = self._busy[key]
            if not queue:
                del self._busy[key]
                return
            leader = queue[0]
            leader.batch = queue[:MAX_COMBINED]
            self._busy[key] = queue[MAX_COMBINED:]
        leader.done.set()

    def _count(self, name: str, n: int = 1) -> None:
        with self._combining:
            self.stats[name] += n

    def _run_batch(self, batch: list[_Waiting]) -> None:
        together = list(batch)
        if len({w.token for w in together}) != len(together):
            for waiting in together:  # one key twice: each alone, the second replaying the first
                self._run_alone(waiting)
            return
        while len(together) > 1:
            try:
                # A conflict at the commit (a key some unit of work did not look up, trusting
                # the commit to catch it) makes the next run careful: every one looks up.
                results = self.run(lambda conn: _together(conn, [w.work for w in together]))
            except _UnitFailed as failed:
                self._run_alone(together.pop(failed.index))  # its own answer, or its error
                continue
            except Exception:  # each runs again on its own, and answers there
                break
            self._count("combined_batches")
            self._count("combined_calls", len(together))
            for waiting, (result, finishers) in zip(together, results, strict=True):
                try:
                    waiting.result = _finished(result, finishers)
                except Exception as exc:
                    waiting.error = exc
                waiting.done.set()
            return
        for waiting in together:
            self._run_alone(waiting)

    def _run_alone(self, waiting: _Waiting) -> None:
        try:
            waiting.result = self.run(waiting.work)
        except Exception as exc:
            waiting.error = exc
        waiting.done.set()

    def dispose(self) -> None:
        self.engine.dispose()


def _finished(result: Any, finishers: list[Callable[[Any], Any]]) -> Any:
    """A committed unit of work's result, through its finishers (the results of the writes
    sent with the commit are in)."""
    for finish in finishers:
        result = finish(result)
    return result


class BatchInterrupted(Exception):
    """A call waiting to share a transaction whose batch was interrupted (see `run_combined`)."""


class _UnitFailed(Exception):
    """Unit of work `index` of a combined batch raised an error that is its own."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _together(conn: Connection, works: list[Callable[[Connection], Any]]) -> list[Any]:
    """Run units of work one after another in one transaction; each with its own finishers.

    A unit's retryable error (a conflict, a missed guard) reruns the whole batch; any other
    error is that unit's own: the batch rolls back and runs again without it."""
    uow = UnitOfWork.of(conn)
    done = []
    for index, work in enumerate(works):
        uow.next_unit()
        try:
            result = work(conn)
        except Exception as exc:
            if is_retryable(exc):
                raise
            raise _UnitFailed(index) from exc
        done.append((result, uow.take_finishers()))
    uow.next_unit()
    return done
