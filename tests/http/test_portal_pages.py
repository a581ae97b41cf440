"""Portal pages over HTTP: purchases and receipts scoped to the session's customer, the auto
top-up form protected against cross-site requests and offered only where the tenant allows."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from creditgate.server.app import Settings, create_app
from tests.http.conftest import Api

PACK = {"code": "starter", "name": "Starter", "asset": "credits", "amount": 10_000, "price": "9"}


def _shop(api: Api, *, allow_auto_top_up: bool | None = None) -> Api:
    assert api.post("/v1/packs", PACK).status_code == 201
    for customer in ("alice", "bob"):
        assert api.post("/v1/customers", {"id": customer}).status_code == 201
    if allow_auto_top_up is not None:
        branding = {"name": "Acme", "customers_manage_auto_top_up": allow_auto_top_up}
        answer = api.put("/v1/portal/branding", branding)
        assert answer.status_code == 200, answer.text
        assert answer.json()["customers_manage_auto_top_up"] is allow_auto_top_up
    return api


def _paid(api: Api, customer: str) -> str:
    purchase = api.ledger.buy(customer, pack="starter", provider="manual")
    return api.ledger.mark_paid(purchase.id).id


def _browser(api: Api, customer: str) -> TestClient:
    """A client of its own (its own cookie jar) holding a portal session for `customer`."""
    url = api.post("/v1/portal/sessions", {"customer": customer}).json()["url"]
    browser = TestClient(api.client.app)
    assert browser.get(url).status_code == 200  # the token moves into the cookie
    return browser


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_purchases_and_receipts_show_only_the_sessions_customer(api: Api, other: Api) -> None:
    _shop(api)
    mine, theirs = _paid(api, "alice"), _paid(api, "bob")
    pending = api.ledger.buy("alice", pack="starter", provider="manual").id
    _shop(other)
    elsewhere = _paid(other, "alice")  # the same customer id, in another tenant
    alice = _browser(api, "alice")

    listed = alice.get("/portal/purchases")
    assert listed.status_code == 200
    assert f"/portal/purchases/{mine}" in listed.text
    assert theirs not in listed.text and elsewhere not in listed.text
    assert pending not in listed.text  # listed, but a pending purchase has no receipt link
    assert listed.text.count(">pending<") == 1

    receipt = alice.get(f"/portal/purchases/{mine}")
    assert receipt.status_code == 200
    for shown in (mine, "9.00 USD", "100.00 credits", "Starter", "Invoice", "Date paid"):
        assert shown in receipt.text
    assert receipt.headers["Content-Security-Policy"].startswith("default-src 'self'")

    # Editing the address: another customer's, another tenant's, unpaid, unknown, malformed.
    for purchase in (theirs, elsewhere, pending, "pur_doesnotexist", "x" * 300, "%00"):
        answer = alice.get(f"/portal/purchases/{purchase}")
        assert answer.status_code == 404, purchase
        assert mine not in answer.text and "9.00 USD" not in answer.text
    # Naming a customer in the query string changes nothing.
    assert theirs not in alice.get("/portal/purchases?customer=bob").text
    # Without a session there is nothing to see.
    assert TestClient(api.client.app).get(f"/portal/purchases/{mine}").status_code == 401


def test_the_auto_top_up_form_is_csrf_protected_and_changes_only_this_customer(
    api: Api,
) -> None:
    _shop(api, allow_auto_top_up=True)
    alice, bob = _browser(api, "alice"), _browser(api, "bob")
    page = alice.get("/portal/auto-top-up")
    assert page.status_code == 200 and "Auto top-up is not set up." in page.text
    assert "Save auto top-up" in page.text
    pack_id = api.ledger.packs()[0].id
    form = {"enabled": "1", "threshold": "12.50", "pack": pack_id, "monthly_limit": "3"}

    # No CSRF token, a guessed one, or one from another customer's page: refused, nothing saved.
    for csrf in (None, "guess", _csrf(bob.get("/portal/auto-top-up").text)):
        fields = form if csrf is None else {**form, "csrf": csrf}
        answer = alice.post("/portal/auto-top-up", data=fields, follow_redirects=False)
        assert answer.status_code == 403
    assert api.ledger.auto_top_ups("alice") == []

    # With the page's token: saved for alice only, whatever customer the form names.
    fields = {**form, "csrf": _csrf(page.text), "customer": "bob"}
    answer = alice.post("/portal/auto-top-up", data=fields, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/auto-top-up?saved=1"
    (setting,) = api.ledger.auto_top_ups("alice")
    assert (setting.threshold, setting.pack_id, setting.monthly_limit, setting.enabled) == (
        1_250,
        pack_id,
        3,
        True,
    )
    assert setting.provider == "manual"  # no Stripe account: invoices
    assert api.ledger.auto_top_ups("bob") == []
    shown = alice.get("/portal/auto-top-up?saved=1").text
    assert "Saved." in shown and "12.50" in shown and "3 per month" in shown

    # Turned off, with no cap: the checkbox left out and the cap left empty.
    fields = {"threshold": "5", "pack": pack_id, "monthly_limit": "", "csrf": _csrf(shown)}
    assert alice.post("/portal/auto-top-up", data=fields).status_code == 200
    (setting,) = api.ledger.auto_top_ups("alice")
    assert (setting.enabled, setting.threshold, setting.monthly_limit) == (False, 500, None)


def test_wrong_values_are_explained_and_save_nothing(api: Api, other: Api) -> None:
    _shop(api, allow_auto_top_up=True)
    _shop(other)
    alice = _browser(api, "alice")
    csrf = _csrf(alice.get("/portal/auto-top-up").text)
    pack_id = api.ledger.packs()[0].id
    wrong: list[dict[str, Any]] = [
        {"threshold": "1.005", "pack": pack_id},  # more decimals than credits have
        {"threshold": "-1", "pack": pack_id},
        {"threshold": "1e9", "pack": pack_id},
        {"threshold": "10", "pack": pack_id, "monthly_limit": "0"},
        {"threshold": "10", "pack": pack_id, "monthly_limit": "2.5"},
        {"threshold": "10", "pack": other.ledger.packs()[0].id},  # another tenant's pack
        {"threshold": "10", "pack": "starter"},  # by code: the form sends ids
    ]
    for fields in wrong:
        answer = alice.post("/portal/auto-top-up", data={**fields, "csrf": csrf, "enabled": "1"})
        assert answer.status_code == 422, fields
        assert 'role="alert"' in answer.text
        assert f'value="{fields["threshold"]}"' in answer.text  # what was typed stays
    assert api.ledger.auto_top_ups("alice") == []


def test_the_form_is_not_offered_unless_the_tenant_allows_it(api: Api) -> None:
    _shop(api, allow_auto_top_up=False)
    pack_id = api.ledger.packs()[0].id
    api.ledger.set_auto_top_up(
        "alice", "credits", threshold=1_000, pack=pack_id, provider="manual", monthly_limit=2
    )
    alice = _browser(api, "alice")
    home = alice.get("/portal").text
    assert 'href="/portal/auto-top-up"' in home  # a setting exists: it is shown
    page = alice.get("/portal/auto-top-up")
    assert page.status_code == 200
    assert "10.00" in page.text and "2 per month" in page.text
    assert "Save auto top-up" not in page.text and 'name="threshold"' not in page.text
    csrf = _csrf(home)  # the session's token, from the top-up form
    fields = {"threshold": "1", "pack": pack_id, "csrf": csrf, "enabled": "1"}
    answer = alice.post("/portal/auto-top-up", data=fields)
    assert answer.status_code == 403
    assert api.ledger.auto_top_ups("alice")[0].threshold == 1_000
    # A customer without a setting is not shown the page in the navigation.
    assert 'href="/portal/auto-top-up"' not in _browser(api, "bob").get("/portal").text
    # Changing the branding without naming the flag keeps it as it was.
    kept = api.put("/v1/portal/branding", {"name": "Acme 2"}).json()
    assert kept["customers_manage_auto_top_up"] is False
    allowed = {"name": "Acme 2", "customers_manage_auto_top_up": True}
    assert api.put("/v1/portal/branding", allowed).json()["customers_manage_auto_top_up"]
    assert api.put("/v1/portal/branding", {"name": "Acme 3"}).json()["customers_manage_auto_top_up"]


def test_a_settings_page_of_a_closed_session_is_refused(cg: Any) -> None:
    with TestClient(create_app(cg, Settings())) as client:
        assert client.get("/portal/auto-top-up").status_code == 401
        assert client.post("/portal/auto-top-up", data={"csrf": "x"}).status_code == 401
        assert client.get("/portal/purchases").status_code == 401
