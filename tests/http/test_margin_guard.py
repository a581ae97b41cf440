"""The margin guard over HTTP: a charge in one step gets the same warning or decline as an
authorization of the same call."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.conftest import Api


def guarded(mode: str) -> dict[str, Any]:
    # One credit ($0.01 at list price) for an image that costs $0.30: far below cost.
    return {
        "asset": "credits",
        "credit_value_usd": "0.01",
        "actions": {
            "image.generate": {
                "prices": [{"flat": "1", "vendor": {"flat": "0.30"}}],
                "margin_guard": {"headroom": "0.2", "mode": mode},
            },
            "image.thumbnail": {
                "prices": [{"flat": "50", "vendor": {"flat": "0.30"}}],
                "margin_guard": {"headroom": "0.2", "mode": mode},
            },
        },
    }


@pytest.fixture
def warn(api: Api) -> Api:
    assert api.post("/v1/rate-cards", {"spec": guarded("warn")}).status_code == 201
    api.funded_customer()
    return api


def call(action: str = "image.generate") -> dict[str, Any]:
    return {"customer": "c1", "action": action}


def test_in_warn_mode_a_charge_carries_the_warning_an_authorization_does(warn: Api) -> None:
    held = warn.post("/v1/authorizations", call(), headers={"Idempotency-Key": "a1"})
    assert held.status_code == 201 and held.json()["approved"]
    (warning,) = held.json()["warnings"]
    assert warning.startswith("margin_guard: estimated vendor cost $0.3")

    charged = warn.post("/v1/charges", call(), headers={"Idempotency-Key": "c1"})
    assert charged.status_code == 201
    body = charged.json()
    assert (body["status"], body["amount"], body["warnings"]) == ("posted", 100, [warning])
    # A replay answers the same, warning included.
    again = warn.post("/v1/charges", call(), headers={"Idempotency-Key": "c1"})
    assert again.json() == body

    # A call the guard does not object to carries no warning.
    fine = warn.post("/v1/charges", call("image.thumbnail"), headers={"Idempotency-Key": "c2"})
    assert (fine.json()["status"], fine.json()["warnings"]) == ("posted", [])


def test_in_decline_mode_a_charge_is_declined_with_the_guards_reason(api: Api) -> None:
    assert api.post("/v1/rate-cards", {"spec": guarded("decline")}).status_code == 201
    api.funded_customer()
    held = api.post("/v1/authorizations", call(), headers={"Idempotency-Key": "a1"}).json()
    charged = api.post("/v1/charges", call(), headers={"Idempotency-Key": "c1"}).json()
    assert (held["approved"], held["decline_reason"]) == (False, "margin_guard")
    assert (charged["status"], charged["decline_reason"], charged["amount"]) == (
        "declined",
        "margin_guard",
        0,
    )
    assert charged["warnings"] == held["warnings"] and len(charged["warnings"]) == 1
    wallet = api.get("/v1/customers/c1/wallet").json()["balances"][0]
    assert wallet["posted"] == 10_000
