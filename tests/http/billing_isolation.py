"""The billing part of the tenant-isolation matrix (see test_isolation.py)."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import Api

# (method, route template, body): every billing operation that takes an id of a tenant's object.
BILLING_BY_ID: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/customers/{customer}/subscriptions", {"plan": "pro"}),
    ("GET", "/v1/customers/{customer}/subscriptions", None),
    ("GET", "/v1/subscriptions/{subscription}", None),
    ("POST", "/v1/subscriptions/{subscription}/change-plan", {"plan": "pro"}),
    ("POST", "/v1/subscriptions/{subscription}/cancel", {"at": "now"}),
    ("PUT", "/v1/packs/{pack}/state", {"active": False}),
    ("POST", "/v1/customers/{customer}/purchases", {"pack": "starter"}),
    ("GET", "/v1/customers/{customer}/purchases", None),
    ("GET", "/v1/purchases/{purchase}", None),
    ("POST", "/v1/purchases/{purchase}/mark-paid", None),
    ("POST", "/v1/purchases/{purchase}/mark-failed", {"reason": "x"}),
    ("POST", "/v1/purchases/{purchase}/refunds", {"reason": "x"}),
    ("GET", "/v1/purchases/{purchase}/refunds", None),
    ("POST", "/v1/customers/{customer}/payment-methods", {"provider": "manual", "method_ref": "m"}),
    ("GET", "/v1/customers/{customer}/payment-methods", None),
    (
        "PUT",
        "/v1/customers/{customer}/auto-top-up/{asset}",
        {"threshold": 1, "pack": "starter", "provider": "manual"},
    ),
    ("GET", "/v1/customers/{customer}/auto-top-up", None),
    ("POST", "/v1/customers/{customer}/redemptions", {"code": "WELCOME"}),
    ("GET", "/v1/customers/{customer}/invoices", None),
    ("GET", "/v1/invoices/{invoice}", None),
    ("POST", "/v1/invoices/{invoice}/mark-paid", None),
    ("POST", "/v1/invoices/{invoice}/mark-failed", {"reason": "x"}),
    ("POST", "/v1/purchases/{purchase}/write-off", None),
]
# Billing operations that only ever see or change the caller's own settings. Stripe's webhook
# takes no key: a tenant is named by `?tenant=` and proven by its signing secret (an event
# signed for one tenant and sent to another's endpoint is 400, see test_billing.py).
BILLING_OWN_ONLY = {
    ("GET", "/v1/plans"),
    ("POST", "/v1/plans"),
    ("GET", "/v1/packs"),
    ("POST", "/v1/packs"),
    ("GET", "/v1/campaigns"),
    ("POST", "/v1/campaigns"),
    ("GET", "/v1/exchange-rates"),
    ("PUT", "/v1/exchange-rates/{currency}/{asset}"),
    ("GET", "/v1/payment-providers"),
    ("PUT", "/v1/payment-providers/{provider}"),
    ("GET", "/v1/consumption-order"),
    ("PUT", "/v1/consumption-order/{kind}"),
    ("POST", "/v1/providers/stripe/webhook"),
    ("GET", "/v1/overage"),
    ("PUT", "/v1/overage/{asset}"),
    ("GET", "/v1/test-clock"),
    ("POST", "/v1/test-clock/advance"),
}


def billing_objects(api: Api) -> dict[str, str]:
    """Tenant A's plan, subscription, pack, purchase and campaign; B gets the same codes."""
    # The plan's credit is in an asset of its own, so A's credits balance stays as it was.
    assert api.post("/v1/assets", {"code": "minutes", "scale": 0}).status_code == 201
    # Its fee collected by hand, so that the subscription has an invoice (an id of A's).
    plan = {"code": "pro", "asset": "minutes", "included": 100, "fee": "1", "collection": "manual"}
    assert api.post("/v1/plans", plan).status_code == 201
    sub = api.post("/v1/customers/c1/subscriptions", {"plan": "pro"}).json()
    pack = {"code": "starter", "asset": "credits", "amount": 100, "price": "1"}
    pack_id = api.post("/v1/packs", pack).json()["id"]
    purchase = api.post("/v1/customers/c1/purchases", {"pack": "starter"}).json()
    campaign = {"code": "WELCOME", "asset": "credits", "amount": 5}
    assert api.post("/v1/campaigns", campaign).status_code == 201
    (invoice,) = api.get("/v1/customers/c1/invoices").json()["data"]
    return {
        "{subscription}": sub["id"],
        "{pack}": pack_id,
        "{purchase}": purchase["id"],
        "{invoice}": invoice["id"],
    }


def billing_snapshot(a: Api) -> dict[str, Any]:
    ids = a.billing  # type: ignore[attr-defined]
    return {
        "subscription": a.get(f"/v1/subscriptions/{ids['{subscription}']}").json(),
        "purchase": a.get(f"/v1/purchases/{ids['{purchase}']}").json(),
        "refunds": a.get(f"/v1/purchases/{ids['{purchase}']}/refunds").json(),
        "packs": a.get("/v1/packs", params={"include_inactive": True}).json(),
        "plans": a.get("/v1/plans").json(),
        "campaigns": a.get("/v1/campaigns").json(),
        "methods": a.get("/v1/customers/c1/payment-methods").json(),
        "auto_top_up": a.get("/v1/customers/c1/auto-top-up").json(),
        "invoices": a.get("/v1/customers/c1/invoices").json(),
    }
