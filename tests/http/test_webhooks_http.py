"""Webhooks over HTTP: endpoints, the delivery log, replays and test events, with deliveries
to a real receiver on loopback that verifies every signature."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from creditgate.services.webhooks.delivery import WebhookSender
from tests.conftest import FakeClock
from tests.http.conftest import Api
from tests.webhook_receiver import Receiver

# The receiver listens on loopback: the operator's switch lets webhooks go there.
pytestmark = pytest.mark.usefixtures("private_webhook_targets")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    with WebhookSender(timeout=0.5, allow_private_targets=True) as s:
        yield s


def delete(api: Api, url: str) -> Any:
    return api.client.delete(url, headers=api.headers)


def problem(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    if field is not None:
        assert body["field"] == field


def new_endpoint(api: Api, receiver: Receiver, path: str = "/hook", **body: Any) -> Any:
    response = api.post("/v1/webhook-endpoints", {"url": receiver.url(path), **body})
    assert response.status_code == 201, response.text
    created = response.json()
    receiver.expect(path, created["secret"])
    return created


def test_endpoints_are_created_listed_changed_and_deleted(api: Api) -> None:
    body = {"url": "https://hooks.example.invalid/cg", "event_types": ["balance.low"]}
    response = api.post("/v1/webhook-endpoints", body, headers={"Idempotency-Key": "ep"})
    assert response.status_code == 201
    created = response.json()
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    assert created["event_types"] == ["balance.low"] and created["id"].startswith("whe_")
    # A replay answers the same endpoint without its secret; another body under it is 409.
    replay = api.post("/v1/webhook-endpoints", body, headers={"Idempotency-Key": "ep"})
    assert replay.status_code == 201
    assert replay.json() == {**created, "secret": None}
    conflict = api.post(
        "/v1/webhook-endpoints", {**body, "event_types": []}, headers={"Idempotency-Key": "ep"}
    )
    problem(conflict, 409, "idempotency_conflict")

    listed = api.get("/v1/webhook-endpoints").json()["data"]
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    url = f"/v1/webhook-endpoints/{created['id']}"
    assert api.get(url).json() == listed[0]

    changed = api.post(url, {"enabled": False, "description": "paused"})
    assert changed.status_code == 200
    assert changed.json()["enabled"] is False and changed.json()["description"] == "paused"
    assert changed.json()["url"] == body["url"]
    rotated = api.post(f"{url}/rotate-secret")
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]

    assert delete(api, url).status_code == 204
    problem(api.get(url), 404, "unknown_webhook_endpoint")
    problem(delete(api, url), 404, "unknown_webhook_endpoint")
    assert api.get("/v1/webhook-endpoints").json() == {"data": []}


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.invalid/cg",
        "https://user:secret@hooks.example.invalid/cg",
        "https://:secret@hooks.example.invalid/cg",
        "hooks.example.invalid/cg",
        "https:///cg",
        "https://hooks.example.invalid/cg#part",
        "https://hooks.example.invalid:99999/cg",
        "javascript:alert(1)",
    ],
)
def test_urls_must_be_http_without_credentials(api: Api, url: str) -> None:
    problem(api.post("/v1/webhook-endpoints", {"url": url}), 422, "invalid_input", "url")


def test_unknown_event_types_are_refused(api: Api) -> None:
    response = api.post(
        "/v1/webhook-endpoints",
        {"url": "https://hooks.example.invalid/cg", "event_types": ["balance.lowest"]},
    )
    problem(response, 422, "invalid_input", "event_types")
    assert "balance.low" in response.json()["detail"]


def test_a_decline_is_delivered_logged_and_replayed_over_http(
    api: Api, receiver: Receiver, sender: WebhookSender, clock: FakeClock
) -> None:
    ep = new_endpoint(api, receiver, event_types=["authorization.declined"])
    api.funded_customer("c1", 100)
    declined = api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 500})
    assert declined.json()["approved"] is False
    receiver.plan("/hook", 502)
    api.ledger.deliver_webhooks(sender)

    log = api.get("/v1/webhook-deliveries").json()
    (delivery,) = log["data"]
    assert log["next_cursor"] is None
    assert delivery["status"] == "pending" and delivery["last_status_code"] == 502
    assert delivery["endpoint_id"] == ep["id"] and delivery["attempts"] == 1
    clock.advance(seconds=10)
    api.ledger.deliver_webhooks(sender)
    one = api.get(f"/v1/webhook-deliveries/{delivery['id']}").json()
    assert one["status"] == "succeeded" and one["attempts"] == 2

    replayed = api.post(
        f"/v1/webhook-deliveries/{delivery['id']}/replay", headers={"Idempotency-Key": "r1"}
    )
    assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
    api.ledger.deliver_webhooks(sender)
    sent = receiver.at("/hook")
    assert [r.answered for r in sent] == [502, 200, 200]
    assert {r.webhook_id for r in sent} == {delivery["id"]} and all(r.verified for r in sent)
    assert sent[-1].payload["data"]["authorization"] == declined.json()["id"]

    by_event = api.post(f"/v1/webhook-deliveries/events/{delivery['event_id']}/replay")
    assert by_event.status_code == 200
    assert [d["id"] for d in by_event.json()["data"]] == [delivery["id"]]
    to_one = api.post(
        f"/v1/webhook-deliveries/events/{delivery['event_id']}/replay", {"endpoint": ep["id"]}
    )
    assert [d["id"] for d in to_one.json()["data"]] == [delivery["id"]]
    problem(
        api.post("/v1/webhook-deliveries/events/evt_nothing/replay"),
        404,
        "unknown_event",
        "event",
    )
    problem(
        api.post(f"/v1/webhook-deliveries/events/{delivery['event_id']}/replay", {"endpoint": "x"}),
        404,
        "unknown_webhook_endpoint",
        "endpoint",
    )


def test_the_log_filters_by_endpoint_type_and_status(
    api: Api, receiver: Receiver, sender: WebhookSender
) -> None:
    a = new_endpoint(api, receiver, "/a")
    b = new_endpoint(api, receiver, "/b")
    receiver.plan("/b", 500)
    test = api.post(f"/v1/webhook-endpoints/{a['id']}/test")
    assert test.status_code == 201 and test.json()["event_type"] == "webhook.test"
    api.funded_customer("c1", 100)
    api.post("/v1/authorizations", {"customer": "c1", "asset": "credits", "amount": 500})
    api.ledger.deliver_webhooks(sender)
    assert all(r.verified for r in receiver.received) and len(receiver.received) == 3

    def ids(**params: Any) -> list[str]:
        response = api.get("/v1/webhook-deliveries", params=params)
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["data"]]

    assert len(ids()) == 3
    assert ids(endpoint=b["id"]) == ids(status="pending")
    assert ids(event_type="webhook.test") == [test.json()["id"]]
    assert len(ids(endpoint=a["id"], status="succeeded")) == 2
    first = api.get("/v1/webhook-deliveries", params={"limit": 2}).json()
    rest = api.get(
        "/v1/webhook-deliveries", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [d["id"] for d in first["data"] + rest["data"]] == ids() and rest["next_cursor"] is None
    problem(api.get("/v1/webhook-deliveries", params={"status": "dead"}), 422, "invalid_input")
    problem(
        api.get("/v1/webhook-deliveries", params={"event_type": "nope"}),
        422,
        "invalid_input",
        "event_type",
    )


def test_a_disabled_endpoint_refuses_test_events(api: Api) -> None:
    ep = api.post(
        "/v1/webhook-endpoints", {"url": "https://hooks.example.invalid/cg", "enabled": False}
    ).json()
    problem(api.post(f"/v1/webhook-endpoints/{ep['id']}/test"), 409, "webhook_endpoint_disabled")


def test_endpoint_bodies_are_checked(api: Api) -> None:
    url = "https://hooks.example.invalid/cg"
    problem(api.post("/v1/webhook-endpoints", {"url": url, "secret": "x"}), 422, "invalid_input")
    problem(
        api.post("/v1/webhook-endpoints", {"url": url, "description": "a\x00b"}),
        422,
        "invalid_input",
        "description",
    )
    ep = api.post("/v1/webhook-endpoints", {"url": url}).json()
    problem(
        api.post(f"/v1/webhook-endpoints/{ep['id']}", {"enabled": "yes"}),
        422,
        "invalid_input",
        "enabled",
    )
