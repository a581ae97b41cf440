"""Billing over HTTP: Stripe Checkout against a loopback Stripe, its webhook verified, replayed,
duplicated and out of order granting once, bad signatures refused; plans, packs, campaigns."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from creditgate.storage.tables import provider_events
from tests.http.conftest import Api
from tests.integration.test_plans import events_of
from tests.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe, event, sign

HOOK = "/v1/providers/stripe/webhook"


@pytest.fixture
def shop(api: Api, fake_stripe: FakeStripe) -> Api:
    settings = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
    account = api.put("/v1/payment-providers/stripe", settings).json()
    assert account["webhook_secret_set"] and "webhook_secret" not in account
    pack = {"code": "starter", "asset": "credits", "amount": 10_000, "price": "25.00"}
    assert api.post("/v1/packs", pack).status_code == 201
    assert api.post("/v1/customers", {"id": "c1"}).status_code == 201
    return api


def checkout(shop: Api, key: str = "buy-1") -> dict[str, Any]:
    body = {"pack": "starter", "provider": "stripe", "success_url": "https://example.com/ok"}
    response = shop.post("/v1/customers/c1/purchases", body, headers={"Idempotency-Key": key})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def deliver(shop: Api, body: str, signature: str | None = None, **params: str) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not False:
        headers["Stripe-Signature"] = signature or sign(body)
    return shop.client.post(HOOK, content=body, headers=headers, params=params)


def posted(shop: Api) -> int:
    balances = shop.get("/v1/customers/c1/wallet").json()["balances"]
    return sum(b["posted"] for b in balances if b["asset"] == "credits")


def handled_events(shop: Api) -> int:
    with shop.ledger.cg.db.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(provider_events)
                .where(provider_events.c.tenant_id == shop.tenant_id)
            ).scalar_one()
        )


def test_checkout_then_webhooks_replayed_duplicated_and_out_of_order_grant_once(
    shop: Api, fake_stripe: FakeStripe
) -> None:
    purchase = checkout(shop)
    assert purchase["status"] == "pending" and purchase["provider_ref"].startswith("cs_test_")
    assert purchase["checkout_url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    # A retry answers the same purchase and the same session.
    assert checkout(shop) == purchase
    (sent, *again) = fake_stripe.calls("/v1/checkout/sessions")
    assert sent["idempotency_key"] == f"creditgate-checkout-{purchase['id']}"
    assert all(r["idempotency_key"] == sent["idempotency_key"] for r in again)
    assert sent["form"]["client_reference_id"] == purchase["id"]
    assert sent["form"]["line_items[0][price_data][unit_amount]"] == "2500"
    # What the customer sees they buy, in the asset's units (not 10000 minor units).
    assert sent["form"]["line_items[0][price_data][product_data][name]"] == "100.00 credits"
    assert sent["form"]["metadata[creditgate_tenant]"] == shop.tenant_id
    assert posted(shop) == 0

    pid, tenant = purchase["id"], shop.tenant_id
    failed = event("payment_intent_payment_failed", purchase=pid, tenant=tenant)
    completed = event("checkout_session_completed", purchase=pid, tenant=tenant)
    succeeded = event("payment_intent_succeeded", purchase=pid, tenant=tenant)
    # Out of order: a failed first attempt arrives, then the session completes.
    answer = deliver(shop, failed, tenant=tenant).json()
    assert answer["outcome"] == "failed"
    assert shop.get(f"/v1/purchases/{pid}").json()["status"] == "failed"
    assert deliver(shop, completed, tenant=tenant).json()["outcome"] == "completed"
    assert posted(shop) == 10_000
    # The PaymentIntent's own success, a replay of the session event, a late failure.
    assert deliver(shop, succeeded).json()["outcome"] == "already_paid"  # tenant from metadata
    assert deliver(shop, completed, tenant=tenant).json()["outcome"] == "duplicate"
    assert deliver(shop, failed, tenant=tenant).json()["outcome"] == "duplicate"
    late_failure = event("payment_intent_payment_failed", purchase=pid, event_id="evt_late")
    assert deliver(shop, late_failure, tenant=tenant).json()["outcome"] == "already_paid"

    # The same new event delivered twice at once.
    twice = event("payment_intent_succeeded", purchase=pid, tenant=tenant, event_id="evt_twice")
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def send() -> None:
        barrier.wait()
        outcomes.append(deliver(shop, twice, tenant=tenant).json()["outcome"])

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_paid", "duplicate"]

    final = shop.get(f"/v1/purchases/{pid}").json()
    assert final["status"] == "paid" and final["payment_ref"] == "pi_3QxYzAbCdEfGhIjK0aBcDeFg"
    assert posted(shop) == 10_000
    lots = shop.get("/v1/customers/c1/grants").json()["data"]
    assert [(lot["kind"], lot["amount"], lot["cost_basis"]) for lot in lots] == [
        ("purchased", 10_000, "0.25")
    ]
    assert len(events_of(shop.ledger, "topup.succeeded")) == 1
    assert len(events_of(shop.ledger, "topup.failed")) == 1


def test_a_bad_signature_is_400_and_changes_nothing(shop: Api, cg: Any, client: Any) -> None:
    from tests.http.conftest import new_api

    purchase = checkout(shop)
    pid, tenant = purchase["id"], shop.tenant_id
    body = event("checkout_session_completed", purchase=pid, tenant=tenant)
    tampered = body.replace('"amount_total": 2500', '"amount_total": 2500 ')
    other = new_api(cg, client)
    attempts = [
        deliver(shop, body, sign(body, "whsec_wrong"), tenant=tenant),
        deliver(shop, body, False, tenant=tenant),  # type: ignore[arg-type]
        deliver(shop, body, "t=1,v1=deadbeef", tenant=tenant),
        deliver(shop, tampered, sign(body), tenant=tenant),
        deliver(shop, body, sign(body, timestamp=1), tenant=tenant),  # too old: a replay
        deliver(shop, body, tenant=other.tenant_id),  # another tenant's endpoint
        deliver(shop, body, tenant="ten_nobody"),
        deliver(shop, "not json"),
    ]
    for response in attempts:
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_signature"
    assert shop.get(f"/v1/purchases/{pid}").json()["status"] == "pending"
    assert posted(shop) == 0 and handled_events(shop) == 0
    assert events_of(shop.ledger, "topup.succeeded") == []
    # The genuine delivery still works afterwards.
    assert deliver(shop, body, tenant=tenant).json()["outcome"] == "completed"


def test_an_event_for_a_different_amount_grants_nothing(shop: Api) -> None:
    purchase = checkout(shop)
    body = event(
        "checkout_session_completed",
        purchase=purchase["id"],
        tenant=shop.tenant_id,
        amount_total=100,
    )
    assert deliver(shop, body).json()["outcome"] == "amount_mismatch"
    assert posted(shop) == 0


def test_plans_packs_campaigns_and_consumption_order_over_http(api: Api) -> None:
    assert api.post("/v1/customers", {"id": "c1"}).status_code == 201
    plan = {"code": "pro", "asset": "credits", "included": 1_000, "fee": "10", "rollover_cap": 100}
    assert api.post("/v1/plans", plan).status_code == 201
    assert api.post("/v1/plans", plan).json()["code"] == "already_exists"
    sub = api.post("/v1/customers/c1/subscriptions", {"plan": "pro"})
    assert sub.status_code == 201, sub.text
    sub_id = sub.json()["id"]
    assert api.get("/v1/customers/c1/subscriptions").json()["data"][0]["id"] == sub_id
    canceled = api.post(f"/v1/subscriptions/{sub_id}/cancel", {"at": "now"}).json()
    assert canceled["status"] == "canceled"
    assert api.post(f"/v1/subscriptions/{sub_id}/cancel").status_code == 409

    pack = {"code": "p", "asset": "credits", "amount": 500, "price": "5", "expires_after_days": 9}
    pack_id = api.post("/v1/packs", pack).json()["id"]
    bought = api.post("/v1/customers/c1/purchases", {"pack": "p"}).json()
    assert bought["status"] == "pending"
    assert api.post(f"/v1/purchases/{bought['id']}/mark-paid").json()["status"] == "paid"
    assert api.post(f"/v1/purchases/{bought['id']}/mark-failed").status_code == 409
    assert api.put(f"/v1/packs/{pack_id}/state", {"active": False}).json()["active"] is False
    assert api.get("/v1/packs").json() == {"data": []}

    campaign = {"code": "HELLO", "asset": "credits", "amount": 50}
    assert api.post("/v1/campaigns", campaign).status_code == 201
    redeemed = api.post("/v1/customers/c1/redemptions", {"code": "hello"})
    assert redeemed.status_code == 201 and redeemed.json()["lot"]["kind"] == "promotional"
    again = api.post("/v1/customers/c1/redemptions", {"code": "hello"})
    assert (again.status_code, again.json()["code"]) == (409, "campaign_limit_reached")

    order = api.put("/v1/consumption-order/purchased", {"priority": 9}).json()["data"]
    assert order[-1] == {"kind": "purchased", "priority": 9, "is_default": False}
    grant = api.post(
        "/v1/customers/c1/grants", {"asset": "credits", "amount": 1, "kind": "purchased"}
    )
    assert grant.json()["priority"] == 9
    assert api.get("/v1/consumption-order").json()["data"] == order
    rate = api.put("/v1/exchange-rates/USD/credits", {"rate": "40"}).json()
    assert rate["rate"] == "40" and api.get("/v1/exchange-rates").json()["data"] == [rate]
    method = {"provider": "stripe", "method_ref": "pm_1", "customer_ref": "cus_1"}
    assert api.post("/v1/customers/c1/payment-methods", method).status_code == 201
    assert api.get("/v1/customers/c1/payment-methods").json()["data"][0]["method_ref"] == "pm_1"
    setting = {"threshold": 100, "pack": "p", "provider": "manual"}
    api.put(f"/v1/packs/{pack_id}/state", {"active": True})
    assert api.put("/v1/customers/c1/auto-top-up/credits", setting).json()["armed"] is True
    assert len(api.get("/v1/customers/c1/auto-top-up").json()["data"]) == 1
    no_stripe = api.put("/v1/customers/c1/auto-top-up/credits", {**setting, "provider": "stripe"})
    assert no_stripe.json()["code"] == "provider_not_configured"
