"""The dashboard's landing page over HTTP: customers found by id or name on the server, the
tenant's totals in the assets' units, negative balances marked, and the per-customer actions
(open the portal, grant credit) behind the dashboard's CSRF token, a grant once per form."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

from starlette.testclient import TestClient

from tests.conftest import FakeClock
from tests.http.conftest import Api


def signed_in(api: Api) -> TestClient:
    """A browser of its own (its own cookies) signed in to the dashboard with the tenant key."""
    browser = TestClient(api.client.app)
    browser.get("/dashboard/login")
    answer = browser.post(
        "/dashboard/login",
        data={"api_key": api.key, "csrf": browser.cookies.get("cg_dashboard_csrf")},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    return browser


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def nonce_of(html: str) -> str:
    found = re.search(r'name="nonce" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def listed(html: str) -> list[str]:
    return re.findall(r'<tr class="[^"]*" data-customer="([^"]+)"', html)


def test_search_finds_customers_by_id_or_name_in_any_case_and_only_this_tenants(
    api: Api, other: Api
) -> None:
    for customer, name in (("cus_ann", "Ann Lee"), ("cus_bob", "Bob Stone"), ("x_1", "50% off")):
        body = {"external_id": customer, "name": name}
        assert api.post("/v1/customers", body).status_code == 201
    assert other.post("/v1/customers", {"external_id": "cus_annex"}).status_code == 201
    browser = signed_in(api)

    assert listed(browser.get("/dashboard").text) == ["cus_ann", "cus_bob", "x_1"]
    assert listed(browser.get("/dashboard?q=ANN").text) == ["cus_ann"]
    assert listed(browser.get("/dashboard?q=stone").text) == ["cus_bob"]  # by name
    # % and _ are the customer's characters, not wildcards.
    assert listed(browser.get("/dashboard?q=%25").text) == ["x_1"]
    assert listed(browser.get("/dashboard?q=_").text) == ["cus_ann", "cus_bob", "x_1"]
    assert listed(browser.get("/dashboard?q=s_b").text) == ["cus_bob"]
    assert listed(browser.get("/dashboard?q=cus%5Fb").text) == ["cus_bob"]
    assert listed(browser.get("/dashboard?q=s%25b").text) == []
    none = browser.get("/dashboard?q=annex").text
    assert listed(none) == [] and "No customer's id or name contains “annex”" in none

    # What the search box swaps in as it is typed in: the table alone.
    fragment = browser.get("/dashboard/fragments/customers?q=bob")
    assert fragment.status_code == 200
    assert listed(fragment.text) == ["cus_bob"] and "<h1>" not in fragment.text
    assert browser.get("/dashboard?q=" + "x" * 201).status_code == 422
    # Signed out, neither answers with data.
    anonymous = TestClient(api.client.app)
    assert "cus_ann" not in anonymous.get("/dashboard/fragments/customers").text
    # Typed into by a page whose session ended: htmx is told to go to the sign-in form.
    typed = anonymous.get("/dashboard/fragments/customers?q=a", headers={"HX-Request": "true"})
    assert typed.status_code == 204 and typed.headers["HX-Redirect"] == "/dashboard/login"


def test_totals_in_the_assets_units_and_negative_balances_marked(
    api: Api, clock: FakeClock
) -> None:
    assert api.post("/v1/assets", {"code": "gpu_minutes", "scale": 0}).status_code == 201
    api.funded_customer("cus_paid", 10_000)  # 100.00 credits at $0.01 each
    body = {"external_id": "cus_debt", "policy": "overdraft", "overdraft_limit": 5_000}
    assert api.post("/v1/customers", body).status_code == 201
    grant = {"asset": "gpu_minutes", "amount": 7, "kind": "promotional"}
    assert api.post("/v1/customers/cus_debt/grants", grant).status_code == 201
    clock.advance(seconds=1)
    charges = (
        {"customer": "cus_paid", "asset": "credits", "amount": 2_550, "vendor_cost": "0.10"},
        {"customer": "cus_debt", "asset": "credits", "amount": 1_234, "vendor_cost": "0.02"},
    )
    for charge in charges:
        answer = api.post("/v1/charges", charge)
        assert answer.status_code == 201 and answer.json()["status"] == "posted", answer.text
    html = signed_in(api).get("/dashboard").text

    def shown(test_id: str) -> str:
        found = re.search(rf'data-testid="{test_id}">(.*?)</dd>', html, flags=re.DOTALL)
        assert found, test_id
        return re.sub(r"<[^>]+>", "", found[1]).strip()

    # Held by customers: 100.00 - 25.50 (the debt of cus_debt is owed, not held).
    assert shown("outstanding-credits") == "74.50 credits"
    assert shown("owed-credits") == "12.34 credits 1 below zero"
    assert shown("used-credits") == "37.84 credits"
    assert shown("outstanding-gpu_minutes") == "7 gpu_minutes"
    # Revenue: 25.50 credits at $0.01; the debt earned nothing yet. Cost $0.12.
    assert shown("revenue-credits") == "$0.26"
    assert shown("margin-credits") == "$0.14 (52.9%)"
    assert shown("revenue-gpu_minutes") == "$0.00"
    # The customer below zero is marked, in words as well as colour.
    row = html.split('data-customer="cus_debt"')[0].rsplit("<tr", 1)[1]
    assert "row-neg" in row
    debt_row = html.split('data-customer="cus_debt"')[1].split("</tr>")[0]
    assert '-12.34 credits <span class="flag">below zero</span>' in debt_row
    assert "7 gpu_minutes" in debt_row
    paid_row = html.split('data-customer="cus_paid"')[1].split("</tr>")[0]
    assert "74.50 credits" in paid_row and "below zero" not in paid_row
    # The month's figures leave last month's charges out.
    clock.advance(days=40)
    later = signed_in(api).get("/dashboard").text
    assert 'data-testid="used-credits">0.00 credits' in later
    assert 'data-testid="outstanding-credits">74.50 credits' in later


def test_a_grant_from_the_dashboard_is_made_once_per_form_and_needs_the_csrf_token(
    api: Api, other: Api, clock: FakeClock
) -> None:
    assert api.post("/v1/customers", {"external_id": "cus_ann"}).status_code == 201
    browser = signed_in(api)
    form = browser.get("/dashboard/customers/cus_ann/grant")
    assert form.status_code == 200
    csrf, nonce = csrf_of(form.text), nonce_of(form.text)
    expires = (clock.now + timedelta(days=30)).date().isoformat()
    fields = {"csrf": csrf, "nonce": nonce, "asset": "credits", "amount": "12.5"}
    fields |= {"kind": "promotional", "expires": expires}

    # Without the page's CSRF token: refused, nothing granted.
    forged = browser.post("/dashboard/customers/cus_ann/grant", data={**fields, "csrf": "x"})
    assert forged.status_code == 403
    assert api.ledger.lots("cus_ann") == []

    done = browser.post("/dashboard/customers/cus_ann/grant", data=fields, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"].startswith("/dashboard/customers/cus_ann?granted=lot_")
    page = browser.get(done.headers["location"]).text
    assert "Granted 12.50 credits (promotional, expires" in page
    # The same form sent again (a double click, a reload) grants nothing more.
    again = browser.post("/dashboard/customers/cus_ann/grant", data=fields, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == done.headers["location"]
    (lot,) = api.ledger.lots("cus_ann")
    assert (lot.amount, lot.kind, lot.metadata) == (1_250, "promotional", {"source": "dashboard"})
    # The same form with another amount is refused and changes nothing.
    changed = browser.post("/dashboard/customers/cus_ann/grant", data={**fields, "amount": "99"})
    assert changed.status_code == 400
    assert "already granted credit with other values" in changed.text
    assert nonce_of(changed.text) != nonce  # a new form, which may be sent
    assert len(api.ledger.lots("cus_ann")) == 1

    # Wrong values are said on the form and grant nothing.
    for wrong, said in (
        ({"amount": "1.234"}, "at most 2 decimal places"),
        ({"amount": "-5"}, "must be a number of credits"),
        ({"amount": "0"}, "more than 0"),
        ({"asset": "gold"}, "Choose one of the assets"),
        ({"kind": "purchased"}, "Choose promotional or adjustment"),
        ({"expires": clock.now.date().isoformat()}, "a day after today"),
        ({"expires": "soon"}, "must be a date"),
    ):
        answer = browser.post(
            "/dashboard/customers/cus_ann/grant", data={**fields, "nonce": "n2", **wrong}
        )
        assert answer.status_code == 400, wrong
        assert said in answer.text, (wrong, answer.text)
    assert len(api.ledger.lots("cus_ann")) == 1
    # Another tenant's customer is not found from here.
    assert other.post("/v1/customers", {"external_id": "cus_zed"}).status_code == 201
    elsewhere = browser.post("/dashboard/customers/cus_zed/grant", data={**fields, "nonce": "n3"})
    assert elsewhere.status_code == 404
    wrong = {**fields, "nonce": "n4", "amount": "x"}
    assert browser.post("/dashboard/customers/cus_zed/grant", data=wrong).status_code == 404
    assert other.ledger.lots("cus_zed") == []


def test_open_portal_signs_the_dashboard_user_into_that_customers_portal(
    api: Api, other: Api
) -> None:
    api.funded_customer("cus_ann", 4_200)
    assert other.post("/v1/customers", {"external_id": "cus_zed"}).status_code == 201
    browser = signed_in(api)
    csrf = csrf_of(browser.get("/dashboard").text)

    refused = browser.post("/dashboard/customers/cus_ann/portal", data={"csrf": "nope"})
    assert refused.status_code == 403
    opened = browser.post(
        "/dashboard/customers/cus_ann/portal", data={"csrf": csrf}, follow_redirects=False
    )
    assert opened.status_code == 303
    target = urlparse(opened.headers["location"])
    assert target.path == "/portal" and parse_qs(target.query)["token"]
    portal = browser.get(opened.headers["location"])
    assert portal.status_code == 200
    assert 'data-testid="available-credits">42.00<' in portal.text
    # Its back link returns to the customer's dashboard page.
    assert re.search(r'class="back" href="http://[^"]+/dashboard/customers/cus_ann"', portal.text)
    missing = browser.post("/dashboard/customers/cus_zed/portal", data={"csrf": csrf})
    assert missing.status_code == 404
