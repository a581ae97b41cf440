"""The product team's dashboard in a real browser: sign-in with a key, customers, margin."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import (
    DESKTOP,
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
    expect(page.get_by_role("heading", name="Customers")).to_be_visible()


def test_the_dashboard_shows_customers_and_margin_charts(server: Server, browser: Any) -> None:
    acme = _seeded(server)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _sign_in(page, server, acme.key)
    assert acme.key not in page.content()
    expect(page.locator("tbody")).to_contain_text("ann")
    page.get_by_role("link", name="ben").click()
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
    copy_for_readme(screenshot(page, "dashboard-desktop"))
    page.set_viewport_size(PHONE)
    copy_for_readme(screenshot(page, "dashboard-phone"))
    context.close()


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


def test_revoking_the_key_ends_its_dashboard_session(server: Server, page: Any) -> None:
    acme = server.tenant()
    _sign_in(page, server, acme.key)
    (key,) = acme.api.get("/v1/api-keys").json()["data"]
    acme.api.post(f"/v1/api-keys/{key['id']}/revoke").raise_for_status()
    assert page.goto(f"{server.base}/dashboard").status == 401
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
