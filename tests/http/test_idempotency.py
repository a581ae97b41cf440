"""Idempotency-Key over HTTP: a replay answers the first answer and status; another body is 409."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.conftest import Api


def replayed(api: Api, url: str, body: Any, key: str, *, method: str = "POST") -> Any:
    headers = {**api.headers, "Idempotency-Key": key}
    first = api.client.request(method, url, json=body, headers=headers)
    second = api.client.request(method, url, json=body, headers=headers)
    assert second.status_code == first.status_code, (first.text, second.text)
    assert second.json() == first.json()
    return first


def test_replays_answer_the_first_answer_with_its_status(api: Api) -> None:
    assert replayed(api, "/v1/assets", {"code": "USD", "scale": 2}, "a").status_code == 201
    assert replayed(api, "/v1/customers", {"id": "c1"}, "b").status_code == 201
    grant = {"asset": "credits", "amount": 1_000}
    assert replayed(api, "/v1/customers/c1/grants", grant, "c").status_code == 201
    auth = replayed(
        api, "/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 300}, "d"
    )
    hold = auth.json()["id"]
    settle = replayed(api, f"/v1/authorizations/{hold}/settle", {"amount": 200}, "e")
    assert settle.status_code == 200
    charge = {"customer": "c1", "asset": "credits", "amount": 50}
    assert replayed(api, "/v1/charges", charge, "f").status_code == 201
    policy = {"policy": "overdraft", "overdraft_limit": 10}
    replayed(api, "/v1/customers/c1/policies/credits", policy, "g", method="PUT")
    # One effect each: 1000 granted, 200 settled, 50 charged.
    balance = api.get("/v1/customers/c1/wallet").json()["balances"][0]
    assert (balance["posted"], balance["held"]) == (750, 0)
    assert len(api.get("/v1/customers/c1/ledger").json()["data"]) == 3


def test_a_declined_authorization_replays_as_declined(api: Api) -> None:
    api.funded_customer("c1", 100)
    body = {"customer": "c1", "asset": "credits", "amount": 500}
    first = replayed(api, "/v1/authorizations", body, "k")
    assert first.json()["status"] == "declined"
    # Funds arriving later do not change the recorded answer.
    api.post("/v1/customers/c1/grants", {"asset": "credits", "amount": 1_000})
    again = api.post("/v1/authorizations", body, headers={"Idempotency-Key": "k"})
    assert again.json() == first.json()


@pytest.mark.parametrize(
    ("url", "first", "changed"),
    [
        ("/v1/charges", {"amount": 10}, {"amount": 11}),
        ("/v1/authorizations", {"amount": 10}, {"amount": 10, "ttl_seconds": 30}),
    ],
)
def test_the_same_key_with_another_body_is_409_and_not_applied(
    api: Api, url: str, first: dict[str, int], changed: dict[str, int]
) -> None:
    api.funded_customer("c1", 1_000)
    base = {"customer": "c1", "asset": "credits"}
    headers = {"Idempotency-Key": "same"}
    assert api.post(url, {**base, **first}, headers=headers).status_code == 201
    before = api.get("/v1/customers/c1/wallet").json()
    conflict = api.post(url, {**base, **changed}, headers=headers)
    assert conflict.status_code == 409
    problem = conflict.json()
    assert problem["code"] == "idempotency_conflict" and problem["field"] == "idempotency_key"
    assert api.get("/v1/customers/c1/wallet").json() == before


def test_a_key_used_for_another_operation_conflicts(api: Api) -> None:
    api.funded_customer("c1", 1_000)
    charge = {"customer": "c1", "asset": "credits", "amount": 10}
    api.post("/v1/charges", charge, headers={"Idempotency-Key": "one"})
    other = api.post("/v1/authorizations", charge, headers={"Idempotency-Key": "one"})
    assert other.status_code == 409


def test_a_malformed_key_is_a_422_naming_the_header(api: Api) -> None:
    long_key = "k" * 256
    response = api.post("/v1/customers", {"id": "c1"}, headers={"Idempotency-Key": long_key})
    assert response.status_code == 422
    assert response.json()["field"] == "Idempotency-Key"
