"""Every route the edge serves answers exactly as FastAPI's router would have it answered.

For each route of the edge (`hot.HOT_ENDPOINTS`, the list `HotRoutes` serves), one world
sends its requests to the app with the edge, another world, set up the same way in the same
database, to the app without it (`create_app(..., edge=False)`); both go through the same
list of requests: a valid one, its replay and a conflicting one under the same key, no key,
bad keys, another tenant's key, JSON that is malformed, not an object, too deep or sent as
something else, a body past the cap (with a length and in chunks), each required field of
the route's body model missing, each field of the valid body of a wrong type, objects that do
not exist and path parameters FastAPI refuses. Status, relevant headers and the body must be
the same, once the ids and times each world generated are numbered in order of appearance.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.testclient import TestClient

from creditgate.api import Creditgate, TenantLedger
from creditgate.http import hot
from creditgate.server.app import Settings, create_app

MAX_BODY = 4_096
SETTINGS = Settings(max_body_bytes=MAX_BODY, key_cache_seconds=600)
HEADERS = (
    "content-type",
    "x-request-id",
    "www-authenticate",
    "retry-after",
    "allow",
    "location",
    "connection",
)
MISSING_ID = "hld_00000000000000000000000000"
_GENERATED_ID = re.compile(r"\b[a-z]{2,8}_[0-9a-z]{20,40}\b")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


@dataclass(frozen=True)
class Plan:
    """What a route is sent, in one world: the valid request, a second one under the same
    key (the conflict), a path naming no object, and paths FastAPI refuses."""

    path: str
    body: dict[str, Any] | None  # None: the route takes no body
    conflicting: tuple[str, dict[str, Any] | None]
    missing: str | None = None  # None: no path parameter
    refused_paths: tuple[str, ...] = ()


def _funded(t: TenantLedger) -> None:
    t.create_customer("c1")
    t.grant("c1", "credits", 100_000, kind="purchased", cost_basis="0.01")


def _authorize(t: TenantLedger) -> Plan:
    _funded(t)
    body = {"customer": "c1", "asset": "credits", "amount": 100, "metadata": {"k": "v"}}
    return Plan("/v1/authorizations", body, ("/v1/authorizations", {**body, "amount": 200}))


def _charge(t: TenantLedger) -> Plan:
    _funded(t)
    body = {"customer": "c1", "asset": "credits", "amount": 300}
    return Plan("/v1/charges", body, ("/v1/charges", {**body, "amount": 301}))


def _hold_paths(action: str) -> dict[str, Any]:
    return {
        "missing": f"/v1/authorizations/{MISSING_ID}/{action}",
        "refused_paths": (
            f"/v1/authorizations/not-an-id!/{action}",
            f"/v1/authorizations/hld_1%0A/{action}",
            f"/v1/authorizations/{'h' * 65}/{action}",
        ),
    }


def _settle(t: TenantLedger) -> Plan:
    _funded(t)
    path = f"/v1/authorizations/{t.authorize('c1', 'credits', 1_000).id}/settle"
    body = {"amount": 800, "metadata": {"k": "v"}}
    return Plan(path, body, (path, {"amount": 700}), **_hold_paths("settle"))


def _void(t: TenantLedger) -> Plan:
    _funded(t)
    first, second = (t.authorize("c1", "credits", 100).id for _ in range(2))
    conflicting = (f"/v1/authorizations/{second}/void", None)
    return Plan(f"/v1/authorizations/{first}/void", None, conflicting, **_hold_paths("void"))


def _create_grant(t: TenantLedger) -> Plan:
    t.create_customer("c1")
    path = "/v1/customers/c1/grants"
    body = {"asset": "credits", "amount": 500, "kind": "promotional", "priority": 3}
    return Plan(
        path,
        body,
        (path, {**body, "amount": 600}),
        missing="/v1/customers/nobody/grants",
        refused_paths=(f"/v1/customers/{'c' * 201}/grants",),
    )


def _refund_charge(t: TenantLedger) -> Plan:
    _funded(t)
    path = f"/v1/charges/{t.charge('c1', 'credits', 300).id}/refunds"
    body = {"reason": "bad answer", "amount": 100}
    return Plan(
        path,
        body,
        (path, {**body, "amount": 50}),
        missing=f"/v1/charges/{MISSING_ID}/refunds",
        refused_paths=("/v1/charges/not-an-id!/refunds", f"/v1/charges/{'x' * 65}/refunds"),
    )


def _packs(t: TenantLedger) -> None:
    t.create_customer("c1")
    t.create_pack("p", asset="credits", amount=500, price="5")
    t.create_pack("q", asset="credits", amount=900, price="8")


def _mark_paid(t: TenantLedger) -> Plan:
    _packs(t)
    first, second = (t.buy("c1", pack="p").id for _ in range(2))
    return Plan(
        f"/v1/purchases/{first}/mark-paid",
        None,
        (f"/v1/purchases/{second}/mark-paid", None),
        missing=f"/v1/purchases/{MISSING_ID}/mark-paid",
        refused_paths=("/v1/purchases/not-an-id!/mark-paid",),
    )


# How to set up a world for each endpoint the edge serves, and what to send it. An endpoint
# added to the edge without one here fails its test below.
PLANS: dict[str, Callable[[TenantLedger], Plan]] = {
    "authorize": _authorize,
    "charge": _charge,
    "settle": _settle,
    "void": _void,
    "create_grant": _create_grant,
    "refund_charge": _refund_charge,
    "mark_paid": _mark_paid,
}


# The requests of `requests_for` the edge answers itself (the rest go to FastAPI's stack), in
# the order they are sent: each runs the route's endpoint, which answers or raises.
SERVED_BY_THE_EDGE = (
    "valid",
    "replay",
    "conflict",
    "another tenant",
    "query string",
    "request id",
    "missing object",
    "a body all the same",
    "charset",
)


@dataclass(frozen=True)
class Request:
    """One request, as sent to both worlds: `path` and `body` are the world's own."""

    name: str
    path: str
    content: bytes | Iterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    key: str = "mine"  # mine, other (another tenant's), or none
    idempotency_key: str | None = "fresh"  # fresh: a new one; None: no header
    method: str = "POST"


