"""The customer's billing portal in a real browser: balance, live updates, top-up, refusals."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from creditgate.portal.tokens import Tokens
from creditgate.portal.web import contrast
from tests.browser.a11y import check_page, weigh
from tests.browser.conftest import (
    DESKTOP,
    ON_SQLITE,
    PHONE,
    SECRET,
    Server,
    copy_for_readme,
    playwright_api,
    screenshot,
)

MAX_PAGE_BYTES = 200 * 1024

expect = playwright_api().expect


def test_portal_shows_the_balance_and_it_falls_live_as_charges_are_made(
    server: Server, page: Any
) -> None:
    acme = server.tenant()
    acme.customer("alice", 10_000)
    page.goto(acme.portal_url("alice"))
    # The token went into a cookie and out of the address bar.
    assert page.url == f"{server.base}/portal"
    available = page.get_by_test_id("available-credits")
    expect(available).to_have_text("100.00")
    page.evaluate("window.notReloaded = true")
    for _ in range(3):
        charge = {"customer": "alice", "asset": "credits", "amount": 1_000}
        assert acme.api.post("/v1/charges", json=charge).status_code == 201
    started = time.monotonic()
    expect(available).to_have_text("70.00", timeout=5_000)
    assert time.monotonic() - started < 3  # polled every second
    assert page.evaluate("window.notReloaded") is True


@ON_SQLITE
def test_a_pack_bought_in_demo_mode_adds_its_credit(server: Server, page: Any) -> None:
    acme = server.tenant()
    demo = {"name": "Acme AI", "portal_demo_payments": True}  # the tenant turns demo mode on
    acme.api.put("/v1/portal/branding", json=demo).raise_for_status()
    acme.customer("bob", 500)
    pack = {"code": "starter", "name": "Starter", "asset": "credits", "amount": 10_000}
    pack["price"] = "9"
    assert acme.api.post("/v1/packs", json=pack).status_code == 201
    page.goto(acme.portal_url("bob"))
    expect(page.get_by_test_id("available-credits")).to_have_text("5.00")
    # The top-up is reachable from the keyboard alone.
    buy = page.get_by_role("button", name="Buy Starter for 9.00 USD")
    for _ in range(40):
        page.keyboard.press("Tab")
        if buy.evaluate("b => b === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reaches the Buy button")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("bought")).to_contain_text("100.00 credits added")
    expect(page.get_by_test_id("available-credits")).to_have_text("105.00")
    expect(page.locator("section[aria-labelledby=purchases-h] tbody")).to_contain_text("paid")
    purchases = acme.api.get("/v1/customers/bob/purchases").json()["data"]
    assert [(p["status"], p["provider"]) for p in purchases] == [("paid", "manual")]
    # A reload of the answer page buys nothing more.
    page.reload()
    assert len(acme.api.get("/v1/customers/bob/purchases").json()["data"]) == 1


@ON_SQLITE
def test_without_stripe_or_demo_mode_a_bought_pack_waits_for_its_payment(
    server: Server, page: Any
) -> None:
    acme = server.tenant()
    acme.customer("bob", 500)
    pack = {"code": "starter", "name": "Starter", "asset": "credits", "amount": 10_000}
    assert acme.api.post("/v1/packs", json={**pack, "price": "9"}).status_code == 201
    page.goto(acme.portal_url("bob"))
    expect(page.locator("#topup")).not_to_contain_text("Demo mode")
    expect(page.get_by_test_id("invoiced")).to_be_visible()
    page.get_by_role("button", name="Buy Starter for 9.00 USD").click()
    expect(page.get_by_test_id("bought")).to_contain_text("pending")
    expect(page.get_by_test_id("available-credits")).to_have_text("5.00")
    (purchase,) = acme.api.get("/v1/customers/bob/purchases").json()["data"]
    assert (purchase["status"], purchase["provider"]) == ("pending", "manual")
    # The tenant marks the invoice paid once the money is in: then the credit shows.
    paid = acme.api.post(
        f"/v1/purchases/{purchase['id']}/mark-paid", headers={"Idempotency-Key": "p"}
    )
    assert paid.status_code == 200, paid.text
    expect(page.get_by_test_id("available-credits")).to_have_text("105.00")


@ON_SQLITE
def test_expired_and_forged_tokens_are_refused(server: Server, page: Any) -> None:
    acme = server.tenant()
    acme.customer("carol", 100)
    acme.customer("dave", 99_900)
    tokens = Tokens(SECRET)
    past = datetime.now(UTC) - timedelta(hours=2)
    expired, _ = tokens.portal_token(acme.ledger.tenant_id, "carol", now=past)
    response = page.goto(f"{server.base}/portal?token={expired}")
    assert response.status == 401
    expect(page.get_by_role("heading")).to_have_text("This link has expired")

    forged, _ = Tokens("not-the-server-secret").portal_token(
        acme.ledger.tenant_id, "dave", now=datetime.now(UTC)
    )
    response = page.goto(f"{server.base}/portal?token={forged}")
    assert response.status == 403
    expect(page.get_by_role("heading")).to_have_text("This link is not valid")
    assert page.goto(f"{server.base}/portal").status == 401  # no cookie was set

    # A good session for carol: URL parameters do not reach another customer's data.
    page.goto(acme.portal_url("carol"))
    expect(page.get_by_test_id("available-credits")).to_have_text("1.00")
    page.goto(f"{server.base}/portal?customer=dave&cursor=txn_zzzz")
    expect(page.get_by_test_id("available-credits")).to_have_text("1.00")
    assert "999.00" not in page.content()
    # A form posted without the page's CSRF token is refused and buys nothing.
    posted = page.request.post(
        f"{server.base}/portal/purchases", form={"pack": "starter", "csrf": "x", "nonce": "n"}
    )
    assert posted.status == 403
    # The session cookie is HttpOnly: page scripts cannot read it.
    assert page.evaluate("document.cookie") == ""


@ON_SQLITE
def test_portal_weight_accessibility_and_screenshots(server: Server, browser: Any) -> None:
    acme = server.tenant("Northwind Labs")
    acme.api.put(
        "/v1/portal/branding",
        json={"name": "Northwind Labs", "accent_color": "#0d9488"},
    ).raise_for_status()
    acme.customer("erin", 50_000)
    for code, amount, price in (("small", 10_000, "9"), ("large", 100_000, "80")):
        pack = {"code": code, "name": code.title(), "asset": "credits", "amount": amount}
        acme.api.post("/v1/packs", json={**pack, "price": price}).raise_for_status()
    for action, amount in (("chat.completion", 1_200), ("image.generate", 800)) * 3:
        charge = {"customer": "erin", "asset": "credits", "amount": amount, "action": action}
        acme.api.post("/v1/charges", json=charge).raise_for_status()
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        transferred: list[int] = []
        page.on("requestfinished", lambda r, t=transferred: t.append(_transferred(r)))
        page.goto(acme.portal_url("erin"), wait_until="networkidle")
        expect(page.get_by_role("heading", name="Usage")).to_be_visible()
        expect(page.locator("header .brand")).to_have_text("Northwind Labs")
        assert page.locator("figure svg rect").count() > 0  # the usage chart
        expect(page.locator(".legend")).to_contain_text("image.generate")
        page.get_by_label("Action", exact=True).select_option("chat.completion")
        page.get_by_role("button", name="Show").click()
        expect(page.locator(".legend")).to_have_text("chat.completion")
        expect(page.get_by_label("Action", exact=True)).to_have_value("chat.completion")
        assert sum(transferred) < MAX_PAGE_BYTES, transferred
        # Every visible form field has a label or an accessible name.
        unlabeled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                             && !e.textContent.trim()).map(e => e.outerHTML)"""
        )
        assert unlabeled == []
        check_page(page)  # names, alt texts, contrast, landmarks (tests/browser/a11y.py)
        # The tenant's teal is too light for white text: the buttons' text turns dark.
        colours = page.get_by_role("button", name="Buy Small for 9.00 USD").evaluate(
            "b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]"
        )
        assert contrast(*(_hex(c) for c in colours)) >= 4.5, colours
        copy_for_readme(screenshot(page, f"portal-{name}"))
        context.close()


