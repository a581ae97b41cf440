"""Webhook rules: what an endpoint may name, and when a failed delivery is tried again."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from creditgate.domain.errors import Conflict, InvalidInput, NotFound


class EventType(StrEnum):
    """Every event type creditgate raises (add new ones here, and to docs/events.md); `emit`
    takes only these. An endpoint subscribes to some of them, or to all."""

    AUTHORIZATION_DECLINED = "authorization.declined"
    BALANCE_DEPLETED = "balance.depleted"
    BALANCE_LOW = "balance.low"
    BALANCE_SOFT_CAP_REACHED = "balance.soft_cap_reached"
    BALANCE_THRESHOLD_CROSSED = "balance.threshold_crossed"
    BUDGET_THRESHOLD_CROSSED = "budget.threshold_crossed"
    CHARGE_SHORTFALL = "charge.shortfall"
    GRANT_EXPIRED = "grant.expired"
    GRANT_EXPIRING = "grant.expiring"
    GRANT_VOIDED = "grant.voided"
    OVERAGE_BILLED = "overage.billed"
    OVERAGE_PAID = "overage.paid"
    OVERAGE_PAYMENT_FAILED = "overage.payment_failed"
    REFUND_CREATED = "refund.created"
    REFUND_FAILED = "refund.failed"
    SUBSCRIPTION_CANCELED = "subscription.canceled"
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_CREDIT_WITHHELD = "subscription.credit_withheld"
    SUBSCRIPTION_PAID = "subscription.paid"
    SUBSCRIPTION_PAYMENT_FAILED = "subscription.payment_failed"
    SUBSCRIPTION_PLAN_CHANGED = "subscription.plan_changed"
    SUBSCRIPTION_RENEWED = "subscription.renewed"
    TOPUP_FAILED = "topup.failed"
    TOPUP_SUCCEEDED = "topup.succeeded"
    # Sent to one endpoint on request, whatever it subscribes to; never fanned out.
    WEBHOOK_TEST = "webhook.test"


# The types an endpoint may subscribe to.
EVENT_TYPES = tuple(t.value for t in EventType if t is not EventType.WEBHOOK_TEST)
TEST_EVENT_TYPE = EventType.WEBHOOK_TEST

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION = 500

# Waits after each failed attempt: the first attempt goes out at once, the last about a
# day later. Each wait is spread by up to JITTER either way, so that deliveries which
# failed together (a receiver's outage) do not all come back in the same second.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.1


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or in flight)
    SUCCEEDED = "succeeded"  # the endpoint answered 2xx
    FAILED = "failed"  # dead: every attempt failed, or its endpoint was deleted


class UnknownWebhookEndpoint(NotFound):
    code = "unknown_webhook_endpoint"


class UnknownWebhookDelivery(NotFound):
    code = "unknown_webhook_delivery"


class UnknownEvent(NotFound):
    code = "unknown_event"


class WebhookEndpointDisabled(Conflict):
    code = "webhook_endpoint_disabled"


def retry_delay(failed_attempts: int, spread: float) -> timedelta | None:
    """The wait before the next attempt after `failed_attempts` failures; None: give up.

    `spread` in [-1, 1] picks where in the jitter band the wait falls.
    """
    if not 1 <= failed_attempts < MAX_ATTEMPTS:
        return None
    spread = max(-1.0, min(1.0, spread))
    return RETRY_DELAYS[failed_attempts - 1] * (1 + JITTER * spread)


def check_url(value: object) -> str:
    """An http(s) URL a receiver listens on: absolute, with a host, without credentials."""
    if not isinstance(value, str) or not value:
        raise InvalidInput("url is required", field="url")
    if len(value) > MAX_URL_LENGTH:
        raise InvalidInput(f"url must be at most {MAX_URL_LENGTH} characters", field="url")
    if not value.isprintable() or any(c.isspace() for c in value) or not value.isascii():
        raise InvalidInput(
            "url must be ASCII without spaces (percent-encode the rest)", field="url"
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidInput("url is not a valid URL", field="url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("url must start with https:// or http://", field="url")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInput(
            "url must not carry credentials: authenticate deliveries by their signature",
            field="url",
        )
    if not parts.hostname:
        raise InvalidInput("url must name a host", field="url")
    if port == 0:
        raise InvalidInput("url must not name port 0", field="url")
    if parts.fragment or value.endswith("#"):
        raise InvalidInput("url must not have a #fragment", field="url")
    return value


_SHOWABLE = re.compile(r"^[A-Za-z0-9_.\-]{1,60}$")  # echoed back only if harmless


def check_event_types(value: object) -> list[str]:
    """Known event types, each once, sorted; an empty list subscribes to every type."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidInput("event_types must be a list of event types", field="event_types")
    chosen: set[str] = set()
    for item in value:
        if not isinstance(item, str) or item not in EVENT_TYPES:
            shown = repr(item) if isinstance(item, str) and _SHOWABLE.match(item) else "a value"
            raise InvalidInput(
                f"event_types: {shown} is not an event type; known: {', '.join(EVENT_TYPES)}",
                field="event_types",
            )
        chosen.add(item)
    return sorted(chosen)


def check_description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not value.isprintable():
        raise InvalidInput("description must be printable text", field="description")
    if len(value) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"description must be at most {MAX_DESCRIPTION} characters", field="description"
        )
    return value


def subscribes(event_types: Iterable[str], event_type: str) -> bool:
    types = list(event_types)
    return not types or event_type in types