def _wrong_types(value: Any) -> list[Any]:
    """Values of other JSON types than `value`'s."""
    candidates: list[Any] = ["x", 12345, 1.5, True, None, [1], {"a": 1}]
    return [c for c in candidates if type(c) is not type(value) and c != value]


def _body_model(route: hot.HotRoute) -> type[BaseModel]:
    body_field = route.route.body_field
    assert body_field is not None
    model = body_field.field_info.annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model


def requests_for(route: hot.HotRoute, plan: Plan) -> list[Request]:
    """The requests each world sends `route`; the body's fields come from its own model."""

    def as_json(body: Any) -> bytes:
        return json.dumps(body).encode()

    json_type = {"Content-Type": "application/json"}
    valid = as_json(plan.body) if plan.body is not None else None
    other_path, other_body = plan.conflicting
    conflicting = as_json(other_body) if other_body is not None else None
    sent = [
        Request("valid", plan.path, valid, json_type, idempotency_key="k1"),
        Request("replay", plan.path, valid, json_type, idempotency_key="k1"),
        Request("conflict", other_path, conflicting, json_type, idempotency_key="k1"),
        Request("no idempotency key", plan.path, valid, json_type, idempotency_key=None),
        Request("empty idempotency key", plan.path, valid, json_type, idempotency_key=""),
        Request("long idempotency key", plan.path, valid, json_type, idempotency_key="k" * 300),
        Request("no key", plan.path, valid, json_type, key="none"),
        Request("unknown key", plan.path, valid, json_type | {"Authorization": "Bearer cg_no"}),
        Request("basic auth", plan.path, valid, json_type | {"Authorization": "Basic YTpi"}),
        Request("empty auth", plan.path, valid, json_type | {"Authorization": ""}),
        Request("another tenant", plan.path, valid, json_type, key="other"),
        Request("query string", plan.path + "?x=1", valid, json_type),
        Request("trailing slash", plan.path + "/", valid, json_type),
        Request("GET", plan.path, None, {}, method="GET"),
        Request("request id", plan.path, valid, json_type | {"X-Request-Id": "trace-1"}),
    ]
    if plan.missing is not None:
        sent.append(Request("missing object", plan.missing, valid, json_type))
    sent += [Request(f"refused path {p}", p, valid, json_type) for p in plan.refused_paths]
    big = json.dumps({**(plan.body or {}), "metadata": {"n": "x" * MAX_BODY}}).encode()
    sent += [
        Request("past the cap", plan.path, big, json_type),
        Request("past the cap in chunks", plan.path, iter([big[:100], big[100:]]), json_type),
        Request("bad length", plan.path, valid or b"", json_type | {"Content-Length": "x1"}),
    ]
    if plan.body is None:  # FastAPI reads no body for the route: whatever comes is ignored
        sent.append(Request("a body all the same", plan.path, b"{not json", json_type))
        return sent
    sent += [
        Request("malformed JSON", plan.path, b'{"amount": ', json_type),
        Request("NaN", plan.path, b'{"amount": NaN}', json_type),
        Request("too deep", plan.path, b"[" * 2_000 + b"]" * 2_000, json_type),
        Request("not an object", plan.path, as_json([plan.body]), json_type),
        Request("null", plan.path, b"null", json_type),
        Request("empty body", plan.path, b"", json_type),
        Request("no content type", plan.path, valid, {}),
        Request("text/plain", plan.path, valid, {"Content-Type": "text/plain"}),
        Request("+json", plan.path, valid, {"Content-Type": "application/merge-patch+json"}),
        Request("charset", plan.path, valid, {"Content-Type": "application/json; charset=utf-8"}),
        Request("unknown field", plan.path, as_json({**plan.body, "surprise": 1}), json_type),
    ]
    for name, model_field in _body_model(route).model_fields.items():
        if model_field.is_required():
            without = {k: v for k, v in plan.body.items() if k != name}
            sent.append(Request(f"without {name}", plan.path, as_json(without), json_type))
    for name, value in plan.body.items():
        for wrong in _wrong_types(value):
            body = as_json({**plan.body, name: wrong})
            sent.append(Request(f"{name} as {wrong!r}", plan.path, body, json_type))
    # Every field wrong at once: each is named in `errors`, the first in `field`.
    all_wrong = as_json({name: [value] for name, value in plan.body.items()})
    sent += [
        Request("every field wrong", plan.path, all_wrong, json_type),
        Request("and no key", plan.path, all_wrong, json_type, idempotency_key=None),
        Request("and no API key", plan.path, all_wrong, json_type, key="none"),
    ]
    return sent


