"""HTTP tests: the app from create_app over the shared `cg` fixture, one fresh tenant per test.

The app is made once per database and session (`client`): making one costs about 0.2 s (its
routes' dependencies are analysed anew), and nearly every test here needs one. What a test
could leave behind in it is cleared before each test: the client's cookies and the failed-
authentication counts. Keys are each test's own (its own tenant), and the key cache forgets
within half a second. A test that needs other settings makes its own app."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.testclient import TestClient

from creditgate.api import Creditgate, TenantLedger
from creditgate.http.logs import JsonFormatter
from creditgate.server.app import Settings, create_app


@dataclass
class Api:
    """A tenant seen through the HTTP API with its own key."""

    client: TestClient
    key: str
    ledger: TenantLedger
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.key}"}

    @property
    def tenant_id(self) -> str:
        return self.ledger.tenant_id

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def post(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        """POST as an integrator's client does: with a new Idempotency-Key unless the test
        gives one (a retry reuses it; `client.post` sends none)."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if not any(name.lower() == "idempotency-key" for name in headers):
            headers["Idempotency-Key"] = f"test-{uuid.uuid4().hex}"
        return self.client.post(url, json=json, headers=headers, **kwargs)

    def put(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.put(url, json=json, headers=headers, **kwargs)

    def funded_customer(self, customer: str = "c1", amount: int = 10_000, **extra: Any) -> str:
        assert self.post("/v1/customers", {"id": customer, **extra}).status_code == 201
        grant = {"asset": "credits", "amount": amount, "kind": "purchased", "cost_basis": "0.01"}
        assert self.post(f"/v1/customers/{customer}/grants", grant).status_code == 201
        return customer


def new_api(cg: Creditgate, client: TestClient, *, asset: bool = True) -> Api:
    tenant, key = cg.create_tenant_with_key(f"http {uuid.uuid4().hex[:8]}")
    assert key.key is not None
    ledger = TenantLedger(cg, tenant.id)
    if asset:
        ledger.create_asset("credits", 2, "Credits")
    return Api(client, key.key, ledger)


_served: dict[str, TestClient] = {}  # database URL and the app's settings -> its shared client


@pytest.fixture(scope="session", autouse=True)
def _close_shared_apps() -> Iterator[None]:
    yield
    while _served:
        _, test_client = _served.popitem()
        test_client.__exit__(None, None, None)


def shared_client(
    cg: Creditgate, db_url: str, settings: Settings, *, edge: bool = True
) -> TestClient:
    """The client of the app made once per database, settings and edge for the session's
    tests, as fresh as a new one: its cookies and failed-authentication counts cleared."""
    key = f"{db_url} {settings!r} edge={edge}"
    test_client = _served.get(key)
    if test_client is None:
        test_client = TestClient(create_app(cg, settings, edge=edge))
        test_client.__enter__()
        _served[key] = test_client
    test_client.cookies.clear()
    test_client.app.state.keys.limiter.clear()  # type: ignore[attr-defined]
    return test_client


@pytest.fixture
def client(cg: Creditgate, db_url: str) -> TestClient:
    """The client of the app shared by this database's tests, as fresh as a new one."""
    return shared_client(cg, db_url, Settings(key_cache_seconds=0.5))


@pytest.fixture
def api(cg: Creditgate, client: TestClient) -> Iterator[Api]:
    """A fresh tenant with a `credits` asset (scale 2); invariants are checked afterwards."""
    tenant_api = new_api(cg, client)
    yield tenant_api
    report = cg.verify(tenant_api.tenant_id)
    assert report.ok, report.violations


@pytest.fixture
def other(cg: Creditgate, client: TestClient) -> Api:
    """A second tenant on the same server."""
    return new_api(cg, client)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("creditgate.http")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)
