"""Tenant isolation: every endpoint called with tenant B's key and tenant A's ids answers 404
and changes nothing of A's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.billing_isolation import (
    BILLING_BY_ID,
    BILLING_OWN_ONLY,
    billing_objects,
    billing_snapshot,
)
from tests.http.conftest import Api


def snapshot(a: Api) -> dict[str, Any]:
    """Everything of tenant A that any endpoint could change."""
    return {
        "customers": a.get("/v1/customers").json(),
        "wallet": a.get("/v1/customers/c1/wallet").json(),
        "lots": a.get("/v1/customers/c1/grants", params={"include_closed": True}).json(),
        "ledger": a.get("/v1/customers/c1/ledger").json(),
        "hold": a.get(f"/v1/authorizations/{a.hold}").json(),  # type: ignore[attr-defined]
        "keys": a.get("/v1/api-keys").json(),
        "assets": a.get("/v1/assets").json(),
        **billing_snapshot(a),
        "rate_cards": a.get("/v1/rate-cards").json(),
        "quote": a.post("/v1/rate-cards/quote", IMAGE).json(),
        "margin": a.get("/v1/reports/margin", params={"by": "customer"}).json(),
        "webhook_endpoints": a.get("/v1/webhook-endpoints").json(),
        "webhook_deliveries": a.get("/v1/webhook-deliveries").json(),
        "branding": a.get("/v1/portal/branding").json(),
        "gateway_keys": a.get("/v1/gateway/upstream-keys").json(),
        "members": a.get("/v1/customers/c1/members", params={"include_removed": True}).json(),
        "member_budgets": a.get("/v1/customers/c1/members/m1/budgets").json(),
        "member_usage": a.get("/v1/customers/c1/members/m1/usage").json(),
        "budgets": a.get("/v1/customers/c1/budgets").json(),
        "usage": a.get("/v1/customers/c1/usage").json(),
        "customer_gateway_keys": a.get("/v1/customers/c1/gateway-keys").json(),
    }


CARD = {
    "asset": "credits",
    "credit_value_usd": "0.10",
    "actions": {"image.generate": {"prices": [{"flat": "1", "vendor": {"flat": "0.04"}}]}},
}
IMAGE = {"action": "image.generate"}


@pytest.fixture
def tenant_a(api: Api) -> Api:
    api.funded_customer("c1", 10_000)
    api.billing = billing_objects(api)  # type: ignore[attr-defined]
    assert api.post("/v1/customers/c1/members", {"external_id": "m1"}).status_code == 201
    budget = {"amount": 5_000, "period": "day"}
    assert api.put("/v1/customers/c1/members/m1/budgets/credits", budget).status_code == 200
    assert api.put("/v1/customers/c1/budgets/credits", budget).status_code == 200
    assert api.post("/v1/rate-cards", {"spec": CARD}).status_code == 201
    charge = api.post("/v1/charges", {"customer": "c1", **IMAGE}).json()
    assert charge["status"] == "posted"
    api.charge_id = charge["id"]  # type: ignore[attr-defined]
    api.hold = api.post(  # type: ignore[attr-defined]
        "/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 1_000}
    ).json()["id"]
    lots = api.get("/v1/customers/c1/grants").json()["data"]
    api.lot = lots[0]["id"]  # type: ignore[attr-defined]
    api.key_id = api.get("/v1/api-keys").json()["data"][0]["id"]  # type: ignore[attr-defined]
    endpoint = api.post("/v1/webhook-endpoints", {"url": "https://hooks.example.invalid/a"}).json()
    api.endpoint_id = endpoint["id"]  # type: ignore[attr-defined]
    delivery = api.post(f"/v1/webhook-endpoints/{endpoint['id']}/test").json()
    api.delivery_id = delivery["id"]  # type: ignore[attr-defined]
    api.event_id = delivery["event_id"]  # type: ignore[attr-defined]
    gateway_key = api.post("/v1/customers/c1/gateway-keys", {"models": ["gpt-4.1"]}).json()
    api.gateway_key_id = gateway_key["id"]  # type: ignore[attr-defined]
    return api


# (method, route template, body): every operation that takes an id of a tenant's object.
BY_ID: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/customers/{customer}", None),
    ("GET", "/v1/customers/{customer}/wallet", None),
    ("PUT", "/v1/customers/{customer}/policies/{asset}", {"policy": "allow"}),
    ("POST", "/v1/customers/{customer}/grants", {"asset": "credits", "amount": 10}),
    ("GET", "/v1/customers/{customer}/grants", None),
    ("GET", "/v1/customers/{customer}/ledger", None),
    ("POST", "/v1/grants/{grant}/void", {"reason": "x"}),
    ("POST", "/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 10}),
    ("POST", "/v1/authorizations", {"customer": "c1", **IMAGE}),
    ("GET", "/v1/authorizations/{id}", None),
    ("POST", "/v1/authorizations/{id}/settle", {"amount": 10}),
    ("POST", "/v1/authorizations/{id}/settle", {"quantities": {}}),
    ("POST", "/v1/authorizations/{id}/void", None),
    ("POST", "/v1/charges", {"customer": "c1", "asset": "credits", "amount": 10}),
    ("POST", "/v1/charges", {"customer": "c1", **IMAGE}),
    ("POST", "/v1/charges/batch", None),  # per-event answers: checked on its own below
    ("POST", "/v1/charges/{charge}/refunds", {"reason": "x"}),
    ("POST", "/v1/api-keys/{id}/revoke", None),
    ("POST", "/v1/api-keys/{id}/rotate", None),
    *BILLING_BY_ID,
    ("GET", "/v1/webhook-endpoints/{id}", None),
    ("POST", "/v1/webhook-endpoints/{id}", {"enabled": False}),
    ("DELETE", "/v1/webhook-endpoints/{id}", None),
    ("POST", "/v1/webhook-endpoints/{id}/rotate-secret", None),
    ("POST", "/v1/webhook-endpoints/{id}/test", None),
    ("GET", "/v1/webhook-deliveries/{id}", None),
    ("POST", "/v1/webhook-deliveries/{id}/replay", None),
    ("POST", "/v1/webhook-deliveries/events/{id}/replay", None),
    ("POST", "/v1/portal/sessions", {"customer": "c1"}),
    ("POST", "/v1/customers/{customer}/members", {"external_id": "m2"}),
    ("GET", "/v1/customers/{customer}/members", None),
    ("GET", "/v1/customers/{customer}/members/{member}", None),
    ("POST", "/v1/customers/{customer}/members/{member}", {"active": False}),
    ("DELETE", "/v1/customers/{customer}/members/{member}", None),
    (
        "PUT",
        "/v1/customers/{customer}/members/{member}/budgets/{asset}",
        {"amount": 1, "period": "day"},
    ),
    ("DELETE", "/v1/customers/{customer}/members/{member}/budgets/{asset}", None),
    ("GET", "/v1/customers/{customer}/members/{member}/budgets", None),
    ("GET", "/v1/customers/{customer}/members/{member}/usage", None),
    ("PUT", "/v1/customers/{customer}/budgets/{asset}", {"amount": 1, "period": "day"}),
    ("DELETE", "/v1/customers/{customer}/budgets/{asset}", None),
    ("GET", "/v1/customers/{customer}/budgets", None),
    ("GET", "/v1/customers/{customer}/usage", None),
    (
        "POST",
        "/v1/authorizations",
        {"customer": "c1", "asset": "credits", "amount": 10, "member": "m1"},
    ),
    ("POST", "/v1/customers/{customer}/gateway-keys", {"name": "x"}),
    ("GET", "/v1/customers/{customer}/gateway-keys", None),
    ("DELETE", "/v1/customers/{customer}/gateway-keys/{key_id}", None),
]
# Operations that take no id: they only ever see or make the caller's own objects.
OWN_ONLY = {
    ("GET", "/v1/assets"),
    ("POST", "/v1/assets"),
    ("GET", "/v1/customers"),
    ("POST", "/v1/customers"),
    ("GET", "/v1/api-keys"),
    ("POST", "/v1/api-keys"),
    *BILLING_OWN_ONLY,
    ("GET", "/v1/rate-cards"),
    ("POST", "/v1/rate-cards"),
    ("POST", "/v1/rate-cards/quote"),
    ("POST", "/v1/model-prices"),
    ("GET", "/v1/reports/margin"),
    ("GET", "/v1/reports/revenue"),
    ("GET", "/v1/webhook-endpoints"),
    ("POST", "/v1/webhook-endpoints"),
    ("GET", "/v1/webhook-deliveries"),
    ("GET", "/v1/portal/branding"),
    ("PUT", "/v1/portal/branding"),
    # The LLM gateway's provider keys: the tenant's own, named by provider.
    ("GET", "/v1/gateway/upstream-keys"),
    ("PUT", "/v1/gateway/upstream-keys/{provider}"),
    ("DELETE", "/v1/gateway/upstream-keys/{provider}"),
}


def calls(a: Api) -> list[tuple[str, str, dict[str, Any] | None]]:
    ids = {
        "{customer}": "c1",
        "{member}": "m1",
        "{asset}": "credits",
        "{grant}": a.lot,  # type: ignore[attr-defined]
        "{charge}": a.charge_id,  # type: ignore[attr-defined]
        "{key_id}": a.gateway_key_id,  # type: ignore[attr-defined]
        **a.billing,  # type: ignore[attr-defined]
    }
    out = []
    for method, template, body in BY_ID:
        if template == "/v1/charges/batch":
            continue
        url = template
        for name, value in ids.items():
            url = url.replace(name, value)
        hold_or_key = a.key_id if "api-keys" in template else a.hold  # type: ignore[attr-defined]
        if "webhook-endpoints" in template:
            hold_or_key = a.endpoint_id  # type: ignore[attr-defined]
        elif "webhook-deliveries/events" in template:
            hold_or_key = a.event_id  # type: ignore[attr-defined]
        elif "webhook-deliveries" in template:
            hold_or_key = a.delivery_id  # type: ignore[attr-defined]
        out.append((method, url.replace("{id}", hold_or_key), body))
    return out


def test_the_matrix_covers_every_operation(client: Any) -> None:
    document = client.get("/openapi.json").json()
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    covered = {(method, template) for method, template, _ in BY_ID} | OWN_ONLY
    assert operations == covered


def test_every_endpoint_answers_404_for_another_tenants_objects(tenant_a: Api, other: Api) -> None:
    before = snapshot(tenant_a)
    # B has an asset of the same code: only the customer, hold, lot or key is A's.
    for method, url, body in calls(tenant_a):
        keyed = {**other.headers, "Idempotency-Key": f"k-{method}-{url}"}
        response = other.client.request(method, url, json=body, headers=keyed)
        assert response.status_code == 404, (method, url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    batch = other.post(
        "/v1/charges/batch",
        {"events": [{"idempotency_key": "e1", "customer": "c1", "asset": "credits", "amount": 10}]},
    )
    assert batch.status_code == 200
    (item,) = batch.json()["data"]
    assert item["status"] == "error" and item["error"]["status"] == 404
    assert snapshot(tenant_a) == before
    # A's key still works, and B's lists show none of A's objects.
    assert other.get("/v1/customers").json() == {"data": []}
    b_keys = [k["id"] for k in other.get("/v1/api-keys").json()["data"]]
    assert tenant_a.key_id not in b_keys and len(b_keys) == 1  # type: ignore[attr-defined]
    assert tenant_a.get("/v1/customers/c1").status_code == 200


def test_tenants_with_the_same_customer_id_stay_apart(tenant_a: Api, other: Api) -> None:
    other.funded_customer("c1", 50)
    assert other.get("/v1/customers/c1/wallet").json()["balances"][0]["posted"] == 50
    # 10,000 granted, 100 charged for one image.
    assert tenant_a.get("/v1/customers/c1/wallet").json()["balances"][0]["posted"] == 9_900
    # The same idempotency key in two tenants is two keys.
    body = {"customer": "c1", "asset": "credits", "amount": 10}
    key = {"Idempotency-Key": "shared"}
    first = tenant_a.post("/v1/charges", body, headers=key).json()
    second = other.post("/v1/charges", body, headers=key).json()
    assert first["id"] != second["id"]


def test_a_tenants_prices_and_margins_are_its_own(tenant_a: Api, other: Api) -> None:
    before = snapshot(tenant_a)
    assert other.get("/v1/rate-cards").json() == {"data": []}
    no_card = other.post("/v1/rate-cards/quote", IMAGE)
    assert no_card.status_code == 422 and no_card.json()["code"] == "no_price"
    assert other.get("/v1/reports/margin").json()["report"]["total"]["charges"] == 0
    # B's own card, model prices and charges change nothing of A's.
    cheaper = {**CARD, "actions": {"image.generate": {"prices": [{"flat": "0.5"}]}}}
    assert other.post("/v1/rate-cards", {"spec": cheaper}).json()["version"] == 1
    price = {"model": "gpt-4.1", "input_mtok": "0", "output_mtok": "0"}
    assert other.post("/v1/model-prices", price).status_code == 201
    other.funded_customer("c1", 1_000)
    assert other.post("/v1/charges", {"customer": "c1", **IMAGE}).json()["amount"] == 50
    assert snapshot(tenant_a) == before
    assert tenant_a.post("/v1/charges", {"customer": "c1", **IMAGE}).json()["amount"] == 100
