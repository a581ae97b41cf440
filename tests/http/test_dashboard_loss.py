"""The dashboard's margin page shows a loss as a loss, never as a 100% margin."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.conftest import FakeClock
from tests.http.conftest import Api
from tests.http.test_card_warnings import no_cache_writes
from tests.integration.test_margin_reports import add_charge


def cells(html: str, row_start: str) -> list[str]:
    """The cells of the first table row that starts with `row_start`."""
    found = re.search(rf"<tr><td>{re.escape(row_start)}</td>(.*?)</tr>", html, flags=re.DOTALL)
    assert found, row_start
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in found[1].split("</td>")][:-1]


def section(html: str, heading: str) -> str:
    return html.split(f'id="{heading}"')[1].split("</section>")[0]


def test_the_margin_page_says_loss_where_revenue_is_0_and_cost_is_not(
    api: Api, clock: FakeClock
) -> None:
    assert api.post("/v1/rate-cards", {"spec": no_cache_writes()}).status_code == 201
    clock.advance(seconds=1)
    yesterday = clock.now - timedelta(days=1)
    add_charge(api.ledger, "c1", "chat.completion", 0, revenue="0", cost="0.05", at=yesterday)
    add_charge(api.ledger, "c2", "image.generate", 100, revenue="0.10", cost="0.04", at=yesterday)

    client = api.client
    client.get("/dashboard/login")
    signed_in = client.post(
        "/dashboard/login",
        data={"api_key": api.key, "csrf": client.cookies.get("cg_dashboard_csrf")},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    html = client.get("/dashboard/margin").text

    over_time, by_action, worst = (
        section(html, h) for h in ("over-time-h", "by-action-h", "ratio-h")
    )
    # Charges, revenue, vendor cost, gross margin, margin.
    assert cells(over_time, "chat.completion")[4] == "loss"
    assert cells(over_time, "image.generate")[4] == "60.0%"
    # Charges, revenue, vendor cost, margin, credit-to-cost.
    assert cells(by_action, "chat.completion")[3] == "loss"
    # The card's worst case (ratio, list margin): cache writes priced at 0 are a total loss.
    assert cells(worst, "chat.completion")[:2] == ["0.00", "loss"]
    assert "100.0%" not in html


def test_the_margin_page_opens_on_the_asset_the_card_charges_in(api: Api, clock: FakeClock) -> None:
    # An asset that sorts first but has no charges (as USD in the demo).
    assert api.post("/v1/assets", {"code": "aaa_usd", "scale": 2}).status_code == 201
    assert api.post("/v1/rate-cards", {"spec": no_cache_writes()}).status_code == 201
    clock.advance(seconds=1)
    add_charge(api.ledger, "c2", "image.generate", 100, revenue="0.10", cost="0.04",
               at=clock.now - timedelta(days=1))  # fmt: skip
    client = api.client
    client.get("/dashboard/login")
    client.post(
        "/dashboard/login",
        data={"api_key": api.key, "csrf": client.cookies.get("cg_dashboard_csrf")},
        follow_redirects=False,
    )
    html = client.get("/dashboard/margin").text
    card_asset = no_cache_writes()["asset"]
    assert f"<option selected>{card_asset}</option>" in html
    assert cells(section(html, "over-time-h"), "image.generate")[4] == "60.0%"
    chosen = client.get("/dashboard/margin?asset=aaa_usd").text
    assert "<option selected>aaa_usd</option>" in chosen
