"""POST /v1/charges/batch: up to 1,000 events, each charged once with its own result."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import Api


def event(key: str, amount: int, customer: str = "c1", **extra: Any) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "customer": customer,
        "asset": "credits",
        "amount": amount,
        **extra,
    }


def test_each_event_has_its_own_result(api: Api) -> None:
    api.funded_customer("c1", 1_000)
    batch = {
        "events": [
            event("e1", 300, action="chat.completion", metadata={"model": "m"}),
            event("e2", 900),  # does not fit what is left: declined, nothing taken
            event("e3", 100, customer="ghost"),
            event("e4", 200),
        ]
    }
    response = api.post("/v1/charges/batch", batch)
    assert response.status_code == 200
    items = response.json()["data"]
    assert [(i["idempotency_key"], i["status"]) for i in items] == [
        ("e1", "posted"),
        ("e2", "declined"),
        ("e3", "error"),
        ("e4", "posted"),
    ]
    assert items[0]["charge"]["amount"] == 300 and items[0]["charge"]["action"] == "chat.completion"
    assert items[1]["charge"]["decline_reason"] == "insufficient_funds"
    error = items[2]["error"]
    assert (error["status"], error["code"], error["field"]) == (404, "unknown_customer", "customer")
    assert api.get("/v1/customers/c1/wallet").json()["balances"][0]["posted"] == 500


def test_sending_a_batch_again_charges_nothing_twice(api: Api) -> None:
    api.funded_customer("c1", 1_000)
    batch = {"events": [event(f"e{i}", 10) for i in range(20)]}
    first = api.post("/v1/charges/batch", batch).json()
    second = api.post("/v1/charges/batch", batch).json()
    assert first == second
    assert api.get("/v1/customers/c1/wallet").json()["balances"][0]["posted"] == 800
    # An event key reused with another body is that event's conflict, not the batch's.
    changed = {"events": [event("e0", 11), event("new", 5)]}
    items = api.post("/v1/charges/batch", changed).json()["data"]
    assert items[0]["status"] == "error" and items[0]["error"]["status"] == 409
    assert items[1]["status"] == "posted"


def test_a_batch_under_an_idempotency_key_replays_or_conflicts(api: Api) -> None:
    api.funded_customer("c1", 1_000)
    batch = {"events": [event("e1", 10), event("e2", 20)]}
    headers = {"Idempotency-Key": "batch-1"}
    first = api.post("/v1/charges/batch", batch, headers=headers)
    again = api.post("/v1/charges/batch", batch, headers=headers)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    other = api.post("/v1/charges/batch", {"events": [event("e3", 5)]}, headers=headers)
    assert other.status_code == 409
    assert api.get("/v1/customers/c1/wallet").json()["balances"][0]["posted"] == 970


def test_batch_size_is_bounded(api: Api) -> None:
    api.funded_customer("c1", 10**6)
    assert api.post("/v1/charges/batch", {"events": []}).status_code == 422
    too_many = {"events": [event(f"e{i}", 1) for i in range(1_001)]}
    response = api.post("/v1/charges/batch", too_many)
    assert response.status_code == 422 and response.json()["field"] == "events"
    missing_key = {"events": [{"customer": "c1", "asset": "credits", "amount": 1}]}
    response = api.post("/v1/charges/batch", missing_key)
    assert response.json()["field"] == "events.0.idempotency_key"


def test_a_full_batch_of_1000_events(api: Api) -> None:
    api.funded_customer("c1", 10**6)
    batch = {"events": [event(f"e{i}", 1) for i in range(1_000)]}
    items = api.post("/v1/charges/batch", batch).json()["data"]
    assert len(items) == 1_000 and {i["status"] for i in items} == {"posted"}
    assert api.get("/v1/customers/c1/wallet").json()["balances"][0]["posted"] == 10**6 - 1_000
