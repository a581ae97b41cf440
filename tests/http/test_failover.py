"""A database that goes away under the server, as in a failover: the requests that meet it
end as 503 with Retry-After, never 500; the pool drops the dead connections and the next
request reaches the (new) primary; a retry with the same key has exactly one effect.

PostgreSQL only: the database is made to fail as a primary does when it is killed or
demoted (its sessions terminated; a standby answering read-only in its place).
"""

from __future__ import annotations

import logging
import time

import psycopg
import pytest
from sqlalchemy import false, update
from sqlalchemy.exc import DBAPIError
from starlette.testclient import TestClient

from creditgate.api import Creditgate, TenantLedger
from creditgate.server.app import Settings, create_app
from creditgate.server.worker import Sweeper
from creditgate.storage import tables as t
from creditgate.storage.database import Database, is_unavailable
from creditgate.storage.hosts import one_host_per_parameter
from creditgate.storage.prepared import Prepared
from creditgate.storage.throwaway import libpq_dsn
from tests.conftest import FakeClock
from tests.http.conftest import Api, new_api


def _admin(postgres_server: str, sql: str) -> None:
    with psycopg.connect(libpq_dsn(postgres_server), autocommit=True) as conn:
        conn.execute(sql)


def _terminate(postgres_server: str, name: str) -> None:
    _admin(
        postgres_server,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )


def _charge(api: Api, key: str) -> object:
    body = {"customer": "c1", "asset": "credits", "amount": 100}
    return api.post("/v1/charges", body, headers={"Idempotency-Key": key})


def test_requests_meeting_a_lost_primary_are_503_and_the_pool_reconnects(
    postgres_server: str, own_database: tuple[str, str]
) -> None:
    url, name = own_database
    with Creditgate(url) as cg, TestClient(create_app(cg, Settings())) as client:
        api = new_api(cg, client)
        api.funded_customer("c1", amount=10_000)
        pooled = [cg.db.engine.connect() for _ in range(5)]  # five connections in the pool
        for conn in pooled:
            conn.exec_driver_sql("SELECT 1")
        for conn in pooled:
            conn.close()
        # Every pooled connection is cut, as a killed primary or a switchover cuts them.
        _terminate(postgres_server, name)
        first = _charge(api, "after-cut")
        assert first.status_code == 503, first.text
        assert first.headers["Retry-After"] == "1"
        assert first.json()["code"] == "database_unavailable"
        # The pool dropped the other dead connections with the first: the next requests
        # (the retry with the same key among them) reach the database, each once.
        again = _charge(api, "after-cut")
        assert again.status_code == 201, again.text
        for n in range(5):
            assert _charge(api, f"later-{n}").status_code == 201
        assert _charge(api, "after-cut").json() == again.json()
        balance = api.get("/v1/customers/c1/wallet").json()
        assert balance["balances"][0]["posted"] == 10_000 - 600
        assert cg.verify(api.tenant_id).ok


