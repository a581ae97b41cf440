"""What a server process loads before its first request: not the libraries only some calls
need. aiohttp comes with the gateway's first call to a provider, Alembic only when the
database is behind the newest schema, Stripe only when a tenant's payments call it; each
costs a tenth of a second or more at every start, and most servers never need some of them."""

from __future__ import annotations

from pathlib import Path

from creditgate.api import Creditgate
from tests.processes import fresh_python

STARTED = """
import json, sys
from creditgate.api import Creditgate
from tests.processes import fresh_python
from creditgate.server.app import create_app
from fastapi.testclient import TestClient

with TestClient(create_app(Creditgate({url!r}))) as client:
    assert client.get("/readyz").status_code == 200
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def _loaded_by_a_started_app(url: str) -> set[str]:
    return set(fresh_python(STARTED.format(url=url)))


def test_a_started_server_has_not_loaded_what_only_some_calls_need(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'start.db'}"
    Creditgate(url).close()  # the schema made: this start finds it current
    loaded = _loaded_by_a_started_app(url)
    assert {"creditgate", "fastapi", "sqlalchemy"} <= loaded
    assert not loaded & {"aiohttp", "alembic", "stripe"}, loaded & {"aiohttp", "alembic", "stripe"}


def test_a_new_database_is_migrated_with_alembic(tmp_path: Path) -> None:
    assert "alembic" in _loaded_by_a_started_app(f"sqlite:///{tmp_path / 'new.db'}")
