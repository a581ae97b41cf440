"""Test setup: every integration test runs on SQLite and on a real PostgreSQL server.

PostgreSQL comes from CREDITGATE_TEST_POSTGRES_URL when set, else from a throwaway cluster
started with the machine's initdb/pg_ctl. Under CI=true a missing PostgreSQL fails the run.
Each test gets its own tenant in a database migrated once per session (per xdist worker),
which is also how tenants share one creditgate in production.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

# The operator's key for the secrets the tests store (the servers the tests start inherit it).
os.environ.setdefault("CREDITGATE_SECRET_KEYS", "rZ0cIFqBWh1YH1I-0CgbO3P0XcbVjfV3aFpkbbRUe1A=")
# The CLI's settings file and default tenant are the user's: the tests never read them.
os.environ["CREDITGATE_CONFIG"] = os.path.join(os.devnull, "creditgate-tests.toml")
os.environ.pop("CREDITGATE_TENANT", None)
os.environ.pop("CREDITGATE_DEBUG", None)
# SQLite commits in WAL mode without an fsync each (the servers the tests start inherit it):
# a commit survives the loss of the process, which is what the tests do to it, and only a
# crash of the machine could undo the last ones. tests/databases.py does the same for
# PostgreSQL. The benchmarks keep synchronous=FULL unless told otherwise.
os.environ.setdefault("CREDITGATE_SQLITE_SYNCHRONOUS", "NORMAL")
# LiteLLM reads its bundled model price map instead of fetching one: the tests use no network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from creditgate.api import Creditgate, TenantLedger
from creditgate.services.context import ENV_ALLOW_PRIVATE
from creditgate.storage.throwaway import ENV_URL, PostgresUnavailable, ThrowawayCluster
from tests.databases import create_database, drop_database
from tests.served import served  # noqa: F401  (the session's served creditgate, per backend)
from tests.stripe_fake import FakeStripe

BACKENDS = ["sqlite", "postgres"]


def _reuse_the_command_tree() -> None:
    """typer's `CliRunner.invoke(app, ...)` builds the click command tree from the app's
    signatures at every call (about 0.13 s); for creditgate's app the tests' runners take
    the tree `creditgate.cli.main.command()` built once, as the console script does."""
    import typer.testing

    from creditgate.cli.main import app, command

    build = typer.testing._get_command  # fails loudly if typer stops building it there

    def once(typer_app: typer.Typer) -> Any:
        return command() if typer_app is app else build(typer_app)

    typer.testing._get_command = once


_reuse_the_command_tree()


def _retry_stripe_at_once() -> None:
    """The Stripe client (`max_network_retries=2`) waits 0.5 s and more before each retry of a
    failed call; against the tests' offline Stripe, which fails when told to, the same retries
    are made without the wait. 89 tests of refunds, collection, auto top-up and Stripe's
    address took 28 s in one process with the waits and 14 s without."""
    from stripe._http_client import HTTPClient

    for name in ("INITIAL_DELAY", "MAX_DELAY"):
        assert hasattr(HTTPClient, name), f"stripe's HTTPClient has no {name} any more"
        setattr(HTTPClient, name, 0.0)


_retry_stripe_at_once()


class FakeClock:
    """Time the tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = os.environ.get(ENV_URL)
    if url:
        yield url
        return
    try:
        cluster = ThrowawayCluster()
        url = cluster.start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'creditgate.db'}"


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> Iterator[str]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"creditgate_test_{worker}_{uuid.uuid4().hex[:6]}"
    url = create_database(postgres_server, name)
    yield url
    drop_database(postgres_server, name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    server = str(request.getfixturevalue("postgres_server"))
    name = f"creditgate_fresh_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name)
    try:
        yield url
    finally:
        drop_database(server, name)


@pytest.fixture
def own_database(postgres_server: str) -> Iterator[tuple[str, str]]:
    """A PostgreSQL database of the test's own, (url, name): for a test that takes it away
    (fails it over, stops its connections), which no other test may share."""
    name = f"creditgate_own_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server, name)
    try:
        yield url, name
    finally:
        drop_database(postgres_server, name)


@pytest.fixture
def backend(db_url: str) -> str:
    return "postgres" if db_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


_instances: dict[str, Creditgate] = {}


@pytest.fixture
def cg(db_url: str, clock: FakeClock) -> Creditgate:
    """A creditgate on the test's backend whose clock the test controls."""
    shared = _instances.get(db_url)
    if shared is None:
        shared = _instances[db_url] = Creditgate(db_url)
    shared.clock = clock
    return shared


@contextmanager
def operator_settings(cg: Creditgate, **changes: Any) -> Iterator[None]:
    """The operator's settings changed on the shared creditgate for the length of a block."""
    before = cg.operator
    cg.operator = replace(before, **changes)
    try:
        yield
    finally:
        cg.operator = before


@pytest.fixture
def private_webhook_targets(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The operator's switch on, so that webhooks may go to the tests' receivers on loopback:
    on the shared creditgate if the test uses it, and in the environment, for the
    creditgates and servers the test starts itself.

    The shared creditgate is had before the environment changes: made under the switch, it
    would keep it for every later test of the session (its operator's settings are read
    from the environment once), and registering an inside address would pass in tests that
    expect it refused, depending on which test happened to make it first."""
    shared = request.getfixturevalue("cg") if "cg" in request.fixturenames else None
    monkeypatch.setenv(ENV_ALLOW_PRIVATE, "1")
    if shared is None:
        yield
        return
    with operator_settings(shared, allow_private_webhook_targets=True):
        yield


@pytest.fixture
def fake_stripe(cg: Creditgate) -> Iterator[FakeStripe]:
    """Stripe's API offline, where the operator points the Stripe client (no tenant can)."""
    fake = FakeStripe().start()
    try:
        with operator_settings(cg, stripe_api_base=fake.url):
            yield fake
    finally:
        fake.stop()


@pytest.fixture
def ledger(cg: Creditgate) -> Iterator[TenantLedger]:
    """A fresh tenant with a `credits` asset (scale 2); invariants are verified afterwards."""
    tenant = cg.create_tenant(f"test {uuid.uuid4().hex[:8]}")
    t = cg.tenant(tenant.id)
    t.create_asset("credits", 2, "Credits")
    yield t
    report = cg.verify(tenant.id)
    assert report.ok, report.violations


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for instance in _instances.values():
        instance.close()
    _instances.clear()


# The tests that take a minute or more (a cluster, a proxy, many processes, many examples),
# longest first as measured in CI: they run first, so that under xdist the two workers end
# together rather than one of them starting a long test when the other has nothing left.
_LONGEST_FIRST = (
    "tests/chaos/test_patroni.py",
    "tests/http/test_schemathesis.py",
    "tests/integration/test_state_machine.py::test_ledger_matches_the_model",
    "tests/chaos/test_chaos.py",
    # Long, but mostly waiting on its servers: started after the chaos runs, it runs beside
    # tests that keep both cores busy rather than beside the Patroni cluster's start, when
    # a third of the machine sat idle.
    "tests/bench/test_http_floor.py::test_the_floor_and_creditgate",
    "tests/gateway/test_served_concurrency.py",
    "tests/chaos/test_stateful_api.py",
    "tests/docs/test_doc_blocks.py",
    "tests/integrations/test_litellm_proxy.py",
    "tests/bench/",
)
_LONG_MARKERS = ("patroni", "slow")


def _rank(item: pytest.Item) -> int:
    for rank, prefix in enumerate(_LONGEST_FIRST):
        if item.nodeid.startswith(prefix):
            return rank
    if any(item.get_closest_marker(marker) for marker in _LONG_MARKERS):
        return len(_LONGEST_FIRST)
    return len(_LONGEST_FIRST) + 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A stable sort: the same order in every worker, as xdist requires.
    items.sort(key=_rank)


def pytest_collection_finish(session: pytest.Session) -> None:
    # What collection made (every module imported, every test collected) lives until the
    # session ends, and each full run of the garbage collector went through all of it again.
    # Frozen, it is left out; the young generation is collected every 10,000 allocations
    # instead of 700. Measured on tests/http and tests/domain in one process: the collector's
    # time 11.1 s to 7.1 s, the process's CPU 154 s to 150 s, its peak memory 531 to 552 MB.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