def test_a_standby_answering_in_the_primarys_place_is_503_not_500(
    postgres_server: str, own_database: tuple[str, str]
) -> None:
    url, name = own_database
    with Creditgate(url) as cg, TestClient(create_app(cg, Settings())) as client:
        api = new_api(cg, client)
        api.funded_customer("c1", amount=10_000)
        # New sessions see a read-only server, as a URL without target_session_attrs would
        # reach a standby (or a demoted primary) after a failover.
        _admin(postgres_server, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        try:
            _terminate(postgres_server, name)
            statuses = {_charge(api, f"read-only-{n}").status_code for n in range(3)}
            assert statuses == {503}
        finally:
            _admin(postgres_server, f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        # The read-only connections were dropped, not kept in the pool: writes work again.
        done = _charge(api, "read-only-0")
        assert done.status_code == 201, done.text
        assert cg.verify(api.tenant_id).ok


def test_a_standby_met_on_the_drivers_cursor_is_dropped_from_the_pool(
    postgres_server: str, own_database: tuple[str, str]
) -> None:
    # The hot path's statements run on libpq directly (storage/wire.py), past SQLAlchemy's
    # own check.
    touch = Prepared(update(t.tenants).where(false()).values(name=t.tenants.c.name))
    url, name = own_database
    with Creditgate(url, pool_size=2) as cg:
        cg.db.run(lambda conn: touch.submit(conn, {}))
        _admin(postgres_server, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        try:
            _terminate(postgres_server, name)
            for _ in range(2):  # the cut connection, then a read-only one
                with pytest.raises(DBAPIError) as raised:
                    cg.db.run(lambda conn: touch.submit(conn, {}))
                assert is_unavailable(raised.value)
        finally:
            _admin(postgres_server, f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        cg.db.run(lambda conn: touch.submit(conn, {}))  # on a new connection, read-write


def test_the_sweeper_carries_on_after_the_database_went_away(
    postgres_server: str,
    own_database: tuple[str, str],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, name = own_database
    with Creditgate(url, clock=clock) as cg:
        tenant, _ = cg.create_tenant_with_key("sweeps after a failover")
        ledger = TenantLedger(cg, tenant.id)
        ledger.create_asset("credits", 0, "Credits")
        ledger.create_customer("c1")
        ledger.grant("c1", "credits", 1_000, kind="promotional", idempotency_key="g")
        ledger.authorize("c1", "credits", 100, ttl_seconds=60, idempotency_key="a")
        sweeper = Sweeper(cg, interval=0.05)
        caplog.set_level(logging.ERROR, logger="creditgate.server.worker")
        sweeper.start()
        try:
            _terminate(postgres_server, name)  # the sweeper's pooled connections among them
            deadline = time.monotonic() + 30
            while not any("failed" in record.getMessage() for record in caplog.records):
                assert time.monotonic() < deadline, "the sweeper never met the cut connections"
                time.sleep(0.01)
            clock.advance(seconds=120)  # the hold is past its TTL: the next sweep expires it
            while ledger.wallet("c1").balances[0].held != 0:
                assert time.monotonic() < deadline, "the sweeper did not expire the hold"
                time.sleep(0.05)
        finally:
            sweeper.stop()
        assert cg.verify(tenant.id).ok


def test_a_url_with_several_hosts_finds_the_one_taking_writes(postgres_server: str) -> None:
    with psycopg.connect(libpq_dsn(postgres_server)) as conn:
        host, port = conn.info.host, conn.info.port
    # A host where nothing listens comes first: libpq goes on to the next.
    url = (
        f"postgresql://postgres@127.0.0.1:1,{host}:{port}/postgres"
        "?target_session_attrs=read-write&connect_timeout=3"
    )
    db = Database(url)
    try:
        with db.connect(read_only=True) as conn:
            assert conn.exec_driver_sql("SELECT inet_server_port()").scalar() == port
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("given", "read"),
    [
        (
            "postgresql+psycopg://u:p@a:5432,b:5433,c/db?target_session_attrs=read-write",
            "postgresql+psycopg://u:p@/db?host=a:5432&host=b:5433&host=c"
            "&target_session_attrs=read-write",
        ),
        (
            "postgresql+psycopg://u@/db?host=a:5432,b:5433&target_session_attrs=read-write",
            "postgresql+psycopg://u@/db?host=a:5432&host=b:5433&target_session_attrs=read-write",
        ),
        # Forms SQLAlchemy reads already are left as they are.
        ("postgresql+psycopg://u@/db?host=a&host=b", "postgresql+psycopg://u@/db?host=a&host=b"),
        (
            "postgresql+psycopg://u@/db?host=a,b&port=1,2",
            "postgresql+psycopg://u@/db?host=a,b&port=1,2",
        ),
        ("postgresql+psycopg://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
    ],
)
def test_several_hosts_are_read_as_libpq_writes_them(given: str, read: str) -> None:
    assert one_host_per_parameter(given) == read


def test_a_closed_connection_is_unavailable_not_an_internal_error() -> None:
    from sqlalchemy.exc import InterfaceError, ProgrammingError

    closed = InterfaceError("SELECT 1", {}, psycopg.InterfaceError("the connection is closed"))
    closed.connection_invalidated = True
    assert is_unavailable(closed)
    assert not is_unavailable(ProgrammingError("SELECT x", {}, Exception("no column x")))
    assert not is_unavailable(ValueError("not a database error"))
