"""Engines and the unit of work: one transaction per use case, retried on conflicts.

SQLite runs in WAL mode and every write transaction takes the write lock up front
(`BEGIN IMMEDIATE`), so two writers never deadlock upgrading a read lock. PostgreSQL runs
at READ COMMITTED; correctness comes from conditional updates and row locks taken in one
order (the wallet balance row first), and any serialization failure or deadlock is retried.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

T = TypeVar("T")

DEFAULT_SQLITE_FILE = "creditgate.db"
RETRYABLE_PG_STATES = {"40001", "40P01", "55P03"}
MAX_ATTEMPTS = 12


class RetryTransaction(Exception):
    """Raised inside a unit of work to roll back and run it again from the start."""


class GuardMissed(RetryTransaction):
    """A guarded write sent with the commit found its condition false, so the transaction
    rolled back: the work runs again, this time with `careful(conn)` true."""


# What a guarded write raises in SQL when its condition is false (see `defer`): a division
# by zero, which nothing else in creditgate's statements can raise.
GUARD_SQLSTATE = "22012"


@dataclass(slots=True)
class Deferred:
    """A write sent with the commit; `row` is its first returned row, read at the commit."""

    statement: Any
    params: Any
    returns: bool = False
    row: Any = None


def default_url() -> str:
    return os.environ.get("CREDITGATE_DB") or f"sqlite:///{Path(DEFAULT_SQLITE_FILE).resolve()}"


def normalize_url(url: str) -> str:
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_synchronous() -> str:
    value = os.environ.get("CREDITGATE_SQLITE_SYNCHRONOUS", "FULL").upper()
    return value if value in {"OFF", "NORMAL", "FULL", "EXTRA"} else "FULL"


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=NullPool if parsed.database in (None, "", ":memory:") else None,
        )
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
            conn.exec_driver_sql("BEGIN" if conn.info.get("read_only") else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            isolation_level="READ COMMITTED",
        )
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql+psycopg://")


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryTransaction):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        state = getattr(orig, "sqlstate", None)
        if state in RETRYABLE_PG_STATES:
            return True
        if isinstance(exc, OperationalError) and "database is locked" in str(orig):
            return True
    return False


def defer(conn: Connection, statement: Any, params: Any, *, returns: bool = False) -> Deferred:
    """Send a write with the commit instead of now (the transaction's last writes).

    A unique-key conflict it meets restarts the transaction (see `RetryTransaction`); a
    guarded write whose guard fails restarts it carefully (see `GuardMissed`).
    """
    deferred = Deferred(statement, params, returns)
    conn.info["deferred"].append(deferred)
    return deferred


def careful(conn: Connection) -> bool:
    """Whether this attempt follows a missed guard: take the path that checks as it goes."""
    return bool(conn.info.get("careful"))


def after_commit(conn: Connection, finish: Callable[[Any], Any]) -> None:
    """Pass the unit of work's result through `finish` once the commit has succeeded."""
    conn.info["finishers"].append(finish)


def _commit(conn: Connection) -> None:
    from creditgate.storage.prepared import pipeline

    deferred: list[Deferred] = conn.info["deferred"]
    try:
        with pipeline(conn):
            sent = [(d, d.statement.submit(conn, d.params)) for d in deferred]
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
            raise RetryTransaction from None
        if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == GUARD_SQLSTATE:
            raise GuardMissed from None
        raise


class Database:
    """An engine plus the unit of work every service runs in."""

    def __init__(self, url: str | None = None, *, pool_size: int = 10) -> None:
        self.url = normalize_url(url or default_url())
        self.engine = make_engine(self.url, pool_size=pool_size)
        self.dialect = self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def durability(self) -> str:
        if self.is_sqlite:
            return f"sqlite journal_mode=WAL synchronous={sqlite_synchronous()}"
        with self.engine.connect() as conn:
            sync = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            fsync = conn.exec_driver_sql("SHOW fsync").scalar()
        return f"postgresql synchronous_commit={sync} fsync={fsync}"

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[Connection]:
        """One transaction. Writes deferred with `defer` go out with the commit: on
        PostgreSQL in the same round trip, so rows locked earlier are released sooner."""
        with self.engine.connect() as conn:
            conn.info["read_only"] = read_only
            conn.info["deferred"] = []
            conn.info["finishers"] = []
            try:
                trans = conn.begin()
                try:
                    yield conn
                    _commit(conn)
                except BaseException:
                    if trans.is_active:
                        trans.rollback()
                    raise
            finally:
                # A connection the database cut is invalidated and never reused; touching its
                # info would only mask the error that says so.
                if not conn.invalidated:
                    conn.info["read_only"] = False
                    conn.info["deferred"] = []
                    conn.info["finishers"] = []
                    conn.info["careful"] = False
                    conn.info.pop("available_at_commit", None)

    def run(self, work: Callable[[Connection], T], *, read_only: bool = False) -> T:
        """Run `work` in one transaction, again from the start on a retryable conflict."""
        was_careful = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.connect(read_only=read_only) as conn:
                    conn.info["careful"] = was_careful
                    result = work(conn)
                    finishers = list(conn.info["finishers"])
                for finish in finishers:  # committed: results of writes sent with it are in
                    result = finish(result)
                return result
            except GuardMissed:
                if attempt == MAX_ATTEMPTS:
                    raise
                was_careful = True  # no pause: the careful path takes the locks it needs
            except Exception as exc:
                if attempt == MAX_ATTEMPTS or not is_retryable(exc):
                    raise
                time.sleep(min(0.05, 0.001 * 2**attempt) * random.random())
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
