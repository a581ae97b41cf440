"""Gateway tests: the app under uvicorn on a free port, in front of the stand-in upstream.

The real `openai` and `anthropic` clients call the gateway by its base URL; the ledger is
read on both backends (the `cg` fixture).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
import uvicorn
from sqlalchemy import select

from creditgate.api import Creditgate, TenantLedger
from creditgate.api.gateway import TenantGateway
from creditgate.bench.standin import StandIn
from creditgate.gateway.settings import GatewaySettings
from creditgate.server.app import Settings, create_app
from creditgate.storage.tables import charges
from creditgate.storage.throwaway import listening_port

CUSTOMER = "cust_1"
FUNDS = 100_000  # 1,000.00 credits
DEFAULT_CAP = 1000
MAX_BODY = 64 * 1024
OPENAI_KEY = "sk-standin-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-standin-0123456789"
CARD = {
    "asset": "credits",
    "actions": {
        "chat.completion": {
            "prices": [
                {
                    "match": {"model": "gpt-test"},
                    "per_unit": {"input_tokens": "0.01", "output_tokens": "0.03"},
                },
                {
                    "match": {"model": "claude-test"},
                    "per_unit": {"input_tokens": "0.02", "output_tokens": "0.1"},
                },
            ]
        },
        "embedding": {
            "prices": [{"match": {"model": "embed-test"}, "per_unit": {"input_tokens": "0.05"}}]
        },
    },
}


class Server:
    """The app under uvicorn in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = listening_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def _shared_standin() -> Iterator[StandIn]:
    upstream = StandIn().start()
    yield upstream
    upstream.stop()


@pytest.fixture
def standin(_shared_standin: StandIn) -> StandIn:
    """The worker's stand-in upstream, its settings back to the defaults and nothing
    received: one for the session, as every gateway served here points at it."""
    _shared_standin.reset()
    return _shared_standin


@pytest.fixture(scope="session")
def _gateways() -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def gateway_url(cg: Creditgate, standin: StandIn, db_url: str, _gateways: dict[str, Server]) -> str:
    """A served gateway on the test's backend, in front of the stand-in: one per backend for
    the session (creating an app and a server costs more than most gateway tests), shared
    by tests as tenants share one in production; each test has a tenant of its own."""
    server = _gateways.get(db_url)
    if server is None:
        settings = Settings(
            gateway=GatewaySettings(
                openai_base=standin.url,
                anthropic_base=standin.url,
                default_max_output_tokens=DEFAULT_CAP,
                max_body_bytes=MAX_BODY,
                timeout_seconds=10,
            )
        )
        server = _gateways[db_url] = Server(create_app(cg, settings)).start()
    return server.url


@dataclass
class Tenant:
    """A tenant with a key, the card above, a funded customer and its provider keys set."""

    ledger: TenantLedger
    key: str
    gateway_url: str

    def openai(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(**self._openai_args(kwargs))

    def async_openai(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(**self._openai_args(kwargs))

    def anthropic(self, **kwargs: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(**self._anthropic_args(kwargs))

    def async_anthropic(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(**self._anthropic_args(kwargs))

    def _openai_args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        customer = kwargs.pop("customer", CUSTOMER)
        return {
            "base_url": f"{self.gateway_url}/gateway/openai/v1",
            "api_key": kwargs.pop("api_key", self.key),
            "default_headers": {"X-Creditgate-Customer": customer},
            "max_retries": 0,
            **kwargs,
        }

    def _anthropic_args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        customer = kwargs.pop("customer", CUSTOMER)
        return {
            "base_url": f"{self.gateway_url}/gateway/anthropic",
            "api_key": kwargs.pop("api_key", self.key),
            "default_headers": {"X-Creditgate-Customer": customer},
            "max_retries": 0,
            **kwargs,
        }

    def available(self, customer: str = CUSTOMER) -> int:
        return self.ledger.wallet(customer).balance("credits").available

    def price(self, model: str, action: str = "chat.completion", **quantities: int) -> int:
        return self.ledger.quote(action, {"model": model}, quantities).amount

    def charges(self, customer: str = CUSTOMER) -> list[Any]:
        cg = self.ledger.cg
        return cg.db.run(
            lambda conn: conn.execute(
                select(charges)
                .where(charges.c.tenant_id == self.ledger.tenant_id, charges.c.customer == customer)
                .order_by(charges.c.created_at, charges.c.id)
            ).all(),
            read_only=True,
        )


def new_tenant(cg: Creditgate, gateway_url: str, *, keys: bool = True) -> Tenant:
    record, key = cg.create_tenant_with_key(f"gateway {uuid.uuid4().hex[:8]}")
    assert key.key is not None
    ledger = cg.tenant(record.id)
    ledger.create_asset("credits", 2, "Credits")
    ledger.publish_rate_card(CARD)
    ledger.create_customer(CUSTOMER)
    ledger.grant(CUSTOMER, "credits", FUNDS, kind="purchased", cost_basis="0.01")
    if keys:
        TenantGateway(ledger).set_upstream_key("openai", OPENAI_KEY)
        TenantGateway(ledger).set_upstream_key("anthropic", ANTHROPIC_KEY)
    return Tenant(ledger, key.key, gateway_url)


@pytest.fixture
def tenant(cg: Creditgate, gateway_url: str) -> Iterator[Tenant]:
    t = new_tenant(cg, gateway_url)
    yield t
    report = cg.verify(t.ledger.tenant_id)
    assert report.ok, report.violations


def wait_for(check: Any, timeout: float = 5.0) -> Any:
    """Poll `check` until it answers something true (settles happen after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
