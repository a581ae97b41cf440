"""Collecting the money over HTTP, as an integrator does it on a test-mode tenant: subscribe
to a plan billed by Stripe (the offline stand-in), use into overage, advance the tenant's
clock a month, see the invoice, pay it, and find the debt closed and the next period's
credit granted; and the refusals (403, 422 naming the field)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

import creditgate_sdk as sdk
from creditgate.api import Creditgate, TenantLedger
from creditgate.domain.billing import add_months
from tests.http.conftest import Api
from tests.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe, event, invoice_event, sign

HOOK = "/v1/providers/stripe/webhook"


@pytest.fixture
def sandbox(cg: Creditgate, client: TestClient) -> Iterator[Api]:
    """A test-mode tenant seen through the API; its books are verified afterwards."""
    tenant, key = cg.create_tenant_with_key(f"sandbox {uuid.uuid4().hex[:8]}", mode="test")
    assert key.key is not None
    api = Api(client, key.key, TenantLedger(cg, tenant.id))
    assert api.post("/v1/assets", {"code": "credits", "scale": 2}).status_code == 201
    yield api
    report = cg.verify(tenant.id)
    assert report.ok, report.violations


def deliver(api: Api, body: str) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body)}
    response = api.client.post(
        HOOK, content=body, headers=headers, params={"tenant": api.tenant_id}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wallet(api: Api) -> dict[str, Any]:
    balances = api.get("/v1/customers/c1/wallet").json()["balances"]
    return next(b for b in balances if b["asset"] == "credits")  # type: ignore[no-any-return]


def advance(api: Api, to: datetime) -> dict[str, Any]:
    response = api.post("/v1/test-clock/advance", {"to": to.isoformat()})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_an_integrator_bills_a_plan_and_its_overage_on_a_test_mode_tenant(
    sandbox: Api, fake_stripe: FakeStripe
) -> None:
    api = sandbox
    keys = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
    assert api.put("/v1/payment-providers/stripe", keys).status_code == 200
    fake_stripe.add_price("price_pro", 2000)
    plan = {
        "code": "pro",
        "fee": "20",
        "asset": "credits",
        "included": 10_000,
        "stripe_price": "price_pro",
        "overage_policy": "allow",
    }
    created = api.post("/v1/plans", plan)
    assert created.status_code == 201, created.text
    assert created.json()["collection"] == "stripe"
    overage = {"price": "0.05", "provider": "stripe", "return_url": "https://app.example/billing"}
    assert api.put("/v1/overage/credits", overage).status_code == 200
    assert api.post("/v1/customers", {"id": "c1"}).status_code == 201

    sub = api.post("/v1/customers/c1/subscriptions", {"plan": "pro"}).json()
    assert sub["payment_status"] == "awaiting_payment" and sub["provider_ref"]
    first_period = datetime.fromisoformat(sub["current_period_start"])
    paid = invoice_event(
        "paid",
        tenant=api.tenant_id,
        subscription=sub["id"],
        subscription_ref=sub["provider_ref"],
        period_start=first_period,
        amount=2000,
        invoice_id="in_period0",
    )
    assert deliver(api, paid)["outcome"] == "paid"
    assert wallet(api)["available"] == 10_000

    # Use past the included credit: 40.00 credits of debt under `allow`.
    charge = {"customer": "c1", "asset": "credits", "amount": 14_000}
    assert api.post("/v1/charges", charge).status_code == 201
    assert wallet(api)["debt"] == 4_000

    # A month on: the debt is billed (a pay link, as no card is saved) and period 1 opens.
    report = advance(api, add_months(first_period, 1) + timedelta(minutes=1))
    assert report["billing"]["overage"] == {"billed": 1, "sent": 1}
    assert report["billing"]["renewals"]["renewed"] == 1
    assert report["stripe_test_clock"] == "advanced"  # Stripe test keys: its clock moves too
    (clock,) = fake_stripe.test_clocks.values()
    assert clock["frozen_time"] == int(datetime.fromisoformat(report["now"]).timestamp())
    invoices = api.get("/v1/customers/c1/invoices").json()["data"]
    bill = next(i for i in invoices if i["kind"] == "overage")
    assert (bill["status"], bill["amount"], bill["debt"]) == ("open", "2", 4_000)
    assert bill["pay_url"].startswith("https://checkout.stripe.com/")
    fee = next(i for i in invoices if i["kind"] == "plan_fee" and i["period_index"] == 1)
    assert fee["status"] == "open"
    state = api.get(f"/v1/subscriptions/{sub['id']}").json()
    assert state["payment_status"] == "awaiting_payment"

    # The portal shows the customer the bill with its pay link, and the debt.
    portal = api.post("/v1/portal/sessions", {"customer": "c1"}).json()["url"]
    page = TestClient(api.client.app).get(portal).text
    assert f'<a href="{bill["pay_url"]}" rel="noopener noreferrer">Pay now</a>' in page
    # The customer pays the bill through the stand-in's checkout.
    completed = event(
        "checkout_session_completed",
        purchase=bill["id"],
        tenant=api.tenant_id,
        id=bill["provider_ref"],
        amount_total=200,
        currency="usd",
    )
    assert deliver(api, completed)["outcome"] == "completed"
    assert wallet(api)["debt"] == 0
    # Stripe collects period 1's fee: its credit is granted.
    second = invoice_event(
        "paid",
        tenant=api.tenant_id,
        subscription=sub["id"],
        subscription_ref=sub["provider_ref"],
        period_start=add_months(first_period, 1),
        amount=2000,
        invoice_id="in_period1",
    )
    assert deliver(api, second)["outcome"] == "paid"
    assert wallet(api)["available"] == 10_000
    assert api.get(f"/v1/subscriptions/{sub['id']}").json()["payment_status"] == "paid"
    statuses = {
        (i["kind"], i["status"]) for i in api.get("/v1/customers/c1/invoices").json()["data"]
    }
    assert statuses == {("plan_fee", "paid"), ("overage", "paid")}
    revenue = api.get(
        "/v1/reports/revenue",
        params={"from": first_period.isoformat(), "to": add_months(first_period, 2).isoformat()},
    ).json()
    (line,) = revenue["collection"]
    assert (line["fees_received"], line["overage_collected"]) == ("40", "2")


def test_advancing_a_live_tenants_clock_is_forbidden(api: Api) -> None:
    response = api.post("/v1/test-clock/advance", {"to": "2030-01-01T00:00:00Z"})
    assert response.status_code == 403
    assert response.json()["code"] == "live_tenant"
    assert api.get("/v1/test-clock").status_code == 403


def test_advancing_backwards_is_422_naming_the_field(sandbox: Api) -> None:
    now = datetime.fromisoformat(sandbox.get("/v1/test-clock").json()["now"])
    response = sandbox.post("/v1/test-clock/advance", {"to": (now - timedelta(days=1)).isoformat()})
    assert response.status_code == 422
    assert response.json()["field"] == "to"
    malformed = sandbox.post("/v1/test-clock/advance", {"to": "tomorrow"})
    assert malformed.status_code == 422 and malformed.json()["field"] == "to"


def test_an_unknown_stripe_price_is_422_naming_the_field(
    sandbox: Api, fake_stripe: FakeStripe
) -> None:
    keys = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
    assert sandbox.put("/v1/payment-providers/stripe", keys).status_code == 200
    plan = {
        "code": "pro",
        "fee": "20",
        "asset": "credits",
        "included": 1,
        "stripe_price": "price_x",
    }
    response = sandbox.post("/v1/plans", plan)
    assert response.status_code == 422
    assert response.json()["field"] == "stripe_price"
    malformed = sandbox.post("/v1/plans", {**plan, "stripe_price": "prod_123"})
    assert malformed.status_code == 422 and malformed.json()["field"] == "stripe_price"


def test_bad_collection_settings_are_422_naming_the_field(sandbox: Api) -> None:
    plan = {"code": "pro", "fee": "20", "asset": "credits", "included": 1}
    early = sandbox.post("/v1/plans", {**plan, "grant_before_payment": True})
    assert early.status_code == 422 and early.json()["field"] == "grant_before_payment"
    stripe = sandbox.post("/v1/plans", {**plan, "collection": "stripe"})
    assert stripe.status_code == 422 and stripe.json()["field"] == "stripe_price"
    overage = sandbox.put("/v1/overage/credits", {"price": "-1"})
    assert overage.status_code == 422 and overage.json()["field"] == "price"
    rule = sandbox.put("/v1/overage/credits", {"price": "1", "on_failure": "sue"})
    assert rule.status_code == 422 and rule.json()["field"] == "on_failure"
    unknown = sandbox.put("/v1/overage/gold", {"price": "1"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "asset"
    missing = sandbox.post("/v1/invoices/inv_nope/mark-paid")
    assert missing.status_code == 404 and missing.json()["field"] == "invoice"


def test_a_manual_plan_invoice_is_marked_paid_over_http(sandbox: Api) -> None:
    plan = {
        "code": "team",
        "fee": "50",
        "asset": "credits",
        "included": 5_000,
        "collection": "manual",
    }
    assert sandbox.post("/v1/plans", plan).status_code == 201
    assert sandbox.post("/v1/customers", {"id": "c1"}).status_code == 201
    assert sandbox.post("/v1/customers/c1/subscriptions", {"plan": "team"}).status_code == 201
    (invoice,) = sandbox.get("/v1/customers/c1/invoices").json()["data"]
    assert (invoice["status"], invoice["amount"], invoice["provider"]) == ("open", "50", "manual")
    assert wallet(sandbox)["available"] == 0
    failed = sandbox.post(f"/v1/invoices/{invoice['id']}/mark-failed", {"reason": "bounced"})
    assert failed.json()["status"] == "failed"
    paid = sandbox.post(f"/v1/invoices/{invoice['id']}/mark-paid")
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    assert wallet(sandbox)["available"] == 5_000


def test_the_sdk_reads_invoices_and_moves_a_test_clock(sandbox: Api) -> None:
    plan = {"code": "team", "fee": "50", "asset": "credits", "included": 5_000}
    assert sandbox.post("/v1/plans", {**plan, "collection": "manual"}).status_code == 201
    assert sandbox.post("/v1/customers", {"id": "c1"}).status_code == 201
    sub = sandbox.post("/v1/customers/c1/subscriptions", {"plan": "team"}).json()
    with sdk.Client("http://testserver", sandbox.key, http_client=sandbox.client) as client:
        (invoice,) = client.invoices("c1")
        assert (invoice.kind, invoice.status, invoice.amount) == ("plan_fee", "open", Decimal(50))
        assert client.mark_invoice_paid(invoice.id).status == "paid"
        later = datetime.fromisoformat(sub["current_period_end"]) + timedelta(minutes=1)
        moved = client.advance_test_clock(later)
        assert moved.now == later
        assert [i.status for i in client.invoices("c1")] == ["open", "paid"]


def test_the_portal_shows_the_plan_renewal_unpaid_invoices_and_debt(sandbox: Api) -> None:
    plan = {"code": "team", "name": "Team", "fee": "50", "asset": "credits", "included": 5_000}
    body = {**plan, "collection": "manual", "overage_policy": "allow"}
    assert sandbox.post("/v1/plans", body).status_code == 201
    assert sandbox.post("/v1/customers", {"id": "c1"}).status_code == 201
    sub = sandbox.post("/v1/customers/c1/subscriptions", {"plan": "team"}).json()
    (invoice,) = sandbox.get("/v1/customers/c1/invoices").json()["data"]
    sandbox.post(f"/v1/invoices/{invoice['id']}/mark-failed", {"reason": "card expired"})
    sandbox.ledger.charge("c1", "credits", 1_250, idempotency_key="use")  # no credit yet: debt
    url = sandbox.post("/v1/portal/sessions", {"customer": "c1"}).json()["url"]
    browser = TestClient(sandbox.client.app)
    page = browser.get(url).text
    section = page.split('data-testid="plan"')[1].split("</section>")[0]
    assert "<strong>Team</strong>: 50.00 USD monthly" in section
    renews = datetime.fromisoformat(sub["current_period_end"]).strftime("%Y-%m-%d %H:%M UTC")
    assert f"Renews on {renews}" in section
    assert "Payment failed (card expired)" in section
    assert 'You owe <strong class="neg">12.50 credits</strong>' in section
    assert "Plan fee," in section and "failed" in section
