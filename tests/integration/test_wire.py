"""The hot path's statements on PostgreSQL go on libpq directly (`storage/wire.py`).

What the wire must keep as psycopg's cursors had it: the rows and errors a cursor would give,
one round trip per pipeline block, the connection usable by psycopg after every block (its
pipeline ended, on errors too), its prepared statements valid across rollbacks, and a
prepared statement the session lost prepared again rather than failing a request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from psycopg import pq
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, ProgrammingError, StatementError
from sqlalchemy.pool import NullPool

from creditgate.storage.database import Database, _unusable, is_retryable, is_unavailable
from creditgate.storage.prepared import Prepared, pipeline
from creditgate.storage.wire import Wire, positional
from tests.databases import database_of

_metadata = MetaData()
_rows = Table(
    "wire_rows",
    _metadata,
    Column("id", String, primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("amount", Numeric(20, 6)),
    Column("at", DateTime(timezone=True)),
    Column("meta", JSON),
    Column("small", Integer),
)
_PUT = Prepared(insert(_rows))
_PUT_RETURNING = Prepared(insert(_rows).returning(_rows.c.id, _rows.c.n))
_GET = Prepared(
    select(_rows.c.id, _rows.c.n, _rows.c.amount, _rows.c.at, _rows.c.meta).order_by(_rows.c.id)
)
_ADD = Prepared(update(_rows).values(n=_rows.c.n + 1).returning(_rows.c.n))


@pytest.fixture
def db(postgres_server: str) -> Iterator[Database]:
    with database_of(postgres_server, "wire", _metadata, pool_size=1) as database:
        yield database


def _wire(conn: Any) -> Wire:
    return Wire.of(conn)


def _pipeline_off(conn: Any) -> bool:
    return bool(_wire(conn).pgconn.pipeline_status == pq.PipelineStatus.OFF)


def test_placeholders_are_numbered_by_first_use_and_percent_signs_kept() -> None:
    sql, names = positional("SELECT %(a)s, %(b)s, %(a)s WHERE x LIKE 'y%%' AND z = %(c_1)s")
    assert sql == b"SELECT $1, $2, $1 WHERE x LIKE 'y%' AND z = $3"
    assert names == ("a", "b", "c_1")


def test_rows_come_back_as_a_cursor_gives_them(db: Database) -> None:
    at = dt.datetime(2026, 12, 7, 5, 0, tzinfo=dt.UTC)
    with db.connect() as conn:
        _PUT.execute(
            conn,
            {
                "id": "a",
                "n": 1,
                "amount": Decimal("1.250000"),
                "at": at,
                "meta": {"k": [1, "two"]},
                "small": 3,
            },
        )
        # A value past 32 bits is dumped as another type: the statement is prepared again.
        _PUT.execute(
            conn, {"id": "b", "n": 10**15, "amount": None, "at": None, "meta": None, "small": None}
        )
    with db.connect(read_only=True) as conn:
        wire_rows = _GET.rows(conn, {})
        cursor_rows = conn.execute(
            select(_rows.c.id, _rows.c.n, _rows.c.amount, _rows.c.at, _rows.c.meta).order_by(
                _rows.c.id
            )
        ).all()
    assert [tuple(r) for r in wire_rows] == [tuple(r) for r in cursor_rows]
    assert wire_rows[0].amount == Decimal("1.250000") and wire_rows[0].at == at
    assert wire_rows[0].meta == {"k": [1, "two"]}
    assert wire_rows[1].n == 10**15


def test_a_pipeline_block_is_one_round_trip_and_returns_each_statements_rows(
    db: Database,
) -> None:
    with db.connect() as conn:
        wire = _wire(conn)
        syncs = 0
        real_sync = wire.sync

        def counted() -> None:
            nonlocal syncs
            if wire.waiting:
                syncs += 1
            real_sync()

        wire.sync = counted  # type: ignore[method-assign]
        try:
            with pipeline(conn):
                first = _PUT_RETURNING.submit(conn, {"id": "p1", "n": 1})
                second = _PUT_RETURNING.submit(conn, {"id": "p2", "n": 2})
                bumped = _ADD.submit(conn, {})
            assert syncs == 1
            assert first.first() == ("p1", 1) and second.first() == ("p2", 2)
            assert sorted(r.n for r in bumped.rows()) == [2, 3]
            assert syncs == 1  # read after the block: nothing more sent
        finally:
            wire.sync = real_sync  # type: ignore[method-assign]
        assert _pipeline_off(conn)


def test_an_error_in_a_pipeline_is_the_drivers_own_and_leaves_the_connection_usable(
    db: Database,
) -> None:
    with db.connect() as conn:
        _PUT.execute(conn, {"id": "dup", "n": 1})
    with pytest.raises(IntegrityError) as raised, db.connect() as conn, pipeline(conn):
        _PUT.submit(conn, {"id": "x", "n": 1})
        _PUT.submit(conn, {"id": "dup", "n": 2})  # fails: the rest is aborted
        _PUT.submit(conn, {"id": "y", "n": 3})
    assert getattr(raised.value.orig, "sqlstate", None) == "23505"
    # Nothing of the failed transaction stayed, and the one connection works on.
    with db.connect(read_only=True) as conn:
        assert _pipeline_off(conn)
        assert [r.id for r in _GET.rows(conn, {})] == ["dup"]
        assert conn.execute(text("SELECT 1")).scalar_one() == 1  # through psycopg itself


def test_an_error_read_inside_a_block_and_one_outside_it_are_wrapped_alike(
    db: Database,
) -> None:
    bad = Prepared(select(text("1/0 AS x")).select_from(_rows))
    with db.connect() as conn:
        _PUT.execute(conn, {"id": "r", "n": 1})
    for inside in (True, False):
        with pytest.raises(Exception) as raised, db.connect() as conn:
            if inside:
                with pipeline(conn):
                    bad.submit(conn, {}).rows()
            else:
                bad.rows(conn, {})
        assert getattr(getattr(raised.value, "orig", None), "sqlstate", None) == "22012"
    with db.connect(read_only=True) as conn:
        assert _pipeline_off(conn)
        assert len(_GET.rows(conn, {})) == 1


def test_prepared_statements_outlive_rollbacks(db: Database) -> None:
    """psycopg prepares nothing itself, so it never follows a rollback with DEALLOCATE ALL."""
    with db.connect() as conn:
        _PUT.execute(conn, {"id": "k", "n": 1})
        names = dict(_wire(conn).names)
        driver = conn.connection.driver_connection
        assert driver.prepare_threshold is None  # type: ignore[union-attr]
    for _ in range(3):
        with pytest.raises(IntegrityError), db.connect() as conn:
            _PUT.execute(conn, {"id": "k", "n": 2})
        with pytest.raises(ProgrammingError), db.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))  # fails through psycopg
    with db.connect() as conn:
        server_side = {
            r[0] for r in conn.execute(text("SELECT name FROM pg_prepared_statements")).all()
        }
        assert {n.decode() for n in names.values()} <= server_side
        _PUT.execute(conn, {"id": "k2", "n": 3})
        assert dict(_wire(conn).names) == names  # nothing prepared again


def test_a_lost_prepared_statement_is_retried_and_prepared_again(db: Database) -> None:
    with db.connect() as conn:
        _PUT.execute(conn, {"id": "before", "n": 1})
        conn.execute(text("DEALLOCATE ALL"))  # what a pooler or an operator might do
    attempts = 0

    def work(conn: Any) -> int:
        nonlocal attempts
        attempts += 1
        return _PUT.execute(conn, {"id": f"after{attempts}", "n": 2})

    assert db.run(work) == 1
    assert attempts == 2  # the first met the lost name; the transaction ran again
    with db.connect(read_only=True) as conn:
        assert [r.id for r in _GET.rows(conn, {})] == ["after2", "before"]


def test_the_lost_name_error_is_retryable(db: Database) -> None:
    with db.connect() as conn:
        _PUT.execute(conn, {"id": "z", "n": 1})
        conn.execute(text("DEALLOCATE ALL"))
    with pytest.raises(Exception) as raised, db.connect() as conn:
        _PUT.execute(conn, {"id": "z2", "n": 1})
    assert is_retryable(raised.value)


def test_psycopg_statements_between_wire_statements_keep_their_order(db: Database) -> None:
    with db.connect() as conn:
        with pipeline(conn):
            _PUT.submit(conn, {"id": "w1", "n": 1})
            # Sent by psycopg itself: the wire's pipeline is answered first, so this sees it.
            seen = conn.execute(select(_rows.c.id)).scalars().all()
            later = _PUT_RETURNING.submit(conn, {"id": "w2", "n": 2})
        assert seen == ["w1"]
        assert later.first() == ("w2", 2)
        assert _pipeline_off(conn)


def test_a_block_that_raises_leaves_no_pipeline_open(db: Database) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.connect() as conn, pipeline(conn):
        _PUT.submit(conn, {"id": "b1", "n": 1})
        raise Boom
    with db.connect(read_only=True) as conn:
        assert _pipeline_off(conn)
        assert _GET.rows(conn, {}) == []  # rolled back


def test_a_cut_connection_is_dropped_and_the_next_one_works(db: Database) -> None:
    with db.connect() as conn:
        _PUT.execute(conn, {"id": "c0", "n": 1})
    killer = create_engine(db.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with pytest.raises(Exception) as raised, db.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with killer.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            with pipeline(conn):
                _PUT.submit(conn, {"id": "c1", "n": 1})
        assert is_unavailable(raised.value)
    finally:
        killer.dispose()
    with db.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
        assert _pipeline_off(conn)
        _PUT.execute(conn, {"id": "c2", "n": 2})
    with db.connect(read_only=True) as conn:
        assert [r.id for r in _GET.rows(conn, {})] == ["c0", "c2"]


def test_a_value_the_driver_cannot_send_raises_its_own_error_and_sends_nothing(
    db: Database,
) -> None:
    for bad in ("nul\x00byte", object()):
        with pytest.raises(StatementError) as raised, db.connect() as conn:
            _PUT.execute(conn, {"id": "first", "n": 1})  # a transaction is open
            _PUT.execute(conn, {"id": bad, "n": 2})
        assert not is_unavailable(raised.value)  # the value's error, not "database gone"
        with db.connect() as conn:
            assert _pipeline_off(conn)
            # psycopg's own statements, with parameters, work on that connection.
            assert conn.execute(select(_rows.c.id).where(_rows.c.n == 1)).all() == []
    # Inside a block too: the block ends its pipeline, the transaction rolls back.
    with pytest.raises(StatementError), db.connect() as conn, pipeline(conn):
        _PUT.submit(conn, {"id": "ok", "n": 1})
        _PUT.submit(conn, {"id": "nul\x00", "n": 2})
    with db.connect(read_only=True) as conn:
        assert _pipeline_off(conn)
        assert _GET.rows(conn, {}) == []


def test_a_plan_a_table_change_made_stale_is_prepared_again(db: Database) -> None:
    with db.connect() as conn:
        _PUT.execute(conn, {"id": "a", "n": 1, "amount": Decimal("1.5")})
        assert len(_GET.rows(conn, {})) == 1  # prepared with amount as numeric(20,6)
    killer = create_engine(db.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with killer.connect() as other:
            other.execute(text("ALTER TABLE wire_rows ALTER COLUMN amount TYPE numeric(30,6)"))
    finally:
        killer.dispose()
    attempts = 0

    def read(conn: Any) -> list[Any]:
        nonlocal attempts
        attempts += 1
        return _GET.rows(conn, {})

    assert [r.amount for r in db.run(read, read_only=True)] == [Decimal("1.5")]
    assert attempts == 2  # "cached plan must not change result type", then prepared again


def test_an_interruption_mid_round_trip_is_raised_and_the_connection_dropped(
    db: Database,
) -> None:
    """Ctrl-C while the wire waits for its results: the KeyboardInterrupt itself comes out,
    and the connection (closed by the wire, half way through its pipeline) is dropped."""
    with db.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with pytest.raises(KeyboardInterrupt), db.connect() as conn:
        _PUT.execute(conn, {"id": "i", "n": 1})
        driver: Any = conn.connection.driver_connection

        def interrupted(gen: Any, *args: Any, **kwargs: Any) -> Any:
            gen.close()
            raise KeyboardInterrupt

        driver.wait = interrupted  # (a signal handler's KeyboardInterrupt, as psycopg re-raises it)
        _PUT.execute(conn, {"id": "j", "n": 2})
    with db.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
        assert _pipeline_off(conn)
        assert _GET.rows(conn, {}) == []


def test_a_closed_connection_is_dropped_whatever_was_raised(db: Database) -> None:
    """Not only a driver's error: a connection closed under an interruption must not go back
    to the pool, nor be rolled back (which would raise 'the connection is closed' in place of
    the interruption)."""
    with db.engine.connect() as conn:
        conn.connection.driver_connection.close()  # type: ignore[union-attr]
        assert _unusable(conn, KeyboardInterrupt())
        assert _unusable(conn, RuntimeError("any"))
        conn.invalidate()


def test_a_statement_an_earlier_failure_aborted_is_not_read_as_empty(db: Database) -> None:
    with db.connect() as conn:
        _PUT.execute(conn, {"id": "dup", "n": 1})
    with db.connect() as conn:
        try:
            with pipeline(conn):
                _PUT.submit(conn, {"id": "dup", "n": 2})
                aborted = _GET.submit(conn, {})
        except IntegrityError:
            pass
        with pytest.raises(StatementError):
            aborted.rows()
        with pytest.raises(StatementError):
            aborted.rowcount()
