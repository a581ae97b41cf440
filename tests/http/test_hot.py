"""The hot routes (authorize, settle) answer exactly as FastAPI's routes do, and pass on
everything they do not serve; load shedding keeps room for settling holds already taken."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import uuid
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import REGISTRY
from starlette.responses import PlainTextResponse, Response
from starlette.testclient import TestClient

from creditgate.api import Creditgate, TenantLedger
from creditgate.http import gate, hot
from creditgate.http.auth import Ledger, bearer
from creditgate.http.middleware import handled
from creditgate.http.threads import Threads
from creditgate.server.app import Settings, create_app
from tests.http import asgi
from tests.http.asgi import cache_key, pieces, tenant_with_funds
from tests.http.conftest import Api, shared_client

# FastAPI reads this as JSON; the hot routes leave it to FastAPI.
VIA_FASTAPI = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
def client(cg: Creditgate, db_url: str) -> TestClient:
    """A shared app as the HTTP tests' own, but with keys cached long enough that a slow
    machine does not send a call through FastAPI to load its key again (the tests here count
    hot calls)."""
    return shared_client(cg, db_url, Settings(key_cache_seconds=600))


@pytest.fixture
def hot_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the route functions the hot routes ran."""
    calls: list[str] = []
    call = hot.HotRoutes._call

    async def counting(self: hot.HotRoutes, fn: Any, *args: Any) -> Any:
        calls.append(fn.__name__)
        return await call(self, fn, *args)

    monkeypatch.setattr(hot.HotRoutes, "_call", counting)
    return calls


def post(api: Api, url: str, body: Any, *, fastapi: bool = False, **headers: str) -> Any:
    if fastapi:
        headers = {**VIA_FASTAPI, **headers}
        return api.post(url, content=json.dumps(body), headers=headers)
    return api.post(url, body, headers=headers)


def post_without_body(api: Api, url: str, *, via: TestClient | None = None, **headers: str) -> Any:
    """POST with no body; `via` another client of the same database (the app without its
    edge)."""
    if via is not None:
        api = dataclasses.replace(api, client=via)
    return api.post(url, headers=headers)


@pytest.fixture
def without_edge(cg: Creditgate, db_url: str) -> TestClient:
    """The app without its edge (shared as `client` is): every request through FastAPI's
    router."""
    return shared_client(cg, db_url, Settings(key_cache_seconds=600), edge=False)


def seen(responses: Any, clean: Any, object_id: str, placeholder: str) -> list[Any]:
    """Status, content type and `clean`ed body of each response, `object_id` written as
    `placeholder` (the two rounds of a comparison act on different objects)."""
    return [
        (
            r.status_code,
            r.headers["content-type"],
            clean(json.loads(r.text.replace(object_id, placeholder))),
        )
        for r in responses
    ]


def without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: without_ids(v)
            for k, v in value.items()
            if k not in ("id", "authorization_id", "charge_id", "transaction_id")
            and not k.endswith("_at")
        }
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


def test_authorize_and_settle_answer_as_through_fastapi(api: Api, hot_calls: list[str]) -> None:
    api.funded_customer("c1", 10_000)
    hot_calls.clear()
    answers = []
    for fastapi in (False, True):
        auth = post(
            api,
            "/v1/authorizations",
            {"customer": "c1", "asset": "credits", "amount": 1_000, "metadata": {"k": "v"}},
            fastapi=fastapi,
        )
        settled = post(
            api, f"/v1/authorizations/{auth.json()['id']}/settle", {"amount": 800}, fastapi=fastapi
        )
        declined = post(
            api,
            "/v1/authorizations",
            {"customer": "c1", "asset": "credits", "amount": 1_000_000},
            fastapi=fastapi,
        )
        charged = post(
            api,
            "/v1/charges",
            {"customer": "c1", "asset": "credits", "amount": 300, "metadata": {"k": "v"}},
            fastapi=fastapi,
            **{"Idempotency-Key": f"charge-{fastapi}"},
        )
        charge_declined = post(
            api,
            "/v1/charges",
            {"customer": "c1", "asset": "credits", "amount": 1_000_000},
            fastapi=fastapi,
        )
        answers.append(
            [
                (r.status_code, r.headers["content-type"], without_ids(r.json()))
                for r in (auth, settled, declined, charged, charge_declined)
            ]
        )
    # The first round only.
    assert hot_calls == ["authorize", "settle", "authorize", "charge", "charge"]
    hot_answers, fastapi_answers = answers
    # The second round ran against a wallet 800 lower.
    for (status, ctype, body), (status2, ctype2, body2) in zip(
        hot_answers, fastapi_answers, strict=True
    ):
        assert (status, ctype) == (status2, ctype2)
        assert set(body) == set(body2)
    assert [a[0] for a in hot_answers] == [201, 200, 201, 201, 201]
    assert hot_answers[2][2]["status"] == "declined"
    assert hot_answers[3][2]["status"] == "posted" and hot_answers[4][2]["status"] == "declined"


