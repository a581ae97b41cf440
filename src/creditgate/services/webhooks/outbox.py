"""The database side of webhook delivery: events fanned out to deliveries, claims, outcomes.

Every step is one short transaction and none spans an HTTP call. Several senders (one per
server) share the work safely: the fan-out and the claim lock the rows they take with
`FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has one writer at a time anyway), and a
claim leases a delivery by pushing its `next_attempt_at` past the attempt, so a sender that
dies mid-attempt leaves a delivery that is simply due again once the lease runs out.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from creditgate.domain.webhooks import DeliveryStatus, retry_delay, subscribes
from creditgate.storage import webhooks as outbox
from creditgate.storage.ids import new_id

# Longer than any attempt can take (the sender's timeout), so a live attempt is never retaken.
LEASE = timedelta(minutes=2)
MAX_ERROR = 100


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One attempt to make: the signed body goes to `url` with `delivery_id` as webhook-id."""

    delivery_id: str
    tenant_id: str
    endpoint_id: str
    url: str
    secret: str  # as stored: sealed (see storage/secret_keys.py)
    body: str
    attempt: int  # 1 for the first
    claim: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt got back: a status code, or a class of error. Nothing the receiver
    said beyond its status is kept: the tenant reads this back, and the receiver may be a
    service the tenant could not otherwise reach."""

    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def fan_out(conn: Connection, now: datetime, *, limit: int = 500) -> int:
    """Turn up to `limit` undispatched events into deliveries; returns how many it took.

    An event goes to each enabled endpoint of its tenant that subscribes to its type and
    existed when it happened.
    """
    taken = outbox.undispatched_events(conn, limit)
    if not taken:
        return 0
    endpoints: dict[str, list[Any]] = defaultdict(list)
    for row in outbox.enabled_endpoints(conn, {e.tenant_id for e in taken}):
        endpoints[row.tenant_id].append(row)
    pairs = [
        (event, endpoint)
        for event in taken
        for endpoint in endpoints.get(event.tenant_id, ())
        if endpoint.created_at <= event.created_at and subscribes(endpoint.event_types, event.type)
    ]
    if pairs:
        # A replay may have sent an event before the fan-out reached it.
        existing = outbox.existing_deliveries(conn, {e.id for e, _ in pairs})
        outbox.insert_deliveries(
            conn,
            [
                _new_delivery(event, endpoint.id, now)
                for event, endpoint in pairs
                if (endpoint.id, event.id) not in existing
            ],
        )
    outbox.mark_dispatched(conn, [e.id for e in taken], now)
    return len(taken)


def _new_delivery(event: Any, endpoint_id: str, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": event.tenant_id,
        "id": new_id("whd"),
        "endpoint_id": endpoint_id,
        "event_id": event.id,
        "event_type": event.type,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_body(event: Any, customer: str | None) -> str:
    """The JSON a receiver gets, the same on every attempt: Standard Webhooks' shape."""
    data = dict(event.payload)
    if event.wallet_id is not None:
        data.setdefault("wallet_id", event.wallet_id)
        if customer is not None:
            data.setdefault("customer", customer)
    body = {
        "id": event.id,
        "type": event.type,
        "timestamp": _timestamp(event.created_at),
        "data": data,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def claim_due(
    conn: Connection,
    now: datetime,
    *,
    limit: int,
    tenant_id: str | None = None,
    lease: timedelta = LEASE,
) -> list[Outgoing]:
    """Take up to `limit` due deliveries of enabled endpoints for one attempt each."""
    due = outbox.due_deliveries(conn, now, limit, tenant_id)
    if not due:
        return []
    claim = new_id("clm")
    outbox.lease_deliveries(conn, [row.id for row in due], claim, now, lease)
    targets = outbox.endpoint_targets(conn, {r.endpoint_id for r in due})
    found = outbox.events_by_id(conn, {r.event_id for r in due})
    names = outbox.customer_names(
        conn, {e.wallet_id for e in found.values() if e.wallet_id is not None}
    )
    out = []
    for row in due:
        event = found[row.event_id]
        endpoint = targets[row.endpoint_id]
        out.append(
            Outgoing(
                delivery_id=row.id,
                tenant_id=row.tenant_id,
                endpoint_id=row.endpoint_id,
                url=endpoint.url,
                secret=endpoint.secret,
                body=event_body(event, names.get(event.wallet_id)),
                attempt=row.attempts + 1,
                claim=claim,
            )
        )
    return out


def record_outcome(
    conn: Connection, sent: Outgoing, outcome: Outcome, now: datetime, *, spread: float
) -> str | None:
    """Store what an attempt got; the delivery's new status, or None if the claim was lost.

    A claim is lost when the delivery was replayed (or its lease ran out and another sender
    took it) while this attempt was in flight: the newer attempt's result is the one kept.
    """
    values: dict[str, Any] = {
        "claim": None,
        "last_status_code": outcome.status_code,
        "last_error": None if outcome.error is None else outcome.error[:MAX_ERROR],
    }
    if outcome.ok:
        status = DeliveryStatus.SUCCEEDED
        values.update(status=status, next_attempt_at=None, finished_at=now)
    else:
        delay = retry_delay(sent.attempt, spread)
        if delay is None:
            status = DeliveryStatus.FAILED
            values.update(status=status, next_attempt_at=None, finished_at=now)
        else:
            status = DeliveryStatus.PENDING
            values.update(next_attempt_at=now + delay)
    changed = outbox.store_outcome(conn, sent.delivery_id, sent.claim, values)
    return str(status) if changed else None
