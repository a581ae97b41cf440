"""Amounts are taken exactly as the client wrote them, or refused: never rounded through a
float. The same on the edge's hot routes and through FastAPI."""

from __future__ import annotations

from typing import Any

import pytest

from creditgate.api import Creditgate
from creditgate.http.bodies import ExactJsonRoute
from creditgate.server.app import create_app
from tests.http.conftest import Api

# The hot routes leave a body of this type to FastAPI (see tests/http/test_hot.py).
PATHS = {"edge": "application/json", "fastapi": "application/merge-patch+json"}
INEXACT = [
    "9007199254740993.0",  # read as a float: 9007199254740992
    "100.0000000000000001",  # read as a float: 100
    "1e16",  # whole, but past what every JSON reader holds exactly
    "100.5",
    "-0.5",
]


def send(api: Api, url: str, text: str, path: str) -> Any:
    """POST the JSON text as written (a float would lose the digits under test)."""
    return api.post(url, content=text.encode(), headers={"Content-Type": PATHS[path]})


def wallet(api: Api, customer: str = "c1") -> tuple[int, int]:
    balance = api.get(f"/v1/customers/{customer}/wallet").json()["balances"][0]
    return balance["posted"], balance["held"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("number", INEXACT)
def test_an_amount_not_exactly_whole_is_refused_naming_it(api: Api, path: str, number: str) -> None:
    api.funded_customer("c1", 10_000)
    hold = api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 10})
    before = wallet(api)
    calls = [
        ("/v1/customers/c1/grants", f'{{"asset": "credits", "amount": {number}}}', "amount"),
        (
            "/v1/authorizations",
            f'{{"customer": "c1", "asset": "credits", "amount": {number}}}',
            "amount",
        ),
        ("/v1/charges", f'{{"customer": "c1", "asset": "credits", "amount": {number}}}', "amount"),
        (f"/v1/authorizations/{hold.json()['id']}/settle", f'{{"amount": {number}}}', "amount"),
        (
            "/v1/charges",
            f'{{"customer": "c1", "action": "chat", "quantities": {{"tokens": {number}}}}}',
            "quantities.tokens",
        ),
    ]
    for url, text, field in calls:
        response = send(api, url, text, path)
        assert response.status_code == 422, (url, text, response.text)
        problem = response.json()
        assert problem["code"] == "invalid_input" and problem["field"] == field, problem
    assert wallet(api) == before


@pytest.mark.parametrize("path", PATHS)
def test_a_whole_amount_written_with_a_fraction_or_exponent_is_taken_exactly(
    api: Api, path: str
) -> None:
    api.funded_customer("c1", 10_000)
    for text in ("100.0", "1e2", "1.00E+2", "100.000000000000000000000"):
        charged = send(
            api, "/v1/charges", f'{{"customer": "c1", "amount": {text}, "asset": "credits"}}', path
        )
        assert charged.status_code == 201, charged.text
        assert charged.json()["amount"] == 100
    largest = "9007199254740991.0"  # 2**53 - 1: every JSON reader holds it exactly
    granted = send(
        api, "/v1/customers/c1/grants", f'{{"asset": "credits", "amount": {largest}}}', path
    )
    assert granted.status_code == 201 and granted.json()["amount"] == 2**53 - 1
    assert wallet(api) == (10_000 - 400 + 2**53 - 1, 0)


@pytest.mark.parametrize("path", PATHS)
def test_a_plain_integer_keeps_its_full_range(api: Api, path: str) -> None:
    api.post("/v1/customers", {"id": "c1"})
    big = 2**53 + 1  # 9007199254740993: no float holds it
    granted = send(api, "/v1/customers/c1/grants", f'{{"asset": "credits", "amount": {big}}}', path)
    assert granted.status_code == 201 and granted.json()["amount"] == big
    assert f'"amount":{big}' in granted.text
    charged = send(
        api, "/v1/charges", f'{{"customer": "c1", "asset": "credits", "amount": {big}}}', path
    )
    assert charged.status_code == 201 and charged.json()["amount"] == big
    assert wallet(api) == (0, 0)


def test_limits_and_thresholds_are_read_exactly_too(api: Api) -> None:
    api.post("/v1/customers", {"id": "c1"})
    for text, field in (
        ('{"policy": "overdraft", "overdraft_limit": 9007199254740993.0}', "overdraft_limit"),
        ('{"policy": "block", "low_balance_threshold": 10.5}', "low_balance_threshold"),
    ):
        response = api.put(
            "/v1/customers/c1/policies/credits",
            content=text.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422 and response.json()["field"] == field, response.text
    accepted = api.put(
        "/v1/customers/c1/policies/credits",
        content=b'{"policy": "overdraft", "overdraft_limit": 5e2}',
        headers={"Content-Type": "application/json"},
    )
    assert accepted.status_code == 200 and accepted.json()["overdraft_limit"] == 500


@pytest.mark.parametrize("path", PATHS)
def test_metadata_numbers_stay_json_numbers(api: Api, path: str) -> None:
    api.funded_customer("c1", 10_000)
    text = (
        '{"customer": "c1", "asset": "credits", "amount": 1, '
        '"metadata": {"score": 0.1, "ratio": 2.5e-3, "list": [1.5, 2], "n": 3}}'
    )
    charged = send(api, "/v1/charges", text, path)
    assert charged.status_code == 201, charged.text
    assert charged.json()["metadata"] == {"score": 0.1, "ratio": 0.0025, "list": [1.5, 2], "n": 3}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(api: Api, path: str, constant: str) -> None:
    api.funded_customer("c1", 10_000)
    text = f'{{"customer": "c1", "asset": "credits", "amount": 1, "metadata": {{"x": {constant}}}}}'
    response = send(api, "/v1/charges", text, path)
    assert response.status_code == 400 and response.json()["code"] == "malformed_json"
    assert wallet(api) == (10_000, 0)


@pytest.mark.parametrize("path", PATHS)
def test_a_bare_number_is_not_a_body_whose_fields_all_have_defaults(api: Api, path: str) -> None:
    api.funded_customer("c1", 10_000)
    hold = api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 10})
    for url in (f"/v1/authorizations/{hold.json()['id']}/settle", "/v1/api-keys"):
        for text in ("1.5", "1e3", "7"):
            response = send(api, url, text, path)
            assert response.status_code == 422, (url, text, response.text)
            assert response.json()["field"] == "body"
    assert wallet(api) == (10_000, 10)
    assert len(api.get("/v1/api-keys").json()["data"]) == 1


def _routes(routes: list[Any]) -> list[Any]:
    found = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        found += _routes(inner.routes) if inner is not None else [route]
    return found


def test_every_api_route_reads_its_body_exactly(cg: Creditgate) -> None:
    app = create_app(cg)
    with_bodies = [
        route
        for route in _routes(app.router.routes)
        if getattr(route, "path", "").startswith("/v1/") and getattr(route, "body_field", None)
    ]
    assert len(with_bodies) > 30
    assert [r.path for r in with_bodies if not isinstance(r, ExactJsonRoute)] == []