def test_errors_from_the_gate_are_the_same_problems(api: Api, hot_calls: list[str]) -> None:
    api.funded_customer("c1", 10_000)
    hot_calls.clear()
    auth = post(api, "/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 10})
    hold = auth.json()["id"]
    post(api, f"/v1/authorizations/{hold}/settle", {"amount": 5}, **{"Idempotency-Key": "s1"})
    cases = [
        ("/v1/authorizations", {"customer": "nobody", "asset": "credits", "amount": 10}, {}),
        ("/v1/authorizations", {"customer": "c1", "asset": "gold", "amount": 10}, {}),
        ("/v1/authorizations/auth_missing/settle", {"amount": 1}, {}),
        (f"/v1/authorizations/{hold}/settle", {"amount": 7}, {"Idempotency-Key": "s1"}),
        (f"/v1/authorizations/{hold}/settle", {"amount": 1}, {}),  # already settled
        ("/v1/charges", {"customer": "nobody", "asset": "credits", "amount": 10}, {}),
        ("/v1/charges", {"customer": "c1", "asset": "gold", "amount": 10}, {}),
        ("/v1/charges", {"customer": "c1", "amount": 10}, {}),  # an amount needs its asset
    ]
    for url, body, headers in cases:
        hot_calls.clear()
        served = post(api, url, body, **headers)
        assert hot_calls, url
        through_fastapi = post(api, url, body, fastapi=True, **headers)
        assert served.status_code == through_fastapi.status_code and served.status_code >= 400
        assert served.headers["content-type"] == "application/problem+json"
        assert served.json() == through_fastapi.json()


def test_what_the_hot_routes_do_not_serve_goes_to_fastapi(
    api: Api, cg: Creditgate, hot_calls: list[str]
) -> None:
    api.funded_customer("c1", 10_000)
    hot_calls.clear()
    good = {"customer": "c1", "asset": "credits", "amount": 10}
    cases: list[tuple[str, Any, dict[str, str], int]] = [
        ("/v1/authorizations", {**good, "amount": 0}, {}, 422),
        ("/v1/authorizations", {**good, "surprise": 1}, {}, 422),
        ("/v1/authorizations", [good], {}, 422),
        ("/v1/authorizations", good, {"Idempotency-Key": "k" * 1_000}, 422),
        ("/v1/authorizations/not-an-id!/settle", {"amount": 1}, {}, 422),
        ("/v1/authorizations/auth_x/settle", {"amount": -1}, {}, 422),
        ("/v1/charges", {**good, "amount": -5}, {}, 422),
        ("/v1/authorizations", good, {"Authorization": "Bearer cg_nope_nope"}, 401),
        ("/v1/authorizations", good, {"Authorization": "Basic abc"}, 401),
    ]
    for url, body, headers, status in cases:
        response = post(api, url, body, **headers)
        assert response.status_code == status, (url, body, headers, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    as_json = {"Content-Type": "application/json"}
    malformed = api.post("/v1/authorizations", content=b"{", headers=as_json)
    assert malformed.status_code == 400 and malformed.json()["code"] == "malformed_json"
    as_form = api.post("/v1/authorizations", content=b"a=1", headers={"Content-Type": "text/plain"})
    assert as_form.status_code == 415
    nested = b"[" * 100_000 + b"]" * 100_000
    deep = api.post("/v1/authorizations", content=nested, headers=as_json)
    assert deep.status_code == 400 and deep.json()["code"] == "malformed_request"
    newline = api.post("/v1/authorizations/auth_1%0A/settle", {"amount": 1})
    assert newline.status_code == 422 and newline.json()["field"] == "id"
    assert hot_calls == []

    # A key not yet verified by this server is verified by the route's own dependency, in
    # FastAPI's stack; once it is in the cache, the edge serves the key's calls.
    tenant, key = cg.create_tenant_with_key("second")
    assert key.key is not None
    TenantLedger(cg, tenant.id).create_asset("credits", 2)
    second = Api(api.client, key.key, TenantLedger(cg, tenant.id))
    second.ledger.create_customer("c2")
    second.ledger.grant("c2", "credits", 100, kind="purchased", cost_basis="0.01")
    hot_calls.clear()
    first = post(second, "/v1/authorizations", {**good, "customer": "c2"})
    assert first.status_code == 201 and hot_calls == []
    then = post(second, "/v1/authorizations", {**good, "customer": "c2"})
    assert then.status_code == 201 and hot_calls == ["authorize"]


def test_hot_routes_are_measured_and_logged_by_their_route(api: Api) -> None:
    api.funded_customer("c1", 10_000)
    route = {"method": "POST", "route": "/v1/authorizations/{id}/settle", "status": "200"}
    name = "creditgate_http_request_duration_seconds_count"
    before = REGISTRY.get_sample_value(name, route) or 0.0
    auth = api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 10})
    assert api.post(f"/v1/authorizations/{auth.json()['id']}/settle", {"amount": 5}).is_success
    assert REGISTRY.get_sample_value(name, route) == before + 1


