"""Every request that moves money or creates a billable object requires an Idempotency-Key:
without one it is 400 `idempotency_key_required`, says what to send, and changes nothing,
on the edge's hot routes as through FastAPI."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from creditgate.chaos.hostile import fingerprint
from creditgate.services.billing import purchases
from tests.http.conftest import Api

# Every operation that requires the key, as README.md lists them.
REQUIRED = {
    "/v1/authorizations",
    "/v1/authorizations/{id}/settle",
    "/v1/authorizations/{id}/void",
    "/v1/charges",
    "/v1/charges/batch",
    "/v1/charges/{charge}/refunds",
    "/v1/customers/{customer}/grants",
    "/v1/grants/{grant}/void",
    "/v1/customers/{customer}/purchases",
    "/v1/purchases/{purchase}/mark-paid",
    "/v1/purchases/{purchase}/mark-failed",
    "/v1/purchases/{purchase}/refunds",
    "/v1/customers/{customer}/redemptions",
    "/v1/customers/{customer}/subscriptions",
    "/v1/subscriptions/{subscription}/change-plan",
    "/v1/invoices/{invoice}/mark-paid",
    "/v1/invoices/{invoice}/mark-failed",
    "/v1/purchases/{purchase}/write-off",
}
# The hot routes leave a body of this type to FastAPI (see tests/http/test_hot.py).
VIA_FASTAPI = "application/merge-patch+json"
ONE_EVENT = {"idempotency_key": "e1", "customer": "c1", "asset": "credits", "amount": 5}


def _created(response: Any) -> str:
    assert response.status_code < 300, response.text
    return str(response.json()["id"])


def _calls(api: Api) -> list[tuple[str, Any]]:
    """One valid request of each kind that requires a key, on objects made for it."""
    api.funded_customer("c1", 100_000)
    hold = {"customer": "c1", "asset": "credits", "amount": 10}
    held, to_void = (_created(api.post("/v1/authorizations", hold)) for _ in range(2))
    charged = _created(api.post("/v1/charges", hold))
    lot = _created(api.post("/v1/customers/c1/grants", {"asset": "credits", "amount": 50}))
    assert api.post("/v1/packs", {"code": "p", "asset": "credits", "amount": 100, "price": "1"})
    pending, to_fail, paid = (
        _created(api.post("/v1/customers/c1/purchases", {"pack": "p"})) for _ in range(3)
    )
    assert api.post(f"/v1/purchases/{paid}/mark-paid").status_code == 200
    plan = {"fee": "10", "asset": "credits", "included": 1_000}
    for code in ("pro", "max"):
        assert api.post("/v1/plans", {**plan, "code": code}).status_code == 201
    api.post("/v1/customers", {"id": "c2"})
    subscription = _created(api.post("/v1/customers/c2/subscriptions", {"plan": "pro"}))
    assert api.post("/v1/campaigns", {"code": "HELLO", "asset": "credits", "amount": 5})
    manual = {**plan, "code": "invoiced", "collection": "manual", "overage_policy": "allow"}
    assert api.post("/v1/plans", manual).status_code == 201
    api.post("/v1/customers", {"id": "c3"})
    assert api.post("/v1/customers/c3/subscriptions", {"plan": "invoiced"}).status_code == 201
    invoice = api.get("/v1/customers/c3/invoices").json()["data"][0]["id"]
    assert api.put("/v1/overage/credits", {"price": "0.01"}).status_code == 200
    api.ledger.charge("c3", "credits", 500, idempotency_key="debt")
    bill = api.ledger.cg.db.run(
        lambda conn: purchases.start_bill(
            api.ledger.cg.tx(conn, api.tenant_id),
            wallet_id=api.ledger.customer("c3").wallet_id,
            customer="c3",
            asset="credits",
            amount=500,
            price=Decimal("0.05"),
            currency="USD",
            provider="manual",
        )
    ).id
    return [
        ("/v1/authorizations", hold),
        (f"/v1/authorizations/{held}/settle", {"amount": 5}),
        (f"/v1/authorizations/{to_void}/void", None),
        ("/v1/charges", hold),
        ("/v1/charges/batch", {"events": [ONE_EVENT]}),
        (f"/v1/charges/{charged}/refunds", {"reason": "bad answer"}),
        ("/v1/customers/c1/grants", {"asset": "credits", "amount": 50}),
        (f"/v1/grants/{lot}/void", {"reason": "mistake"}),
        ("/v1/customers/c1/purchases", {"pack": "p"}),
        (f"/v1/purchases/{pending}/mark-paid", None),
        (f"/v1/purchases/{to_fail}/mark-failed", {"reason": "declined"}),
        (f"/v1/purchases/{paid}/refunds", {"reason": "unhappy"}),
        ("/v1/customers/c1/redemptions", {"code": "HELLO"}),
        ("/v1/customers/c1/subscriptions", {"plan": "pro"}),
        (f"/v1/subscriptions/{subscription}/change-plan", {"plan": "max"}),
        (f"/v1/invoices/{invoice}/mark-failed", {"reason": "declined"}),
        (f"/v1/invoices/{invoice}/mark-paid", None),
        (f"/v1/purchases/{bill}/write-off", None),
    ]


def _without_key(api: Api, url: str, body: Any, content_type: str) -> Any:
    content = b"" if body is None else json.dumps(body).encode()
    headers = {**api.headers, "Content-Type": content_type}
    return api.client.post(url, content=content, headers=headers)


def test_a_request_that_moves_money_without_a_key_is_400_and_changes_nothing(api: Api) -> None:
    calls = _calls(api)
    cg = api.ledger.cg
    before = fingerprint(cg, api.tenant_id)
    answers = {}
    for url, body in calls:
        for content_type in ("application/json", VIA_FASTAPI):
            response = _without_key(api, url, body, content_type)
            assert response.status_code == 400, (url, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["code"] == "idempotency_key_required", problem
            assert problem["field"] == "Idempotency-Key"
            assert "Idempotency-Key: <unique string per logical operation>" in problem["detail"]
            answers.setdefault(url, set()).add(response.text)
    assert all(len(seen) == 1 for seen in answers.values())  # the edge answers as FastAPI
    assert fingerprint(cg, api.tenant_id) == before
    # The same requests with a key are served: the key was all they lacked.
    for url, body in calls:
        response = api.post(url, body) if body is not None else api.post(url)
        assert response.status_code < 300, (url, response.text)


def test_the_document_and_the_readme_name_every_operation_that_requires_a_key(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    required = {
        path
        for path, item in document["paths"].items()
        for operation in item.values()
        if any(
            p["in"] == "header" and p["name"] == "Idempotency-Key" and p.get("required")
            for p in operation.get("parameters", [])
        )
    }
    assert required == REQUIRED
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### Idempotency keys") :]
    listed = set(re.findall(r"`POST (/v1/[^`]+)`", section[: section.index("\n## ")]))
    assert listed == REQUIRED


def test_other_writes_still_take_a_key_without_requiring_one(api: Api) -> None:
    created = api.client.post("/v1/customers", json={"id": "c9"}, headers=api.headers)
    assert created.status_code == 201
    same = {"Idempotency-Key": "asset-1"}
    first = api.post("/v1/assets", {"code": "gold", "scale": 0}, headers=same)
    again = api.post("/v1/assets", {"code": "gold", "scale": 0}, headers=same)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
