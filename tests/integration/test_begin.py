"""PostgreSQL transactions begin with their first statement (`storage/begin.py`).

The driver is in autocommit mode, and creditgate sends each transaction's BEGIN itself, in
the first statement's round trip. These tests check what that must never change: no
statement runs outside its transaction, whichever way it is sent (SQLAlchemy, a prepared
statement alone or in a pipeline, the commit's pipeline), so another connection sees nothing
before the commit and nothing at all after a rollback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text

from creditgate.storage.database import Database
from creditgate.storage.prepared import Prepared, pipeline
from creditgate.storage.unit_of_work import UnitOfWork
from tests.databases import database_of

_metadata = MetaData()
_rows = Table("begin_rows", _metadata, Column("x", Integer, nullable=False))
_PUT = Prepared(insert(_rows))


@pytest.fixture
def db(postgres_server: str) -> Iterator[Database]:
    with database_of(postgres_server, "begin", _metadata, pool_size=2) as database:
        yield database


def _count(db: Database) -> int:
    """The rows another connection sees: committed ones only."""
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(_rows)).scalar_one())


class Boom(Exception):
    pass


def test_the_driver_is_in_autocommit_and_the_first_statement_begins_the_transaction(
    db: Database,
) -> None:
    with db.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None and driver.autocommit  # type: ignore[attr-defined]
        assert driver.info.transaction_status.name == "IDLE"  # type: ignore[attr-defined]
        conn.execute(insert(_rows).values(x=1))
        assert driver.info.transaction_status.name == "INTRANS"  # type: ignore[attr-defined]
        # Not committed yet: another connection sees nothing.
        assert _count(db) == 0
    assert _count(db) == 1


@pytest.mark.parametrize("way", ["sqlalchemy", "prepared", "pipeline", "at commit"])
def test_nothing_runs_outside_the_transaction(db: Database, way: str) -> None:
    def write(conn: object) -> None:
        assert hasattr(conn, "execute")
        if way == "sqlalchemy":
            conn.execute(insert(_rows).values(x=1))
            conn.execute(text("INSERT INTO begin_rows (x) VALUES (2)"))
        elif way == "prepared":
            _PUT.execute(conn, {"x": 1})  # type: ignore[arg-type]
            _PUT.execute(conn, {"x": 2})  # type: ignore[arg-type]
        elif way == "pipeline":
            with pipeline(conn):  # type: ignore[arg-type]
                _PUT.submit(conn, {"x": 1})  # type: ignore[arg-type]
                _PUT.submit(conn, {"x": 2})  # type: ignore[arg-type]
        else:
            uow = UnitOfWork.of(conn)  # type: ignore[arg-type]
            uow.defer(_PUT, {"x": 1})
            uow.defer(_PUT, {"x": 2})

    # Rolled back: nothing, whichever statement began it.
    with pytest.raises(Boom), db.connect() as conn:
        write(conn)
        if way != "at commit":
            assert _count(db) == 0
        raise Boom
    assert _count(db) == 0
    # Committed: both rows, at once.
    with db.connect() as conn:
        write(conn)
        if way != "at commit":
            assert _count(db) == 0
    assert _count(db) == 2


def test_a_failed_statement_rolls_back_the_ones_before_it(db: Database) -> None:
    with pytest.raises(Exception, match="null value"), db.connect() as conn:
        with pipeline(conn):
            _PUT.submit(conn, {"x": 1})
        conn.execute(text("INSERT INTO begin_rows (x) VALUES (NULL)"))
    assert _count(db) == 0
    # The connection went back to the pool usable, its next transaction begun afresh.
    for _ in range(3):
        with db.connect() as conn:
            _PUT.execute(conn, {"x": 5})
    assert _count(db) == 3


def test_another_isolation_level_leaves_the_driver_to_begin(db: Database) -> None:
    """SQLAlchemy turns the driver's autocommit off to set another isolation level: the
    driver then begins the transaction itself, still never running a statement outside it."""
    with db.engine.connect() as plain:
        conn = plain.execution_options(isolation_level="REPEATABLE READ")
        driver = conn.connection.driver_connection
        conn.execute(insert(_rows).values(x=1))
        assert not driver.autocommit  # type: ignore[union-attr]
        level = conn.execute(text("SHOW transaction_isolation")).scalar_one()
        assert level == "repeatable read"
        assert _count(db) == 0
        conn.rollback()
    assert _count(db) == 0


def test_a_connection_asked_to_autocommit_runs_each_statement_on_its_own(db: Database) -> None:
    with db.engine.connect() as plain:
        conn = plain.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(insert(_rows).values(x=1))
        assert _count(db) == 1  # committed at once, with no commit asked for
        conn.rollback()
    assert _count(db) == 1
