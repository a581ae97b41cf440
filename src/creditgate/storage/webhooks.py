"""The webhook outbox's statements: undispatched events, due deliveries, claims and outcomes.

Each function takes a connection and plain values; the outbox (services/webhooks/outbox.py)
decides what to take and what an outcome means. On PostgreSQL the rows an outbox step takes
are locked `FOR UPDATE SKIP LOCKED`, so several senders share the work.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from creditgate.domain.webhooks import DeliveryStatus
from creditgate.storage.tables import (
    EVENT_UNDISPATCHED,
    customers,
    events,
    webhook_deliveries,
    webhook_endpoints,
)


def undispatched_events(conn: Connection, limit: int) -> Sequence[Any]:
    """Up to `limit` events not yet fanned out (id, tenant_id, type, created_at), oldest first."""
    return conn.execute(
        select(events.c.id, events.c.tenant_id, events.c.type, events.c.created_at)
        .where(EVENT_UNDISPATCHED)
        .order_by(events.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def enabled_endpoints(conn: Connection, tenant_ids: Collection[str]) -> Sequence[Any]:
    """Enabled, undeleted endpoints of these tenants: id, tenant_id, event_types, created_at."""
    return conn.execute(
        select(
            webhook_endpoints.c.id,
            webhook_endpoints.c.tenant_id,
            webhook_endpoints.c.event_types,
            webhook_endpoints.c.created_at,
        ).where(
            webhook_endpoints.c.tenant_id.in_(set(tenant_ids)),
            webhook_endpoints.c.enabled.is_(True),
            webhook_endpoints.c.deleted_at.is_(None),
        )
    ).all()


def existing_deliveries(conn: Connection, event_ids: Collection[str]) -> set[tuple[str, str]]:
    """(endpoint id, event id) of the deliveries these events already have."""
    return {
        (row.endpoint_id, row.event_id)
        for row in conn.execute(
            select(webhook_deliveries.c.endpoint_id, webhook_deliveries.c.event_id).where(
                webhook_deliveries.c.event_id.in_(set(event_ids))
            )
        )
    }


def insert_deliveries(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(insert(webhook_deliveries), list(rows))


def mark_dispatched(conn: Connection, event_ids: Iterable[str], now: datetime) -> None:
    conn.execute(update(events).where(events.c.id.in_(list(event_ids))).values(dispatched_at=now))


def due_deliveries(
    conn: Connection, now: datetime, limit: int, tenant_id: str | None
) -> Sequence[Any]:
    """Up to `limit` pending deliveries due by `now` to enabled endpoints (id, tenant_id,
    endpoint_id, event_id, attempts), soonest first, locked for this transaction."""
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
    return conn.execute(query).all()


def lease_deliveries(
    conn: Connection, ids: Sequence[str], claim: str, now: datetime, lease: timedelta
) -> None:
    """Count an attempt on each delivery and lease it to `claim` until now + lease."""
    d = webhook_deliveries.c
    conn.execute(
        update(webhook_deliveries)
        .where(d.id.in_(list(ids)))
        .values(
            claim=claim,
            attempts=d.attempts + 1,
            next_attempt_at=now + lease,
            last_attempt_at=now,
        )
    )


def endpoint_targets(conn: Connection, endpoint_ids: Collection[str]) -> dict[str, Any]:
    """Endpoints by id: id, url and secret (sealed, as stored)."""
    return {
        row.id: row
        for row in conn.execute(
            select(
                webhook_endpoints.c.id, webhook_endpoints.c.url, webhook_endpoints.c.secret
            ).where(webhook_endpoints.c.id.in_(set(endpoint_ids)))
        )
    }


def events_by_id(conn: Connection, event_ids: Collection[str]) -> dict[str, Any]:
    """Events by id: id, type, wallet_id, payload and created_at."""
    return {
        row.id: row
        for row in conn.execute(
            select(
                events.c.id,
                events.c.type,
                events.c.wallet_id,
                events.c.payload,
                events.c.created_at,
            ).where(events.c.id.in_(set(event_ids)))
        )
    }


def customer_names(conn: Connection, wallet_ids: Collection[str]) -> dict[str, str]:
    """The external id of each wallet's customer."""
    if not wallet_ids:
        return {}
    return {
        row.wallet_id: row.external_id
        for row in conn.execute(
            select(customers.c.wallet_id, customers.c.external_id).where(
                customers.c.wallet_id.in_(set(wallet_ids))
            )
        )
    }


def store_outcome(
    conn: Connection, delivery_id: str, claim: str, values: Mapping[str, Any]
) -> bool:
    """Write an attempt's outcome if the delivery is still pending under this claim."""
    changed = conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.id == delivery_id,
            webhook_deliveries.c.claim == claim,
            webhook_deliveries.c.status == DeliveryStatus.PENDING,
        )
        .values(**values)
    ).rowcount
    return bool(changed)