def test_an_unexpected_error_is_a_500_problem_as_through_fastapi(
    cg: Creditgate, monkeypatch: pytest.MonkeyPatch, hot_calls: list[str]
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(TenantLedger, "authorize", broken)
    _, key = cg.create_tenant_with_key("broken")
    body = {"customer": "c1", "asset": "credits", "amount": 10}
    answers = []
    for edge in (True, False):
        app = create_app(cg, Settings(key_cache_seconds=600), edge=edge)
        with TestClient(app, raise_server_exceptions=False) as client:
            headers = {"Authorization": f"Bearer {key.key}", "Idempotency-Key": "k1"}
            listed = client.get("/v1/assets", headers=headers)  # caches the key
            assert listed.status_code == 200
            hot_calls.clear()
            response = client.post("/v1/authorizations", json=body, headers=headers)
            assert hot_calls == (["authorize"] if edge else [])
            answers.append((response.status_code, dict(response.headers), response.json()))
            assert app.state.in_flight.count == 0  # its slot given back
    # Answered outside the request's id, as Starlette's ServerErrorMiddleware answers it.
    assert answers[0] == answers[1]
    assert answers[0][0] == 500 and answers[0][2]["code"] == "internal_error"
    assert "x-request-id" not in answers[0][1]


def test_a_request_left_to_fastapi_is_not_refused_again_once_let_in(cg: Creditgate) -> None:
    """The in-flight limit is checked once, as the request arrives: a request the edge let in
    and then left to FastAPI (here, with a key it has not verified) is answered by the stack
    even if the slots filled while its body arrived, as the app without the edge answers it."""
    headers = [
        (b"authorization", b"Bearer cg_unknown_unknownsecret"),
        (b"content-type", b"application/json"),
        (b"idempotency-key", b"k1"),
    ]
    body = json.dumps({"customer": "c1", "asset": "credits", "amount": 1}).encode()

    async def filled_meanwhile(app: FastAPI) -> tuple[int, dict[bytes, bytes], bytes]:
        in_flight = app.state.in_flight
        gate = anyio.Event()
        result: list[Any] = []

        async def send() -> None:
            path = "/v1/authorizations"
            result.append(await asgi.post(app, path, headers, pieces([body]), gate))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(send)
            await anyio.sleep(0.05)  # let in, waiting for its body
            in_flight.count = in_flight.limit  # meanwhile every slot is taken
            gate.set()
        in_flight.count = 0
        return result[0]  # type: ignore[no-any-return]

    answers = []
    for edge in (True, False):
        app = create_app(cg, Settings(max_in_flight=4), edge=edge)
        status, _, answer = anyio.run(filled_meanwhile, app)
        answers.append((status, json.loads(answer)["code"]))
    assert answers == [(401, "unauthenticated"), (401, "unauthenticated")]


def test_a_length_that_is_not_ascii_digits_is_a_400_not_a_500(cg: Creditgate) -> None:
    """A lenient HTTP parser may pass `Content-Length: ²` on, which `str.isdigit` takes for a
    digit; it is refused as malformed, with or without the edge."""
    for edge in (True, False):
        app = create_app(cg, edge=edge)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", "²".encode("latin-1")),
        ]
        status, _, body = anyio.run(asgi.post, app, "/v1/authorizations", headers, pieces([b"{}"]))
        assert (status, json.loads(body)["code"]) == (400, "malformed_request")


