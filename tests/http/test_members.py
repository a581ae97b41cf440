"""Organizations over HTTP: members, budgets, usage, and the gate naming a member."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, get_args

import pytest

from creditgate.domain.periods import Period
from creditgate.http.models import BudgetSpec
from tests.http.conftest import Api
from tests.integration.test_member_reports import organizations as two_organizations


def organization(api: Api) -> None:
    api.funded_customer("acme", 10_000)
    created = api.post("/v1/customers/acme/members", {"external_id": "alice", "name": "Alice"})
    assert created.status_code == 201, created.text


def test_a_member_is_managed_and_its_budget_enforced_over_http(api: Api) -> None:
    organization(api)
    member = api.get("/v1/customers/acme/members/alice").json()
    assert (member["external_id"], member["status"], member["id"][:4]) == (
        "alice",
        "active",
        "mbr_",
    )
    budget = {"amount": 300, "period": "month", "thresholds": [50]}
    put = api.put("/v1/customers/acme/members/alice/budgets/credits", budget)
    assert put.status_code == 200, put.text
    assert (put.json()["member"], put.json()["thresholds"]) == ("alice", [50])

    hold = {"customer": "acme", "asset": "credits", "amount": 200, "member": "alice"}
    first = api.post("/v1/authorizations", hold)
    assert first.status_code == 201 and first.json()["member"] == "alice"
    second = api.post("/v1/authorizations", hold).json()
    assert (second["status"], second["decline_reason"]) == ("declined", "budget_exceeded")
    charge = api.post(
        "/v1/charges", {"customer": "acme", "asset": "credits", "amount": 100, "member": "alice"}
    ).json()
    assert (charge["status"], charge["member"]) == ("posted", "alice")

    usage = api.get("/v1/customers/acme/members/alice/usage").json()
    (period,) = usage["data"]
    assert (period["spent"], period["held"], period["remaining"]) == (100, 200, 0)
    assert period["thresholds_crossed"] == [50, 100]

    off = api.post("/v1/customers/acme/members/alice", {"active": False})
    assert off.json()["status"] == "inactive"
    refused = api.post("/v1/charges", {**hold, "amount": 1}).json()
    assert refused["decline_reason"] == "member_inactive"
    removed = api.client.delete("/v1/customers/acme/members/alice", headers=api.headers).json()
    assert removed["status"] == "removed"
    listed = api.get("/v1/customers/acme/members", params={"include_removed": "true"}).json()
    assert [m["status"] for m in listed["data"]] == ["removed"]
    assert api.get("/v1/customers/acme/members").json()["data"] == []


def test_the_customer_budget_and_wallet_thresholds_over_http(api: Api) -> None:
    organization(api)
    put = api.put("/v1/customers/acme/budgets/credits", {"amount": 150, "period": "total"})
    assert put.status_code == 200 and put.json()["member"] is None
    assert api.get("/v1/customers/acme/budgets").json()["data"][0]["period"] == "total"
    policy = {"policy": "block", "thresholds": [9_950]}
    assert api.put("/v1/customers/acme/policies/credits", policy).json()["thresholds"] == [9_950]
    charged = api.post("/v1/charges", {"customer": "acme", "asset": "credits", "amount": 100})
    assert charged.json()["status"] == "posted"
    refused = api.post("/v1/charges", {"customer": "acme", "asset": "credits", "amount": 100})
    assert refused.json()["decline_reason"] == "budget_exceeded"
    usage = api.get("/v1/customers/acme/usage").json()
    assert usage["member"] is None and usage["data"][0]["spent"] == 100
    gone = api.client.delete("/v1/customers/acme/budgets/credits", headers=api.headers)
    assert gone.status_code == 204
    again = api.client.delete("/v1/customers/acme/budgets/credits", headers=api.headers)
    assert again.status_code == 404 and again.json()["code"] == "unknown_budget"
    assert api.get("/v1/customers/acme/wallet").json()["balances"][0]["thresholds"] == [9_950]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 0, "period": "day"}, "amount"),
        ({"amount": -5, "period": "day"}, "amount"),
        ({"amount": 100, "period": "hour"}, "period"),
        ({"amount": 100, "period": "day", "mode": "strict"}, "mode"),
        ({"amount": 100, "period": "day", "thresholds": [0]}, "thresholds.0"),
        ({"amount": 100, "period": "day", "thresholds": [101]}, "thresholds"),  # hard: 1-100
        ({"amount": 100, "period": "day", "thresholds": [1_001], "mode": "soft"}, "thresholds.0"),
        ({"amount": 100, "period": "day", "anchor": "2026-01-01T00:00:00"}, "anchor"),
    ],
)
def test_a_bad_budget_is_a_4xx_naming_the_field_and_changes_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    organization(api)
    answer = api.put("/v1/customers/acme/members/alice/budgets/credits", body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert api.get("/v1/customers/acme/members/alice/budgets").json() == {"data": []}


def test_unknown_members_are_404_naming_the_member(api: Api) -> None:
    organization(api)
    hold = {"customer": "acme", "asset": "credits", "amount": 10, "member": "mallory"}
    for answer in (
        api.post("/v1/authorizations", hold),
        api.post("/v1/charges", hold),
        api.get("/v1/customers/acme/members/mallory"),
        api.get("/v1/customers/acme/members/mallory/usage"),
        api.put(
            "/v1/customers/acme/members/mallory/budgets/credits", {"amount": 1, "period": "day"}
        ),
    ):
        assert answer.status_code == 404, answer.text
        assert (answer.json()["code"], answer.json()["field"]) == ("unknown_member", "member")
    wallet = api.get("/v1/customers/acme/wallet").json()["balances"][0]
    assert (wallet["held"], wallet["posted"]) == (0, 10_000)


def test_a_duplicate_member_is_a_conflict(api: Api) -> None:
    organization(api)
    again = api.post("/v1/customers/acme/members", {"external_id": "alice"})
    assert again.status_code == 409 and again.json()["field"] == "external_id"
    bad = api.post("/v1/customers/acme/members", {"external_id": "a/b"})
    assert bad.status_code == 422 and bad.json()["field"] == "external_id"


def test_wallet_thresholds_out_of_range_are_refused(api: Api) -> None:
    api.funded_customer("acme")
    too_many = {"policy": "block", "thresholds": list(range(11))}
    answer = api.put("/v1/customers/acme/policies/credits", too_many)
    assert answer.status_code == 422 and answer.json()["field"] == "thresholds"
    too_big = {"policy": "block", "thresholds": [2**62]}
    answer = api.put("/v1/customers/acme/policies/credits", too_big)
    assert answer.status_code == 422 and answer.json()["field"].startswith("thresholds")
    for bad in ([1.5], ["100"], 5_000):  # a fraction, a string, not a list
        answer = api.put(
            "/v1/customers/acme/policies/credits", {"policy": "block", "thresholds": bad}
        )
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["field"].startswith("thresholds")
    # Nothing changed: the wallet has no thresholds.
    assert api.get("/v1/customers/acme/wallet").json()["balances"][0]["thresholds"] == []


def test_changing_or_removing_an_unknown_member_is_404_and_changes_nothing(api: Api) -> None:
    organization(api)
    for answer in (
        api.post("/v1/customers/acme/members/mallory", {"active": False}),
        api.client.delete("/v1/customers/acme/members/mallory", headers=api.headers),
        api.client.delete(
            "/v1/customers/acme/members/mallory/budgets/credits",
            headers={**api.headers, "Idempotency-Key": "d1"},
        ),
    ):
        assert answer.status_code == 404, answer.text
        assert (answer.json()["code"], answer.json()["field"]) == ("unknown_member", "member")
    listed = api.get("/v1/customers/acme/members").json()["data"]
    assert [(m["external_id"], m["status"]) for m in listed] == [("alice", "active")]


def test_the_period_names_the_api_takes_are_the_domain_periods() -> None:
    names = get_args(BudgetSpec.model_fields["period"].annotation)
    assert set(names) == {p.value for p in Period}


def test_the_margin_report_by_member_over_http(api: Api) -> None:
    two_organizations(api.ledger)
    # The charges were made at the clock's now; the period ends just after it.
    end = (api.ledger.cg.clock() + timedelta(seconds=1)).isoformat()
    body = api.get("/v1/reports/margin", params={"by": "member", "to": end}).json()["report"]
    assert [(r["customer"], r["key"], r["amount"]) for r in body["rows"]] == [
        ("acme", "ada", 500),
        ("acme", "bob", 50),
        ("globex", "ada", 700),
        (None, None, 11),
    ]
    bad = api.get("/v1/reports/margin", params={"by": "seat"})
    assert bad.status_code == 422 and "by" in bad.text
