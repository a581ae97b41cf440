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
