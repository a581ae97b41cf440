"""The `creditgate webhooks` commands: endpoints, the delivery log, replays, a delivery round."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from creditgate.cli._shared import (
    DbOption,
    JsonOption,
    TenantOption,
    Typer,
    console,
    open_ledger,
    table,
    when,
)

if TYPE_CHECKING:
    from creditgate.services.webhooks.endpoints import (
        CreatedWebhookEndpoint,
        WebhookDelivery,
        WebhookEndpoint,
    )

webhooks_app = Typer(
    help="Webhooks: endpoints, signed deliveries, the delivery log.", no_args_is_help=True
)
EventTypeOption = Annotated[
    list[str] | None,
    typer.Option("--event-type", help="An event type to send (repeat it); default: every type"),
]


def _when(value: datetime | None) -> str:
    return when(value, seconds=True)


def _print_endpoints(found: Sequence[WebhookEndpoint], as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps({"data": [e.model_dump(mode="json") for e in found]}))
        return
    rows = [
        (
            e.id,
            e.url,
            ", ".join(e.event_types) or "(all)",
            "yes" if e.enabled else "no",
            e.description,
            _when(e.created_at),
        )
        for e in found
    ]
    columns = ("id", "url", "event types", "enabled", "description", "created")
    table(title, columns, rows, right=(), drop=("description", "created"))


def _print_secret(endpoint: CreatedWebhookEndpoint, as_json: bool, title: str) -> None:
    if as_json:
        print(endpoint.model_dump_json())
        return
    _print_endpoints([endpoint], False, title)
    console.print(f"signing secret [bold green]{endpoint.secret}[/]")
    console.print("[dim]shown this once: verify each delivery's signature with it[/]")


def _print_deliveries(
    found: Sequence[WebhookDelivery], as_json: bool, next_cursor: str | None = None
) -> None:
    if as_json:
        data = [d.model_dump(mode="json") for d in found]
        print(json.dumps({"data": data, "next_cursor": next_cursor}))
        return
    columns = ("id", "event", "type", "endpoint", "status", "attempts", "last", "next", "error")
    rows = []
    for d in found:
        code = f"{d.last_status_code} " if d.last_status_code is not None else ""
        rows.append(
            (
                d.id,
                d.event_id,
                d.event_type,
                d.endpoint_id,
                d.status,
                str(d.attempts),
                _when(d.last_attempt_at),
                _when(d.next_attempt_at) if d.status == "pending" else "",
                code + (d.last_error or "") if d.status != "succeeded" else code.strip(),
            )
        )
    table(
        "webhook deliveries",
        columns,
        rows,
        right=("attempts",),
        drop=("next", "last", "event", "endpoint", "error"),
    )
    if next_cursor:
        console.print(f"[dim]more: --cursor {next_cursor}[/]")


def _print_delivery(delivery: WebhookDelivery, as_json: bool) -> None:
    if as_json:
        print(delivery.model_dump_json())
    else:
        _print_deliveries([delivery], False)


@webhooks_app.command("create")
def create(
    url: Annotated[str, typer.Argument(help="Where to POST events (http or https)")],
    event_type: EventTypeOption = None,
    description: Annotated[str, typer.Option(help="What the endpoint is for")] = "",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled")] = False,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an endpoint and print its signing secret (shown this once)."""
    with open_ledger(db, tenant) as t:
        created = t.create_webhook_endpoint(
            url, event_types=event_type, description=description, enabled=not disabled
        )
    _print_secret(created, as_json, "webhook endpoint created")


@webhooks_app.command("list")
def list_endpoints(
    db: DbOption = None, tenant: TenantOption = None, as_json: JsonOption = False
) -> None:
    """The tenant's endpoints."""
    with open_ledger(db, tenant) as t:
        found = t.webhook_endpoints()
    _print_endpoints(found, as_json, "webhook endpoints")


