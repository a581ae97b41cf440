"""What a server process loads before its first request: not the libraries only some calls
need. aiohttp comes with the gateway's first call to a provider, httpx with the first webhook
delivery, Alembic only when the database is behind the newest schema, Stripe only when a
tenant's payments call it; each costs a tenth of a second or more at every start, and most
servers never need some of them.

The app is started and asked for `/readyz` over ASGI by hand, as uvicorn would: Starlette's
test client is built on httpx."""

from __future__ import annotations

from pathlib import Path

from creditgate.api import Creditgate
from tests.processes import fresh_python

STARTED = """
import asyncio, json, sys
from creditgate.api import Creditgate
from creditgate.server.app import create_app
from creditgate.server.worker import Sweeper
from creditgate.services.webhooks.delivery import deliver_webhooks

async def status_of(app, path):
    sent = []
    async def receive():
        return {{"type": "http.request", "body": b"", "more_body": False}}
    async def send(message):
        sent.append(message)
    scope = {{
        "type": "http", "asgi": {{"version": "3.0"}}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }}
    await app(scope, receive, send)
    return sent[0]["status"]

async def main():
    cg = Creditgate({url!r})
    # As `creditgate serve` runs them, the sweeps and webhook delivery, each round at once:
    # a round with nothing to send makes no HTTP client.
    sweeper = Sweeper(cg, interval=0.01)
    sweeper.webhooks.interval = 0.01
    sweeper.start()
    app = create_app(cg)
    async with app.router.lifespan_context(app):
        assert await status_of(app, "/readyz") == 200
    report = deliver_webhooks(cg.db, cg.clock, sweeper.webhooks.sender)
    assert report.attempted == 0
    await asyncio.sleep(0.2)  # rounds of the sweeper's threads too
    sweeper.stop()

asyncio.run(main())
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def _loaded_by_a_started_app(url: str) -> set[str]:
    return set(fresh_python(STARTED.format(url=url)))


def test_a_started_server_has_not_loaded_what_only_some_calls_need(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'start.db'}"
    Creditgate(url).close()  # the schema made: this start finds it current
    loaded = _loaded_by_a_started_app(url)
    assert {"creditgate", "fastapi", "sqlalchemy"} <= loaded
    later = {"aiohttp", "httpx", "httpcore", "alembic", "stripe"}
    assert not loaded & later, loaded & later


def test_a_new_database_is_migrated_with_alembic(tmp_path: Path) -> None:
    assert "alembic" in _loaded_by_a_started_app(f"sqlite:///{tmp_path / 'new.db'}")


WORKER = """
import gc, json, os
os.environ["CREDITGATE_DB"] = {url!r}
from creditgate.server.app import app_from_env
built = app_from_env()
frozen = gc.get_freeze_count()
junk = [[i] for i in range(1000)]  # made after: a collection walks these, not the app
gc.collect()
print(json.dumps({{"frozen": frozen, "tracked": len(gc.get_objects())}}))
"""


def test_a_worker_leaves_its_built_app_out_of_the_collectors_rounds(tmp_path: Path) -> None:
    # `serve`'s workers build their app with app_from_env: what it built lives as long as
    # the worker, and a full collection walking it all would pause the worker (~0.1 s).
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    Creditgate(url).close()
    found = fresh_python(WORKER.format(url=url))
    assert found["frozen"] > 100_000, found
    assert found["tracked"] < found["frozen"] // 10, found