def test_under_load_settling_a_hold_is_let_in_before_new_work(cg: Creditgate) -> None:
    app: FastAPI = create_app(cg, Settings(max_in_flight=4))  # 3 slots for new work
    release = anyio.Event()
    started = 0
    _, key = cg.create_tenant_with_key("under load")

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

            async def hold_a_slot() -> None:
                await client.get("/v1/slow")

            def keyed(name: str) -> dict[str, str]:
                return {"Idempotency-Key": name}

            async with anyio.create_task_group() as tasks:
                for _ in range(3):
                    tasks.start_soon(hold_a_slot)
                while started < 3:
                    await anyio.sleep(0.01)
                with anyio.fail_after(1):
                    new = await client.post("/v1/authorizations", json={}, headers=keyed("n"))
                    settle = await client.post(
                        "/v1/authorizations/auth_1/settle", json={}, headers=keyed("s")
                    )
                    void = await client.post("/v1/authorizations/auth_1/void", headers=keyed("v"))
                assert new.status_code == 503 and new.json()["code"] == "overloaded"
                assert settle.status_code == 404  # let in (and then told there is no such hold)
                assert void.status_code == 404
                release.set()

    anyio.run(main)


def test_hot_routes_echo_the_request_id_and_log_their_line(
    api: Api, hot_calls: list[str], log_lines: io.StringIO
) -> None:
    api.funded_customer("c1", 10_000)
    hot_calls.clear()
    body = {"customer": "c1", "asset": "credits", "amount": 10}
    traced = post(api, "/v1/authorizations", body, **{"X-Request-Id": "trace-hot-1"})
    assert hot_calls == ["authorize"]
    assert traced.headers["x-request-id"] == "trace-hot-1"
    # An unfit id (a key pasted into it) is replaced, never echoed or logged.
    pasted = f"{api.key}"
    replaced = post(api, "/v1/authorizations", body, **{"X-Request-Id": pasted})
    assert replaced.status_code == 201 and len(replaced.headers["x-request-id"]) == 32
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    line = next(line for line in lines if line["request_id"] == "trace-hot-1")
    assert line["route"] == "/v1/authorizations" and line["status"] == 201
    assert line["tenant"] == api.tenant_id and line["key"].endswith("…")
    assert api.key.split("_", 2)[2] not in log_lines.getvalue()


def test_a_chunked_body_is_read_behind_the_same_cap(api: Api, hot_calls: list[str]) -> None:
    api.funded_customer("c1", 10_000)
    hot_calls.clear()
    body = json.dumps({"customer": "c1", "asset": "credits", "amount": 10}).encode()
    headers = {**api.headers, "Content-Type": "application/json", "Idempotency-Key": "k1"}

    def chunks() -> Any:
        yield body[:5]
        yield body[5:]

    chunked = api.client.post("/v1/authorizations", content=chunks(), headers=headers)
    assert chunked.status_code == 201 and chunked.json()["approved"] is True
    assert hot_calls == ["authorize"]  # no Content-Length: read by the app's body cap first


