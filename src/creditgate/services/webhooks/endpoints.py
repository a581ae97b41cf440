"""Webhook endpoints a tenant registers, its delivery log, replays and test events."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from creditgate.adapters.outbound import check_target
from creditgate.domain.errors import InvalidInput
from creditgate.domain.pages import DEFAULT_PAGE, MAX_PAGE
from creditgate.domain.webhooks import (
    EVENT_TYPES,
    TEST_EVENT_TYPE,
    DeliveryStatus,
    UnknownEvent,
    UnknownWebhookDelivery,
    UnknownWebhookEndpoint,
    WebhookEndpointDisabled,
    check_description,
    check_event_types,
    check_url,
    subscribes,
)
from creditgate.services.catalog.catalog import check_id
from creditgate.services.context import Idempotent, Tx
from creditgate.services.results import Result
from creditgate.services.wallet import emit
from creditgate.storage.ids import new_id
from creditgate.storage.tables import events, webhook_deliveries, webhook_endpoints

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


class WebhookEndpoint(Result):
    """Where events are POSTed. `event_types` empty: every type."""

    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class CreatedWebhookEndpoint(WebhookEndpoint):
    """An endpoint with its signing secret, shown this once (null when the answer is a replay)."""

    secret: str | None


class WebhookEndpointList(Result):
    data: list[WebhookEndpoint]


class WebhookDelivery(Result):
    """One event to one endpoint. `id` is the `webhook-id` header, the same on every attempt."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str  # pending | succeeded | failed
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    # A class of failure, never the receiver's words: timeout, connection_refused, tls_error,
    # dns_error, refused_target, connection_error, protocol_error, http_status (see the code).
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class WebhookDeliveryList(Result):
    data: list[WebhookDelivery]


class WebhookDeliveryPage(Result):
    data: list[WebhookDelivery]
    next_cursor: str | None


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def endpoint_result(row: Any) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        url=row.url,
        description=row.description,
        event_types=list(row.event_types),
        enabled=bool(row.enabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def delivery_result(row: Any) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def _check_url(tx: Tx, value: object) -> str:
    url = check_url(value)
    check_target(url, allow_private=tx.operator.allow_private_webhook_targets)
    return url


def _check_enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("enabled must be true or false", field="enabled")
    return value


def _find_endpoint(tx: Tx, endpoint_id: object, *, lock: bool = False) -> Any:
    endpoint_id = check_id(endpoint_id, "endpoint")
    query = select(webhook_endpoints).where(
        webhook_endpoints.c.id == endpoint_id,
        webhook_endpoints.c.tenant_id == tx.tenant_id,
        webhook_endpoints.c.deleted_at.is_(None),
    )
    row = tx.conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise UnknownWebhookEndpoint(
            f"webhook endpoint {endpoint_id!r} does not exist", field="endpoint"
        )
    return row


def _find_delivery(tx: Tx, delivery_id: object) -> Any:
    delivery_id = check_id(delivery_id, "delivery")
    row = tx.conn.execute(
        select(webhook_deliveries).where(
            webhook_deliveries.c.id == delivery_id,
            webhook_deliveries.c.tenant_id == tx.tenant_id,
        )
    ).first()
    if row is None:
        raise UnknownWebhookDelivery(
            f"webhook delivery {delivery_id!r} does not exist", field="delivery"
        )
    return row


def _created(row: Any, secret: str | None) -> CreatedWebhookEndpoint:
    return CreatedWebhookEndpoint(**endpoint_result(row).model_dump(), secret=secret)


def _replayed(idem: Idempotent) -> CreatedWebhookEndpoint | None:
    # The secret is not kept with the idempotency key: a replay answers it as null.
    replayed = idem.replay(WebhookEndpoint)
    return (
        None if replayed is None else CreatedWebhookEndpoint(**replayed.model_dump(), secret=None)
    )


def _recorded(idem: Idempotent, created: CreatedWebhookEndpoint) -> CreatedWebhookEndpoint:
    idem.record(WebhookEndpoint(**created.model_dump(exclude={"secret"})))
    return created


def create_endpoint(
    tx: Tx,
    *,
    url: str,
    event_types: list[str] | None = None,
    description: str = "",
    enabled: bool = True,
    idempotency_key: str | None = None,
) -> CreatedWebhookEndpoint:
    url = _check_url(tx, url)
    types = check_event_types(event_types)
    description = check_description(description)
    enabled = _check_enabled(enabled)
    idem = Idempotent(
        tx,
        idempotency_key,
        "webhook_endpoint.create",
        {"url": url, "event_types": types, "description": description, "enabled": enabled},
    )
    if (replayed := _replayed(idem)) is not None:
        return replayed
    secret = new_secret()
    endpoint_id = new_id("whe")
    tx.conn.execute(
        insert(webhook_endpoints).values(
            tenant_id=tx.tenant_id,
            id=endpoint_id,
            url=url,
            description=description,
            event_types=types,
            secret=tx.operator.secret_keys.seal(secret),
            enabled=enabled,
            created_at=tx.now,
            updated_at=tx.now,
            deleted_at=None,
        )
    )
    return _recorded(idem, _created(_find_endpoint(tx, endpoint_id), secret))


def list_endpoints(tx: Tx) -> WebhookEndpointList:
    rows = tx.conn.execute(
        select(webhook_endpoints)
        .where(
            webhook_endpoints.c.tenant_id == tx.tenant_id,
            webhook_endpoints.c.deleted_at.is_(None),
        )
        .order_by(webhook_endpoints.c.id)
    )
    return WebhookEndpointList(data=[endpoint_result(r) for r in rows])


def get_endpoint(tx: Tx, *, endpoint_id: str) -> WebhookEndpoint:
    return endpoint_result(_find_endpoint(tx, endpoint_id))


def update_endpoint(
    tx: Tx,
    *,
    endpoint_id: str,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    idempotency_key: str | None = None,
) -> WebhookEndpoint:
    """Change what is given (None: unchanged; `event_types=[]`: every type)."""
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = _check_url(tx, url)
    if event_types is not None:
        changes["event_types"] = check_event_types(event_types)
    if description is not None:
        changes["description"] = check_description(description)
    if enabled is not None:
        changes["enabled"] = _check_enabled(enabled)
    idem = Idempotent(
        tx, idempotency_key, "webhook_endpoint.update", {"endpoint": endpoint_id, **changes}
    )
    if (replayed := idem.replay(WebhookEndpoint)) is not None:
        return replayed
    _find_endpoint(tx, endpoint_id, lock=True)
    if changes:
        tx.conn.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(**changes, updated_at=tx.now)
        )
    return idem.record(endpoint_result(_find_endpoint(tx, endpoint_id)))


