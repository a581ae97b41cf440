"""A top-up through Stripe Checkout in a real browser, with Stripe offline: the portal's Buy
leads to the Checkout Session's page, paying there sends the customer back and Stripe's
signed `checkout.session.completed` event to creditgate, and the credit shows in the balance.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser.a11y import check_page, tab_to
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    Server,
    _missing,
    playwright_api,
    screenshot,
)
from tests.browser.stripe_checkout import CheckoutPages, self_signed
from tests.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe

expect = playwright_api().expect


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        _missing("openssl is missing (apt-get install openssl)")
    return self_signed(tmp_path_factory.mktemp("checkout-tls"))


@pytest.fixture
def fake_stripe(server: Server) -> FakeStripe:
    """The server's offline Stripe (the operator's setting), cleared of earlier tests' calls."""
    server.stripe.requests.clear()
    server.stripe.sessions.clear()
    return server.stripe


def test_a_pack_bought_through_stripe_checkout_adds_its_credit(
    server: Server, browser: Any, fake_stripe: FakeStripe, certificate: tuple[Path, Path]
) -> None:
    acme = server.tenant("Acme AI")
    tenant_id = acme.ledger.tenant_id
    webhook = f"{server.base}/v1/providers/stripe/webhook?tenant={tenant_id}"
    checkout = CheckoutPages(fake_stripe, webhook_url=webhook, certificate=certificate).start()
    try:
        stripe = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
        acme.api.put("/v1/payment-providers/stripe", json=stripe).raise_for_status()
        pack = {"code": "pro", "name": "Pro", "asset": "credits", "amount": 25_000}
        acme.api.post("/v1/packs", json={**pack, "price": "25.00"}).raise_for_status()
        acme.customer("lena", 500)

        # The browser accepts the stand-in checkout page's self-signed certificate.
        context = browser.new_context(viewport=DESKTOP, ignore_https_errors=True)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(acme.portal_url("lena"))
        available = page.get_by_test_id("available-credits")
        expect(available).to_have_text("5.00")
        expect(page.locator("#topup")).not_to_contain_text("Demo mode")
        buy = page.get_by_role("button", name="Buy Pro for 25.00 USD")
        tab_to(page, buy)
        page.keyboard.press("Enter")

        # Redirected to the Checkout Session's URL, as made by the Stripe client.
        page.wait_for_url(f"{checkout.url}/c/pay/cs_test_offline*")
        (created,) = fake_stripe.calls("/v1/checkout/sessions")
        session = fake_stripe.sessions[page.url.rsplit("/", 1)[1]]
        assert page.url == session["url"]
        (purchase,) = acme.api.get("/v1/customers/lena/purchases").json()["data"]
        assert (purchase["status"], purchase["provider"]) == ("pending", "stripe")
        assert purchase["provider_ref"] == session["id"]
        assert created["form"]["client_reference_id"] == purchase["id"]
        assert created["form"]["line_items[0][price_data][unit_amount]"] == "2500"
        assert created["idempotency_key"] == f"creditgate-checkout-{purchase['id']}"
        assert session["success_url"] == f"{server.base}/portal?paid=1"
        expect(page.get_by_role("heading")).to_have_text("Pay 25.00 USD")
        screenshot(page, "stripe-checkout-offline")

        # Paid: back in the portal, and the credit arrives once Stripe's event does.
        page.get_by_role("button", name="Pay").click()
        page.wait_for_url(f"{server.base}/portal?paid=1")
        expect(page.get_by_test_id("checked-out")).to_be_visible()
        page.evaluate("window.notReloaded = true")
        expect(available).to_have_text("255.00", timeout=8_000)
        assert page.evaluate("window.notReloaded") is True  # the balance polled it in
        assert checkout.deliveries == [(200, checkout.deliveries[0][1])]
        assert checkout.deliveries[0][1]["outcome"] == "completed"
        paid = acme.api.get(f"/v1/purchases/{purchase['id']}").json()
        assert paid["status"] == "paid" and paid["payment_ref"] == session["payment_intent"]

        # Its receipt names Stripe and the payment's reference.
        page.goto(f"{server.base}/portal/purchases/{purchase['id']}")
        expect(page.get_by_test_id("receipt-amount")).to_have_text("25.00 USD")
        expect(page.get_by_test_id("receipt-ref")).to_have_text(session["payment_intent"])
        expect(page.locator(".receipt")).to_contain_text("Stripe")
        check_page(page)
        screenshot(page, "portal-receipt-stripe-desktop")
        page.set_viewport_size(PHONE)
        screenshot(page, "portal-receipt-stripe-phone")

        # Paying the same session again changes nothing; a forged event is refused.
        again = page.request.post(session["url"])
        assert again.status == 404
        forged = page.request.post(
            webhook,
            data='{"id": "evt_forged", "type": "checkout.session.completed"}',
            headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"},
        )
        assert forged.status == 400
        assert acme.ledger.wallet("lena").balances[0].posted == 25_500
        context.close()
    finally:
        checkout.stop()
