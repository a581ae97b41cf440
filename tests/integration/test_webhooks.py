"""Webhooks on both backends: events from gate operations, signed, delivered to a real HTTP
receiver on loopback that verifies each signature, retried on the clock, replayed."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from typer.testing import CliRunner

from creditgate.api import Creditgate, TenantLedger
from creditgate.cli import app
from creditgate.domain.errors import IdempotencyConflict, InvalidInput
from creditgate.domain.webhooks import (
    JITTER,
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    UnknownEvent,
    UnknownWebhookEndpoint,
    WebhookEndpointDisabled,
)
from creditgate.server.worker import Sweeper
from creditgate.services.webhooks.delivery import WebhookSender, deliver_webhooks
from creditgate.services.webhooks.endpoints import CreatedWebhookEndpoint, WebhookDelivery
from creditgate.services.webhooks.outbox import LEASE, Outgoing, claim_due, fan_out
from tests.conftest import FakeClock
from tests.webhook_receiver import HANG, Receiver

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


def endpoint(
    ledger: TenantLedger, receiver: Receiver, path: str = "/hook", **options: object
) -> CreatedWebhookEndpoint:
    created = ledger.create_webhook_endpoint(receiver.url(path), **options)  # type: ignore[arg-type]
    receiver.expect(path, created.secret)
    return created


def customer(ledger: TenantLedger, amount: int = 1_000, threshold: int | None = None) -> None:
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", amount)
    if threshold is not None:
        ledger.set_policy("c1", "credits", "block", low_balance_threshold=threshold)


def decline(ledger: TenantLedger) -> None:
    assert not ledger.authorize("c1", "credits", 10**9).approved


def only_delivery(ledger: TenantLedger) -> WebhookDelivery:
    (delivery,) = ledger.webhook_deliveries().data
    return delivery


def types_at(receiver: Receiver, path: str) -> list[str]:
    return [r.payload["type"] for r in receiver.at(path)]


def test_a_declined_authorization_is_delivered_signed(
    ledger: TenantLedger, receiver: Receiver, sender: WebhookSender
) -> None:
    ep = endpoint(ledger, receiver)
    customer(ledger)
    declined = ledger.authorize("c1", "credits", 5_000)
    report = ledger.deliver_webhooks(sender)
    assert (report.attempted, report.succeeded) == (1, 1)

    (got,) = receiver.at("/hook")
    assert got.verified
    delivery = only_delivery(ledger)
    assert got.webhook_id == delivery.id
    assert Webhook(ep.secret or "").verify(got.body, got.headers) == got.payload
    body = got.payload
    assert body["type"] == "authorization.declined" and body["id"] == delivery.event_id
    assert body["data"]["authorization"] == declined.id
    assert body["data"]["customer"] == "c1" and body["data"]["reason"] == "insufficient_funds"
    assert (body["data"]["requested"], body["data"]["available"]) == (5_000, 1_000)
    assert delivery.status == "succeeded" and delivery.attempts == 1
    assert delivery.last_status_code == 200 and delivery.last_error is None
    assert delivery.endpoint_id == ep.id and delivery.next_attempt_at is None
    # Delivered means done: later rounds send nothing.
    assert ledger.deliver_webhooks(sender).attempted == 0
    assert len(receiver.at("/hook")) == 1


def test_balance_low_is_delivered_once_per_crossing(
    ledger: TenantLedger, receiver: Receiver, sender: WebhookSender
) -> None:
    endpoint(ledger, receiver, event_types=["balance.low"])
    customer(ledger, 1_000, threshold=500)
    ledger.charge("c1", "credits", 300)  # 700: above
    ledger.charge("c1", "credits", 300)  # 400: crosses
    ledger.charge("c1", "credits", 100)  # 300: still below, no second alert
    ledger.charge("c1", "credits", 50)
    ledger.deliver_webhooks(sender)
    assert types_at(receiver, "/hook") == ["balance.low"]
    assert receiver.at("/hook")[0].payload["data"]["available"] == 400

    ledger.grant("c1", "credits", 1_000)  # 1,250: back above
    ledger.charge("c1", "credits", 900)  # 350: crosses again
    ledger.deliver_webhooks(sender)
    lows = receiver.at("/hook")
    assert [r.payload["type"] for r in lows] == ["balance.low", "balance.low"]
    assert [r.payload["data"]["available"] for r in lows] == [400, 350]
    assert all(r.verified for r in lows) and len({r.webhook_id for r in lows}) == 2


def test_each_endpoint_gets_only_the_types_it_subscribes_to(
    ledger: TenantLedger, receiver: Receiver, sender: WebhookSender
) -> None:
    endpoint(ledger, receiver, "/declines", event_types=["authorization.declined"])
    endpoint(ledger, receiver, "/balances", event_types=["balance.low", "balance.depleted"])
    endpoint(ledger, receiver, "/all")
    customer(ledger, 1_000, threshold=500)
    ledger.charge("c1", "credits", 600)  # balance.low
    decline(ledger)  # authorization.declined
    ledger.charge("c1", "credits", 400)  # balance.depleted
    ledger.deliver_webhooks(sender)
    assert types_at(receiver, "/declines") == ["authorization.declined"]
    assert sorted(types_at(receiver, "/balances")) == ["balance.depleted", "balance.low"]
    assert sorted(types_at(receiver, "/all")) == [
        "authorization.declined",
        "balance.depleted",
        "balance.low",
    ]
    assert all(r.verified for r in receiver.received)
    assert Counter(d.event_type for d in ledger.webhook_deliveries().data) == {
        "authorization.declined": 2,
        "balance.low": 2,
        "balance.depleted": 2,
    }


def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(
    ledger: TenantLedger, clock: FakeClock, receiver: Receiver, sender: WebhookSender
) -> None:
    endpoint(ledger, receiver)
    receiver.plan("/hook", 500, 500, 503)  # then 200
    customer(ledger)
    decline(ledger)

    def wait_after(attempt: int) -> float:
        delivery = only_delivery(ledger)
        assert delivery.status == "pending" and delivery.attempts == attempt
        assert delivery.next_attempt_at is not None
        return (delivery.next_attempt_at - clock.now).total_seconds()

    report = ledger.deliver_webhooks(sender)
    assert (report.attempted, report.retrying) == (1, 1)
    failed = only_delivery(ledger)
    # The status and a class of error; the receiver's own words are not kept.
    assert failed.last_status_code == 500 and failed.last_error == "http_status"
    assert "failing with 500" not in failed.model_dump_json()
    for attempt, delay in enumerate(RETRY_DELAYS[:3], start=1):
        wait = wait_after(attempt)
        expected = delay.total_seconds()
        assert expected * (1 - JITTER) <= wait <= expected * (1 + JITTER)
        clock.advance(seconds=wait - 1)  # not due yet: nothing goes out
        assert ledger.deliver_webhooks(sender).attempted == 0
        clock.advance(seconds=1)
        assert ledger.deliver_webhooks(sender).attempted == 1

    delivery = only_delivery(ledger)
    assert delivery.status == "succeeded" and delivery.attempts == 4
    assert delivery.last_status_code == 200 and delivery.last_error is None
    sent = receiver.at("/hook")
    assert [r.answered for r in sent] == [500, 500, 503, 200]
    # One delivery, one webhook-id and one body on every attempt, each signed afresh.
    assert {r.webhook_id for r in sent} == {delivery.id}
    assert len({r.body for r in sent}) == 1 and all(r.verified for r in sent)
    assert receiver.acknowledged_ids() == {delivery.id: 1}
    clock.advance(days=2)
    assert ledger.deliver_webhooks(sender).attempted == 0


def test_a_receiver_that_times_out_is_tried_again(
    ledger: TenantLedger, clock: FakeClock, receiver: Receiver, sender: WebhookSender
) -> None:
    endpoint(ledger, receiver)
    receiver.plan("/hook", HANG)
    customer(ledger)
    decline(ledger)
    started = time.monotonic()
    assert ledger.deliver_webhooks(sender).retrying == 1
    assert time.monotonic() - started < receiver.hang_seconds  # the sender gave up first
    delivery = only_delivery(ledger)
    assert delivery.last_error == "timeout" and delivery.last_status_code is None

    clock.advance(seconds=6)
    assert ledger.deliver_webhooks(sender).succeeded == 1
    assert receiver.acknowledged_ids() == {delivery.id: 1}
    assert [r.webhook_id for r in receiver.at("/hook")] == [delivery.id, delivery.id]


def test_a_delivery_is_dead_after_a_day_of_failures_and_can_be_replayed(
    ledger: TenantLedger, clock: FakeClock, receiver: Receiver, sender: WebhookSender
) -> None:
    endpoint(ledger, receiver)
    receiver.plan("/hook", *[500] * MAX_ATTEMPTS)
    customer(ledger)
    decline(ledger)
    first = clock.now
    ledger.deliver_webhooks(sender)
    for _ in range(MAX_ATTEMPTS - 1):
        pending = only_delivery(ledger)
        assert pending.status == "pending" and pending.next_attempt_at is not None
        clock.set(pending.next_attempt_at)
        assert ledger.deliver_webhooks(sender).attempted == 1

    dead = only_delivery(ledger)
    assert dead.status == "failed" and dead.attempts == MAX_ATTEMPTS == 8
    assert dead.finished_at == clock.now and dead.next_attempt_at is None
    total = sum(RETRY_DELAYS, timedelta())
    assert timedelta(hours=23) < total <= timedelta(hours=24)
    assert total * (1 - JITTER) <= clock.now - first <= total * (1 + JITTER)
    clock.advance(days=3)
    assert ledger.deliver_webhooks(sender).attempted == 0
    assert len(receiver.at("/hook")) == MAX_ATTEMPTS and not receiver.acknowledged()

    # The receiver is back: a replay sends the same delivery, under the same webhook-id.
    replayed = ledger.replay_webhook_delivery(dead.id)
    assert replayed.status == "pending" and replayed.attempts == 0
    assert ledger.deliver_webhooks(sender).succeeded == 1
    assert receiver.acknowledged_ids() == {dead.id: 1}
    assert only_delivery(ledger).status == "succeeded"


def test_replaying_a_delivered_delivery_resends_it_with_the_same_webhook_id(
    ledger: TenantLedger, receiver: Receiver, sender: WebhookSender
) -> None:
    endpoint(ledger, receiver)
    customer(ledger)
    decline(ledger)
    ledger.deliver_webhooks(sender)
    delivery = only_delivery(ledger)
    again = ledger.replay_webhook_delivery(delivery.id, idempotency_key="replay-1")
    # The same key answers the same replay, and does not queue another.
    assert ledger.replay_webhook_delivery(delivery.id, idempotency_key="replay-1") == again
    assert ledger.deliver_webhooks(sender).succeeded == 1
    assert ledger.deliver_webhooks(sender).attempted == 0
    first, second = receiver.at("/hook")
    assert first.webhook_id == second.webhook_id == delivery.id
    assert first.body == second.body and first.verified and second.verified
    assert ledger.webhook_delivery(delivery.id).status == "succeeded"


def test_replaying_an_event_reaches_old_and_new_subscribers(
    ledger: TenantLedger, receiver: Receiver, sender: WebhookSender
) -> None:
    old = endpoint(ledger, receiver, "/old")
    customer(ledger)
    decline(ledger)
    ledger.deliver_webhooks(sender)
    (first,) = ledger.webhook_deliveries().data
    # Endpoints created after the event do not get it, unless it is replayed.
    new = endpoint(ledger, receiver, "/new", event_types=["authorization.declined"])
    other = endpoint(ledger, receiver, "/other", event_types=["balance.low"])
    ledger.deliver_webhooks(sender)
    assert receiver.at("/new") == []

    replayed = ledger.replay_event(first.event_id)
    assert {d.endpoint_id for d in replayed} == {old.id, new.id}
    assert next(d for d in replayed if d.endpoint_id == old.id).id == first.id
    ledger.deliver_webhooks(sender)
    assert [r.webhook_id for r in receiver.at("/old")] == [first.id, first.id]
    (to_new,) = receiver.at("/new")
    assert to_new.verified and to_new.payload["id"] == first.event_id
    assert receiver.at("/other") == []

    with pytest.raises(InvalidInput, match="does not subscribe"):
        ledger.replay_event(first.event_id, endpoint=other.id)
    only_old = ledger.replay_event(first.event_id, endpoint=old.id)
    assert [d.id for d in only_old] == [first.id]
    with pytest.raises(UnknownEvent):
        ledger.replay_event("evt_doesnotexist")


def test_a_test_event_goes_to_one_endpoint_only(
    ledger: TenantLedger, receiver: Receiver, sender: WebhookSender
) -> None:
    target = endpoint(ledger, receiver, "/target", event_types=["balance.low"])
    endpoint(ledger, receiver, "/bystander")  # subscribed to every type
    delivery = ledger.send_test_webhook(target.id)
    assert delivery.event_type == "webhook.test" and delivery.status == "pending"
    ledger.deliver_webhooks(sender)
    (got,) = receiver.at("/target")
    assert got.verified and got.webhook_id == delivery.id
    assert got.payload["type"] == "webhook.test"
    assert got.payload["data"]["endpoint"] == target.id
    assert receiver.at("/bystander") == []
    assert [d.id for d in ledger.webhook_deliveries().data] == [delivery.id]


def test_disabled_endpoints_get_nothing_and_wait_until_enabled(
    ledger: TenantLedger, clock: FakeClock, receiver: Receiver, sender: WebhookSender
) -> None:
    ep = endpoint(ledger, receiver, enabled=False)
    customer(ledger)
    decline(ledger)
    ledger.deliver_webhooks(sender)
    assert ledger.webhook_deliveries().data == [] and receiver.received == []
    with pytest.raises(WebhookEndpointDisabled):
        ledger.send_test_webhook(ep.id)

    ledger.update_webhook_endpoint(ep.id, enabled=True)
    receiver.plan("/hook", 500)
    decline(ledger)
    ledger.deliver_webhooks(sender)
    assert only_delivery(ledger).status == "pending"
    # Disabled again: its pending delivery waits rather than fails.
    ledger.update_webhook_endpoint(ep.id, enabled=False)
    clock.advance(minutes=1)
    assert ledger.deliver_webhooks(sender).attempted == 0
    ledger.update_webhook_endpoint(ep.id, enabled=True)
    assert ledger.deliver_webhooks(sender).succeeded == 1
    assert len(receiver.at("/hook")) == 2


def test_deleting_an_endpoint_fails_its_pending_deliveries_and_keeps_the_log(
    ledger: TenantLedger, receiver: Receiver, sender: WebhookSender
) -> None:
    ep = endpoint(ledger, receiver)
    receiver.plan("/hook", 500)
    customer(ledger)
    decline(ledger)
    ledger.deliver_webhooks(sender)
    ledger.delete_webhook_endpoint(ep.id)
    assert ledger.webhook_endpoints() == []
    with pytest.raises(UnknownWebhookEndpoint):
        ledger.webhook_endpoint(ep.id)
    with pytest.raises(UnknownWebhookEndpoint):
        ledger.delete_webhook_endpoint(ep.id)
    delivery = only_delivery(ledger)
    assert delivery.status == "failed" and delivery.last_error == "the endpoint was deleted"
    with pytest.raises(UnknownWebhookEndpoint):
        ledger.replay_webhook_delivery(delivery.id)
    decline(ledger)
    assert ledger.deliver_webhooks(sender).attempted == 0
    assert len(receiver.at("/hook")) == 1


def test_a_sender_that_dies_mid_attempt_leaves_the_delivery_due_after_its_lease(
    cg: Creditgate,
    ledger: TenantLedger,
    clock: FakeClock,
    receiver: Receiver,
    sender: WebhookSender,
) -> None:
    endpoint(ledger, receiver)
    customer(ledger)
    decline(ledger)
    # Every tenant's events of the shared database, as the sender does: one batch may hold
    # only events of earlier tests.
    while cg.db.run(lambda conn: fan_out(conn, clock())):
        pass
    claimed = cg.db.run(lambda conn: claim_due(conn, clock(), limit=10, tenant_id=ledger.tenant_id))
    assert len(claimed) == 1  # ...and this sender never comes back
    assert ledger.deliver_webhooks(sender).attempted == 0  # leased: not sent twice at once
    clock.advance(seconds=LEASE.total_seconds() + 1)
    assert ledger.deliver_webhooks(sender).succeeded == 1
    delivery = only_delivery(ledger)
    assert delivery.attempts == 2 and receiver.acknowledged_ids() == {delivery.id: 1}


def test_rotating_the_secret_signs_with_the_new_one(
    ledger: TenantLedger, receiver: Receiver, sender: WebhookSender
) -> None:
    ep = endpoint(ledger, receiver)
    rotated = ledger.rotate_webhook_secret(ep.id)
    assert rotated.secret and rotated.secret != ep.secret and rotated.id == ep.id
    customer(ledger)
    decline(ledger)
    ledger.deliver_webhooks(sender)
    (got,) = receiver.at("/hook")
    assert Webhook(rotated.secret).verify(got.body, got.headers) is not None
    with pytest.raises(WebhookVerificationError):
        Webhook(ep.secret or "").verify(got.body, got.headers)


def test_endpoints_are_created_idempotently_and_validated(ledger: TenantLedger) -> None:
    url = "https://hooks.example.invalid/creditgate"
    first = ledger.create_webhook_endpoint(url, idempotency_key="ep-1")
    assert first.secret is not None and first.secret.startswith("whsec_")
    again = ledger.create_webhook_endpoint(url, idempotency_key="ep-1")
    assert again.id == first.id and again.secret is None  # shown once
    with pytest.raises(IdempotencyConflict):
        ledger.create_webhook_endpoint(url + "/other", idempotency_key="ep-1")
    with pytest.raises(InvalidInput) as bad_url:
        ledger.create_webhook_endpoint("https://user:pass@hooks.example.invalid/x")
    assert bad_url.value.field == "url"
    with pytest.raises(InvalidInput) as bad_type:
        ledger.create_webhook_endpoint(url, event_types=["balance.lowish"])
    assert bad_type.value.field == "event_types"
    assert [e.id for e in ledger.webhook_endpoints()] == [first.id]

    updated = ledger.update_webhook_endpoint(
        first.id, event_types=["grant.expired", "grant.expired"], description="expiries"
    )
    assert updated.event_types == ["grant.expired"] and updated.description == "expiries"
    assert updated.url == url and updated.enabled
    assert ledger.update_webhook_endpoint(first.id, event_types=[]).event_types == []


def test_the_delivery_log_filters_and_pages_newest_first(
    ledger: TenantLedger, receiver: Receiver, sender: WebhookSender
) -> None:
    a = endpoint(ledger, receiver, "/a")
    b = endpoint(ledger, receiver, "/b", event_types=["balance.depleted"])
    receiver.plan("/a", 500)
    customer(ledger)
    decline(ledger)
    decline(ledger)
    ledger.charge("c1", "credits", 1_000)  # balance.depleted
    ledger.deliver_webhooks(sender)
    log = ledger.webhook_deliveries().data
    assert len(log) == 4 and [d.id for d in log] == sorted((d.id for d in log), reverse=True)
    assert len(ledger.webhook_deliveries(endpoint=a.id).data) == 3
    assert [d.endpoint_id for d in ledger.webhook_deliveries(endpoint=b.id).data] == [b.id]
    depleted = ledger.webhook_deliveries(event_type="balance.depleted").data
    assert {d.endpoint_id for d in depleted} == {a.id, b.id}
    assert len(ledger.webhook_deliveries(event=depleted[0].event_id).data) == 2
    (retrying,) = ledger.webhook_deliveries(status="pending").data
    assert retrying.endpoint_id == a.id and retrying.last_status_code == 500
    assert len(ledger.webhook_deliveries(status="succeeded").data) == 3

    seen, cursor = [], None
    while True:
        page = ledger.webhook_deliveries(limit=3, cursor=cursor)
        seen += [d.id for d in page.data]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [d.id for d in log]
    with pytest.raises(InvalidInput):
        ledger.webhook_deliveries(status="dead")


def test_the_servers_worker_delivers_webhooks(
    tmp_path: Path, clock: FakeClock, receiver: Receiver
) -> None:
    # A database of its own: the worker serves every tenant, and only this one's are wanted.
    with Creditgate(f"sqlite:///{tmp_path / 'worker.db'}", clock=clock) as cg:
        t = cg.tenant(cg.create_tenant("worker").id)
        t.create_asset("credits", 2)
        endpoint(t, receiver)
        customer(t)
        decline(t)
        sweeper = Sweeper(cg, interval=60)
        sweeper.webhooks.interval = 0.05
        sweeper.start()
        try:
            deadline = time.monotonic() + 15
            while not receiver.acknowledged() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            sweeper.stop()
        (got,) = receiver.acknowledged()
        assert got.verified and got.payload["type"] == "authorization.declined"
        assert t.webhook_deliveries().data[0].status == "succeeded"


@pytest.mark.postgres
def test_two_workers_on_postgresql_deliver_each_delivery_once(
    postgres_url: str, clock: FakeClock
) -> None:
    # Two handles with their own engines, as two server processes would have.
    servers = [Creditgate(postgres_url, clock=clock) for _ in range(2)]
    receiver = Receiver(delay=0.005)
    try:
        t = servers[0].tenant(servers[0].create_tenant(f"two {uuid.uuid4().hex[:8]}").id)
        t.create_asset("credits", 2)
        endpoint(t, receiver)
        customer(t)
        events = 60
        for _ in range(events):
            decline(t)
        barrier = threading.Barrier(2)
        attempted = [0, 0]

        def work(index: int) -> None:
            with WebhookSender(timeout=5, concurrency=4, allow_private_targets=True) as own:
                barrier.wait()
                deadline = time.monotonic() + 30
                while len(receiver.acknowledged()) < events and time.monotonic() < deadline:
                    report = deliver_webhooks(
                        servers[index].db, clock, own, tenant_id=t.tenant_id, batch=4
                    )
                    attempted[index] += report.attempted

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        log = t.webhook_deliveries(limit=500).data
        assert len(log) == events
        assert all(d.status == "succeeded" and d.attempts == 1 for d in log)
        # Every delivery reached the receiver once, and only once: no row was sent twice.
        assert len(receiver.received) == events
        assert receiver.acknowledged_ids() == Counter({d.id: 1 for d in log})
        assert all(r.verified for r in receiver.received)
        assert sum(attempted) == events and min(attempted) > 0
        assert servers[0].verify(t.tenant_id).ok
    finally:
        receiver.close()
        for server in servers:
            server.close()


def test_the_command_line_manages_endpoints_and_delivers(
    tmp_path: Path, receiver: Receiver
) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, [*args, "--db", db])
        assert result.exit_code == 0, result.output
        return result.output

    with Creditgate(db) as cg:
        t = cg.tenant(cg.create_tenant("cli").id)
        t.create_asset("credits", 2)
        customer(t)
        created = json.loads(cli("webhooks", "create", receiver.url(), "--json"))
        receiver.expect("/hook", created["secret"])
        listed = json.loads(cli("webhooks", "list", "--json"))["data"]
        assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
        assert created["id"] in cli("webhooks", "list")
        decline(t)
        assert "1 succeeded" in cli("webhooks", "deliver", "--timeout", "2")
        (delivery,) = json.loads(cli("webhooks", "deliveries", "--json"))["data"]
        assert delivery["status"] == "succeeded"
        assert "succeeded" in cli("webhooks", "deliveries", "--status", "succeeded")

        cli("webhooks", "replay", delivery["id"])
        cli("webhooks", "replay-event", delivery["event_id"])
        test = json.loads(cli("webhooks", "test", created["id"], "--json"))
        cli("webhooks", "deliver")
        assert receiver.acknowledged_ids() == {delivery["id"]: 2, test["id"]: 1}
        assert all(r.verified for r in receiver.received)

        change = ("--disable", "--event-type", "balance.low", "--json")
        updated = json.loads(cli("webhooks", "update", created["id"], *change))
        assert updated["enabled"] is False and updated["event_types"] == ["balance.low"]
        assert "(all)" in cli("webhooks", "update", created["id"], "--all-events")
        rotated = json.loads(cli("webhooks", "rotate-secret", created["id"], "--json"))
        assert rotated["secret"] not in (None, created["secret"])
        cli("webhooks", "delete", created["id"])
        assert json.loads(cli("webhooks", "list", "--json")) == {"data": []}
        refused = runner.invoke(app, ["webhooks", "create", "ftp://x/y", "--db", db])
        assert refused.exit_code != 0


def test_a_cookie_one_tenants_receiver_sets_never_goes_to_another_tenants(
    cg: Creditgate, ledger: TenantLedger, receiver: Receiver, sender: WebhookSender
) -> None:
    """One sender delivers every tenant's webhooks: a cookie an endpoint answers with is not
    kept, so it never goes with another tenant's delivery to the same host (nor back)."""
    other = cg.tenant(cg.create_tenant(f"test {uuid.uuid4().hex[:8]}").id)
    other.create_asset("credits", 2, "Credits")
    for tenant, path in ((ledger, "/a"), (other, "/b")):
        endpoint(tenant, receiver, path)
        customer(tenant)
    receiver.set_cookie = "session=tenant-a-secret; Path=/"
    decline(ledger)
    assert ledger.deliver_webhooks(sender).succeeded == 1
    receiver.set_cookie = None
    decline(other)
    decline(ledger)
    assert other.deliver_webhooks(sender).succeeded == 1
    assert ledger.deliver_webhooks(sender).succeeded == 1
    assert [r.path for r in receiver.received] == ["/a", "/b", "/a"]
    assert [r.headers.get("cookie") for r in receiver.received] == [None, None, None]
    assert cg.verify(other.tenant_id).ok