def rotate_secret(
    tx: Tx, *, endpoint_id: str, idempotency_key: str | None = None
) -> CreatedWebhookEndpoint:
    """A new signing secret; deliveries from now on are signed with it only."""
    idem = Idempotent(
        tx, idempotency_key, "webhook_endpoint.rotate_secret", {"endpoint": endpoint_id}
    )
    if (replayed := _replayed(idem)) is not None:
        return replayed
    _find_endpoint(tx, endpoint_id, lock=True)
    secret = new_secret()
    tx.conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(secret=tx.operator.secret_keys.seal(secret), updated_at=tx.now)
    )
    return _recorded(idem, _created(_find_endpoint(tx, endpoint_id), secret))


def delete_endpoint(tx: Tx, *, endpoint_id: str) -> None:
    """Stop sending to an endpoint; its pending deliveries fail, its log stays readable."""
    _find_endpoint(tx, endpoint_id, lock=True)
    tx.conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(deleted_at=tx.now, updated_at=tx.now, enabled=False)
    )
    tx.conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.endpoint_id == endpoint_id,
            webhook_deliveries.c.status == DeliveryStatus.PENDING,
        )
        .values(
            status=DeliveryStatus.FAILED,
            next_attempt_at=None,
            claim=None,
            finished_at=tx.now,
            last_error="the endpoint was deleted",
        )
    )


def get_delivery(tx: Tx, *, delivery_id: str) -> WebhookDelivery:
    return delivery_result(_find_delivery(tx, delivery_id))


