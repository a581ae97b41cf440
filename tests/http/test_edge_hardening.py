"""Smaller holes at the edge: oversized forms, a Stripe event that is not an object, signing out
of the dashboard, X-Forwarded-For from anyone, customer ids that cannot go in a path, the
expired portal fragment's headers, and redirects built from the Host header."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate
from creditgate.domain.errors import InvalidInput
from creditgate.portal.web import SECURITY_HEADERS
from creditgate.server.app import Settings, create_app
from creditgate.storage.tables import customers, provider_events
from tests.chaos.live import live_server
from tests.http.conftest import Api
from tests.stripe_fake import WEBHOOK_SECRET, sign

TOO_MANY_FIELDS = "&".join(f"f{i}=x" for i in range(21))
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def _signed_in(api: Api) -> TestClient:
    """A browser of its own, signed in to the dashboard with the tenant's key."""
    browser = TestClient(api.client.app)
    assert browser.get("/dashboard/login").status_code == 200
    csrf = browser.cookies.get("cg_dashboard_csrf")
    signed = browser.post(
        "/dashboard/login", data={"api_key": api.key, "csrf": csrf}, follow_redirects=False
    )
    assert signed.status_code == 303, signed.text
    return browser


def _refused_as_a_page(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


def test_a_form_with_too_many_fields_is_400(api: Api) -> None:
    anonymous = TestClient(api.client.app)
    _refused_as_a_page(
        anonymous.post("/dashboard/login", content=TOO_MANY_FIELDS, headers=FORM), 400
    )
    browser = _signed_in(api)
    _refused_as_a_page(
        browser.post("/dashboard/logout", content=TOO_MANY_FIELDS, headers=FORM), 400
    )
    assert browser.get("/dashboard").status_code == 200  # still signed in: nothing was done
    api.post("/v1/customers", {"id": "c1"})
    url = api.post("/v1/portal/sessions", {"customer": "c1"}).json()["url"]
    customer = TestClient(api.client.app)
    assert customer.get(url).status_code == 200
    for path in ("/portal/purchases", "/portal/auto-top-up"):
        _refused_as_a_page(customer.post(path, content=TOO_MANY_FIELDS, headers=FORM), 400)


@pytest.mark.parametrize("payload", ["[]", "1", "null", '"event"', "[{}]"])
def test_a_signed_stripe_event_that_is_not_an_object_is_400(api: Api, payload: str) -> None:
    assert api.put("/v1/payment-providers/stripe", {"webhook_secret": WEBHOOK_SECRET}).is_success

    def received() -> int:
        with api.ledger.cg.db.engine.connect() as conn:
            query = select(func.count()).where(provider_events.c.tenant_id == api.tenant_id)
            return int(conn.execute(query).scalar_one())

    response = api.client.post(
        "/v1/providers/stripe/webhook",
        params={"tenant": api.tenant_id},
        content=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_signature"
    assert received() == 0


def test_signing_out_ends_the_dashboard_session_on_every_server(api: Api, cg: Creditgate) -> None:
    browser = _signed_in(api)
    cookie = browser.cookies.get("cg_dashboard")
    assert cookie
    page = browser.get("/dashboard")
    assert page.status_code == 200
    # Another server process of the same deployment (same signing secret, same database).
    other = create_app(cg, Settings())
    other.state.portal_tokens = api.client.app.state.portal_tokens  # type: ignore[attr-defined]
    with TestClient(other) as second:
        second.cookies.set("cg_dashboard", cookie, path="/dashboard")
        assert second.get("/dashboard").status_code == 200
        out = browser.post(
            "/dashboard/logout", data={"csrf": _csrf(page.text)}, follow_redirects=False
        )
        assert out.status_code == 303
        # The cookie, kept by a copy of it, works nowhere any more.
        for client in (TestClient(api.client.app), second):
            client.cookies.set("cg_dashboard", cookie, path="/dashboard")
            _refused_as_a_page(client.get("/dashboard", follow_redirects=False), 401)
    # A new sign-in works.
    assert _signed_in(api).get("/dashboard").status_code == 200


@pytest.mark.parametrize(
    "bad",
    ["a/b", "a b", ".", "..", "a?b", "a#b", "a%2Fb", "é", "-lead", "_lead", "x" * 129, "a\\b"],
)
def test_a_customer_id_outside_the_safe_alphabet_is_refused_on_create(api: Api, bad: str) -> None:
    response = api.post("/v1/customers", {"id": bad})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "id"
    with pytest.raises(InvalidInput) as refused:
        api.ledger.create_customer(bad)
    assert refused.value.field == "external_id"
    with api.ledger.cg.db.engine.connect() as conn:
        query = select(func.count()).where(customers.c.tenant_id == api.tenant_id)
        assert conn.execute(query).scalar_one() == 0


def test_a_customer_id_of_the_safe_alphabet_is_usable_in_every_path(api: Api) -> None:
    for good in ("user@example.com", "org:42", "a.b-c_d", "X" * 128, "7"):
        assert api.post("/v1/customers", {"id": good}).status_code == 201
        grant = {"asset": "credits", "amount": 5}
        assert api.post(f"/v1/customers/{good}/grants", grant).status_code == 201
        wallet = api.get(f"/v1/customers/{good}/wallet")
        assert wallet.status_code == 200 and wallet.json()["balances"][0]["posted"] == 5


def test_the_expired_portal_fragment_has_the_security_headers(api: Api) -> None:
    fragment = TestClient(api.client.app).get("/portal/fragments/balance")
    assert fragment.status_code == 286  # htmx stops polling
    for name, value in SECURITY_HEADERS.items():
        assert fragment.headers[name] == value


def test_a_trailing_slash_redirect_is_relative(api: Api) -> None:
    evil = {"Host": "evil.example"}
    moved = api.get("/v1/customers/?limit=5", headers=evil, follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/v1/customers?limit=5"
    page = api.client.get("/dashboard/", headers=evil, follow_redirects=False)
    assert page.status_code == 307 and page.headers["location"] == "/dashboard"
    missing = api.get("/v1/nothing/", headers=evil, follow_redirects=False)
    assert missing.status_code == 404 and "location" not in missing.headers
    assert api.get("/v1/customers/", follow_redirects=True).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_x_forwarded_for_is_believed_only_from_named_proxies(
    request: pytest.FixtureRequest, tmp_path: Path, trusted: str
) -> None:
    env = {"CREDITGATE_AUTH_FAILURES_PER_MINUTE": "2", "CREDITGATE_TRUSTED_PROXIES": trusted}
    with (
        live_server(request, "sqlite", tmp_path, **env) as live,
        httpx.Client(verify=tls_context(), base_url=live.base, timeout=10) as http,
    ):
        bad = {"Authorization": "Bearer cg_zzzzzzzz_" + "b" * 43}
        statuses = [
            http.get("/v1/assets", headers={**bad, "X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(4)
        ]
    # Believed, each forwarded address has its own count; else they are all this client's.
    assert statuses == ([401] * 4 if trusted else [401, 401, 429, 429])


@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
def test_a_flag_is_a_json_boolean_not_a_number_or_a_string(api: Api, value: Any) -> None:
    api.post("/v1/customers", {"id": "acme"})
    member = api.post("/v1/customers/acme/members", {"external_id": "alice", "active": value})
    assert member.status_code == 422, member.text
    assert member.json()["field"] == "active"
    assert api.get("/v1/customers/acme/members").json()["data"] == []
    setting = {"threshold": 500, "pack": "starter", "enabled": value}
    top_up = api.put("/v1/customers/acme/auto-top-up/credits", setting)
    assert top_up.status_code == 422, top_up.text
    assert top_up.json()["field"] == "enabled"
    assert api.get("/v1/customers/acme/auto-top-up").json()["data"] == []
