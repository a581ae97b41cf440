"""One real `creditgate serve` per backend for the session (per xdist worker), shared by the
tests that drive a served creditgate from outside: the browser tests, the SDK against a live
server, the worked examples. Each test (or module) makes a tenant of its own in it, so they
share the process and the database, as tenants do in production, and nothing else.

The server runs on the real clock with its sweeper: a test that moves time or takes the
database away starts a server of its own instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate, TenantLedger
from creditgate.bench.http import stop_server
from creditgate.storage.throwaway import listening_port
from tests.databases import create_database, drop_database
from tests.stripe_fake import FakeStripe

PORTAL_SECRET = "browser-test-portal-secret"
STARTUP_SECONDS = 90  # a loaded 2-core machine starts it slowly


@dataclass
class Served:
    backend: str
    base: str
    cg: Creditgate  # the same database, seen in-process, for seeding
    stripe: FakeStripe  # where the operator points the server's Stripe client
    secrets: list[str] = field(default_factory=list)  # keys and tokens handed out

    def tenant(self, name: str = "Acme AI") -> Tenant:
        """A new tenant with a `credits` asset (scale 2) and an API client with its key."""
        tenant, key = self.cg.create_tenant_with_key(f"{name} {uuid.uuid4().hex[:6]}")
        assert key.key is not None
        self.secrets.append(key.key)
        ledger = TenantLedger(self.cg, tenant.id)
        ledger.create_asset("credits", 2, "Credits")
        api = httpx.Client(
            verify=tls_context(),
            base_url=self.base,
            headers=_auth(key.key),
            event_hooks={"request": [_keyed]},
        )
        return Tenant(self, ledger, api, key.key)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _keyed(request: httpx.Request) -> None:
    """A new Idempotency-Key on each POST that has none, as an integrator's client sends."""
    if request.method == "POST" and "idempotency-key" not in request.headers:
        request.headers["Idempotency-Key"] = uuid.uuid4().hex


@dataclass
class Tenant:
    server: Served
    ledger: TenantLedger
    api: httpx.Client  # the HTTP API with this tenant's key
    key: str

    def customer(self, customer: str, amount: int, cost_basis: str = "0.001") -> None:
        assert self.api.post("/v1/customers", json={"id": customer}).status_code == 201
        grant = {"asset": "credits", "amount": amount, "kind": "purchased"}
        grant["cost_basis"] = cost_basis
        assert self.api.post(f"/v1/customers/{customer}/grants", json=grant).status_code == 201

    def portal_url(self, customer: str) -> str:
        response = self.api.post("/v1/portal/sessions", json={"customer": customer})
        assert response.status_code == 201, response.text
        url = str(response.json()["url"])
        self.server.secrets.append(url.split("token=")[1])
        return url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    database = None
    if request.param == "postgres":
        # A database of its own: the server's sweeper runs on the real clock over every
        # tenant it can see, which would expire other tests' holds in a shared one.
        postgres_server = str(request.getfixturevalue("postgres_server"))
        database = f"creditgate_served_{uuid.uuid4().hex[:8]}"
        url = create_database(postgres_server, database)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('served') / 'creditgate.db'}"
    cg = Creditgate(url)  # migrates before the server starts
    port = listening_port()
    stripe = FakeStripe().start()
    env = {
        **os.environ,
        "CREDITGATE_PORTAL_SECRET": PORTAL_SECRET,
        "CREDITGATE_STRIPE_API_BASE": stripe.url,
    }
    command = [sys.executable, "-m", "creditgate", "serve", "--db", url, "--port", str(port)]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, base, log)
        running = Served(request.param, base, cg, stripe)
        yield running
    finally:
        stop_server(process)
        cg.close()
        stripe.stop()
        if database is not None:
            drop_database(postgres_server, database)
    # No key or token handed out appears in anything the server logged.
    text = log.read_text(errors="replace")
    leaked = [secret[:10] for secret in running.secrets if secret in text]
    assert not leaked, leaked


def _wait_healthy(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1, verify=tls_context()).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"creditgate serve did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