def test_an_oversized_body_is_refused_before_it_is_read(cg: Creditgate) -> None:
    with TestClient(create_app(cg, Settings(max_body_bytes=64))) as client:
        _, key = cg.create_tenant_with_key("capped")
        headers = {"Authorization": f"Bearer {key.key}", "Content-Type": "application/json"}
        small = {"customer": "c", "asset": "credits", "amount": 1}
        client.post("/v1/authorizations", json=small, headers=headers)  # caches the key
        big = {**small, "metadata": {"note": "x" * 100}}
        refused = client.post("/v1/authorizations", content=json.dumps(big), headers=headers)
        assert refused.status_code == 413 and refused.json()["code"] == "body_too_large"


def test_hot_requests_count_against_the_same_in_flight_limit(
    cg: Creditgate, monkeypatch: pytest.MonkeyPatch
) -> None:
    app: FastAPI = create_app(cg, Settings(max_in_flight=4))  # 3 slots for new work
    tenant, key = cg.create_tenant_with_key("in flight")
    assert key.key is not None
    ledger = TenantLedger(cg, tenant.id)
    ledger.create_asset("credits", 2)
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 10_000, kind="purchased", cost_basis="0.01")
    held = ledger.authorize("c1", "credits", 100)
    headers = {"Authorization": f"Bearer {key.key}"}
    body = {"customer": "c1", "asset": "credits", "amount": 10}
    release = anyio.Event()
    waiting = 0
    call = hot.HotRoutes._call

    async def slow_call(self: hot.HotRoutes, fn: Any, *args: Any) -> Any:
        nonlocal waiting
        if fn.__name__ == "authorize":
            waiting += 1
            await release.wait()
        return await call(self, fn, *args)

    monkeypatch.setattr(hot.HotRoutes, "_call", slow_call)

    def new_key() -> dict[str, str]:
        return {"Idempotency-Key": uuid.uuid4().hex}

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as client:
            # Caches the key (the first call goes through FastAPI, not _call).
            assert (await client.get("/v1/assets")).status_code == 200
            statuses: list[int] = []

            async def authorize() -> None:
                response = await client.post("/v1/authorizations", json=body, headers=new_key())
                statuses.append(response.status_code)

            async with anyio.create_task_group() as tasks:
                for _ in range(3):
                    tasks.start_soon(authorize)
                while waiting < 3:
                    await anyio.sleep(0.01)
                with anyio.fail_after(5):
                    # Three hot authorizations fill the slots for new work...
                    refused = await client.post("/v1/authorizations", json=body, headers=new_key())
                    # The edge builds its refusal once: each one still carries its own id.
                    named, path = {**new_key(), "X-Request-Id": "r-2"}, "/v1/authorizations"
                    again_refused = await client.post(path, json=body, headers=named)
                    listed = await client.get("/v1/assets")
                    # ...and the slot kept for finishing holds lets a settle in.
                    settled = await client.post(
                        f"/v1/authorizations/{held.id}/settle",
                        json={"amount": 50},
                        headers=new_key(),
                    )
                assert refused.status_code == 503 and refused.json()["code"] == "overloaded"
                assert listed.status_code == 503
                # Refused at the edge with the full stack's answer, body and headers alike.
                assert refused.content == listed.content
                assert refused.headers["retry-after"] == listed.headers["retry-after"] == "1"
                assert refused.headers["content-type"] == "application/problem+json"
                assert len(refused.headers["x-request-id"]) == 32
                assert again_refused.status_code == 503 and again_refused.content == refused.content
                assert again_refused.headers.get_list("x-request-id") == ["r-2"]
                assert refused.headers.get_list("x-request-id") != ["r-2"]
                assert settled.status_code == 200 and settled.json()["charge"]["amount"] == 50
                release.set()
            assert statuses == [201, 201, 201]
            again = await client.post("/v1/authorizations", json=body, headers=new_key())
            assert again.status_code == 201

    refused_before = REGISTRY.get_sample_value("creditgate_http_refused_total") or 0.0
    anyio.run(main)
    assert REGISTRY.get_sample_value("creditgate_http_refused_total") == refused_before + 3
    assert cg.verify(tenant.id).ok