@webhooks_app.command("update")
def update(
    endpoint: Annotated[str, typer.Argument(help="The endpoint's id (whe_…)")],
    url: Annotated[str | None, typer.Option(help="A new URL")] = None,
    event_type: EventTypeOption = None,
    all_events: Annotated[bool, typer.Option("--all-events", help="Send every event type")] = False,
    description: Annotated[str | None, typer.Option(help="A new description")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Turn deliveries on or off")
    ] = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change an endpoint; what is not given stays as it is."""
    types = [] if all_events else event_type
    with open_ledger(db, tenant) as t:
        updated = t.update_webhook_endpoint(
            endpoint, url=url, event_types=types, description=description, enabled=enabled
        )
    if as_json:
        print(updated.model_dump_json())
        return
    _print_endpoints([updated], False, "webhook endpoint updated")


@webhooks_app.command("delete")
def delete(
    endpoint: Annotated[str, typer.Argument(help="The endpoint's id (whe_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
) -> None:
    """Stop sending to an endpoint (its pending deliveries fail; the log stays)."""
    with open_ledger(db, tenant) as t:
        t.delete_webhook_endpoint(endpoint)
    console.print(f"deleted {endpoint}")


@webhooks_app.command("rotate-secret")
def rotate_secret(
    endpoint: Annotated[str, typer.Argument(help="The endpoint's id (whe_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace an endpoint's signing secret and print the new one (shown this once)."""
    with open_ledger(db, tenant) as t:
        rotated = t.rotate_webhook_secret(endpoint)
    _print_secret(rotated, as_json, "webhook secret rotated")


@webhooks_app.command("test")
def test(
    endpoint: Annotated[str, typer.Argument(help="The endpoint's id (whe_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a `webhook.test` event for one endpoint."""
    with open_ledger(db, tenant) as t:
        delivery = t.send_test_webhook(endpoint)
    _print_delivery(delivery, as_json)


@webhooks_app.command("deliveries")
def deliveries(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event's")] = None,
    event_type: Annotated[str | None, typer.Option(help="Only this event type")] = None,
    status: Annotated[str | None, typer.Option(help="pending, succeeded or failed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """The delivery log, newest first."""
    with open_ledger(db, tenant) as t:
        page = t.webhook_deliveries(
            endpoint=endpoint,
            event=event,
            event_type=event_type,
            status=status,
            limit=limit,
            cursor=cursor,
        )
    _print_deliveries(page.data, as_json, page.next_cursor)


@webhooks_app.command("replay")
def replay(
    delivery: Annotated[str, typer.Argument(help="The delivery's id (whd_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a delivery again, with the same webhook-id."""
    with open_ledger(db, tenant) as t:
        replayed = t.replay_webhook_delivery(delivery)
    _print_delivery(replayed, as_json)


@webhooks_app.command("replay-event")
def replay_event(
    event: Annotated[str, typer.Argument(help="The event's id (evt_…)")],
    endpoint: Annotated[
        str | None, typer.Option(help="Only to this endpoint (default: every one subscribed)")
    ] = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send an event again."""
    with open_ledger(db, tenant) as t:
        replayed = t.replay_event(event, endpoint=endpoint)
    _print_deliveries(replayed, as_json)


@webhooks_app.command("deliver")
def deliver(
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for each answer")] = 10,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send every due delivery of the tenant now (`creditgate serve` does this on its own)."""
    from creditgate.services.webhooks.delivery import WebhookSender

    with (
        open_ledger(db, tenant) as t,
        WebhookSender(
            timeout=timeout, allow_private_targets=t.cg.operator.allow_private_webhook_targets
        ) as sender,
    ):
        report = t.deliver_webhooks(sender)
    if as_json:
        print(report.model_dump_json())
        return
    console.print(
        f"attempted {report.attempted}: {report.succeeded} succeeded, "
        f"{report.retrying} to retry, {report.failed} failed"
    )
