"""Auto top-up over HTTP as an integrator drives it: a top-up marked paid, then a charge a few
milliseconds later that takes available back below the threshold, buys again at once."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.http.conftest import Api


def post(api: Api, url: str, body: Any = None) -> Any:
    answer = api.post(url, body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert answer.is_success, answer.text
    return answer.json()


def auto_top_up(api: Api) -> dict[str, Any]:
    (setting,) = api.get("/v1/customers/c1/auto-top-up").json()["data"]
    return dict(setting)


def purchases(api: Api, status: str) -> list[dict[str, Any]]:
    listed = api.get("/v1/customers/c1/purchases").json()["data"]
    return [p for p in listed if p["status"] == status]


def available(api: Api) -> int:
    (balance,) = api.get("/v1/customers/c1/wallet").json()["balances"]
    return int(balance["available"])


def test_a_crossing_milliseconds_after_a_paid_top_up_buys_again(api: Api) -> None:
    post(api, "/v1/customers", {"id": "c1"})
    post(api, "/v1/packs", {"code": "small", "asset": "credits", "amount": 160, "price": "1.60"})
    grant = {"asset": "credits", "amount": 1_100, "kind": "purchased", "cost_basis": "0.01"}
    post(api, "/v1/customers/c1/grants", grant)
    setting = {"threshold": 1_000, "pack": "small", "provider": "manual"}
    answer = api.put("/v1/customers/c1/auto-top-up/credits", setting)
    assert answer.status_code == 200 and answer.json()["armed"], answer.text

    charge = {"customer": "c1", "asset": "credits", "amount": 200}
    assert post(api, "/v1/charges", charge)["available"] == 900
    (first,) = purchases(api, "pending")
    assert first["origin"] == "auto_top_up"

    for _ in range(5):  # the sequence again and again: it buys every time
        (in_flight,) = purchases(api, "pending")
        paid = post(api, f"/v1/purchases/{in_flight['id']}/mark-paid")
        assert paid["status"] == "paid" and available(api) == 1_060
        time.sleep(0.005)
        again = {**charge, "amount": 160}
        assert post(api, "/v1/charges", again)["available"] == 900
        (bought,) = purchases(api, "pending")
        assert bought["id"] != in_flight["id"]
        now = auto_top_up(api)
        assert (now["armed"], now["in_flight_purchase_id"]) == (False, bought["id"])
    assert auto_top_up(api)["month_count"] == 6
    assert len(purchases(api, "paid")) == 5
