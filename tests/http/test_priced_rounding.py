"""A priced call below one minor unit, over HTTP on both backends: the card's rounding (up by
default) decides what it costs, and it is never approved against a wallet that cannot pay."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.conftest import Api

GPT = {"model": "gpt-4.1"}
SMALL_CALL = {"input_tokens": 1_000, "output_tokens": 100}  # $0.0028 at the vendor's rates


def card(rounding: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "asset": "USD",
        "actions": {
            "chat.completion": {
                "prices": [
                    {
                        "match": GPT,
                        "per_unit": {
                            "input_tokens": "0.000002",
                            "output_tokens": "0.000008",
                            "cached_tokens": "0.0000005",
                            "cache_write_tokens": "0.000002",
                        },
                        "vendor": {"llm": {"provider": "openai"}},
                    }
                ]
            }
        },
    }
    if rounding is not None:
        spec["rounding"] = rounding
    return spec


@pytest.fixture
def usd(api: Api) -> Api:
    assert api.post("/v1/assets", {"code": "USD", "scale": 2}).status_code == 201
    assert api.post("/v1/customers", {"id": "empty"}).status_code == 201
    assert api.post("/v1/customers", {"id": "funded"}).status_code == 201
    grant = {"asset": "USD", "amount": 2_000, "kind": "purchased", "cost_basis": "1"}
    assert api.post("/v1/customers/funded/grants", grant).status_code == 201
    return api


def publish(api: Api, spec: dict[str, Any]) -> dict[str, Any]:
    published = api.post("/v1/rate-cards", {"spec": spec})
    assert published.status_code == 201, published.text
    return published.json()  # type: ignore[no-any-return]


def priced(customer: str, key: str) -> tuple[dict[str, Any], dict[str, str]]:
    body = {
        "customer": customer,
        "action": "chat.completion",
        "dimensions": GPT,
        "quantities": SMALL_CALL,
    }
    return body, {"Idempotency-Key": key}


def available(api: Api, customer: str) -> int:
    balances = api.get(f"/v1/customers/{customer}/wallet").json()["balances"]
    return sum(b["available"] for b in balances if b["asset"] == "USD")


def test_a_call_under_a_cent_costs_a_cent_and_an_empty_wallet_is_declined(usd: Api) -> None:
    assert publish(usd, card())["spec"]["rounding"] == "up"
    quoted = usd.post(
        "/v1/rate-cards/quote",
        {"action": "chat.completion", "dimensions": GPT, "quantities": SMALL_CALL},
    ).json()
    assert (quoted["units"], quoted["rounded_units"], quoted["amount"], quoted["rounding"]) == (
        "0.0028",
        "0.01",
        1,
        "up",
    )

    body, headers = priced("empty", "a-empty")
    held = usd.post("/v1/authorizations", body, headers=headers).json()
    assert (held["approved"], held["decline_reason"]) == (False, "insufficient_funds")
    body, headers = priced("empty", "c-empty")
    charged = usd.post("/v1/charges", body, headers=headers).json()
    assert (charged["status"], charged["amount"]) == ("declined", 0)

    body, headers = priced("funded", "a-funded")
    held = usd.post("/v1/authorizations", body, headers=headers).json()
    assert held["approved"] and held["amount"] == 1
    settled = usd.post(
        f"/v1/authorizations/{held['id']}/settle",
        {"quantities": SMALL_CALL},
        headers={"Idempotency-Key": "s-funded"},
    ).json()
    assert settled["charge"]["amount"] == 1 and settled["charge"]["price"]["rounding"] == "up"

    for i in range(10):
        body, headers = priced("funded", f"c-funded-{i}")
        charge = usd.post("/v1/charges", body, headers=headers).json()
        assert (charge["status"], charge["amount"]) == ("posted", 1)
        assert (charge["price"]["units"], charge["price"]["rounded_units"]) == ("0.0028", "0.01")
    assert available(usd, "funded") == 2_000 - 11


def test_a_card_rounding_half_to_even_charges_0_but_only_to_a_wallet_that_could_pay(
    usd: Api,
) -> None:
    publish(usd, card("half_even"))
    quoted = usd.post(
        "/v1/rate-cards/quote",
        {"action": "chat.completion", "dimensions": GPT, "quantities": SMALL_CALL},
    ).json()
    assert (quoted["units"], quoted["rounded_units"], quoted["amount"]) == ("0.0028", "0", 0)

    for path, key in (("/v1/authorizations", "a"), ("/v1/charges", "c")):
        body, headers = priced("empty", f"{key}-empty")
        answer = usd.post(path, body, headers=headers).json()
        assert answer.get("approved", answer.get("status") == "posted") is False, answer
        body, headers = priced("funded", f"{key}-funded")
        answer = usd.post(path, body, headers=headers).json()
        assert answer["amount"] == 0 and answer.get("approved", answer.get("status") == "posted")
    assert available(usd, "funded") == 2_000


@pytest.mark.parametrize("rounding", ["ceiling", "HALF_EVEN", 2, None])
def test_a_card_with_an_unknown_rounding_is_refused_naming_the_field(
    usd: Api, rounding: object
) -> None:
    refused = usd.post("/v1/rate-cards", {"spec": {**card(), "rounding": rounding}})
    assert refused.status_code == 422
    assert refused.json()["field"] == "spec.rounding"
    assert usd.get("/v1/rate-cards").json()["data"] == []
