"""The portal's purchases, receipts and auto top-up setting in a real browser: scoped to the
session's customer, reachable from the keyboard, accessible, light, at desktop and phone
widths."""

from __future__ import annotations

from typing import Any

from creditgate.portal.web import money, units
from tests.browser.a11y import check_page, tab_to, weigh
from tests.browser.conftest import (
    DESKTOP,
    ON_SQLITE,
    PHONE,
    SCREENSHOTS,
    Server,
    Tenant,
    playwright_api,
    screenshot,
)

expect = playwright_api().expect


def _shop(server: Server, *, allow_auto_top_up: bool) -> Tenant:
    acme = server.tenant("Northwind Labs")
    branding = {
        "name": "Northwind Labs",
        "accent_color": "#0d9488",
        "customers_manage_auto_top_up": allow_auto_top_up,
        "portal_demo_payments": True,  # Buy without Stripe counts as paid
    }
    acme.api.put("/v1/portal/branding", json=branding).raise_for_status()
    for code, amount, price in (("small", 10_000, "9"), ("large", 100_000, "80")):
        pack = {"code": code, "name": code.title(), "asset": "credits", "amount": amount}
        acme.api.post("/v1/packs", json={**pack, "price": price}).raise_for_status()
    return acme


@ON_SQLITE
def test_purchases_and_a_printable_receipt(server: Server, browser: Any) -> None:
    acme = _shop(server, allow_auto_top_up=False)
    acme.customer("hana", 2_000)
    acme.customer("ivan", 2_000)
    theirs = acme.ledger.buy("ivan", pack="large", provider="manual")
    theirs = acme.ledger.mark_paid(theirs.id)

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(acme.portal_url("hana"))
    page.get_by_role("button", name="Buy Small for 9.00 USD").click()
    expect(page.get_by_test_id("bought")).to_contain_text("100.00 credits added")
    expect(page.locator("section[aria-labelledby=purchases-h] tbody")).to_contain_text("Small")

    # The purchases page, from the navigation.
    page.get_by_role("navigation", name="Billing").get_by_role("link", name="Purchases").click()
    expect(page.get_by_role("heading", name="Purchases", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Purchases")).to_have_attribute("aria-current", "page")
    row = page.locator("tbody tr").first
    for shown in ("Small", "100.00 credits", "9.00 USD", "paid"):
        expect(row).to_contain_text(shown)
    assert theirs.id not in page.content()

    # Its receipt, from the keyboard.
    receipt_link = row.get_by_role("link", name="Receipt")
    tab_to(page, receipt_link)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Receipt")).to_be_visible()
    (mine,) = acme.ledger.purchases("hana")
    assert page.url == f"{server.base}/portal/purchases/{mine.id}"
    expect(page.get_by_test_id("receipt-id")).to_have_text(mine.id)
    expect(page.get_by_test_id("receipt-amount")).to_have_text("9.00 USD")
    expect(page.locator(".receipt-from")).to_have_text("Northwind Labs")
    expect(page.locator(".receipt")).to_contain_text("Invoice")
    expect(page.locator(".receipt")).to_contain_text(mine.paid_at.strftime("%Y-%m-%d"))
    expect(page.get_by_role("button", name="Print receipt")).to_be_visible()

    # Printed: no navigation, no buttons; the receipt as a PDF beside the screenshots.
    page.emulate_media(media="print")
    expect(page.get_by_role("navigation", name="Billing")).to_be_hidden()
    expect(page.get_by_role("button", name="Print receipt")).to_be_hidden()
    expect(page.get_by_test_id("receipt-amount")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.pdf(path=str(SCREENSHOTS / "receipt.pdf"), format="A4")
    page.emulate_media(media="screen")

    # Another customer's receipt by editing the address: not found, nothing of it shown.
    answer = page.goto(f"{server.base}/portal/purchases/{theirs.id}")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert "80.00" not in page.content() and "ivan" not in page.content()
    context.close()

    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        context.new_page().goto(acme.portal_url("hana"))  # the session cookie
        for path, shot in (
            ("/portal/purchases", "portal-purchases"),
            (f"/portal/purchases/{mine.id}", "portal-receipt"),
        ):
            page = context.new_page()
            sizes = weigh(page)
            page.goto(f"{server.base}{path}", wait_until="networkidle")
            check_page(page, sizes)
            screenshot(page, f"{shot}-{name}")
        context.close()


@ON_SQLITE
def test_the_auto_top_up_setting_is_shown_and_changed_in_the_portal(
    server: Server, browser: Any
) -> None:
    acme = _shop(server, allow_auto_top_up=True)
    acme.customer("jun", 5_000)
    large = next(p for p in acme.ledger.packs() if p.code == "large")

    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(acme.portal_url("jun"))
        sizes = weigh(page)
        page.get_by_role("link", name="Auto top-up").click()
        expect(page.get_by_role("heading", name="Auto top-up", exact=True)).to_be_visible()
        page.wait_for_load_state("networkidle")
        check_page(page, sizes)
        if name == "desktop":
            expect(page.get_by_test_id("setting-none")).to_be_visible()
            # Filled in and sent from the keyboard alone.
            enabled = page.get_by_label("Top up automatically")
            threshold = page.get_by_label("When available credit falls below")
            tab_to(page, enabled)
            expect(enabled).to_be_checked()
            page.keyboard.press("Tab")
            expect(threshold).to_be_focused()
            page.keyboard.type("25.005")  # more decimals than credits have: explained
            page.keyboard.press("Tab")
            expect(page.get_by_label("Buy this pack")).to_be_focused()
            page.keyboard.press("Tab")
            expect(page.get_by_label("At most this many top-ups a month")).to_be_focused()
            page.keyboard.type("4")
            page.keyboard.press("Tab")
            expect(page.get_by_role("button", name="Save auto top-up")).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.get_by_role("alert")).to_contain_text("at most 2 decimal places")
            expect(threshold).to_have_value("25.005")
            assert acme.ledger.auto_top_ups("jun") == []
            check_page(page)
            page.get_by_label("When available credit falls below").fill("25")
            page.get_by_label("Buy this pack").select_option(label=_option(large))
            page.get_by_label("At most this many top-ups a month").fill("4")
            page.get_by_role("button", name="Save auto top-up").click()
            expect(page.get_by_test_id("saved")).to_have_text("Saved.")
            expect(page.get_by_test_id("setting-state")).to_have_text("On")
            expect(page.get_by_test_id("setting-threshold")).to_have_text("25.00")
            expect(page.get_by_test_id("setting-pack")).to_contain_text("Large")
            expect(page.get_by_test_id("setting-cap")).to_have_text("4 per month")
            (setting,) = acme.ledger.auto_top_ups("jun")
            assert (setting.threshold, setting.pack_id, setting.monthly_limit) == (
                2_500,
                large.id,
                4,
            )
            # The form shows what is saved.
            expect(page.get_by_label("When available credit falls below")).to_have_value("25.00")
            expect(page.get_by_label("Buy this pack")).to_have_value(large.id)
            # Off again.
            page.get_by_label("Top up automatically").uncheck()
            page.get_by_role("button", name="Save auto top-up").click()
            expect(page.get_by_test_id("setting-state")).to_have_text("Off")
            assert acme.ledger.auto_top_ups("jun")[0].enabled is False
        screenshot(page, f"portal-auto-top-up-{name}")
        context.close()


def _option(pack: Any) -> str:
    return f"{pack.name}: {units(pack.amount, 2)} {pack.asset} for {money(pack.price)} USD"


@ON_SQLITE
def test_without_the_tenants_leave_the_setting_is_only_shown(server: Server, page: Any) -> None:
    acme = _shop(server, allow_auto_top_up=False)
    acme.customer("kai", 5_000)
    small = next(p for p in acme.ledger.packs() if p.code == "small")
    page.goto(acme.portal_url("kai"))
    nav = page.get_by_role("navigation", name="Billing")
    expect(nav.get_by_role("link", name="Auto top-up")).to_have_count(0)
    acme.ledger.set_auto_top_up("kai", "credits", threshold=1_000, pack=small.id, provider="manual")
    page.reload()
    nav.get_by_role("link", name="Auto top-up").click()
    expect(page.get_by_test_id("setting-threshold")).to_have_text("10.00")
    expect(page.get_by_test_id("setting-cap")).to_have_text("no cap")
    expect(page.get_by_role("button", name="Save auto top-up")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("To change auto top-up, contact Northwind Labs")
