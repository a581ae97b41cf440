"""The edge of the server: health, readiness, metrics, request ids and logs, load shedding."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import anyio
import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from creditgate.api import Creditgate
from creditgate.http.auth import Ledger
from creditgate.server.app import Settings, create_app
from tests.http.conftest import Api


def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}


def test_readiness_fails_when_the_database_does_not_answer(tmp_path: object) -> None:
    cg = Creditgate("postgresql+psycopg://nobody@127.0.0.1:1/none", migrate=False)
    from starlette.testclient import TestClient

    with TestClient(create_app(cg)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert client.get("/healthz").status_code == 200
    cg.close()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_latency_by_route_and_authorizations_by_outcome(api: Api) -> None:
    api.funded_customer("c1", 1_000)
    route = {"method": "POST", "route": "/v1/authorizations", "status": "201"}
    latency = "creditgate_http_request_duration_seconds_count"
    before = (
        sample(latency, **route),
        sample("creditgate_authorizations_total", outcome="approved"),
        sample("creditgate_authorizations_total", outcome="declined"),
    )
    api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 100})
    api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 10_000})
    after = (
        sample(latency, **route),
        sample("creditgate_authorizations_total", outcome="approved"),
        sample("creditgate_authorizations_total", outcome="declined"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1]
    text = api.client.get("/metrics").text
    assert 'route="/v1/customers/{customer}/grants"' in text
    assert "c1" not in text  # templates, never raw paths


def test_request_ids_are_echoed_or_made(api: Api) -> None:
    given = api.get("/v1/assets", headers={"X-Request-Id": "req-123"})
    assert given.headers["x-request-id"] == "req-123"
    made = api.get("/v1/assets").headers["x-request-id"]
    assert made and made != "req-123"
    unsafe = api.get("/v1/assets", headers={"X-Request-Id": "a b" + "x" * 300})
    assert unsafe.headers["x-request-id"] != "a b" + "x" * 300
    assert api.client.get("/v1/assets").headers["x-request-id"]  # a 401 has one too


def test_logs_are_json_with_the_request_id_and_never_a_whole_key(
    api: Api, log_lines: io.StringIO
) -> None:
    api.get("/v1/assets", headers={"X-Request-Id": "trace-1"})
    api.client.get("/v1/assets", headers={"Authorization": f"Bearer {api.key}x"})
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    ok = next(line for line in lines if line["request_id"] == "trace-1")
    assert ok["route"] == "/v1/assets" and ok["status"] == 200
    assert ok["tenant"] == api.tenant_id and ok["key"].startswith("cg_") and ok["key"].endswith("…")
    assert any(line["status"] == 401 for line in lines)
    secret = api.key.split("_", 2)[2]
    assert secret not in log_lines.getvalue()


def test_overload_is_refused_at_once_with_retry_after(cg: Creditgate) -> None:
    app: FastAPI = create_app(cg, Settings(max_in_flight=2))
    release = anyio.Event()
    started = 0
    _, key = cg.create_tenant_with_key("overloaded")

    @app.get("/v1/slow")
    async def slow(_t: Ledger) -> dict[str, bool]:
        nonlocal started
        started += 1
        await release.wait()
        return {"done": True}

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key.key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as client:
            results: list[int] = []

            async def hold_a_slot() -> None:
                results.append((await client.get("/v1/slow")).status_code)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(hold_a_slot)
                tasks.start_soon(hold_a_slot)
                while started < 2:
                    await anyio.sleep(0.01)
                with anyio.fail_after(1):
                    refused = await client.get("/v1/assets")
                assert refused.status_code == 503
                assert refused.headers["retry-after"] == "1"
                assert refused.json()["code"] == "overloaded"
                assert (await client.get("/healthz")).status_code == 200  # probes still answer
                # Refused before anything else is done with it: its key, path and body are
                # not looked at (a body still on its way is not waited for).
                anonymous = await client.get("/v1/assets", headers={"Authorization": ""})
                assert anonymous.status_code == 503
                assert (await client.get("/v1/nowhere")).status_code == 503
                with anyio.fail_after(1):
                    unread = await client.post("/v1/charges", content=_never_ending())
                assert unread.status_code == 503 and unread.json()["code"] == "overloaded"
                release.set()
            assert results == [200, 200]
            assert (await client.get("/v1/assets")).status_code == 200  # let in again
            # Let in again, each is answered as it would have been.
            assert (
                await client.get("/v1/assets", headers={"Authorization": ""})
            ).status_code == 401
            assert (await client.get("/v1/nowhere")).status_code == 404

    before = sample("creditgate_http_refused_total")
    anyio.run(main)
    assert sample("creditgate_http_refused_total") == before + 4


async def _never_ending() -> AsyncIterator[bytes]:
    """A body whose first piece comes and whose rest never does."""
    yield b'{"customer": '
    await anyio.sleep(3600)


def test_every_api_route_takes_an_in_flight_slot(cg: Creditgate) -> None:
    """`Shedding` refuses any request to `/v1/` while the process is full, as it arrives.
    That refuses nothing the slot would have let in only while every `/v1/` route takes a
    slot: through the key's dependency, or `in_flight_slot`."""
    from fastapi.dependencies.models import Dependant
    from fastapi.routing import iter_route_contexts

    from creditgate.http.auth import current_ledger
    from creditgate.http.load import in_flight_slot

    def calls(dependant: Dependant) -> set[object]:
        found: set[object] = {dependant.call}
        for sub in dependant.dependencies:
            found |= calls(sub)
        return found

    app = create_app(cg)
    api = [r for r in iter_route_contexts(app.routes) if str(r.path).startswith("/v1/")]
    assert len(api) > 50
    for route in api:
        assert calls(route.dependant) & {current_ledger, in_flight_slot}, route.path
