"""LiteLLM plugin tests: the real `litellm` package calls through `CreditgateLogger` against a
live creditgate (the app under uvicorn on a free port), and the ledger is read on both
backends (the `cg` fixture). Providers are LiteLLM's own mock responses or the gateway tests'
stand-in HTTP server: nothing leaves the machine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger
from sqlalchemy import select

from creditgate.api import Creditgate, TenantLedger
from creditgate.bench.standin import StandIn
from creditgate.server.app import Settings, create_app
from creditgate.storage.tables import charges, holds
from creditgate_sdk.integrations.litellm import CreditgateLogger
from tests.gateway.conftest import Server

MODEL = "gpt-4.1"
RICH, POOR = "cust_rich", "cust_poor"
FUNDS = 100_000  # 1,000.00 credits
CARD = {
    "asset": "credits",
    "actions": {
        "chat.completion": {
            "prices": [
                {
                    "match": {"model": MODEL},
                    "per_unit": {
                        "input_tokens": "0.01",
                        "cached_tokens": "0.005",
                        "cache_write_tokens": "0.02",
                        "output_tokens": "0.03",
                    },
                }
            ]
        },
        "embedding": {
            "prices": [
                {"match": {"model": "text-embedding-3-small"}, "per_unit": {"input_tokens": "0.1"}}
            ]
        },
    },
}


@dataclass
class Shop:
    """A tenant with the card above, a funded customer, one with 0.10 credits, and its key."""

    ledger: TenantLedger
    key: str
    url: str

    def available(self, customer: str = RICH) -> int:
        return self.ledger.wallet(customer).balance("credits").available

    def price(self, action: str = "chat.completion", model: str = MODEL, **quantities: int) -> int:
        return self.ledger.quote(action, {"model": model}, quantities).amount

    def _rows(self, table: Any, customer: str) -> list[Any]:
        return self.ledger.cg.db.run(
            lambda conn: conn.execute(
                select(table)
                .where(table.c.tenant_id == self.ledger.tenant_id, table.c.customer == customer)
                .order_by(table.c.created_at, table.c.id)
            ).all(),
            read_only=True,
        )

    def charges(self, customer: str = RICH) -> list[Any]:
        return self._rows(charges, customer)

    def holds(self, customer: str = RICH) -> list[Any]:
        return self._rows(holds, customer)


@pytest.fixture(scope="session")
def _servers() -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def creditgate_url(cg: Creditgate, db_url: str, _servers: dict[str, Server]) -> str:
    """A served creditgate on the test's backend: one per backend for the session, each
    test a tenant of its own in it (`shop`)."""
    server = _servers.get(db_url)
    if server is None:
        server = _servers[db_url] = Server(create_app(cg, Settings())).start()
    return server.url


@pytest.fixture
def shop(cg: Creditgate, creditgate_url: str) -> Iterator[Shop]:
    record, key = cg.create_tenant_with_key(f"litellm {uuid.uuid4().hex[:8]}")
    assert key.key is not None
    ledger = cg.tenant(record.id)
    ledger.create_asset("credits", 2, "Credits")
    ledger.publish_rate_card(CARD)
    ledger.create_customer(RICH)
    ledger.grant(RICH, "credits", FUNDS, kind="purchased", cost_basis="0.01")
    ledger.create_customer(POOR)
    ledger.grant(POOR, "credits", 10, kind="purchased", cost_basis="0.01")
    yield Shop(ledger, key.key, creditgate_url)
    report = cg.verify(record.id)
    assert report.ok, report.violations


@pytest.fixture
def handler(shop: Shop) -> Iterator[CreditgateLogger]:
    """The plugin, registered as the docs say: `litellm.callbacks = [handler]`."""
    before = list(litellm.callbacks)
    gate = CreditgateLogger(shop.url, shop.key)
    litellm.callbacks = [gate]
    yield gate
    litellm.logging_callback_manager.remove_callback_from_all_lists(gate)
    litellm.callbacks = before


@pytest.fixture
def standin() -> Iterator[StandIn]:
    upstream = StandIn().start()
    yield upstream
    upstream.stop()


class Calls(CustomLogger):  # type: ignore[misc]
    """Records every time LiteLLM hands a request to its provider (LiteLLM's pre-API-call
    log, which a mock response logs too, just before it answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        self.sent.append(str(kwargs.get("litellm_call_id")))


@pytest.fixture
def provider_calls(handler: CreditgateLogger) -> Iterator[Calls]:
    calls = Calls()
    litellm.callbacks = [handler, calls]
    yield calls
    litellm.logging_callback_manager.remove_callback_from_all_lists(calls)
