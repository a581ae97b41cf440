"""An organization in a real browser: the dashboard's customer page and the billing portal list
the members with their budgets and usage; a member's portal shows only the member's own
budget and usage. Each page at a desktop's and a phone's width, with the weight and
accessibility checks (tests/browser/a11y.py)."""

from __future__ import annotations

from typing import Any

from tests.browser.a11y import check_page, weigh
from tests.browser.conftest import (
    DESKTOP,
    ON_SQLITE,
    PHONE,
    Server,
    Tenant,
    playwright_api,
    screenshot,
)
from tests.browser.test_dashboard import _sign_in

expect = playwright_api().expect


def _organization(server: Server) -> Tenant:
    acme = server.tenant("Acme AI")
    ledger = acme.ledger
    ledger.create_customer("org_acme", name="Acme Research")
    ledger.grant("org_acme", "credits", 100_000, kind="purchased", cost_basis="0.01")
    for member, name in (("ada", "Ada Lovelace"), ("grace", "Grace Hopper"), ("linus", "")):
        ledger.create_member("org_acme", member, name=name)
    ledger.set_budget("org_acme", "credits", 5_000, period="month", member="ada")
    ledger.set_budget("org_acme", "credits", 2_000, period="day", member="grace", mode="soft")
    for member, action, amount in (
        ("ada", "chat.completion", 1_200),
        ("ada", "image.generate", 800),
        ("grace", "chat.completion", 2_500),
        ("linus", "chat.completion", 300),
    ):
        ledger.charge("org_acme", "credits", amount, member=member, action=action)
    ledger.authorize("org_acme", "credits", 500, member="ada")  # still held
    return acme


def _member_portal_url(acme: Tenant, member: str) -> str:
    body = {"customer": "org_acme", "member": member}
    response = acme.api.post("/v1/portal/sessions", json=body)
    assert response.status_code == 201, response.text
    url = str(response.json()["url"])
    acme.server.secrets.append(url.split("token=")[1])
    return url


def _fits(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@ON_SQLITE
def test_the_dashboard_and_the_portal_list_members_with_budgets_and_usage(
    server: Server, browser: Any
) -> None:
    acme = _organization(server)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(10_000)
        _sign_in(page, server, acme.key)
        sizes = weigh(page)
        page.goto(f"{server.base}/dashboard/customers/org_acme", wait_until="networkidle")
        members = page.locator("#members")
        expect(members).to_contain_text("Ada Lovelace")
        # 50 a month: 20 spent and 5 held leave 25.
        expect(page.get_by_test_id("remaining-ada-credits")).to_contain_text("25.00")
        expect(page.get_by_test_id("used-ada")).to_have_text("20.00 credits")
        # A soft budget may be passed: nothing remains, and it says it is soft.
        expect(page.get_by_test_id("remaining-grace-credits")).to_contain_text("0.00")
        expect(page.locator("tr[data-member=grace]").first).to_contain_text("(soft)")
        expect(page.locator("tr[data-member=linus]")).to_contain_text("none")
        _fits(page, viewport["width"])
        check_page(page, sizes)
        screenshot(page, f"dashboard-organization-{name}", full_page=True)

        # The organization's own portal shows the same members beside its wallet.
        sizes = weigh(page)
        page.goto(acme.portal_url("org_acme"), wait_until="networkidle")
        expect(page.get_by_test_id("available-credits")).to_have_text("947.00")
        expect(page.get_by_role("heading", name="Members")).to_be_visible()
        expect(page.get_by_test_id("used-grace")).to_have_text("25.00 credits")
        _fits(page, viewport["width"])
        check_page(page, sizes)
        screenshot(page, f"portal-organization-{name}", full_page=True)
        context.close()


@ON_SQLITE
def test_a_member_portal_shows_only_the_members_own_budget_and_usage(
    server: Server, browser: Any
) -> None:
    acme = _organization(server)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(10_000)
        sizes = weigh(page)
        page.goto(_member_portal_url(acme, "ada"), wait_until="networkidle")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Ada Lovelace")
        expect(page.get_by_test_id("remaining-credits")).to_have_text("25.00")
        expect(page.get_by_test_id("spent-credits")).to_have_text("20.00")
        expect(page.get_by_test_id("used")).to_contain_text("20.00 credits in 2 calls")
        assert page.locator("figure svg rect").count() > 0  # the member's own usage chart
        text = page.locator("main").inner_text()
        for elsewhere in ("Grace", "linus", "947.00", "Top up", "Members"):
            assert elsewhere not in text
        expect(page.get_by_role("link", name="Purchases")).to_have_count(0)
        _fits(page, viewport["width"])
        check_page(page, sizes)
        screenshot(page, f"portal-member-{name}", full_page=True)
        # The organization's pages are not the member's.
        refused = page.goto(f"{server.base}/portal/purchases")
        assert refused is not None and refused.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("Not available to members")
        context.close()
