"""The portal without Stripe: a purchase is a manual invoice, pending and granting nothing until
the tenant marks it paid; paid at once only in demo mode, which a tenant turns on itself (and
`serve --demo`'s tenant has on)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from creditgate.api import Creditgate
from creditgate.portal.reads import branding
from creditgate.server.demo import DEMO_TENANT_ID, seed_demo
from tests.http.conftest import Api

PACK = {"code": "starter", "name": "Starter", "asset": "credits", "amount": 100_000, "price": "9"}


def _shop(api: Api) -> str:
    pack = api.post("/v1/packs", PACK)
    assert pack.status_code == 201, pack.text
    api.funded_customer("bob", 500)
    return str(pack.json()["id"])


def _buy(api: Api, pack_id: str, times: int = 1) -> tuple[TestClient, Any]:
    """Bob opens the portal and clicks Buy `times` times, each on a page freshly loaded."""
    url = api.post("/v1/portal/sessions", {"customer": "bob"}).json()["url"]
    browser = TestClient(api.client.app)
    assert browser.get(url).status_code == 200
    answer = None
    for _ in range(times):
        home = browser.get("/portal").text
        fields = {
            "csrf": re.search(r'name="csrf" value="([^"]+)"', home).group(1),  # type: ignore[union-attr]
            "nonce": re.search(r'name="nonce" value="([^"]+)"', home).group(1),  # type: ignore[union-attr]
            "pack": pack_id,
        }
        answer = browser.post("/portal/purchases", data=fields, follow_redirects=True)
        assert answer.status_code == 200, answer.text
    return browser, answer


def _sold(api: Api) -> Any:
    now = api.ledger.cg.clock()
    report = api.ledger.revenue_report(start=now - timedelta(days=1), end=now + timedelta(days=1))
    return {line.currency: line.sold for line in report.lines}


def test_a_fresh_tenants_portal_buy_stays_pending_and_grants_nothing(api: Api) -> None:
    pack_id = _shop(api)
    assert api.get("/v1/portal/branding").json()["portal_demo_payments"] is False
    sold_before = _sold(api)
    _, page = _buy(api, pack_id, times=3)
    assert "Demo mode" not in page.text and "Purchase pending" in page.text
    purchases = api.get("/v1/customers/bob/purchases").json()["data"]
    assert [(p["status"], p["provider"]) for p in purchases] == [("pending", "manual")] * 3
    (balance,) = api.get("/v1/customers/bob/wallet").json()["balances"]
    assert balance["posted"] == 500  # no credit for money never received
    assert _sold(api) == sold_before
    # The tenant marks one paid once the money is in: that one, and only that one, grants.
    paid = api.post(
        f"/v1/purchases/{purchases[0]['id']}/mark-paid", headers={"Idempotency-Key": "paid-1"}
    )
    assert paid.status_code == 200, paid.text
    (balance,) = api.get("/v1/customers/bob/wallet").json()["balances"]
    assert balance["posted"] == 100_500


def test_demo_mode_is_the_tenants_explicit_choice(api: Api) -> None:
    pack_id = _shop(api)
    turned = api.put("/v1/portal/branding", {"name": "Acme", "portal_demo_payments": True})
    assert turned.status_code == 200 and turned.json()["portal_demo_payments"] is True
    kept = api.put("/v1/portal/branding", {"name": "Acme 2"})  # left out: stays on
    assert kept.json()["portal_demo_payments"] is True
    _, page = _buy(api, pack_id)
    assert "Demo mode" in page.text and "1,000.00 credits added" in page.text
    (purchase,) = api.get("/v1/customers/bob/purchases").json()["data"]
    assert purchase["status"] == "paid"
    refused = api.put("/v1/portal/branding", {"name": "Acme", "portal_demo_payments": "yes"})
    assert refused.status_code == 422 and refused.json()["field"] == "portal_demo_payments"


def test_the_demo_tenant_has_demo_mode_on(tmp_path: Path) -> None:
    with Creditgate(f"sqlite:///{tmp_path / 'demo.db'}") as cg:
        seed_demo(cg)
        assert branding(cg, DEMO_TENANT_ID).portal_demo_payments is True
        other = cg.create_tenant("not the demo")
        assert branding(cg, other.id).portal_demo_payments is False
