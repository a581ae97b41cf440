"""Browser tests: a real `creditgate serve` on a free loopback port, driven by headless Chromium.

Chromium is Debian's (/usr/bin/chromium), driven by Python Playwright; `scripts/test` installs
both when missing. Without them the tests skip, except under CI=true where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from creditgate.api import Creditgate, TenantLedger
from tests.databases import create_database, drop_database
from tests.stripe_fake import FakeStripe

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "browser-test-portal-secret"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser tests need it under CI=true: {reason}")
    pytest.skip(reason)


def playwright_api() -> Any:
    """playwright.sync_api, or the module is skipped (failed under CI=true) without it."""
    try:
        import playwright.sync_api
    except ImportError:
        reason = "Python Playwright is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(reason, allow_module_level=True)
    return playwright.sync_api


# Module scope: Playwright's sync API runs an event loop on this thread while it is open,
# which would stop later async tests in the same worker from starting theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = playwright_api().sync_playwright
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    cg: Creditgate  # the same database, seen in-process, for seeding
    stripe: FakeStripe  # where the operator points the server's Stripe client
    secrets: list[str] = field(default_factory=list)  # keys and tokens handed out

    def tenant(self, name: str = "Acme AI") -> Tenant:
        tenant, key = self.cg.create_tenant_with_key(f"{name} {uuid.uuid4().hex[:6]}")
        assert key.key is not None
        self.secrets.append(key.key)
        ledger = TenantLedger(self.cg, tenant.id)
        ledger.create_asset("credits", 2, "Credits")
        api = httpx.Client(
            base_url=self.base, headers=_auth(key.key), event_hooks={"request": [_keyed]}
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
    server: Server
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
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    database = None
    if request.param == "postgres":
        # A database of its own: the server's sweeper runs on the real clock over every
        # tenant it can see, which would expire other tests' holds in a shared one.
        postgres_server = str(request.getfixturevalue("postgres_server"))
        database = f"creditgate_browser_{uuid.uuid4().hex[:8]}"
        url = create_database(postgres_server, database)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'creditgate.db'}"
    cg = Creditgate(url)  # migrates before the server starts
    port = _free_port()
    stripe = FakeStripe().start()
    env = {
        **os.environ,
        "CREDITGATE_PORTAL_SECRET": SECRET,
        "CREDITGATE_STRIPE_API_BASE": stripe.url,
    }
    command = [sys.executable, "-m", "creditgate", "serve", "--db", url, "--port", str(port)]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # a loaded 2-core machine starts it slowly
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"creditgate serve did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        running = Server(base, cg, stripe)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        cg.close()
        stripe.stop()
        if database is not None:
            drop_database(postgres_server, database)
    # No key or token handed out appears in anything the server logged.
    text = log.read_text(errors="replace")
    leaked = [secret[:10] for secret in running.secrets if secret in text]
    assert not leaked, leaked


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """The page as shown, into the ignored artifacts/screenshots folder."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def copy_for_readme(path: Path) -> None:
    """Copies a screenshot over the README's only when asked to (UPDATE_SCREENSHOTS=1):
    the suite writes nothing outside ignored folders, so the README's pictures change only
    when someone means them to."""
    if os.environ.get("UPDATE_SCREENSHOTS") != "1":
        return
    docs = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, docs / path.name)
