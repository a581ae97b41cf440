"""The product team's dashboard in a real browser: sign-in with a key, customers, margin."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.browser.a11y import check_page, weigh
from tests.browser.conftest import (
    DESKTOP,
    ON_SQLITE,
    PHONE,
    Server,
    copy_for_readme,
    playwright_api,
    screenshot,
)

CARD = {
    "asset": "credits",
    "credit_value_usd": "0.10",
    "actions": {
        "image.generate": {"prices": [{"flat": "1", "vendor": {"flat": "0.04"}}]},
        "tts.speak": {"prices": [{"flat": "2", "vendor": {"flat": "0.15"}}]},
    },
}

expect = playwright_api().expect


def _seeded(server: Server) -> Any:
    acme = server.tenant("Acme AI")
    acme.api.post("/v1/rate-cards", json={"spec": CARD}).raise_for_status()
    for i, customer in enumerate(("ann", "ben", "cat", "dan")):
        acme.customer(customer, 50_000, cost_basis="0.1")
        for action in ("image.generate", "tts.speak")[: 1 + i % 2] * (i + 1):
            charge = {"customer": customer, "action": action}
            assert acme.api.post("/v1/charges", json=charge).json()["status"] == "posted"
    return acme


def _sign_in(page: Any, server: Server, key: str) -> None:
    page.goto(f"{server.base}/dashboard")
    assert page.url == f"{server.base}/dashboard/login"
    page.get_by_label("Tenant API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Customers", exact=True)).to_be_visible()


def test_the_dashboard_shows_customers_and_margin_charts(server: Server, browser: Any) -> None:
    acme = _seeded(server)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _sign_in(page, server, acme.key)
    assert acme.key not in page.content()
    expect(page.locator("tbody")).to_contain_text("ann")
    page.get_by_role("link", name="ben", exact=True).click()
    expect(page.get_by_role("heading", name="Ledger")).to_be_visible()
    page.get_by_role("link", name="Margin").click()
    chart = page.locator("#margin-by-action svg")
    expect(chart).to_be_visible()
    assert chart.locator("rect").count() == 2  # image.generate and tts.speak
    expect(page.locator("#margin-distribution .mark-median")).to_have_count(1)
    expect(page.locator("#margin-distribution .mark-p90")).to_have_count(1)
    ratios = page.get_by_role("heading", name="Worst-case credit-to-cost ratio per action")
    expect(ratios).to_be_visible()
    expect(page.locator("main")).to_contain_text("image.generate")
    check_page(page)
    copy_for_readme(screenshot(page, "dashboard-desktop"))
    page.set_viewport_size(PHONE)
    copy_for_readme(screenshot(page, "dashboard-phone"))
    context.close()


@ON_SQLITE
def test_a_wrong_key_or_a_forged_session_is_refused(server: Server, page: Any) -> None:
    page.goto(f"{server.base}/dashboard/login")
    page.get_by_label("Tenant API key").fill("cg_nope_nope")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That API key is not valid.")
    page.context.add_cookies(
        [{"name": "cg_dashboard", "value": "forged.value", "url": f"{server.base}/dashboard"}]
    )
    assert page.goto(f"{server.base}/dashboard/margin").status == 403
    # Signing in without the form's CSRF token is refused.
    response = page.request.post(
        f"{server.base}/dashboard/login", form={"api_key": "cg_x_y", "csrf": "guess"}
    )
    assert response.status == 403


@ON_SQLITE
def test_revoking_the_key_ends_its_dashboard_session(server: Server, page: Any) -> None:
    acme = server.tenant()
    _sign_in(page, server, acme.key)
    (key,) = acme.api.get("/v1/api-keys").json()["data"]
    acme.api.post(f"/v1/api-keys/{key['id']}/revoke").raise_for_status()
    assert page.goto(f"{server.base}/dashboard").status == 401
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


@ON_SQLITE
def test_margin_by_action_and_model_over_time_and_the_what_if(server: Server, browser: Any) -> None:
    acme = server.tenant("Acme AI")
    cg, now = server.cg, datetime.now(UTC)
    real_clock = cg.clock
    # Charges on past days, made in-process on the server's database with the clock set back.
    try:
        cg.clock = lambda: now - timedelta(days=6)
        acme.ledger.create_customer("mia")
        acme.ledger.grant("mia", "credits", 1_000_000, kind="purchased", cost_basis="0.01")
        for day in range(6):
            cg.clock = lambda day=day: now - timedelta(days=6 - day)
            for action, model, cost in (
                ("chat.completion", "gpt-4o", "0.40"),
                ("chat.completion", "gpt-4o-mini", "0.02"),
                ("image.generate", "flux-schnell", str(Decimal("0.05") * (day + 1))),
            ):
                acme.ledger.charge(
                    "mia",
                    "credits",
                    1_000,
                    action=action,
                    dimensions={"model": model},
                    vendor_cost=cost,
                )
    finally:
        cg.clock = real_clock

    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(10_000)
        _sign_in(page, server, acme.key)
        sizes = weigh(page)
        page.goto(f"{server.base}/dashboard/margin?days=7", wait_until="networkidle")
        over_time = page.locator("#margin-over-time")
        expect(over_time.locator("svg.chart")).to_be_visible()
        series = over_time.locator("g.series")
        expect(series).to_have_count(3)
        assert sorted(series.evaluate_all("gs => gs.map(g => g.dataset.series)")) == [
            "chat.completion · gpt-4o",
            "chat.completion · gpt-4o-mini",
            "image.generate · flux-schnell",
        ]
        # A point for each day with charges (today has none yet); the image line falls day
        # by day as its cost rises (lower on screen is a larger y).
        points = over_time.locator("g.series[data-series^='image'] circle")
        expect(points).to_have_count(6)
        ys = [float(y) for y in points.evaluate_all("cs => cs.map(c => c.getAttribute('cy'))")]
        assert ys == sorted(ys) and len(set(ys)) == 6
        expect(over_time.locator(".legend")).to_contain_text("chat.completion · gpt-4o-mini")
        # The y axis: round values in dollars, none drawn over another.
        ticks = over_time.locator("text.tick")
        labels = ticks.all_text_contents()
        assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
        assert all(re.fullmatch(r"-?\$\d+\.\d\d", label) for label in labels), labels
        boxes = sorted(
            (b["y"], b["y"] + b["height"]) for t in ticks.all() if (b := t.bounding_box())
        )
        assert all(top >= bottom for (_, bottom), (top, _) in itertools.pairwise(boxes)), boxes
        # Money is written one way: the sign before the symbol, two decimals; ratios too.
        text = page.locator("main").inner_text()
        assert "$-" not in text
        assert not re.search(r"\$\d[\d,]*\.\d{3}", text)
        for cell in page.locator("section[aria-labelledby=by-action-h] tbody tr").all():
            ratio = cell.locator("td").nth(5).inner_text()
            assert re.fullmatch(r"\d+\.\d\d|—", ratio), ratio
        totals = page.locator("section[aria-labelledby=over-time-h] tbody")
        expect(totals).to_contain_text("image.generate · flux-schnell")
        # The what-if, at the default +20% and then at +100%.
        expect(page.locator("#what-if svg rect.bar-1")).to_have_count(2)
        page.get_by_label("Vendor price change").select_option("100")
        page.get_by_role("button", name="Show").click()
        expect(
            page.get_by_role("heading", name="What if vendor prices change +100.0%?")
        ).to_be_visible()
        expect(page.locator("#what-if .legend")).to_contain_text("vendor prices +100%")
        # The other margin views are still there.
        for heading in (
            "Margin by action",
            "Customer margins",
            "Worst-case credit-to-cost ratio per action",
        ):
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        check_page(page, sizes)
        screenshot(page, f"dashboard-margin-over-time-{name}")
        context.close()


@ON_SQLITE
def test_the_landing_page_finds_totals_and_acts_on_a_customer(server: Server, browser: Any) -> None:
    acme = server.tenant("Acme AI")
    ledger = acme.ledger
    for customer, name in (("cus_ann", "Ann Lee"), ("cus_bob", "Bob Stone"), ("cus_cy", "")):
        ledger.create_customer(customer, name=name)
        ledger.grant(customer, "credits", 20_000, kind="purchased", cost_basis="0.01")
    ledger.create_customer("cus_debt", name="Dee Bt", policy="overdraft", overdraft_limit=5_000)
    ledger.charge("cus_ann", "credits", 2_550, vendor_cost="0.10", action="chat.completion")
    ledger.charge("cus_debt", "credits", 1_234, vendor_cost="0.02", action="chat.completion")

    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(10_000)
        _sign_in(page, server, acme.key)
        sizes = weigh(page)
        page.goto(f"{server.base}/dashboard", wait_until="networkidle")
        # Totals in the assets' units; this month's revenue and margin in dollars.
        expect(page.get_by_test_id("outstanding-credits")).to_have_text("574.50 credits")
        expect(page.get_by_test_id("owed-credits")).to_contain_text("12.34 credits")
        expect(page.get_by_test_id("revenue-credits")).to_have_text("$0.26")
        expect(page.get_by_test_id("margin-credits")).to_have_text("$0.14 (52.9%)")
        # A balance below zero is marked in words and colour.
        debt = page.locator("tr[data-customer=cus_debt]")
        expect(debt).to_have_class(re.compile("row-neg"))
        expect(debt.locator(".flag")).to_have_text("below zero")
        expect(page.locator("tr.row-neg")).to_have_count(1)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        check_page(page, sizes)
        screenshot(page, f"dashboard-home-{name}", full_page=True)
        # The search runs on the server as it is typed, without reloading the page.
        page.evaluate("window.notReloaded = true")
        page.get_by_label("Find by id or name").fill("stone")
        expect(page.locator("#customers tbody tr")).to_have_count(1)
        expect(page.locator("#customers tbody")).to_contain_text("cus_bob")
        assert page.evaluate("window.notReloaded") is True
        screenshot(page, f"dashboard-search-{name}")
        context.close()

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(10_000)
    _sign_in(page, server, acme.key)
    # Grant credit from the row: a form of its own, once however often it is sent.
    page.get_by_role("link", name="Grant credit to cus_cy").click()
    expect(page.get_by_role("heading", name="Grant credit")).to_be_visible()
    check_page(page)
    page.get_by_label("Amount").fill("12.5")
    page.get_by_label("Kind").select_option("promotional")
    sent = page.locator("form.settings-form").evaluate(
        "f => Object.fromEntries(new FormData(f).entries())"
    )
    page.get_by_role("button", name="Grant").click()
    expect(page.get_by_test_id("granted")).to_have_text("Granted 12.50 credits (promotional).")
    expect(page.get_by_test_id("available-credits")).to_have_text("212.50")
    # The same form sent again (a double click, a resent POST) grants nothing more.
    again = page.request.post(f"{server.base}/dashboard/customers/cus_cy/grant", form=sent)
    assert again.ok and "Granted 12.50 credits" in again.text()
    assert len(ledger.lots("cus_cy")) == 2
    # Open portal: the customer's own portal, in a new tab.
    page.goto(f"{server.base}/dashboard")
    with context.expect_page() as opened:
        page.get_by_role("button", name="Open portal for cus_ann").click()
    portal = opened.value
    expect(portal.get_by_test_id("available-credits")).to_have_text("174.50")
    expect(portal.locator("main")).to_contain_text("This page is for Ann Lee")
    screenshot(portal, "dashboard-opened-portal-desktop")
    context.close()
