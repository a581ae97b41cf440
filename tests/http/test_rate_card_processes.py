"""Two `creditgate serve` processes on one PostgreSQL database: a rate card version published
effective now through one prices every authorization sent after its answer, through either."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from creditgate.adapters.outbound import tls_context
from tests.databases import create_database, drop_database
from tests.http.test_serve import Server, cli, start, stop

pytestmark = pytest.mark.slow


def card(credits: str) -> dict[str, Any]:
    return {"asset": "credits", "actions": {"image.generate": {"prices": [{"flat": credits}]}}}


@pytest.fixture
def servers(postgres_server: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    name = f"creditgate_cards_{uuid.uuid4().hex[:8]}"
    db = create_database(postgres_server, name)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start(db, tmp_path / "a")
    try:
        second = start(db, tmp_path / "b", "--workers", "2")
        try:
            yield first, second
        finally:
            stop(second)
    finally:
        stop(first)
        drop_database(postgres_server, name)


def authorize(server: Server, headers: dict[str, str]) -> dict[str, Any]:
    # A fresh connection each time, so that the calls spread over the server's workers.
    answer = httpx.post(
        f"{server.base_url}/v1/authorizations",
        json={"customer": "c1", "action": "image.generate"},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_a_version_published_now_prices_every_later_authorization_on_every_process(
    servers: tuple[Server, Server],
) -> None:
    one, other = servers
    created = json.loads(cli("tenants", "create", "Acme AI", "--db", one.db, "--json"))
    headers = {"Authorization": f"Bearer {created['api_key']['key']}"}
    with httpx.Client(
        verify=tls_context(), base_url=one.base_url, headers=headers, timeout=10
    ) as http:
        assert http.post("/v1/assets", json={"code": "credits", "scale": 2}).status_code == 201
        assert http.post("/v1/customers", json={"id": "c1"}).status_code == 201
        grant = {"asset": "credits", "amount": 10**9, "kind": "purchased", "cost_basis": "0.01"}
        keyed = {"Idempotency-Key": uuid.uuid4().hex}
        assert http.post("/v1/customers/c1/grants", json=grant, headers=keyed).status_code == 201
        before = http.post("/v1/rate-cards", json={"spec": card("1")}).json()["id"]
    # Every process now prices by the first version, and keeps it in memory.
    for server in (one, other) * 8:
        assert authorize(server, headers)["rate_card_id"] == before

    for round_ in range(3):
        published = httpx.post(
            f"{one.base_url}/v1/rate-cards",
            json={"spec": card(str(round_ + 2))},
            headers=headers,
            timeout=10,
        )
        assert published.status_code == 201
        latest = published.json()["id"]
        found = [authorize(server, headers) for server in (other, one) * 12]
        assert {(a["rate_card_id"], a["amount"]) for a in found} == {(latest, 100 * (round_ + 2))}