def _hex(css: str) -> str:
    r, g, b = (int(part) for part in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _transferred(request: Any) -> int:
    sizes = request.sizes()
    return int(sizes["responseBodySize"] + sizes["responseHeadersSize"])


@ON_SQLITE
def test_the_session_api_answers_404_for_an_unknown_customer(server: Server) -> None:
    acme = server.tenant()
    response = acme.api.post("/v1/portal/sessions", json={"customer": "nobody"})
    assert response.status_code == 404
    anonymous = httpx.post(f"{server.base}/v1/portal/sessions", json={"customer": "x"})
    assert anonymous.status_code == 401


@ON_SQLITE
def test_the_balance_stops_polling_once_the_session_ends(server: Server, page: Any) -> None:
    acme = server.tenant()
    acme.customer("fay", 100)
    page.goto(acme.portal_url("fay"))
    expect(page.get_by_test_id("available-credits")).to_have_text("1.00")
    page.context.clear_cookies()
    expect(page.locator("#balance")).to_contain_text("This page has expired")


@ON_SQLITE
def test_the_overview_fits_a_phone_and_says_what_each_movement_was(
    server: Server, browser: Any
) -> None:
    acme = server.tenant("Northwind Labs")
    ledger = acme.ledger
    ledger.create_customer("cus_8f2e41", name="Grace Hopper")
    soon = datetime.now(UTC) + timedelta(days=20)
    ledger.grant("cus_8f2e41", "credits", 50_000, kind="purchased", cost_basis="0.01")
    ledger.grant("cus_8f2e41", "credits", 2_500, kind="promotional", expires_at=soon)
    for action, model, amount in (
        ("chat.completion", "gpt-4o", 1_234),
        ("chat.completion", "gpt-4o-mini", 56),
        ("image.generate", "flux-schnell", 800),
    ):
        ledger.charge("cus_8f2e41", "credits", amount, action=action, dimensions={"model": model})
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(10_000)
        sizes = weigh(page)
        page.goto(acme.portal_url("cus_8f2e41"), wait_until="networkidle")
        activity = page.locator("#activity tbody")
        expect(activity).to_contain_text("chat.completion · gpt-4o-mini")
        expect(activity).to_contain_text("image.generate · flux-schnell")
        expect(activity).to_contain_text("Promotional credit")
        assert "charge" not in activity.inner_text()
        # The footer names the customer, never the product's id for them.
        footer = page.locator("main > p.hint").last
        expect(footer).to_contain_text("This page is for Grace Hopper")
        assert "cus_8f2e41" not in page.locator("main").inner_text()
        # The usage chart says its unit and spans the days with usage (one: a week).
        chart = page.locator("figure svg.chart").first
        expect(chart.locator("text.unit")).to_have_text("credits per day")
        assert "last 7 days" in str(chart.get_attribute("aria-label"))
        # Nothing is wider than the screen: no table is cut off at the right.
        width = viewport["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        lots = page.locator("section[aria-labelledby=lots-h] .scroll")
        assert lots.evaluate("e => e.scrollWidth <= e.clientWidth")
        expires = lots.locator("td[data-label=Expires]").first
        expect(expires).to_contain_text(soon.strftime("%Y-%m-%d"))
        box = expires.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width
        if name == "desktop":
            # The Change header lines up with its numbers (both right-aligned).
            header = page.locator("#activity th", has_text="Change").bounding_box()
            cell = activity.locator("td[data-label=Change]").first.bounding_box()
            assert header is not None and cell is not None
            right = header["x"] + header["width"]
            assert abs(right - (cell["x"] + cell["width"])) <= 1
        check_page(page, sizes)
        screenshot(page, f"portal-overview-{name}", full_page=True)
        context.close()


@ON_SQLITE
def test_portal_shows_the_plan_the_renewal_and_an_unpaid_invoice_to_pay(
    server: Server, page: Any
) -> None:
    acme = server.tenant()
    acme.customer("carol", 100)
    plan = {"code": "team", "name": "Team", "fee": "50", "asset": "credits", "included": 5_000}
    plan["collection"] = "manual"
    assert acme.api.post("/v1/plans", json=plan).status_code == 201
    subscribe = acme.api.post("/v1/customers/carol/subscriptions", json={"plan": "team"})
    assert subscribe.status_code == 201
    (invoice,) = acme.api.get("/v1/customers/carol/invoices").json()["data"]
    failed = acme.api.post(f"/v1/invoices/{invoice['id']}/mark-failed", json={"reason": "expired"})
    assert failed.status_code == 200
    page.goto(acme.portal_url("carol"))
    section = page.get_by_test_id("plan")
    expect(page.get_by_test_id("plan-name")).to_contain_text("Team: 50.00 USD monthly")
    expect(page.get_by_test_id("renewal")).to_contain_text("Payment failed (expired)")
    expect(section.get_by_test_id("unpaid")).to_contain_text("failed")
    check_page(page)  # names, contrast, landmarks with the plan section on the page