def _outgoing() -> Outgoing:
    return Outgoing(
        delivery_id="whd_1",
        tenant_id="ten_1",
        endpoint_id="whe_1",
        url="https://hooks.example/in",
        secret="sealed",
        body="{}",
        attempt=1,
        claim="claim_1",
    )


def test_a_sender_makes_its_client_at_its_first_delivery_and_refuses_to_send_once_closed() -> None:
    sender = WebhookSender(resolve=lambda host, port: ["203.0.113.9"], timeout=0.2)
    assert sender._client is None  # nothing made at start: httpx is loaded with the first send
    client = sender.client()
    assert sender.client() is client  # one client, every delivery
    sender.close()
    assert client.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        sender.send(_outgoing(), "secret")
    unused = WebhookSender()
    unused.close()  # never sent: nothing to close, and none made after
    with pytest.raises(RuntimeError, match="closed"):
        unused.client()


def test_an_attempt_whose_client_cannot_be_made_is_a_connection_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import creditgate.adapters.guarded as guarded

    def broken(**kwargs: object) -> object:
        raise OSError("no CA bundle")

    monkeypatch.setattr(guarded, "guarded_transport", broken)
    with WebhookSender() as sender:
        outcome = sender.send(_outgoing(), "secret")
    assert outcome.error == "connection_error" and outcome.status_code is None
    assert "could not be made" in caplog.text