class World:
    """A tenant set up for one route, with another tenant beside it, seen through one app."""

    def __init__(self, cg: Creditgate, client: TestClient, setup: Callable[..., Plan]) -> None:
        self.client = client
        self.keys: dict[str, str] = {}
        ledgers = {}
        for who in ("mine", "other"):
            tenant, key = cg.create_tenant_with_key(f"parity {who} {uuid.uuid4().hex[:6]}")
            assert key.key is not None
            self.keys[who] = key.key
            ledgers[who] = TenantLedger(cg, tenant.id)
            ledgers[who].create_asset("credits", 2)
        self.plan = setup(ledgers["mine"])
        for key in self.keys.values():  # verified once, as a client's first call does
            warm = client.get("/v1/assets", headers={"Authorization": f"Bearer {key}"})
            assert warm.status_code == 200, warm.text
        self.ids: dict[str, str] = {}
        self.sent = 0
        self.names: list[str] = []  # of the requests sent

    def send(self, request: Request) -> tuple[Any, ...]:
        """Status, the relevant headers and the body of the answer, as `_same` writes them."""
        self.sent += 1
        self.names.append(request.name)
        headers = dict(request.headers)
        if request.key != "none":
            headers.setdefault("Authorization", f"Bearer {self.keys[request.key]}")
        if request.idempotency_key == "fresh":  # the same in both worlds, new each time
            headers["Idempotency-Key"] = f"key-{self.sent}"
        elif request.idempotency_key is not None:
            headers["Idempotency-Key"] = request.idempotency_key
        response = self.client.request(
            request.method,
            request.path,
            content=request.content,
            headers=headers,
            follow_redirects=False,
        )
        kept = {name: self._same(response.headers.get(name)) for name in HEADERS}
        if kept["x-request-id"] and "X-Request-Id" not in request.headers:
            kept["x-request-id"] = len(response.headers["x-request-id"])  # a new one each
        text = response.text
        body = json.loads(text) if "json" in response.headers.get("content-type", "") else text
        return response.status_code, kept, self._same(body)

    def _same(self, value: Any) -> Any:
        """`value` with this world's generated ids numbered in order of first appearance,
        and times written as <time>."""
        if isinstance(value, dict):
            return {k: self._same(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._same(v) for v in value]
        if isinstance(value, str):
            return _TIME.sub("<time>", _GENERATED_ID.sub(self._number, value))
        return value

    def _number(self, found: re.Match[str]) -> str:
        kind = found.group(0).split("_", 1)[0]
        return self.ids.setdefault(found.group(0), f"{kind}#{len(self.ids)}")


_worlds: dict[str, tuple[TestClient, TestClient]] = {}  # database URL -> the two apps


@pytest.fixture(scope="module", autouse=True)
def _close_worlds() -> Iterator[None]:
    yield
    while _worlds:
        for test_client in _worlds.popitem()[1]:
            test_client.__exit__(None, None, None)


@pytest.fixture
def worlds(cg: Creditgate, db_url: str) -> tuple[TestClient, TestClient]:
    """The app with its edge and the app without, on the test's backend: one pair for the
    module (each test sends as tenants of its own), the failed-key limit cleared."""
    pair = _worlds.get(db_url)
    if pair is None:
        pair = (
            TestClient(create_app(cg, SETTINGS)),
            TestClient(create_app(cg, SETTINGS, edge=False)),
        )
        for test_client in pair:
            test_client.__enter__()
        _worlds[db_url] = pair
    for test_client in pair:
        test_client.cookies.clear()
        test_client.app.state.keys.limiter.clear()  # type: ignore[attr-defined]
    return pair


@pytest.mark.parametrize("endpoint", [fn.__name__ for fn in hot.HOT_ENDPOINTS])
def test_the_edge_answers_as_fastapi(
    cg: Creditgate,
    worlds: tuple[TestClient, TestClient],
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_edge, without = worlds
    front = with_edge.app.front  # type: ignore[attr-defined]
    assert isinstance(front, hot.HotRoutes)
    route = next(r for r in front.routes if r.endpoint.__name__ == endpoint)
    assert endpoint in PLANS, f"the edge serves {route.template}: add its plan to PLANS"
    served: list[str] = []
    call = front._call

    async def counting(fn: Any, values: dict[str, Any]) -> Any:
        served.append(fn.__name__)
        return await call(fn, values)

    monkeypatch.setattr(front, "_call", counting)
    edge, plain = World(cg, with_edge, PLANS[endpoint]), World(cg, without, PLANS[endpoint])
    sent = zip(requests_for(route, edge.plan), requests_for(route, plain.plan), strict=True)
    by_the_edge = []
    for through_edge, through_fastapi in sent:
        before = len(served)
        answer = edge.send(through_edge)
        assert answer == plain.send(through_fastapi), through_edge.name
        if len(served) > before:
            assert served[before:] == [endpoint]
            by_the_edge.append(through_edge.name)
        if through_edge.name == "valid":
            assert 200 <= answer[0] < 300, answer
    # The edge served what its handler serves itself, an endpoint's errors included, and a
    # field's value of another type where the route's model takes it (null for an optional
    # field...); FastAPI answered the rest (no key or an unknown one, an input the route's
    # fields refuse, a body not sent as JSON...).
    expected = [name for name in edge.names if name in SERVED_BY_THE_EDGE]
    assert [name for name in by_the_edge if " as " not in name] == expected, by_the_edge


def test_every_endpoint_of_the_edge_is_one_route_of_the_app(cg: Creditgate) -> None:
    front = create_app(cg, SETTINGS).front  # type: ignore[attr-defined]
    assert isinstance(front, hot.HotRoutes)
    assert sorted(r.endpoint.__name__ for r in front.routes) == sorted(PLANS)
    assert {r.endpoint for r in front.routes} == set(hot.HOT_ENDPOINTS)
    assert {r.template for r in front.routes} == {
        "/v1/authorizations",
        "/v1/charges",
        "/v1/authorizations/{id}/settle",
        "/v1/authorizations/{id}/void",
        "/v1/customers/{customer}/grants",
        "/v1/charges/{charge}/refunds",
        "/v1/purchases/{purchase}/mark-paid",
    }
    assert all(r.before == () for r in front.routes)  # no route of the app comes first
    assert not isinstance(create_app(cg, SETTINGS, edge=False).front, hot.HotRoutes)  # type: ignore[attr-defined]