def test_void_answers_as_through_fastapi(
    api: Api, hot_calls: list[str], without_edge: TestClient
) -> None:
    api.funded_customer("c1", 10_000)
    hot_calls.clear()
    body = {"customer": "c1", "asset": "credits", "amount": 100}
    held = [post(api, "/v1/authorizations", body).json()["id"] for _ in range(2)]
    missing = "auth_missing"

    def void(hold: str, *, fastapi: bool, **headers: str) -> Any:
        url = f"/v1/authorizations/{hold}/void"
        return post_without_body(api, url, via=without_edge if fastapi else None, **headers)

    answers = []
    for fastapi, hold in ((False, held[0]), (True, held[1])):
        hot_calls.clear()
        voided = void(hold, fastapi=fastapi, **{"Idempotency-Key": f"v-{hold}"})
        replayed = void(hold, fastapi=fastapi, **{"Idempotency-Key": f"v-{hold}"})
        again = void(hold, fastapi=fastapi)  # already voided
        unknown = void(missing, fastapi=fastapi)
        assert hot_calls == ([] if fastapi else ["void"] * 4)
        assert voided.json() == replayed.json() and voided.json()["status"] == "voided"
        # The first round ran while the second hold was still open.
        answers.append(
            seen(
                (voided, again, unknown),
                lambda body: without_ids(body) | {"available": 0},
                hold,
                "HOLD",
            )
        )
    assert answers[0] == answers[1]
    assert [a[0] for a in answers[0]] == [200, 409, 404]
    wallet = api.get("/v1/customers/c1/wallet").json()
    assert wallet["balances"][0]["held"] == 0


def stable(value: Any) -> Any:
    """`without_ids`, and without what the first round changed for the second: the balance
    and the lots drawn."""
    if isinstance(value, dict):
        return {
            k: stable(v)
            for k, v in without_ids(value).items()
            if k not in ("available", "lot_id", "to_lot")
        }
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def test_grants_and_refunds_answer_as_through_fastapi(api: Api, hot_calls: list[str]) -> None:
    api.funded_customer("c1", 10_000)
    grant = {
        "asset": "credits",
        "amount": 500,
        "kind": "promotional",
        "priority": 3,
        "expires_at": "2099-01-01T00:00:00Z",
        "metadata": {"campaign": "spring"},
    }
    charge = {"customer": "c1", "asset": "credits", "amount": 300}
    answers = []
    for fastapi in (False, True):
        hot_calls.clear()
        granted = post(api, "/v1/customers/c1/grants", grant, fastapi=fastapi)
        charged = post(api, "/v1/charges", charge)  # on the hot route both times
        charge_id = charged.json()["id"]
        refund = {"reason": "bad answer", "amount": 100}
        refunded = post(api, f"/v1/charges/{charge_id}/refunds", refund, fastapi=fastapi)
        too_much = post(
            api, f"/v1/charges/{charge_id}/refunds", {**refund, "amount": 1_000}, fastapi=fastapi
        )
        errors = [
            post(api, "/v1/customers/nobody/grants", grant, fastapi=fastapi),
            post(api, "/v1/customers/c1/grants", {**grant, "asset": "gold"}, fastapi=fastapi),
            post(api, "/v1/charges/chg_missing/refunds", refund, fastapi=fastapi),
        ]
        expected = ["charge"] if fastapi else ["create_grant", "charge", *["refund_charge"] * 2]
        expected += [] if fastapi else ["create_grant", "create_grant", "refund_charge"]
        assert hot_calls == expected
        answers.append(seen((granted, refunded, too_much, *errors), stable, charge_id, "CHARGE"))
    assert answers[0] == answers[1]
    assert [a[0] for a in answers[0]] == [201, 201, 422, 404, 404, 404]


