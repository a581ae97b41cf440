"""Routes for webhook endpoints, the delivery log, replays and test events."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field, StrictBool
from starlette.responses import Response

from creditgate.domain.pages import DEFAULT_PAGE, MAX_PAGE
from creditgate.domain.webhooks import (
    EVENT_TYPES,
    MAX_DESCRIPTION,
    MAX_URL_LENGTH,
    TEST_EVENT_TYPE,
    UnknownEvent,
    UnknownWebhookDelivery,
    UnknownWebhookEndpoint,
    WebhookEndpointDisabled,
)
from creditgate.http import schemas
from creditgate.http.answers import IdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import ID_PATTERN, Body, Text, example
from creditgate.http.reference import errors
from creditgate.services.webhooks.endpoints import (
    WebhookDeliveryList,
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
EndpointPath = Annotated[str, Path(pattern=ID_PATTERN, description="The endpoint's id (`whe_…`)")]
DeliveryPath = Annotated[str, Path(pattern=ID_PATTERN, description="The delivery's id (`whd_…`)")]
EventPath = Annotated[str, Path(pattern=ID_PATTERN, description="The event's id (`evt_…`)")]
_DISABLED = (WebhookEndpointDisabled,)


class NewWebhookEndpoint(Body):
    model_config = example(
        {
            "url": "https://api.example.com/webhooks/creditgate",
            "event_types": ["balance.low", "authorization.declined"],
            "description": "billing service",
        }
    )

    url: Url
    event_types: EventTypes = []
    description: Description = Field("", description="Your note on it")
    enabled: StrictBool = Field(True, description="Whether events are sent to it")


class WebhookEndpointChange(Body):
    """The fields to change; those left out stay as they are."""

    model_config = example({"enabled": False, "description": "paused during the migration"})

    url: Url | None = Field(
        None, description="http(s) URL the events are POSTed to; no credentials in it"
    )
    event_types: EventTypes | None = Field(
        None, description="The event types to send; empty for every type"
    )
    description: Description | None = Field(None, description="Your note on it")
    enabled: StrictBool | None = Field(
        None,
        description="Whether events are sent to it (a disabled endpoint's pending deliveries wait)",
    )


class EventReplay(Body):
    model_config = example({"endpoint": "whe_01m8xedrm4y3a8sbbnq0x1cn7n"})

    endpoint: ObjectId | None = Field(
        default=None, description="Only to this endpoint; default: every endpoint subscribed"
    )


@endpoints.post(
    "",
    status_code=201,
    response_model=schemas.CreatedWebhookEndpoint,
    summary="Create a webhook endpoint",
    responses=errors(),
)
def create_endpoint(
    body: NewWebhookEndpoint, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """A new endpoint: events of the chosen types (every type, if none) are POSTed to its URL,
    signed (Standard Webhooks) and retried until it answers 2xx. Its signing `secret` is in
    this answer only; a replay answers null. The URL must be a public address."""
    created = t.create_webhook_endpoint(
        body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
        idempotency_key=idempotency_key,
    )
    return answer(created, 201)


@endpoints.get(
    "",
    response_model=schemas.WebhookEndpointList,
    summary="List webhook endpoints",
    responses=errors(),
)
def list_endpoints(t: Ledger) -> Response:
    """The tenant's endpoints (never their secrets)."""
    return answer(WebhookEndpointList(data=t.webhook_endpoints()))


@endpoints.get(
    "/{id}",
    response_model=schemas.WebhookEndpoint,
    summary="Get a webhook endpoint",
    responses=errors(UnknownWebhookEndpoint),
)
def get_endpoint(id: EndpointPath, t: Ledger) -> Response:
    """An endpoint (never its secret)."""
    return answer(t.webhook_endpoint(id))


@endpoints.post(
    "/{id}",
    response_model=schemas.WebhookEndpoint,
    summary="Change a webhook endpoint",
    responses=errors(UnknownWebhookEndpoint),
)
def update_endpoint(
    id: EndpointPath, body: WebhookEndpointChange, t: Ledger, idempotency_key: IdempotencyKey = None
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


@endpoints.delete(
    "/{id}",
    status_code=204,
    response_class=Response,
    summary="Delete a webhook endpoint",
    responses=errors(UnknownWebhookEndpoint),
)
def delete_endpoint(id: EndpointPath, t: Ledger) -> Response:
    """Stop sending to an endpoint. Its pending deliveries fail; its log stays readable."""
    t.delete_webhook_endpoint(id)
    return Response(status_code=204)


@endpoints.post(
    "/{id}/rotate-secret",
    response_model=schemas.CreatedWebhookEndpoint,
    summary="Rotate a webhook endpoint's secret",
    responses=errors(UnknownWebhookEndpoint),
)
def rotate_secret(id: EndpointPath, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
    """A new signing secret, in this answer only; every delivery from now on is signed with it."""
    return answer(t.rotate_webhook_secret(id, idempotency_key=idempotency_key))


@endpoints.post(
    "/{id}/test",
    status_code=201,
    response_model=schemas.WebhookDelivery,
    summary="Send a test event",
    responses=errors(UnknownWebhookEndpoint, *_DISABLED),
)
def send_test(id: EndpointPath, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
    """Send a `webhook.test` event to this endpoint alone, signed and retried like any other,
    to check the receiver. A disabled endpoint is refused (409)."""
    return answer(t.send_test_webhook(id, idempotency_key=idempotency_key), 201)


@deliveries.get(
    "",
    response_model=schemas.WebhookDeliveryPage,
    summary="List webhook deliveries",
    responses=errors(),
)
def list_deliveries(
    t: Ledger,
    endpoint: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only to this endpoint (`whe_…`)")
    ] = None,
    event: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only of this event (`evt_…`)")
    ] = None,
    event_type: Annotated[
        str | None,
        Query(
            max_length=60,
            json_schema_extra={"enum": [*EVENT_TYPES, TEST_EVENT_TYPE]},
            description="Only of this event type",
        ),
    ] = None,
    status: Annotated[
        Literal["pending", "succeeded", "failed"] | None,
        Query(description="Only in this state"),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description="Deliveries per page")
    ] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^whd_[0-9a-z]{1,60}$", description="next_cursor of the previous page"),
    ] = None,
) -> Response:
    """The delivery log, newest first, a page at a time (pass `next_cursor` as `cursor`):
    each event sent to each endpoint, with its attempts and the last answer."""
    page = t.webhook_deliveries(
        endpoint=endpoint,
        event=event,
        event_type=event_type,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return answer(page)


@deliveries.get(
    "/{id}",
    response_model=schemas.WebhookDelivery,
    summary="Get a webhook delivery",
    responses=errors(UnknownWebhookDelivery),
)
def get_delivery(id: DeliveryPath, t: Ledger) -> Response:
    """A delivery, its attempts and the endpoint's last answer."""
    return answer(t.webhook_delivery(id))


@deliveries.post(
    "/{id}/replay",
    response_model=schemas.WebhookDelivery,
    summary="Replay a webhook delivery",
    responses=errors(UnknownWebhookDelivery, *_DISABLED),
)
def replay_delivery(
    id: DeliveryPath, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Send a delivery again with the same `webhook-id` (receivers drop duplicates by it),
    whatever its state. Its endpoint must be enabled (409)."""
    return answer(t.replay_webhook_delivery(id, idempotency_key=idempotency_key))


@deliveries.post(
    "/events/{id}/replay",
    response_model=schemas.WebhookDeliveryList,
    summary="Replay an event",
    responses=errors(UnknownEvent, UnknownWebhookEndpoint, *_DISABLED),
)
def replay_event(
    id: EventPath,
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
