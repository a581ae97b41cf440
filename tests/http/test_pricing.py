"""Pricing over HTTP: rate cards, priced authorize/settle/charge, quotes, model prices, margin."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.http.conftest import Api

CARD: dict[str, Any] = {
    "asset": "credits",
    "credit_value_usd": "0.10",
    "actions": {
        "image.generate": {
            "prices": [
                {"match": {"quality": "standard"}, "flat": "1", "vendor": {"flat": "0.04"}},
                {"match": {"quality": "ultra"}, "flat": "20", "vendor": {"flat": "0.30"}},
            ]
        },
        "tts.speak": {
            "prices": [
                {"match": {"model": "multilingual"}, "per_unit": {"characters": "1"}},
                {"match": {"model": "flash"}, "per_unit": {"characters": "0.5"}},
            ]
        },
        "chat.completion": {
            "prices": [
                {
                    "match": {"model": "gpt-4.1"},
                    "per_unit": {"input_tokens": "0.002", "output_tokens": "0.008"},
                    "minimum": "1",
                    "vendor": {"llm": {"provider": "openai"}},
                }
            ]
        },
    },
}
GPT = {"model": "gpt-4.1"}


@pytest.fixture
def priced(api: Api) -> Api:
    """A tenant with CARD published and customer c1 holding 10,000 credits bought at $0.10."""
    assert api.post("/v1/rate-cards", {"spec": CARD}).status_code == 201
    assert api.post("/v1/customers", {"id": "c1"}).status_code == 201
    grant = {"asset": "credits", "amount": 1_000_000, "kind": "purchased", "cost_basis": "0.10"}
    assert api.post("/v1/customers/c1/grants", grant).status_code == 201
    return api


def problem(response: Any, status: int, code: str, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["field"]) == (code, field), body
    return dict(body)


def test_rate_card_versions_are_published_and_listed(api: Api, clock: FakeClock) -> None:
    first = api.post("/v1/rate-cards", {"spec": CARD})
    assert first.status_code == 201
    version = first.json()
    assert (version["name"], version["version"]) == ("default", 1)
    assert version["id"].startswith("rc_") and version["effective_at"] == "2026-01-01T12:00:00Z"
    assert version["spec"]["actions"]["tts.speak"]["prices"][1]["per_unit"] == {"characters": "0.5"}
    later = (clock.now + timedelta(days=1)).isoformat()
    second = api.post("/v1/rate-cards", {"spec": CARD, "effective_at": later}).json()
    other = api.post("/v1/rate-cards", {"spec": CARD, "name": "enterprise"}).json()
    assert (second["version"], other["version"]) == (2, 1)
    listed = api.get("/v1/rate-cards").json()["data"]
    assert [(v["name"], v["version"]) for v in listed] == [
        ("default", 1),
        ("default", 2),
        ("enterprise", 1),
    ]
    only = api.get("/v1/rate-cards", params={"name": "enterprise"}).json()["data"]
    assert [v["id"] for v in only] == [other["id"]]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"spec": {**CARD, "asset": "gems"}}, 404, "unknown_asset", "spec.asset"),
        ({"spec": {**CARD, "actions": {}}}, 422, "invalid_input", "spec.actions"),
        (
            {"spec": {**CARD, "actions": {"x": {"prices": [{"flat": 0.5}]}}}},
            422,
            "invalid_input",
            "spec.actions.x.prices[0].flat",
        ),
        (
            {"spec": {**CARD, "actions": {"x": {"prices": [{"match": {}}]}}}},
            422,
            "invalid_input",
            "spec.actions.x.prices[0]",
        ),
        (
            {"spec": CARD, "effective_at": "2025-01-01T00:00:00Z"},
            422,
            "invalid_input",
            "effective_at",
        ),
        ({"spec": CARD, "name": ""}, 422, "invalid_input", "name"),
        ({"spec": "not a card"}, 422, "invalid_input", "spec"),
    ],
)
def test_a_bad_card_names_the_field_at_fault(
    api: Api, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    problem(api.post("/v1/rate-cards", body), status, code, field)
    assert api.get("/v1/rate-cards").json() == {"data": []}


def test_priced_authorize_holds_the_estimate_and_settle_prices_the_actual_usage(
    priced: Api,
) -> None:
    estimate = {"input_tokens": 1_200, "output_tokens": 800}
    auth = priced.post(
        "/v1/authorizations",
        {"customer": "c1", "action": "chat.completion", "dimensions": GPT, "quantities": estimate},
    )
    assert auth.status_code == 201
    hold = auth.json()
    # 1,200 x 0.002 + 800 x 0.008 = 8.8 credits = 880 minor units.
    assert (hold["status"], hold["asset"], hold["amount"]) == ("pending", "credits", 880)
    assert hold["action"] == "chat.completion" and hold["dimensions"] == GPT
    assert hold["quantities"] == {"input_tokens": "1200", "output_tokens": "800"}
    assert hold["rate_card_id"].startswith("rc_")

    settled = priced.post(
        f"/v1/authorizations/{hold['id']}/settle",
        {"quantities": {"input_tokens": 1_200, "output_tokens": 310}},
    )
    assert settled.status_code == 200
    charge = settled.json()["charge"]
    assert charge["amount"] == 488 and charge["model"] == "gpt-4.1"
    assert charge["rate_card_id"] == hold["rate_card_id"] and charge["rate_card_version"] == 1
    assert charge["price"]["units"] == "4.88" and charge["price"]["rule"] == 0
    assert charge["quantities"] == {"input_tokens": "1200", "output_tokens": "310"}
    # gpt-4.1 at $2/M input and $8/M output; 4.88 credits drawn at $0.10 each.
    assert (charge["vendor_cost"], charge["revenue"]) == ("0.00488", "0.488")
    balance = priced.get("/v1/customers/c1/wallet").json()["balances"][0]
    assert (balance["held"], balance["available"]) == (0, 1_000_000 - 488)


def test_settle_prices_by_the_card_version_the_hold_was_priced_with(
    priced: Api, clock: FakeClock
) -> None:
    body = {"customer": "c1", "action": "image.generate", "dimensions": {"quality": "standard"}}
    hold = priced.post("/v1/authorizations", body).json()
    repriced = {
        **CARD,
        "actions": {**CARD["actions"], "image.generate": {"prices": [{"flat": "3"}]}},
    }
    later = (clock.now + timedelta(minutes=1)).isoformat()
    assert (
        priced.post("/v1/rate-cards", {"spec": repriced, "effective_at": later}).status_code == 201
    )
    clock.advance(minutes=2)
    charge = priced.post(f"/v1/authorizations/{hold['id']}/settle", {"quantities": {}}).json()
    assert (charge["charge"]["amount"], charge["charge"]["rate_card_version"]) == (100, 1)
    now = priced.post("/v1/charges", body).json()
    assert (now["amount"], now["rate_card_version"]) == (300, 2)


def test_charges_price_fractional_credits_and_keep_an_explicit_vendor_cost(priced: Api) -> None:
    tts = priced.post(
        "/v1/charges",
        {
            "customer": "c1",
            "action": "tts.speak",
            "dimensions": {"model": "flash"},
            "quantities": {"characters": 1_001},
            "vendor_cost": "0.18018",
        },
    )
    assert tts.status_code == 201
    body = tts.json()
    assert (body["status"], body["amount"]) == ("posted", 50_050)  # 500.5 credits
    assert body["vendor_cost"] == "0.18018" and body["price"]["vendor_cost"]["source"] == "explicit"
    seconds = priced.post(
        "/v1/charges",
        {
            "customer": "c1",
            "action": "tts.speak",
            "dimensions": {"model": "multilingual"},
            "quantities": {"characters": "2.5"},  # decimal quantities as strings
        },
    ).json()
    assert seconds["amount"] == 250


def test_raw_amounts_still_work_with_pricing_labels(priced: Api) -> None:
    auth = priced.post(
        "/v1/authorizations",
        {"customer": "c1", "asset": "credits", "amount": 500, "action": "custom.job"},
    ).json()
    assert auth["amount"] == 500 and auth["rate_card_id"] is None
    settled = priced.post(
        f"/v1/authorizations/{auth['id']}/settle", {"amount": 450, "vendor_cost": "0.0125"}
    ).json()["charge"]
    assert (settled["amount"], settled["vendor_cost"], settled["price"]) == (450, "0.0125", None)
    raw = priced.post(
        "/v1/charges",
        {"customer": "c1", "asset": "credits", "amount": 10, "dimensions": GPT},
    ).json()
    assert raw["model"] == "gpt-4.1" and raw["price"] is None


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"action": "video.render"}, "no_price", "action"),
        ({"action": "image.generate", "dimensions": {"quality": "max"}}, "no_price", "dimensions"),
        ({"action": "image.generate", "rate_card": "nope"}, "no_price", "rate_card"),
        ({"asset": "credits"}, "invalid_input", "amount"),
        ({"asset": "credits", "amount": 5, "quantities": {"images": 1}}, "invalid_input", "amount"),
        ({"amount": 5}, "invalid_input", "asset"),
        (
            {"action": "image.generate", "quantities": {"seconds": 3}},
            "invalid_input",
            "quantities.seconds",
        ),
        (
            {"action": "tts.speak", "quantities": {"characters": 1.5}},
            "invalid_input",
            "quantities.characters",
        ),
        (
            {"action": "tts.speak", "quantities": {"characters": -1}},
            "invalid_input",
            "quantities.characters",
        ),
        (
            {"action": "tts.speak", "quantities": {"characters": "1e3"}},
            "invalid_input",
            "quantities.characters",
        ),
        (
            {"action": "tts.speak", "quantities": {"9chars": 1}},
            "invalid_input",
            "quantities.9chars.[key]",
        ),
        ({"action": "tts.speak", "dimensions": {"model": 7}}, "invalid_input", "dimensions.model"),
        (
            {"action": "tts.speak", "dimensions": {f"d{i}": "x" for i in range(65)}},
            "invalid_input",
            "dimensions",
        ),
        ({"action": "tts.speak", "vendor_cost": 0.5}, "invalid_input", "vendor_cost"),
    ],
)
def test_pricing_failures_name_their_field(
    priced: Api, body: dict[str, Any], code: str, field: str
) -> None:
    for url in ("/v1/authorizations", "/v1/charges"):
        problem(priced.post(url, {"customer": "c1", **body}), 422, code, field)
    balance = priced.get("/v1/customers/c1/wallet").json()["balances"][0]
    assert (balance["posted"], balance["held"]) == (1_000_000, 0)


def test_settle_of_a_priced_hold_names_its_faults(priced: Api) -> None:
    estimate = {"customer": "c1", "action": "tts.speak", "dimensions": {"model": "flash"}}
    hold = priced.post("/v1/authorizations", {**estimate, "quantities": {"characters": 100}})
    url = f"/v1/authorizations/{hold.json()['id']}/settle"
    problem(priced.post(url, {}), 422, "invalid_input", "quantities")
    problem(priced.post(url, {"amount": 5, "quantities": {}}), 422, "invalid_input", "amount")
    problem(
        priced.post(url, {"quantities": {"images": 1}}), 422, "invalid_input", "quantities.images"
    )
    raw = priced.post(
        "/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 50}
    ).json()
    raw_url = f"/v1/authorizations/{raw['id']}/settle"
    problem(priced.post(raw_url, {"quantities": {}}), 422, "invalid_input", "quantities")
    # Nothing was settled by the refused requests.
    assert priced.post(url, {"quantities": {"characters": 80}}).json()["charge"]["amount"] == 4_000


def test_priced_requests_replay_under_their_idempotency_key(priced: Api) -> None:
    body = {
        "customer": "c1",
        "action": "chat.completion",
        "dimensions": GPT,
        "quantities": {"input_tokens": 100, "output_tokens": 100},
    }
    key = {"Idempotency-Key": "priced-1"}
    first = priced.post("/v1/authorizations", body, headers=key)
    again = priced.post("/v1/authorizations", body, headers=key)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    changed = {**body, "quantities": {"input_tokens": 100, "output_tokens": 101}}
    problem(
        priced.post("/v1/authorizations", changed, headers=key),
        409,
        "idempotency_conflict",
        "idempotency_key",
    )
    assert priced.get("/v1/customers/c1/wallet").json()["balances"][0]["held"] == 100


def test_a_batch_of_priced_and_raw_events(priced: Api) -> None:
    events = [
        {
            "idempotency_key": "e1",
            "customer": "c1",
            "action": "image.generate",
            "dimensions": {"quality": "ultra"},
        },
        {
            "idempotency_key": "e2",
            "customer": "c1",
            "action": "tts.speak",
            "dimensions": {"model": "flash"},
            "quantities": {"characters": 1_001},
        },
        {"idempotency_key": "e3", "customer": "c1", "action": "video.render"},
        {"idempotency_key": "e4", "customer": "c1", "asset": "credits", "amount": 7},
    ]
    items = priced.post("/v1/charges/batch", {"events": events}).json()["data"]
    assert [i["status"] for i in items] == ["posted", "posted", "error", "posted"]
    assert [i["charge"]["amount"] for i in items if i["charge"]] == [2_000, 50_050, 7]
    assert items[0]["charge"]["vendor_cost"] == "0.3"
    assert (items[2]["error"]["code"], items[2]["error"]["field"]) == ("no_price", "action")
    bad = priced.post(
        "/v1/charges/batch",
        {"events": [{**events[1], "quantities": {"characters": 0.5}}]},
    )
    problem(bad, 422, "invalid_input", "events.0.quantities.characters")


def test_a_quote_shows_the_lines_the_vendor_cost_and_the_card_version(
    priced: Api, clock: FakeClock
) -> None:
    quoted = priced.post(
        "/v1/rate-cards/quote",
        {
            "action": "chat.completion",
            "dimensions": GPT,
            "quantities": {"input_tokens": 1_000_000, "output_tokens": 0},
        },
    )
    assert quoted.status_code == 200
    body = quoted.json()
    assert (body["rate_card_version"], body["amount"], body["units"]) == (1, 200_000, "2000")
    assert [(line["name"], line["subtotal"]) for line in body["lines"]] == [
        ("input_tokens", "2000"),
        ("output_tokens", "0"),
    ]
    assert body["vendor_cost"]["usd"] == "2" and body["vendor_cost"]["source"] == "genai_prices"
    assert body["credit_value_usd"] == "0.1" and body["rounding"] == "up"
    before = (clock.now - timedelta(days=1)).isoformat()
    problem(
        priced.post("/v1/rate-cards/quote", {"action": "image.generate", "at": before}),
        422,
        "no_price",
        "rate_card",
    )
    # A quote changes nothing.
    balance = priced.get("/v1/customers/c1/wallet").json()["balances"][0]
    assert (balance["posted"], balance["held"]) == (1_000_000, 0)


def test_a_tenant_model_price_shows_in_later_charges_only(priced: Api) -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 0}
    body = {"customer": "c1", "action": "chat.completion", "dimensions": GPT, "quantities": usage}
    before = priced.post("/v1/charges", body).json()
    price = {"model": "GPT-4.1", "input_mtok": "1.5", "output_mtok": 6, "provider": "openai"}
    key = {"Idempotency-Key": "price-1"}
    created = priced.post("/v1/model-prices", price, headers=key)
    assert created.status_code == 201
    assert created.json() == {
        "model": "gpt-4.1",
        "provider": "openai",
        "input_mtok": "1.5",
        "output_mtok": "6",
        "cache_read_mtok": None,
        "effective_at": "2026-01-01T12:00:00Z",
    }
    assert priced.post("/v1/model-prices", price, headers=key).json() == created.json()
    problem(
        priced.post("/v1/model-prices", {**price, "input_mtok": "2"}, headers=key),
        409,
        "idempotency_conflict",
        "idempotency_key",
    )
    after = priced.post("/v1/charges", body).json()
    assert (before["vendor_cost"], after["vendor_cost"]) == ("2", "1.5")
    assert after["price"]["vendor_cost"]["source"] == "tenant_override"
    problem(
        priced.post("/v1/model-prices", {**price, "output_mtok": 0.5}),
        422,
        "invalid_input",
        "output_mtok",
    )
    problem(
        priced.post("/v1/model-prices", {**price, "provider": "x" * 101}),
        422,
        "invalid_input",
        "provider",
    )


def test_the_margin_report_groups_charges_over_a_period(priced: Api, clock: FakeClock) -> None:
    start = clock.now.isoformat()
    standard = {"customer": "c1", "action": "image.generate", "dimensions": {"quality": "standard"}}
    for _ in range(3):
        priced.post("/v1/charges", standard)
    priced.post("/v1/customers", {"id": "c2"})
    priced.post("/v1/customers/c2/grants", {"asset": "credits", "amount": 10_000})  # promotional
    priced.post("/v1/charges", {**standard, "customer": "c2"})
    clock.advance(hours=1)
    end = clock.now.isoformat()
    report = priced.get("/v1/reports/margin", params={"from": start, "to": end, "by": "customer"})
    assert report.status_code == 200
    body = report.json()
    rows = {row["key"]: row for row in body["report"]["rows"]}
    # 1 credit sold at $0.10 for $0.04 of vendor cost: 60% margin, a 2.5x credit-to-cost ratio.
    assert (rows["c1"]["charges"], rows["c1"]["revenue"], rows["c1"]["vendor_cost"]) == (
        3,
        "0.3",
        "0.12",
    )
    assert (rows["c1"]["margin"], rows["c1"]["credit_to_cost"]) == ("0.6", "2.5")
    assert rows["c2"]["revenue"] == "0" and rows["c2"]["margin"] is None  # promotional credit
    assert body["report"]["total"]["charges"] == 4
    assert body["customers"]["worst"][0]["key"] == "c2"
    worst = {a["action"]: a["worst"] for a in body["card"]["actions"]}
    assert worst["image.generate"]["ratio"] == "2.5"
    assert body["what_if"]["change"] == "0.2" and body["what_if"]["target"] == "0.5"
    by_action = priced.get("/v1/reports/margin", params={"from": start, "to": end}).json()
    assert [row["key"] for row in by_action["report"]["rows"]] == ["image.generate"]
    # The default period is the 30 days up to now.
    assert priced.get("/v1/reports/margin").json()["report"]["total"]["charges"] == 4
    what_if = priced.get(
        "/v1/reports/margin", params={"from": start, "to": end, "change": "2", "target": "0.5"}
    ).json()["what_if"]
    assert [row["key"] for row in what_if["actions"]] == ["image.generate"]


@pytest.mark.parametrize(
    ("params", "status", "code", "field"),
    [
        ({"by": "week"}, 422, "invalid_input", "by"),
        (
            {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            422,
            "invalid_input",
            "from",
        ),
        ({"to": "2026-01-01T00:00:00"}, 422, "invalid_input", "to"),
        ({"asset": "gems"}, 404, "unknown_asset", "asset"),
        ({"change": "0.2x"}, 422, "invalid_input", "change"),
        ({"change": "-1"}, 422, "invalid_input", "change"),
        ({"worst": 0}, 422, "invalid_input", "worst"),
        ({"rate_card": "x\u0000"}, 422, "invalid_input", "rate_card"),
    ],
)
def test_margin_report_parameters_are_checked(
    priced: Api, params: dict[str, Any], status: int, code: str, field: str
) -> None:
    problem(priced.get("/v1/reports/margin", params=params), status, code, field)


def test_decimal_results_are_exact(priced: Api) -> None:
    charge = priced.post(
        "/v1/charges",
        {
            "customer": "c1",
            "action": "chat.completion",
            "dimensions": GPT,
            "quantities": {"input_tokens": 7, "output_tokens": 3},
        },
    ).json()
    # Below the 1-credit minimum: charged the minimum; vendor cost to the sub-cent.
    assert charge["amount"] == 100 and Decimal(charge["vendor_cost"]) == Decimal("0.000038")


def test_extreme_cards_and_usage_are_priced_and_reported_without_an_error(
    api: Api, clock: FakeClock
) -> None:
    """A list price many orders of magnitude above its vendor cost, and a vendor cost of more
    than ten whole dollars with more than 18 decimals: rounded once, half to even, to what
    is reported (6 places) and stored (18), never refused by the decimal context's default
    28 digits as an internal error."""
    card = {
        "asset": "credits",
        "credit_value_usd": "0.10",
        "actions": {
            "extreme.flat": {
                "prices": [{"flat": "1000000000", "vendor": {"flat": "0.000000000000000001"}}]
            },
            "extreme.units": {
                "prices": [
                    {
                        "per_unit": {"units": "0.01"},
                        "vendor": {"per_unit": {"units": "0.123456789012345675"}},
                    }
                ]
            },
            "extreme.beyond": {
                "prices": [
                    {"per_unit": {"units": "0.01"}, "vendor": {"per_unit": {"units": "1e10"}}}
                ]
            },
        },
    }
    assert api.post("/v1/rate-cards", {"spec": card}).status_code == 201, "card"
    api.funded_customer("c1", 10**15)
    # Credit standing for $10^23 (10^13 credits at $10^10): its draws' revenue could not be
    # stored, so the grant is refused by name, and nothing changes.
    before = api.get("/v1/customers/c1/wallet").json()
    too_much = {"asset": "credits", "amount": 10**15, "kind": "purchased"}
    too_much["cost_basis"] = "10000000000"
    refused = api.post("/v1/customers/c1/grants", too_much)
    assert refused.status_code == 422 and refused.json()["field"] == "cost_basis", refused.text
    assert "cost_basis times amount must be below 10^20" in refused.json()["detail"]
    assert api.get("/v1/customers/c1/wallet").json() == before
    flat = api.post("/v1/charges", {"customer": "c1", "action": "extreme.flat"})
    assert flat.status_code == 201, flat.text
    units = api.post(
        "/v1/charges",
        {"customer": "c1", "action": "extreme.units", "quantities": {"units": "123456789012.5"}},
    )
    assert units.status_code == 201, units.text
    # 123456789012.5 units at $0.123456789012345675 is exactly $15241578753.2578882561918959375
    # (31 digits, more than the default context's 28): a tie at the 19th decimal, rounded
    # half to even.
    assert units.json()["vendor_cost"] == "15241578753.257888256191895938"
    # $10^21 of vendor cost is past what a charge stores (20 whole digits): unknown, as for a
    # card that names none, and the usage still charged.
    beyond = api.post(
        "/v1/charges",
        {"customer": "c1", "action": "extreme.beyond", "quantities": {"units": "100000000000"}},
    )
    assert beyond.status_code == 201, beyond.text
    assert beyond.json()["vendor_cost"] is None and beyond.json()["amount"] == 10**11
    clock.advance(hours=1)
    report = api.get("/v1/reports/margin")
    assert report.status_code == 200, report.text
    body = report.json()
    worst = {a["action"]: a["worst"] for a in body["card"]["actions"]}
    # $100,000,000 of credit on $10^-18 of vendor cost, to 6 places.
    assert worst["extreme.flat"]["ratio"] == "1" + "0" * 26
    rows = {row["key"]: row for row in body["report"]["rows"]}
    assert rows["extreme.units"]["vendor_cost"] == "15241578753.257888256191895938"
    assert rows["extreme.flat"]["credit_to_cost"] == "1" + "0" * 26