def test_grants_and_refunds_the_edge_leaves_to_fastapi(api: Api, hot_calls: list[str]) -> None:
    api.funded_customer("c1", 1_000)
    hot_calls.clear()
    grant = {"asset": "credits", "amount": 5, "kind": "promotional"}
    long_id = "c" * 201
    cases: list[tuple[str, Any, int]] = [
        (f"/v1/customers/{long_id}/grants", grant, 422),  # longer than a customer id may be
        ("/v1/customers/c1/grants", {**grant, "amount": 0}, 422),
        ("/v1/customers/c1/grants", {**grant, "kind": "gift"}, 422),
        ("/v1/charges/not-an-id!/refunds", {"reason": "r"}, 422),
        ("/v1/charges/chg_1/refunds", {"reason": ""}, 422),
    ]
    for url, body, status in cases:
        response = post(api, url, body)
        assert response.status_code == status, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"]
    assert hot_calls == []


def test_purchases_and_marking_them_paid_answer_as_through_fastapi(
    api: Api, hot_calls: list[str], without_edge: TestClient
) -> None:
    api.funded_customer("c1", 100)
    pack = {"code": "p", "asset": "credits", "amount": 500, "price": "5"}
    assert api.post("/v1/packs", pack).status_code == 201
    answers = []
    for fastapi in (False, True):
        hot_calls.clear()
        bought = post(api, "/v1/customers/c1/purchases", {"pack": "p"}, fastapi=fastapi)
        purchase = bought.json()["id"]
        url = f"/v1/purchases/{purchase}/mark-paid"
        via = without_edge if fastapi else None
        paid = post_without_body(api, url, via=via)
        again = post_without_body(api, url, via=via)
        errors = [
            post(api, "/v1/customers/c1/purchases", {"pack": "nope"}, fastapi=fastapi),
            post(api, "/v1/customers/nobody/purchases", {"pack": "p"}, fastapi=fastapi),
        ]
        # A purchase may wait for Stripe: the stack serves it, on anyio's threads.
        assert hot_calls == ([] if fastapi else ["mark_paid"] * 2)
        answers.append(seen((bought, paid, again, *errors), stable, purchase, "PURCHASE"))
    assert answers[0] == answers[1]
    assert [a[0] for a in answers[0]][:2] == [201, 200]
    assert api.get("/v1/customers/c1/wallet").json()["balances"][0]["posted"] == 1_100


def test_the_first_of_each_header_counts_as_with_fastapi(api: Api, hot_calls: list[str]) -> None:
    api.funded_customer("c1", 1_000)
    hot_calls.clear()
    body = json.dumps({"customer": "c1", "asset": "credits", "amount": 10})
    bearer = ("Authorization", f"Bearer {api.key}")
    json_type = ("Content-Type", "application/json")
    keyed = ("Idempotency-Key", "k1")
    cases = [
        ([("Authorization", ""), bearer, json_type, keyed], 401),
        ([bearer, ("Idempotency-Key", ""), ("Idempotency-Key", "k1"), json_type], 422),
        ([bearer, ("Content-Type", ""), json_type, keyed], 415),
    ]
    for headers, status in cases:
        response = api.client.post("/v1/authorizations", content=body, headers=headers)
        assert response.status_code == status, (headers, response.text)
    assert hot_calls == []


