"""The portal's overview over HTTP: ledger rows say what each movement was (a charge's action
and model, a grant's kind), the footer names the customer by name and never by an id, and the
usage chart spans the days with usage and says its unit."""

from __future__ import annotations

import re
from datetime import timedelta

from starlette.testclient import TestClient

from tests.conftest import FakeClock
from tests.http.conftest import Api


def _browser(api: Api, customer: str) -> TestClient:
    url = api.post("/v1/portal/sessions", {"customer": customer}).json()["url"]
    browser = TestClient(api.client.app)
    assert browser.get(url).status_code == 200
    return browser


def activity(html: str) -> list[tuple[str, str]]:
    """(what, change) of each row of the activity table, newest first."""
    body = html.split('id="activity"')[1].split("</table>")[0]
    rows = re.findall(
        r'<td data-label="What">(.*?)</td>\s*<td data-label="Change"[^>]*>(.*?)</td>', body
    )
    return [(what.replace("&amp;", "&"), change) for what, change in rows]


def test_ledger_rows_say_what_each_movement_was(api: Api, clock: FakeClock) -> None:
    body = {"external_id": "cus_7f3a", "name": "Ada Lovelace"}
    assert api.post("/v1/customers", body).status_code == 201
    ledger = api.ledger
    ledger.grant("cus_7f3a", "credits", 10_000, kind="purchased", cost_basis="0.01")
    soon = clock.now + timedelta(hours=1)
    # Drawn last (a higher priority number), so it expires unused.
    ledger.grant("cus_7f3a", "credits", 500, kind="promotional", priority=100, expires_at=soon)
    clock.advance(seconds=1)
    chat = ledger.charge(
        "cus_7f3a", "credits", 1_200, action="chat.completion", dimensions={"model": "gpt-4o"}
    )
    ledger.charge("cus_7f3a", "credits", 300, action="image.generate")
    ledger.charge("cus_7f3a", "credits", 100)
    ledger.refund_charge(chat.id, reason="bad answer", amount=200)
    clock.advance(hours=2)
    ledger.expire_lots()

    alice = _browser(api, "cus_7f3a")
    html = alice.get("/portal").text
    assert activity(html) == [
        ("Expired: promotional credit", "-5.00 credits"),
        ("Refund: chat.completion · gpt-4o", "2.00 credits"),
        ("Usage", "-1.00 credits"),
        ("image.generate", "-3.00 credits"),
        ("chat.completion · gpt-4o", "-12.00 credits"),
        ("Promotional credit", "5.00 credits"),
        ("Purchased credit", "100.00 credits"),
    ]
    assert "charge</td>" not in html
    # The Change header lines up with its numbers: both are right-aligned.
    assert '<th scope="col" class="num">Change</th>' in html
    # The footer names the customer by the product's name for them, never by the id.
    footer = html.split("</section>")[-1]
    assert "This page is for Ada Lovelace" in footer and "cus_7f3a" not in footer
    # Without a name, it names no one.
    assert api.post("/v1/customers", {"external_id": "cus_9b1c"}).status_code == 201
    plain = _browser(api, "cus_9b1c").get("/portal").text.split("</section>")[-1]
    assert "This link expires at" in plain and "cus_9b1c" not in plain


def test_the_usage_chart_spans_the_days_with_usage_and_labels_its_unit(
    api: Api, clock: FakeClock
) -> None:
    api.funded_customer("cus_1", 100_000)
    clock.advance(seconds=1)
    api.ledger.charge("cus_1", "credits", 250, action="chat.completion")

    def chart(query: str = "") -> tuple[str, str]:
        """The chart's title and its first day."""
        html = _browser(api, "cus_1").get(f"/portal{query}").text  # a session lasts an hour
        title = re.search(r'<svg class="chart"[^>]*aria-label="([^"]+)"', html)
        assert title, html
        assert '<text class="unit" x="0" y="11">credits per day</text>' in html
        svg = html.split('<svg class="chart"')[1].split("</svg>")[0]
        days = re.findall(r'text-anchor="middle">(\d\d-\d\d)</text>', svg)
        return title[1], days[0]

    # One charge today: a week of bars, not a month of empty days.
    week_ago = (clock.now - timedelta(days=6)).strftime("%m-%d")
    assert chart() == ("credits used per day, all actions, last 7 days", week_ago)
    # Usage 20 days ago as well: the chart starts that day.
    first = clock.now
    clock.advance(days=20)
    api.ledger.charge("cus_1", "credits", 400, action="chat.completion")
    since = f"credits used per day, all actions, since {first.date().isoformat()}"
    assert chart() == (since, first.strftime("%m-%d"))
    # A period the customer picks is kept.
    assert chart("?days=90")[0] == "credits used per day, all actions, last 90 days"
    # The y axis counts in credits (one charge of 4.00): round ticks, none finer than 0.01.
    html = _browser(api, "cus_1").get("/portal").text
    svg = html.split('<svg class="chart"')[1].split("</svg>")[0]
    ticks = re.findall(r'text-anchor="end">([\d.,]+)</text>', svg)
    assert ticks == ["0", "1", "2", "3", "4"]
