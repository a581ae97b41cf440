"""The /v1 API end to end: catalog, grants, the gate, charges, wallet and ledger."""

from __future__ import annotations

from decimal import Decimal

from tests.conftest import FakeClock
from tests.http.conftest import Api


def test_assets_are_created_and_listed(api: Api) -> None:
    created = api.post("/v1/assets", {"code": "gpu_minutes", "scale": 0, "name": "GPU minutes"})
    assert created.status_code == 201
    assert created.json() == {"code": "gpu_minutes", "scale": 0, "name": "GPU minutes"}
    listed = api.get("/v1/assets").json()["data"]
    assert [a["code"] for a in listed] == ["credits", "gpu_minutes"]


def test_customers_are_addressed_by_the_products_own_id(api: Api) -> None:
    created = api.post(
        "/v1/customers",
        {
            "id": "user-42",
            "name": "Ada",
            "metadata": {"plan": "pro"},
            "policy": "overdraft",
            "overdraft_limit": 500,
        },
    )
    assert created.status_code == 201
    body = created.json()
    assert body["external_id"] == "user-42" and body["id"].startswith("cus_")
    assert body["policy"] == "overdraft" and body["overdraft_limit"] == 500
    assert api.get("/v1/customers/user-42").json() == body
    for name in ("user-43", "user-44"):
        api.post("/v1/customers", {"id": name})
    page = api.get("/v1/customers", params={"limit": 2}).json()["data"]
    assert [c["external_id"] for c in page] == ["user-42", "user-43"]
    rest = api.get("/v1/customers", params={"limit": 2, "after": "user-43"}).json()["data"]
    assert [c["external_id"] for c in rest] == ["user-44"]


def test_wallet_shows_posted_held_and_available_per_asset(api: Api) -> None:
    api.funded_customer("c1", 10_000)
    api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 3_000})
    wallet = api.get("/v1/customers/c1/wallet").json()
    assert wallet["customer"] == "c1"
    (credits,) = wallet["balances"]
    assert (credits["posted"], credits["held"], credits["available"]) == (10_000, 3_000, 7_000)


def test_authorize_settle_releases_the_rest(api: Api) -> None:
    api.funded_customer()
    auth = api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 3_000})
    assert auth.status_code == 201
    body = auth.json()
    assert body["status"] == "pending" and body["approved"] is True and body["available"] == 7_000
    assert api.get(f"/v1/authorizations/{body['id']}").json()["status"] == "pending"

    settled = api.post(
        f"/v1/authorizations/{body['id']}/settle",
        {"amount": 2_200, "action": "chat.completion", "metadata": {"model": "gpt-4.1"}},
    )
    assert settled.status_code == 200
    result = settled.json()
    assert result["authorization"]["status"] == "settled"
    assert result["charge"]["amount"] == 2_200 and result["charge"]["action"] == "chat.completion"
    assert result["charge"]["draws"][0]["cost_basis"] == "0.01"
    assert api.get("/v1/customers/c1/wallet").json()["balances"][0]["available"] == 7_800


def test_a_decline_is_an_answer_with_reason_and_available(api: Api) -> None:
    api.funded_customer("c1", 1_000)
    declined = api.post(
        "/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 1_001}
    )
    assert declined.status_code == 201
    body = declined.json()
    assert body["status"] == "declined" and body["approved"] is False
    assert body["decline_reason"] == "insufficient_funds" and body["available"] == 1_000


def test_void_releases_the_hold_and_a_hold_resolves_once(api: Api) -> None:
    api.funded_customer()
    auth = api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 4_000})
    hold = auth.json()["id"]
    voided = api.post(f"/v1/authorizations/{hold}/void")
    assert voided.status_code == 200 and voided.json()["status"] == "voided"
    again = api.post(f"/v1/authorizations/{hold}/settle", {"amount": 10})
    assert again.status_code == 409 and again.json()["code"] == "hold_already_voided"
    assert api.get("/v1/customers/c1/wallet").json()["balances"][0]["held"] == 0


def test_an_expired_hold_cannot_be_settled(api: Api, clock: FakeClock) -> None:
    api.funded_customer()
    auth = api.post(
        "/v1/authorizations",
        {"customer": "c1", "asset": "credits", "amount": 100, "ttl_seconds": 60},
    ).json()
    clock.advance(seconds=61)
    late = api.post(f"/v1/authorizations/{auth['id']}/settle", {"amount": 100})
    assert late.status_code == 409 and late.json()["code"] == "hold_expired"


def test_charge_in_one_step_and_declined_without_taking_anything(api: Api) -> None:
    api.funded_customer("c1", 1_000)
    posted = api.post(
        "/v1/charges",
        {"customer": "c1", "asset": "credits", "amount": 600, "action": "image.generate"},
    )
    assert posted.status_code == 201 and posted.json()["status"] == "posted"
    declined = api.post("/v1/charges", {"customer": "c1", "asset": "credits", "amount": 600})
    assert declined.status_code == 201
    assert declined.json()["status"] == "declined" and declined.json()["available"] == 400
    assert api.get("/v1/customers/c1/wallet").json()["balances"][0]["posted"] == 400


