"""An organization in the dashboard and the billing portal, over HTTP: the customer page and
the portal list members with their budgets and usage; a member's portal session sees only
its own budgets and usage, and none of the organization's pages."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from tests.http.conftest import Api
from tests.http.test_dashboard_home import csrf_of, signed_in


def organization(api: Api) -> None:
    """acme: ada (a daily hard budget of 50 credits, 12.34 used), bob (no budget, 3 used),
    cy (inactive); and another customer with a member of the same name."""
    ledger = api.ledger
    api.funded_customer("acme", 100_000)
    for name, title in (("ada", "Ada Lovelace"), ("bob", ""), ("cy", "Cy")):
        ledger.create_member("acme", name, name=title)
    ledger.update_member("acme", "cy", active=False)
    ledger.set_budget("acme", "credits", 5_000, period="day", member="ada")
    ledger.charge("acme", "credits", 1_034, member="ada", action="chat.completion")
    ledger.authorize("acme", "credits", 200, member="ada")  # held
    ledger.charge("acme", "credits", 300, member="bob", action="image.generate")
    api.funded_customer("globex", 1_000)
    ledger.create_member("globex", "ada")
    ledger.charge("globex", "credits", 999, member="ada")


def portal(api: Api, body: dict[str, str]) -> TestClient:
    """A browser of its own holding a portal session made with `body`."""
    made = api.post("/v1/portal/sessions", body)
    assert made.status_code == 201, made.text
    browser = TestClient(api.client.app)
    assert browser.get(made.json()["url"]).status_code == 200
    return browser


def cells(html: str, member: str) -> list[str]:
    """The text of each cell of a member's rows in the members table."""
    rows = re.findall(rf'<tr data-member="{member}">(.*?)</tr>', html, re.S)
    found = []
    for row in rows:
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S):
            found.append(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip())
    return found


def test_the_dashboard_customer_page_lists_members_with_budgets_and_usage(api: Api) -> None:
    organization(api)
    browser = signed_in(api)
    page = browser.get("/dashboard/customers/acme").text
    ada = cells(page, "ada")
    assert ada[:6] == [
        "Ada Lovelace ada",
        "active",
        "50.00 credits a day",
        "12.34 (2.00 held)",
        ada[4],
        "10.34 credits",
    ]
    assert ada[4].startswith("37.66 20")  # 50 - 10.34 spent - 2 held, until the day's end
    assert cells(page, "bob")[:6] == ["bob", "active", "none", "", "", "3.00 credits"]
    assert cells(page, "cy")[:2] == ["Cy cy", "inactive"]
    assert "9.99" not in page  # globex's ada is another member

    # Each member's portal opens from there, as that member.
    opened = browser.post(
        "/dashboard/customers/acme/portal",
        data={"csrf": csrf_of(page), "member": "ada"},
        follow_redirects=False,
    )
    assert opened.status_code == 303
    as_ada = browser.get(opened.headers["location"]).text
    assert "Your budgets" in as_ada and 'data-testid="remaining-credits">37.66<' in as_ada
    unknown = browser.post(
        "/dashboard/customers/acme/portal", data={"csrf": csrf_of(page), "member": "zed"}
    )
    assert unknown.status_code == 404

    # A customer with no members shows no members' section.
    api.funded_customer("solo", 100)
    assert 'id="members"' not in browser.get("/dashboard/customers/solo").text


def test_the_portal_shows_an_organization_its_members(api: Api) -> None:
    organization(api)
    page = portal(api, {"customer": "acme"}).get("/portal").text
    assert "Members" in page and 'data-testid="available-credits"' in page
    assert cells(page, "ada")[2:4] == ["50.00 credits a day", "12.34 (2.00 held)"]
    assert cells(page, "bob")[5] == "3.00 credits"
    assert "Open the portal as" not in page  # the dashboard's action, not the customer's


def test_a_member_session_sees_only_its_own_budget_and_usage(api: Api) -> None:
    organization(api)
    ada = portal(api, {"customer": "acme", "member": "ada"})
    page = ada.get("/portal").text
    assert 'data-testid="remaining-credits">37.66<' in page
    assert 'data-testid="spent-credits">10.34<' in page
    assert "Used in the last 30 days: 10.34 credits in 1 call." in page
    assert "This page is for Ada Lovelace" in page
    # Nothing of the wallet, the other members or the organization's pages.
    assert "available-credits" not in page and "bob" not in page and "Members" not in page
    assert "/portal/purchases" not in page
    for path in ("/portal/purchases", "/portal/auto-top-up"):
        refused = ada.get(path)
        assert refused.status_code == 403 and "Not available to members" in refused.text
    assert ada.post("/portal/purchases", data={"pack": "x"}).status_code == 403
    assert "This page has expired" in ada.get("/portal/fragments/balance").text

    bob = portal(api, {"customer": "acme", "member": "bob"}).get("/portal").text
    assert "No budget" in bob and "3.00 credits in 1 call" in bob


def test_a_portal_session_for_an_unknown_member_is_404_and_makes_no_link(api: Api) -> None:
    organization(api)
    for body in ({"customer": "acme", "member": "zed"}, {"customer": "globex", "member": "bob"}):
        answer = api.post("/v1/portal/sessions", body)
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "unknown_member" and answer.json()["field"] == "member"
        assert "url" not in answer.json()
    bad = api.post("/v1/portal/sessions", {"customer": "acme", "member": ""})
    assert bad.status_code == 422 and "member" in bad.text