def test_a_body_past_the_cap_is_refused_however_it_is_framed(cg: Creditgate) -> None:
    app = create_app(cg, Settings(max_body_bytes=64))
    key, ledger = tenant_with_funds(cg)
    big = json.dumps(
        {"customer": "c1", "asset": "credits", "amount": 10, "metadata": {"n": "x" * 100}}
    ).encode()
    auth = [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")]

    async def main() -> list[tuple[int, dict[bytes, bytes], bytes]]:
        await cache_key(app, key)
        chunks = pieces([big[:40], big[40:80], big[80:]])
        return [
            # Both a length and chunks (a lenient parser lets it through): the chunks count.
            await asgi.post(
                app,
                "/v1/authorizations",
                [*auth, (b"content-length", b"10"), (b"transfer-encoding", b"chunked")],
                chunks,
            ),
            # A length that lies low.
            await asgi.post(app, "/v1/authorizations", [*auth, (b"content-length", b"10")], chunks),
        ]

    for status, _, body in anyio.run(main):
        assert status == 413 and json.loads(body)["code"] == "body_too_large"
    assert ledger.wallet("c1").balances[0].held == 0


def test_dependency_overrides_are_honoured_at_the_edge(
    cg: Creditgate, hot_calls: list[str]
) -> None:
    """With an override in place the route is left to FastAPI's own solver, which honours it;
    once it is gone the edge serves the route again."""
    key, ledger = tenant_with_funds(cg)
    app = create_app(cg, Settings(key_cache_seconds=600))

    async def this_key() -> HTTPAuthorizationCredentials:
        return HTTPAuthorizationCredentials(scheme="Bearer", credentials=key)

    app.dependency_overrides[bearer] = this_key
    body = {"customer": "c1", "asset": "credits", "amount": 10}
    with TestClient(app) as client:
        served = client.post("/v1/authorizations", json=body, headers={"Idempotency-Key": "k1"})
        assert served.status_code == 201, served.text
        assert hot_calls == []
        app.dependency_overrides.clear()
        headers = {"Idempotency-Key": "k2", "Authorization": f"Bearer {key}"}
        again = client.post("/v1/authorizations", json=body, headers=headers)
        assert again.status_code == 201, again.text
        assert hot_calls == ["authorize"]
    assert ledger.wallet("c1").balances[0].held == 20


def test_an_endpoint_without_a_post_route_is_refused_when_the_app_is_built(
    cg: Creditgate,
) -> None:
    app = create_app(cg)
    with pytest.raises(LookupError, match="get_authorization"):
        hot.HotRoutes(app, owner=app, threads=Threads(1), endpoints=[gate.get_authorization])


def test_the_edges_find_an_errors_handler_as_starlette_does() -> None:
    """`middleware.handled`, which the edges answer an endpoint's error with: the handler of
    the error's nearest class, awaited, or run on a thread when it is a plain function (as
    Starlette runs one); the catch-all's error is given back to be raised on."""

    def plain(_request: Any, exc: Exception) -> Response:
        return PlainTextResponse(f"{exc} on {threading.current_thread().name}", status_code=418)

    async def awaited(_request: Any, exc: Exception) -> Response:
        return PlainTextResponse(f"{exc} awaited", status_code=500)

    handlers = {LookupError: plain, Exception: awaited}
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def main() -> list[tuple[int, bytes, bool]]:
        found = []
        for exc in (KeyError("k"), RuntimeError("r")):
            response, unexpected = await handled(handlers, exc, scope, receive)
            found.append((response.status_code, bytes(response.body), unexpected is exc))
        return found

    (keyed, other) = anyio.run(main)
    assert keyed[0] == 418 and not keyed[2]
    assert threading.main_thread().name.encode() not in keyed[1]  # not on the loop's thread
    assert other == (500, b"r awaited", True)


class _Interrupted(BaseException):
    """What a cancelled request's call ends with, as far as the edge can tell."""


def test_the_slot_is_given_back_however_the_call_ends(
    cg: Creditgate, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, ledger = tenant_with_funds(cg)
    app = create_app(cg, Settings(key_cache_seconds=600))

    async def interrupted(_self: hot.HotRoutes, _fn: Any, _values: Any) -> Any:
        assert app.state.in_flight.count == 1  # held while the call runs
        raise _Interrupted

    monkeypatch.setattr(hot.HotRoutes, "_call", interrupted)
    headers = [
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"idempotency-key", b"k1"),
    ]
    body = json.dumps({"customer": "c1", "asset": "credits", "amount": 1}).encode()

    async def main() -> None:
        await cache_key(app, key)
        await asgi.post(app, "/v1/authorizations", headers, pieces([body]))

    with pytest.raises(_Interrupted):
        anyio.run(main)
    assert app.state.in_flight.count == 0
    assert ledger.wallet("c1").balances[0].held == 0
