"""Routes for webhook endpoints, the delivery log, replays and test events."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field, StrictBool
from starlette.responses import Response

from creditgate.domain.pages import DEFAULT_PAGE, MAX_PAGE
from creditgate.domain.webhooks import (
    EVENT_TYPES,
    MAX_DESCRIPTION,
    MAX_URL_LENGTH,
    TEST_EVENT_TYPE,
)
from creditgate.http.answers import IdempotencyKey, ObjectPath, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import ID_PATTERN, Body, Text
from creditgate.services.webhooks.endpoints import (
    CreatedWebhookEndpoint,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookDeliveryPage,
    WebhookEndpoint,
    WebhookEndpointList,
)

endpoints = APIRouter(prefix="/v1/webhook-endpoints", route_class=ExactJsonRoute, tags=["webhooks"])
deliveries = APIRouter(
    prefix="/v1/webhook-deliveries", route_class=ExactJsonRoute, tags=["webhooks"]
)
router = APIRouter()

Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="http(s) URL the events are POSTed to; no credentials in it",
        examples=["https://api.example.com/webhooks/creditgate"],
    ),
]
EventType = Annotated[
    str,
    Field(max_length=60, json_schema_extra={"enum": list(EVENT_TYPES)}),
]
EventTypes = Annotated[
    list[EventType],
    Field(
        max_length=len(EVENT_TYPES),
        description="The event types to send; empty for every type",
    ),
]
Description = Annotated[Text, Field(max_length=MAX_DESCRIPTION)]
ObjectId = Annotated[str, Field(pattern=ID_PATTERN)]


class NewWebhookEndpoint(Body):
    url: Url
    event_types: EventTypes = []
    description: Description = ""
    enabled: StrictBool = True


class WebhookEndpointChange(Body):
    """The fields to change; those left out stay as they are."""

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: StrictBool | None = None


class EventReplay(Body):
    endpoint: ObjectId | None = Field(
        default=None, description="Only to this endpoint; default: every endpoint subscribed"
    )


@endpoints.post("", status_code=201, response_model=CreatedWebhookEndpoint)
def create_endpoint(
    body: NewWebhookEndpoint, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """A new endpoint. Its signing `secret` is in this answer only; a replay answers null."""
    created = t.create_webhook_endpoint(
        body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
        idempotency_key=idempotency_key,
    )
    return answer(created, 201)


@endpoints.get("", response_model=WebhookEndpointList)
def list_endpoints(t: Ledger) -> Response:
    return answer(WebhookEndpointList(data=t.webhook_endpoints()))


@endpoints.get("/{id}", response_model=WebhookEndpoint)
def get_endpoint(id: ObjectPath, t: Ledger) -> Response:
    return answer(t.webhook_endpoint(id))


@endpoints.post("/{id}", response_model=WebhookEndpoint)
def update_endpoint(
    id: ObjectPath, body: WebhookEndpointChange, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Change an endpoint's URL, event types, description or whether it is enabled.

    A disabled endpoint gets no new events; its pending deliveries wait until it is enabled.
    """
    updated = t.update_webhook_endpoint(
        id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
        idempotency_key=idempotency_key,
    )
    return answer(updated)


@endpoints.delete("/{id}", status_code=204, response_class=Response)
def delete_endpoint(id: ObjectPath, t: Ledger) -> Response:
    """Stop sending to an endpoint. Its pending deliveries fail; its log stays readable."""
    t.delete_webhook_endpoint(id)
    return Response(status_code=204)


@endpoints.post("/{id}/rotate-secret", response_model=CreatedWebhookEndpoint)
def rotate_secret(id: ObjectPath, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
    """A new signing secret, in this answer only; every delivery from now on is signed with it."""
    return answer(t.rotate_webhook_secret(id, idempotency_key=idempotency_key))


@endpoints.post("/{id}/test", status_code=201, response_model=WebhookDelivery)
def send_test(id: ObjectPath, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
    """Send a `webhook.test` event to this endpoint alone, signed and retried like any other."""
    return answer(t.send_test_webhook(id, idempotency_key=idempotency_key), 201)


@deliveries.get("", response_model=WebhookDeliveryPage)
def list_deliveries(
    t: Ledger,
    endpoint: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    event: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    event_type: Annotated[
        str | None,
        Query(max_length=60, json_schema_extra={"enum": [*EVENT_TYPES, TEST_EVENT_TYPE]}),
    ] = None,
    status: Literal["pending", "succeeded", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^whd_[0-9a-z]{1,60}$", description="next_cursor of the previous page"),
    ] = None,
) -> Response:
    """The delivery log, newest first."""
    page = t.webhook_deliveries(
        endpoint=endpoint,
        event=event,
        event_type=event_type,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return answer(page)


@deliveries.get("/{id}", response_model=WebhookDelivery)
def get_delivery(id: ObjectPath, t: Ledger) -> Response:
    return answer(t.webhook_delivery(id))


@deliveries.post("/{id}/replay", response_model=WebhookDelivery)
def replay_delivery(id: ObjectPath, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
    """Send a delivery again with the same `webhook-id`, whatever its state."""
    return answer(t.replay_webhook_delivery(id, idempotency_key=idempotency_key))


@deliveries.post("/events/{id}/replay", response_model=WebhookDeliveryList)
def replay_event(
    id: ObjectPath,
    t: Ledger,
    body: EventReplay | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Send an event (`evt_…`) again to one endpoint, or to every enabled one subscribed to it.

    An endpoint that had the event gets the same delivery (the same `webhook-id`) again.
    """
    endpoint = body.endpoint if body is not None else None
    replayed = t.replay_event(id, endpoint=endpoint, idempotency_key=idempotency_key)
    return answer(WebhookDeliveryList(data=replayed))


router.include_router(endpoints)
router.include_router(deliveries)