def list_deliveries(
    tx: Tx,
    *,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    event_type: str | None = None,
    status: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> WebhookDeliveryPage:
    """The delivery log, newest first; pass `next_cursor` back as `cursor` for the next page."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", field="limit")
    d = webhook_deliveries.c
    query = select(webhook_deliveries).where(d.tenant_id == tx.tenant_id)
    if endpoint_id is not None:
        query = query.where(d.endpoint_id == check_id(endpoint_id, "endpoint"))
    if event_id is not None:
        query = query.where(d.event_id == check_id(event_id, "event"))
    if event_type is not None:
        if event_type not in (*EVENT_TYPES, TEST_EVENT_TYPE):
            raise InvalidInput(
                f"event_type: {event_type!r} is not an event type", field="event_type"
            )
        query = query.where(d.event_type == event_type)
    if status is not None:
        if status not in tuple(DeliveryStatus):
            raise InvalidInput(f"status must be one of {', '.join(DeliveryStatus)}", field="status")
        query = query.where(d.status == status)
    if cursor is not None:
        if not isinstance(cursor, str) or not cursor.startswith("whd_"):
            raise InvalidInput("cursor must be a next_cursor from an earlier page", field="cursor")
        query = query.where(d.id < cursor)
    rows = tx.conn.execute(query.order_by(d.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    return WebhookDeliveryPage(
        data=[delivery_result(r) for r in page],
        next_cursor=page[-1].id if len(rows) > limit else None,
    )


def _resend(tx: Tx, delivery_id: str) -> None:
    """Back to pending with a fresh retry schedule, under the same id (so the same webhook-id)."""
    tx.conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=tx.now,
            claim=None,
            finished_at=None,
        )
    )


def _insert_delivery(tx: Tx, endpoint_id: str, event_id: str, event_type: str) -> str:
    delivery_id = new_id("whd")
    tx.conn.execute(
        insert(webhook_deliveries).values(
            tenant_id=tx.tenant_id,
            id=delivery_id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=event_type,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=tx.now,
            created_at=tx.now,
        )
    )
    return delivery_id


def _require_enabled(endpoint: Any) -> None:
    if not endpoint.enabled:
        raise WebhookEndpointDisabled(
            f"webhook endpoint {endpoint.id} is disabled: enable it first", field="endpoint"
        )


def replay_delivery(
    tx: Tx, *, delivery_id: str, idempotency_key: str | None = None
) -> WebhookDelivery:
    """Send a delivery again, whatever its state, with the same webhook-id."""
    idem = Idempotent(tx, idempotency_key, "webhook_delivery.replay", {"delivery": delivery_id})
    if (replayed := idem.replay(WebhookDelivery)) is not None:
        return replayed
    found = _find_delivery(tx, delivery_id)
    _require_enabled(_find_endpoint(tx, found.endpoint_id, lock=True))
    _resend(tx, found.id)
    return idem.record(delivery_result(_find_delivery(tx, found.id)))


def replay_event(
    tx: Tx,
    *,
    event_id: str,
    endpoint_id: str | None = None,
    idempotency_key: str | None = None,
) -> WebhookDeliveryList:
    """Send an event again to one endpoint, or to every enabled endpoint subscribed to it.

    Endpoints that already had it get the same delivery (the same webhook-id) again; those
    that did not (created later, or subscribed since) get a new one.
    """
    event_id = check_id(event_id, "event")
    idem = Idempotent(
        tx, idempotency_key, "webhook_event.replay", {"event": event_id, "endpoint": endpoint_id}
    )
    if (replayed := idem.replay(WebhookDeliveryList)) is not None:
        return replayed
    # Locked, so that the fan-out (which skips locked events) never races this for a pair.
    event = tx.conn.execute(
        select(events.c.id, events.c.type)
        .where(events.c.id == event_id, events.c.tenant_id == tx.tenant_id)
        .with_for_update()
    ).first()
    if event is None:
        raise UnknownEvent(f"event {event_id!r} does not exist", field="event")
    existing = {
        r.endpoint_id: r.id
        for r in tx.conn.execute(
            select(webhook_deliveries.c.endpoint_id, webhook_deliveries.c.id).where(
                webhook_deliveries.c.event_id == event.id
            )
        )
    }
    if endpoint_id is not None:
        endpoint = _find_endpoint(tx, endpoint_id)
        _require_enabled(endpoint)
        if endpoint.id not in existing and not subscribes(endpoint.event_types, event.type):
            raise InvalidInput(
                f"webhook endpoint {endpoint.id} does not subscribe to {event.type}",
                field="endpoint",
            )
        targets = [endpoint]
    else:
        targets = [
            row
            for row in tx.conn.execute(
                select(webhook_endpoints)
                .where(
                    webhook_endpoints.c.tenant_id == tx.tenant_id,
                    webhook_endpoints.c.deleted_at.is_(None),
                    webhook_endpoints.c.enabled.is_(True),
                )
                .order_by(webhook_endpoints.c.id)
            )
            if row.id in existing
            or (event.type != TEST_EVENT_TYPE and subscribes(row.event_types, event.type))
        ]
    ids = []
    for endpoint in targets:
        if endpoint.id in existing:
            _resend(tx, existing[endpoint.id])
            ids.append(existing[endpoint.id])
        else:
            ids.append(_insert_delivery(tx, endpoint.id, event.id, event.type))
    return idem.record(WebhookDeliveryList(data=[get_delivery(tx, delivery_id=i) for i in ids]))


def send_test_event(
    tx: Tx, *, endpoint_id: str, idempotency_key: str | None = None
) -> WebhookDelivery:
    """A `webhook.test` event to this endpoint alone, delivered like any other."""
    idem = Idempotent(tx, idempotency_key, "webhook_endpoint.test", {"endpoint": endpoint_id})
    if (replayed := idem.replay(WebhookDelivery)) is not None:
        return replayed
    endpoint = _find_endpoint(tx, endpoint_id)
    _require_enabled(endpoint)
    # Sent to this endpoint alone: the fan-out must not send it to the others.
    event_id = emit(
        tx,
        TEST_EVENT_TYPE,
        None,
        {"endpoint": endpoint.id, "message": "a test event from creditgate"},
        only_to_its_caller=True,
    )
    delivery_id = _insert_delivery(tx, endpoint.id, event_id, TEST_EVENT_TYPE)
    return idem.record(get_delivery(tx, delivery_id=delivery_id))
