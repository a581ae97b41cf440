"""An answered call is charged even when the database goes away between the answer and its
settle: the gateway tries the settle again, under its key, until the database is back (up to
`GatewaySettings.settle_retry_seconds`), and it is charged once.

PostgreSQL only: the outage is real (the database stops taking connections and every
connection to it is ended), which an embedded SQLite file cannot be made to do from outside.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from creditgate.api import Creditgate
from creditgate.bench.standin import StandIn
from creditgate.gateway.settings import GatewaySettings
from creditgate.server.app import Settings, create_app
from creditgate.storage.throwaway import libpq_dsn
from tests.gateway.conftest import FUNDS, Server, new_tenant, wait_for

MESSAGES = [{"role": "user", "content": "x" * 4000}]


@contextmanager
def outage(server_url: str, name: str) -> Iterator[None]:
    """The database takes no connection and every open one is ended, until the block ends."""
    with psycopg.connect(libpq_dsn(server_url), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        stop = threading.Event()

        def end_all() -> None:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )

        def end_connections() -> None:
            while not stop.wait(0.05):
                end_all()

        end_all()  # before the block starts: no connection of the app's survives into it

        ender = threading.Thread(target=end_connections, daemon=True)
        ender.start()
        try:
            yield
        finally:
            stop.set()
            ender.join(10)
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


class Tries(logging.Handler):
    """The gateway's log records, read from its own logger: another test may have
    configured logging so that creditgate's records do not reach the root (and so not
    pytest's capture)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def retried(self) -> bool:
        return any("trying again" in m for m in self.messages)


@pytest.fixture
def tries() -> Iterator[Tries]:
    handler = Tries()
    logger = logging.getLogger("creditgate.gateway")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_call_answered_while_the_database_is_away_is_charged_once_it_is_back(
    postgres_server: str,
    own_database: tuple[str, str],
    standin: StandIn,
    tries: Tries,
) -> None:
    url, name = own_database
    with Creditgate(url) as cg:
        gateway = GatewaySettings(
            openai_base=standin.url, anthropic_base=standin.url, timeout_seconds=10
        )
        server = Server(create_app(cg, Settings(gateway=gateway))).start()
        try:
            tenant = new_tenant(cg, server.url)
            expected = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
            # The provider holds its stream after the first piece: the hold is taken, the
            # call is under way, and then the database goes.
            standin.pause_after = 1
            standin.pause_seconds = 30
            stream: Any = tenant.openai().chat.completions.create(
                model="gpt-test", messages=MESSAGES, stream=True
            )
            pieces = (c.choices[0].delta.content for c in stream if c.choices)
            text = next(p for p in pieces if p)
            with outage(postgres_server, name):
                standin.resume.set()
                text += "".join(p for p in pieces if p)  # the answer ends: the settle is due
                wait_for(tries.retried, timeout=10)
                time.sleep(0.5)  # a few more tries meet the outage
            assert text == "Hello, world!"
            # The database is back: the settle goes through, once.
            (charge,) = wait_for(tenant.charges, timeout=20)
            assert charge.amount == expected
            assert tenant.available() == FUNDS - expected
            assert "gateway settle failed" not in tries.messages
        finally:
            server.stop()
        assert cg.verify(tenant.ledger.tenant_id).ok