def test_policy_change_lets_the_wallet_go_into_overdraft(api: Api) -> None:
    api.funded_customer("c1", 1_000)
    changed = api.put(
        "/v1/customers/c1/policies/credits",
        {"policy": "overdraft", "overdraft_limit": 500, "low_balance_threshold": 100},
    )
    assert changed.status_code == 200
    assert changed.json() == {
        "customer": "c1",
        "asset": "credits",
        "policy": "overdraft",
        "overdraft_limit": 500,
        "low_balance_threshold": 100,
        "thresholds": [],
    }
    auth = api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 1_500})
    assert auth.json()["approved"] is True


def test_grants_listed_in_burn_order_and_voided(api: Api, clock: FakeClock) -> None:
    api.post("/v1/customers", {"id": "c1"})
    later = clock.now.replace(year=2027).isoformat()
    sooner = clock.now.replace(month=3).isoformat()
    first = api.post(
        "/v1/customers/c1/grants",
        {"asset": "credits", "amount": 500, "kind": "included", "expires_at": later},
    ).json()
    second = api.post(
        "/v1/customers/c1/grants",
        {
            "asset": "credits",
            "amount": 300,
            "kind": "promotional",
            "expires_at": sooner,
            "metadata": {"campaign": "WELCOME"},
        },
    ).json()
    paid = api.post(
        "/v1/customers/c1/grants",
        {
            "asset": "credits",
            "amount": 200,
            "kind": "purchased",
            "priority": 5,
            "cost_basis": "0.25",
        },
    ).json()
    assert Decimal(paid["cost_basis"]) == Decimal("0.25")
    order = [lot["id"] for lot in api.get("/v1/customers/c1/grants").json()["data"]]
    assert order == [second["id"], first["id"], paid["id"]]

    voided = api.post(f"/v1/grants/{second['id']}/void", {"reason": "campaign withdrawn"})
    assert voided.status_code == 200
    assert voided.json()["status"] == "voided" and voided.json()["voided"] == 300
    still_open = api.get("/v1/customers/c1/grants").json()["data"]
    assert second["id"] not in [lot["id"] for lot in still_open]
    everything = api.get("/v1/customers/c1/grants", params={"include_closed": "true"}).json()
    assert second["id"] in [lot["id"] for lot in everything["data"]]
    assert api.get("/v1/customers/c1/wallet").json()["balances"][0]["posted"] == 700


def test_ledger_pages_with_a_cursor(api: Api) -> None:
    api.funded_customer("c1", 10_000)
    for _ in range(4):
        api.post("/v1/charges", {"customer": "c1", "asset": "credits", "amount": 100})
    first = api.get("/v1/customers/c1/ledger", params={"limit": 3}).json()
    assert len(first["data"]) == 3 and first["next_cursor"]
    assert all(tx["kind"] == "charge" and tx["wallet_change"] == -100 for tx in first["data"])
    rest = api.get(
        "/v1/customers/c1/ledger", params={"limit": 3, "cursor": first["next_cursor"]}
    ).json()
    assert [tx["kind"] for tx in rest["data"]] == ["charge", "grant"]
    assert rest["next_cursor"] is None
    ids = [tx["id"] for tx in first["data"] + rest["data"]]
    assert len(set(ids)) == 5


def test_decimals_are_strings_and_times_iso_8601(api: Api) -> None:
    api.post("/v1/customers", {"id": "c1"})
    lot = api.post(
        "/v1/customers/c1/grants",
        {
            "asset": "credits",
            "amount": 5,
            "kind": "promotional",
            "expires_at": "2026-02-01T00:00:00+01:00",
        },
    ).json()
    assert lot["cost_basis"] == "0"
    assert lot["expires_at"] == "2026-01-31T23:00:00Z"


def test_a_settle_or_charge_worth_more_than_a_charge_records_is_422_and_changes_nothing(
    api: Api,
) -> None:
    # Three lots each worth 9.8 * 10^19 (a grant allows under 10^20), 2.94 * 10^20 together.
    assert api.post("/v1/customers", {"id": "c1"}).status_code == 201
    lot = 7 * 10**17
    grant = {"asset": "credits", "amount": lot, "kind": "purchased", "cost_basis": "14000"}
    for _ in range(3):
        assert api.post("/v1/customers/c1/grants", grant).status_code == 201
    before = api.get("/v1/customers/c1/wallet").json()
    charge = api.post("/v1/charges", {"customer": "c1", "asset": "credits", "amount": 2 * lot})
    assert api.get("/v1/customers/c1/wallet").json() == before
    hold = api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 3 * lot})
    assert hold.status_code == 201 and hold.json()["approved"], hold.text
    held = api.get("/v1/customers/c1/wallet").json()
    settle = api.post(f"/v1/authorizations/{hold.json()['id']}/settle", {"amount": 3 * lot})
    assert api.get("/v1/customers/c1/wallet").json() == held
    for refused in (charge, settle):
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "amount_overflow" and refused.json()["field"] == "amount"
    settled = api.post(f"/v1/authorizations/{hold.json()['id']}/settle", {"amount": lot})
    assert settled.status_code == 200 and settled.json()["charge"]["revenue"] == "98" + "0" * 18
