"""Usage a wallet cannot pay for is never silent: a settle past what the policy allows raises
`charge.shortfall` and shows in the margin report (HTTP, CLI, in-process); a one-step charge
that does not fit is declined instead, under every policy."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from creditgate.cli.pricing import report_app
from creditgate.services.pricing import margin
from tests.conftest import FakeClock
from tests.http.conftest import Api
from tests.integration.test_plans import events_of

CARD: dict[str, Any] = {
    "asset": "credits",
    "credit_value_usd": "0.10",
    "actions": {
        "image.generate": {"prices": [{"flat": "1", "vendor": {"flat": "0.04"}}]},
    },
}


def post(api: Api, url: str, body: Any = None) -> Any:
    return api.post(url, body, headers={"Idempotency-Key": uuid.uuid4().hex})


@pytest.fixture
def shop(api: Api) -> Api:
    """A card valuing a credit at $0.10; c1 (block) holds 10 credits bought at $0.10 each,
    c2 (overdraft down to 3 credits) holds none."""
    assert post(api, "/v1/rate-cards", {"spec": CARD}).status_code == 201
    assert post(api, "/v1/customers", {"id": "c1"}).status_code == 201
    grant = {"asset": "credits", "amount": 1_000, "kind": "purchased", "cost_basis": "0.10"}
    assert post(api, "/v1/customers/c1/grants", grant).status_code == 201
    c2 = {"id": "c2", "policy": "overdraft", "overdraft_limit": 300}
    assert post(api, "/v1/customers", c2).status_code == 201
    return api


def settle_past_the_hold(api: Api, customer: str, held: int, used: int, action: str) -> Any:
    body = {"customer": customer, "asset": "credits", "amount": held}
    hold = post(api, "/v1/authorizations", body)
    assert hold.status_code == 201 and hold.json()["approved"], hold.text
    settled = post(
        api, f"/v1/authorizations/{hold.json()['id']}/settle", {"amount": used, "action": action}
    )
    assert settled.status_code == 200, settled.text
    return settled.json()["charge"]


def available(api: Api, customer: str) -> int:
    balances = api.get(f"/v1/customers/{customer}/wallet").json()["balances"]
    return sum(int(b["available"]) for b in balances)  # no row yet: nothing available


def test_a_settle_past_the_policy_raises_charge_shortfall(shop: Api) -> None:
    # block: 8 credits held, 15 used; the wallet pays its 10 and no more.
    charge = settle_past_the_hold(shop, "c1", 800, 1_500, "chat.completion")
    assert (charge["requested"], charge["amount"], charge["shortfall"]) == (1_500, 1_000, 500)
    assert available(shop, "c1") == 0
    # overdraft: 3 credits held on an empty wallet, 5 used; it goes down to -3 and no further.
    debt = settle_past_the_hold(shop, "c2", 300, 500, "image.generate")
    assert (debt["amount"], debt["debt"], debt["shortfall"]) == (300, 300, 200)
    assert available(shop, "c2") == -300

    raised = events_of(shop.ledger, "charge.shortfall")
    assert raised == [
        {
            "charge": charge["id"],
            "authorization": charge["hold_id"],
            "customer": "c1",
            "asset": "credits",
            "action": "chat.completion",
            "requested": 1_500,
            "amount": 1_000,
            "shortfall": 500,
            "policy": "block",
            "limited_by": "policy",
        },
        {
            "charge": debt["id"],
            "authorization": debt["hold_id"],
            "customer": "c2",
            "asset": "credits",
            "action": "image.generate",
            "requested": 500,
            "amount": 300,
            "shortfall": 200,
            "policy": "overdraft",
            "limited_by": "policy",
        },
    ]
    # A settle the wallet can pay raises nothing.
    assert post(shop, "/v1/customers/c1/grants", {"asset": "credits", "amount": 500}).is_success
    paid = settle_past_the_hold(shop, "c1", 100, 400, "chat.completion")
    assert (paid["amount"], paid["shortfall"]) == (400, 0)
    assert len(events_of(shop.ledger, "charge.shortfall")) == 2


def test_endpoints_can_subscribe_to_charge_shortfall(shop: Api) -> None:
    endpoint = {"url": "https://example.com/hooks", "event_types": ["charge.shortfall"]}
    created = post(shop, "/v1/webhook-endpoints", endpoint)
    assert created.status_code == 201, created.text
    assert created.json()["event_types"] == ["charge.shortfall"]


@pytest.mark.parametrize(("customer", "amount"), [("c1", 1_001), ("c2", 301)])
def test_a_one_step_charge_that_does_not_fit_is_declined_never_short(
    shop: Api, customer: str, amount: int
) -> None:
    before = available(shop, customer)
    body = {"customer": customer, "asset": "credits", "amount": amount, "action": "x"}
    refused = post(shop, "/v1/charges", body)
    assert refused.status_code == 201, refused.text
    answer = refused.json()
    assert (answer["status"], answer["amount"], answer["shortfall"]) == ("declined", 0, 0)
    assert available(shop, customer) == before
    assert events_of(shop.ledger, "charge.shortfall") == []
    assert events_of(shop.ledger, "authorization.declined")[-1]["requested"] == amount
    # One minor unit less fits, and is charged in full.
    fits = post(shop, "/v1/charges", {**body, "amount": amount - 1}).json()
    assert (fits["status"], fits["amount"], fits["shortfall"]) == ("posted", amount - 1, 0)


def shortfalls(rows: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    return {row["key"]: row["shortfall"] for row in rows}


def test_the_margin_report_counts_revenue_lost_to_shortfall(
    shop: Api, clock: FakeClock, db_url: str
) -> None:
    start = clock.now
    settle_past_the_hold(shop, "c1", 800, 1_500, "chat.completion")
    settle_past_the_hold(shop, "c2", 300, 500, "image.generate")
    image = {"customer": "c2", "action": "image.generate", "dimensions": {}}
    assert post(shop, "/v1/customers/c2/grants", {"asset": "credits", "amount": 10_000}).is_success
    assert post(shop, "/v1/charges", image).json()["shortfall"] == 0
    clock.advance(hours=1)
    period = {"from": start.isoformat(), "to": clock.now.isoformat()}

    body = shop.get("/v1/reports/margin", params=period).json()["report"]
    assert shortfalls(body["rows"]) == {
        "chat.completion": {"charges": 1, "amount": 500, "credits": "5", "value": "0.5"},
        "image.generate": {"charges": 1, "amount": 200, "credits": "2", "value": "0.2"},
    }
    assert body["total"]["shortfall"] == {
        "charges": 2,
        "amount": 700,
        "credits": "7",
        "value": "0.7",
    }
    assert body["total"]["charges"] == 3  # the charge paid in full is not a shortfall
    by_customer = shop.get("/v1/reports/margin", params={**period, "by": "customer"}).json()
    assert shortfalls(by_customer["report"]["rows"])["c2"]["amount"] == 200

    # The in-process API answers the same.
    full = shop.ledger.margin_report(start=start, end=clock.now)
    assert full.report.total.shortfall.amount == 700
    assert str(full.report.total.shortfall.value) == "0.700"
    shown_over_http = margin.Shortfall.model_validate(body["total"]["shortfall"])
    assert shown_over_http == full.report.total.shortfall

    # So does the command line: in JSON, and said out loud in the table.
    app = typer.Typer()
    app.add_typer(report_app, name="report")
    common = ["--from", period["from"], "--to", period["to"], "--db", db_url]
    common += ["--tenant", shop.tenant_id]
    shown = CliRunner().invoke(app, ["report", "margin", "--json", *common])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["report"]["total"]["shortfall"]["amount"] == 700
    table = CliRunner().invoke(app, ["report", "margin", *common])
    assert table.exit_code == 0, table.output
    text = " ".join(table.stdout.split())
    assert "shortfall: 2 charge(s) used 7 credits more than their wallets could pay" in text
    assert "$0.70 of revenue lost at list price" in text
    assert "shortfall by action" in text


def test_a_report_without_shortfall_shows_zero_and_says_nothing(
    shop: Api, clock: FakeClock
) -> None:
    start = clock.now
    post(shop, "/v1/charges", {"customer": "c1", "action": "image.generate", "dimensions": {}})
    clock.advance(hours=1)
    params = {"from": start.isoformat(), "to": clock.now.isoformat()}
    total = shop.get("/v1/reports/margin", params=params).json()["report"]["total"]
    assert total["shortfall"] == {"charges": 0, "amount": 0, "credits": "0", "value": "0"}
