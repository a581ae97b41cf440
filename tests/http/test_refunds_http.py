"""Refunds and the revenue report over HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tests.http.conftest import Api


def test_refund_a_charge_over_http_and_see_it_in_revenue(api: Api) -> None:
    api.funded_customer("c1", 10_000)  # 100 credits bought at $0.01 a credit
    charge = api.post("/v1/charges", {"customer": "c1", "asset": "credits", "amount": 3_000})
    assert charge.status_code == 201
    charge_id = charge.json()["id"]
    body = {"reason": "the job failed", "amount": 1_000}
    first = api.post(f"/v1/charges/{charge_id}/refunds", body, headers={"Idempotency-Key": "r1"})
    assert first.status_code == 201
    refund = first.json()
    assert refund["amount"] == 1_000 and refund["charge_refunded"] == 1_000
    again = api.post(f"/v1/charges/{charge_id}/refunds", body, headers={"Idempotency-Key": "r1"})
    assert again.status_code == 201 and again.json() == refund
    wallet = api.get("/v1/customers/c1/wallet").json()
    assert wallet["balances"][0]["posted"] == 8_000

    too_much = api.post(f"/v1/charges/{charge_id}/refunds", {"reason": "x", "amount": 2_001})
    assert too_much.status_code == 422 and too_much.json()["field"] == "amount"
    missing = api.post("/v1/charges/chg_missing/refunds", {"reason": "x"})
    assert missing.status_code == 404
    no_reason = api.post(f"/v1/charges/{charge_id}/refunds", {"amount": 1})
    assert no_reason.status_code == 422

    until = (api.ledger.cg.clock() + timedelta(seconds=1)).isoformat()
    report = api.get("/v1/reports/revenue", params={"to": until}).json()
    (line,) = report["lines"]
    assert line["currency"] == "USD"
    assert Decimal(line["sold"]) == Decimal("1")
    assert Decimal(line["recognized"]) == Decimal("0.3")
    assert Decimal(line["refunded"]) == Decimal("0.1")
    assert Decimal(line["closing_deferred"]) == Decimal("0.8")


def test_refund_a_purchase_over_http(api: Api) -> None:
    assert api.post("/v1/customers", {"id": "c1"}).status_code == 201
    pack = {"code": "starter", "asset": "credits", "amount": 10_000, "price": "25.00"}
    assert api.post("/v1/packs", pack).status_code == 201
    purchase = api.post("/v1/customers/c1/purchases", {"pack": "starter"}).json()["id"]
    url = f"/v1/purchases/{purchase}/refunds"
    unpaid = api.post(url, {"reason": "never paid"})
    assert unpaid.status_code == 409
    assert (unpaid.json()["code"], unpaid.json()["field"]) == (
        "purchase_not_refundable",
        "purchase",
    )
    assert api.post(f"/v1/purchases/{purchase}/mark-paid").status_code == 200
    charge = {"customer": "c1", "asset": "credits", "amount": 4_000}
    assert api.post("/v1/charges", charge).status_code == 201

    body = {"reason": "bought twice", "amount": 2_000, "metadata": {"ticket": "T-7"}}
    first = api.post(url, body, headers={"Idempotency-Key": "pr1"})
    assert first.status_code == 201, first.text
    refund = first.json()
    assert (refund["amount"], refund["unused"], refund["consumed"]) == (2_000, 2_000, 0)
    assert (refund["money"], refund["currency"], refund["status"]) == ("5", "USD", "succeeded")
    assert refund["reason"] == "bought twice" and refund["metadata"] == {"ticket": "T-7"}
    again = api.post(url, body, headers={"Idempotency-Key": "pr1"})
    assert again.status_code == 201 and again.json() == refund
    conflict = api.post(url, {**body, "amount": 2_001}, headers={"Idempotency-Key": "pr1"})
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"

    for bad, field in [
        ({"amount": 1}, "reason"),
        ({"reason": " "}, "reason"),
        ({"reason": "x", "amount": 4_001}, "amount"),
        ({"reason": "x", "amount": 1.5}, "amount"),
        ({"reason": "x", "include_consumed": "maybe"}, "include_consumed"),
        ({"reason": "x", "refund_everything": True}, "refund_everything"),
    ]:
        answer = api.post(url, bad)
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["field"] == field, (bad, answer.json())
    # Used credit is refunded only on request, and under `block` the wallet cannot pay it.
    used = api.post(url, {"reason": "all of it", "include_consumed": True})
    assert used.status_code == 409
    assert (used.json()["code"], used.json()["field"]) == ("refund_not_covered", "amount")
    missing = api.post("/v1/purchases/pur_missing/refunds", {"reason": "x"})
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_purchase"

    assert api.get(url).json()["data"] == [refund]
    bought = api.get(f"/v1/purchases/{purchase}").json()
    assert (bought["refunded"], bought["refunded_money"]) == (2_000, "5")
    wallet = api.get("/v1/customers/c1/wallet").json()
    assert wallet["balances"][0]["posted"] == 4_000
    until = (api.ledger.cg.clock() + timedelta(seconds=1)).isoformat()
    (line,) = api.get("/v1/reports/revenue", params={"to": until}).json()["lines"]
    assert (Decimal(line["sold"]), Decimal(line["recognized"])) == (Decimal(25), Decimal(10))
    assert Decimal(line["purchases_refunded"]) == Decimal(5)
    assert Decimal(line["closing_deferred"]) == Decimal(10)
