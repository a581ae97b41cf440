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

from sqlalchemy import Connection, insert, select, update

from creditgate.domain.webhooks import DeliveryStatus, retry_delay, subscribes
from creditgate.storage.ids import new_id
from creditgate.storage.tables import customers, events, webhook_deliveries, webhook_endpoints

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
    taken = conn.execute(
        select(events.c.id, events.c.tenant_id, events.c.type, events.c.created_at)
        .where(events.c.dispatched_at.is_(None))
        .order_by(events.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not taken:
        return 0
    endpoints: dict[str, list[Any]] = defaultdict(list)
    for row in conn.execute(
        select(
            webhook_endpoints.c.id,
            webhook_endpoints.c.tenant_id,
            webhook_endpoints.c.event_types,
            webhook_endpoints.c.created_at,
        ).where(
            webhook_endpoints.c.tenant_id.in_({e.tenant_id for e in taken}),
            webhook_endpoints.c.enabled.is_(True),
            webhook_endpoints.c.deleted_at.is_(None),
        )
    ):
        endpoints[row.tenant_id].append(row)
    pairs = [
        (event, endpoint)
        for event in taken
        for endpoint in endpoints.get(event.tenant_id, ())
        if endpoint.created_at <= event.created_at and subscribes(endpoint.event_types, event.type)
    ]
    if pairs:
        # A replay may have sent an event before the fan-out reached it.
        existing = {
            (row.endpoint_id, row.event_id)
            for row in conn.execute(
                select(webhook_deliveries.c.endpoint_id, webhook_deliveries.c.event_id).where(
                    webhook_deliveries.c.event_id.in_({e.id for e, _ in pairs})
                )
            )
        }
        rows = [
            {
                "tenant_id": event.tenant_id,
                "id": new_id("whd"),
                "endpoint_id": endpoint.id,
                "event_id": event.id,
                "event_type": event.type,
                "status": DeliveryStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for event, endpoint in pairs
            if (endpoint.id, event.id) not in existing
        ]
        if rows:
            conn.execute(insert(webhook_deliveries), rows)
    conn.execute(
        update(events).where(events.c.id.in_([e.id for e in taken])).values(dispatched_at=now)
    )
    return len(taken)


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
    d = webhook_deliveries.c
    query = (
        select(d.id, d.tenant_id, d.endpoint_id, d.event_id, d.attempts)
        .join(webhook_endpoints, webhook_endpoints.c.id == d.endpoint_id)
        .where(
            d.status == DeliveryStatus.PENDING,
            d.next_attempt_at <= now,
            webhook_endpoints.c.enabled.is_(True),
            webhook_endpoints.c.deleted_at.is_(None),
        )
        .order_by(d.next_attempt_at, d.id)
        .limit(limit)
        .with_for_update(of=webhook_deliveries, skip_locked=True)
    )
    if tenant_id is not None:
        query = query.where(d.tenant_id == tenant_id)
    due = conn.execute(query).all()
    if not due:
        return []
    claim = new_id("clm")
    ids = [row.id for row in due]
    conn.execute(
        update(webhook_deliveries)
        .where(d.id.in_(ids))
        .values(
            claim=claim,
            attempts=d.attempts + 1,
            next_attempt_at=now + lease,
            last_attempt_at=now,
        )
    )
    targets = {
        row.id: row
        for row in conn.execute(
            select(
                webhook_endpoints.c.id, webhook_endpoints.c.url, webhook_endpoints.c.secret
            ).where(webhook_endpoints.c.id.in_({r.endpoint_id for r in due}))
        )
    }
    found = {
        row.id: row
        for row in conn.execute(
            select(
                events.c.id,
                events.c.type,
                events.c.wallet_id,
                events.c.payload,
                events.c.created_at,
            ).where(events.c.id.in_({r.event_id for r in due}))
        )
    }
    wallets = {e.wallet_id for e in found.values() if e.wallet_id is not None}
    names: dict[str, str] = {}
    if wallets:
        names = {
            row.wallet_id: row.external_id
            for row in conn.execute(
                select(customers.c.wallet_id, customers.c.external_id).where(
                    customers.c.wallet_id.in_(wallets)
                )
            )
        }
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
    changed = conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.id == sent.delivery_id,
            webhook_deliveries.c.claim == sent.claim,
            webhook_deliveries.c.status == DeliveryStatus.PENDING,
        )
        .values(**values)
    ).rowcount
    return str(status) if changed else None
