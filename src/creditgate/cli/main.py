"""The `creditgate` command line."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.main
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from creditgate.cli._shared import (
    ENV_DEBUG,
    ClickException,
    CliError,
    DbOption,
    JsonOption,
    NoArgsIsHelpError,
    TenantOption,
    Typer,
    UsageError,
    asset_scales,
    console,
    database_url,
    default_tenant,
    errors,
    metadata_json,
    open_creditgate,
    open_ledger,
    print_json,
    shown_url,
    state,
    table,
    timestamp,
    units,
    when,
)
from creditgate.domain.errors import CreditgateError
from creditgate.http import DEFAULT_BODY_TIMEOUT_SECONDS, DEFAULT_MAX_IN_FLIGHT
from creditgate.settings import Settings, debug_requested, describe
from creditgate.storage.database import default_url

if TYPE_CHECKING:
    from pydantic import BaseModel


app = Typer(
    help="creditgate: credit wallets and a pre-call gate for AI products.", no_args_is_help=True
)
bench_app = Typer(help="Benchmarks (figures go to BENCHMARKS.md).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _sigterm_unwinds() -> None:
    """SIGTERM (`kill`, a supervisor's stop, a CI job's timeout) unwinds the command as
    Ctrl-C does, so that the processes it started are stopped with it: a bench's servers, and
    chaos's servers and Patroni cluster, which run in sessions of their own that the signal
    does not reach. The command exits 143."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


@bench_app.callback()
def _bench() -> None:
    _sigterm_unwinds()


tenants_app = Typer(help="Tenants: the products using this creditgate.", no_args_is_help=True)
keys_app = Typer(help="A tenant's API keys (shown once, stored hashed).", no_args_is_help=True)
customers_app = Typer(help="Customers, each with one wallet.", no_args_is_help=True)
grants_app = Typer(help="Grants: lots of credit in a wallet.", no_args_is_help=True)
authorizations_app = Typer(help="Authorizations (holds).", no_args_is_help=True)
assets_app = Typer(help="Assets: the units wallets hold.", no_args_is_help=True)
app.add_typer(assets_app, name="assets")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(customers_app, name="customers")
app.add_typer(grants_app, name="grants")
app.add_typer(authorizations_app, name="authorizations")
from creditgate.cli.pricing import rate_cards_app, report_app  # noqa: E402

app.add_typer(rate_cards_app, name="rate-cards")
app.add_typer(report_app, name="report")
from creditgate.cli.billing import billing_app  # noqa: E402

app.add_typer(billing_app, name="billing")
from creditgate.cli.webhooks import webhooks_app  # noqa: E402

app.add_typer(webhooks_app, name="webhooks")
from creditgate.cli.secrets import secrets_app  # noqa: E402

app.add_typer(secrets_app, name="secrets")
from creditgate.cli.gateway import gateway_app  # noqa: E402

app.add_typer(gateway_app, name="gateway")

from creditgate.cli.config import config_app  # noqa: E402

app.add_typer(config_app, name="config")
from creditgate.cli.members import budgets_app, members_app  # noqa: E402

app.add_typer(members_app, name="members")
app.add_typer(budgets_app, name="budgets")


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar=ENV_DEBUG,
            help="On an error, show its traceback ($CREDITGATE_DEBUG=1)",
        ),
    ] = False,
) -> None:
    state.debug = debug


@app.command()
def migrate(db: DbOption = None) -> None:
    """Create or upgrade the schema."""
    from creditgate.storage.database import Database
    from creditgate.storage.migrate import current_revision, upgrade

    database = Database(database_url(db))
    try:
        upgrade(database)
        revision = current_revision(database)
    finally:
        database.dispose()
    console.print(f"schema at revision [bold]{revision}[/] on {database.dialect}")


@app.command()
def demo(db: DbOption = None) -> None:
    """Seed a demo tenant with assets, customers and stacked lots (idempotent)."""
    from creditgate.server.demo import seed_demo

    with open_creditgate(db) as cg:
        tenant = seed_demo(cg)
        t = cg.tenant(tenant.id)
        scales = asset_scales(t)
        rows = [
            (
                customer.external_id,
                b.asset,
                units(b.posted, scales.get(b.asset)),
                units(b.held, scales.get(b.asset)),
                units(b.available, scales.get(b.asset)),
                b.policy,
            )
            for customer in t.customers()
            for b in t.wallet(customer.external_id).balances
        ]
    table(
        f"{tenant.name} ({tenant.id})",
        ["customer", "asset", "posted", "held", "available", "policy"],
        rows,
        caption="amounts in each asset's units",
    )


@app.command()
def verify(
    db: DbOption = None,
    tenant: Annotated[str | None, typer.Option(help="Check one tenant only")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Rebuild every balance from the ledger and check the invariants; exit 1 on a violation."""
    with open_creditgate(db, migrate=False) as cg:
        report = cg.verify(tenant)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "checks": [
                        {"name": c.name, "checked": c.checked, "violations": c.violations}
                        for c in report.checks
                    ],
                }
            )
        )
    else:
        table = Table(title="creditgate verify")
        table.add_column("invariant")
        table.add_column("checked", justify="right")
        table.add_column("violations", justify="right")
        for c in report.checks:
            table.add_row(
                c.name, str(c.checked), f"[red]{len(c.violations)}[/]" if c.violations else "0"
            )
        console.print(table)
        for line in report.violations[:50]:
            console.print(f"[red]{line}[/]")
        console.print("[green]all invariants hold[/]" if report.ok else "[red]violations found[/]")
    if not report.ok:
        raise typer.Exit(1)


Backend = Annotated[str, typer.Option(help="sqlite or postgres")]


# Fields of a model that are amounts in minor units of its `asset`.
_AMOUNT_FIELDS = {
    "amount",
    "requested",
    "available",
    "debt",
    "shortfall",
    "posted",
    "held",
    "remaining",
    "consumed",
    "expired",
    "voided",
    "refunded",
    "released",
    "overdraft_limit",
}


def _fields(title: str, model: BaseModel, scales: dict[str, int] | None = None) -> None:
    """A model's fields, one a row; amounts in its asset's units, then in minor units."""
    data = model.model_dump(mode="json")
    scale = (scales or {}).get(str(data.get("asset")))
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        if isinstance(value, dict | list):
            value = json.dumps(value)
        elif key in _AMOUNT_FIELDS and isinstance(value, int) and scale is not None:
            value = f"{units(value, scale)} {data['asset']} ({value} minor units)"
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


# Tenants and keys


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="The product's name")],
    db: DbOption = None,
    key_name: Annotated[str, typer.Option(help="A name for the first API key")] = "default",
    mode: Annotated[
        str, typer.Option(help="live, or test: a sandbox that may advance its own clock")
    ] = "live",
    as_json: JsonOption = False,
) -> None:
    """Create a tenant and print its first API key (shown this once)."""
    with open_creditgate(db) as cg:
        tenant, key = cg.create_tenant_with_key(name, key_name=key_name, mode=mode)
    if as_json:
        print_json(
            {"tenant": tenant.model_dump(mode="json"), "api_key": key.model_dump(mode="json")}
        )
        return
    console.print(f"tenant  [bold]{tenant.id}[/] ({tenant.name})")
    console.print(f"api key [bold green]{key.key}[/]")
    console.print("[dim]the key is shown this once; creditgate keeps only its hash[/]")
    default = default_tenant()
    if default is None or default[0] != tenant.id:
        console.print(
            f"[dim]make it the default tenant: creditgate config set tenant {tenant.id}[/]",
            highlight=False,
            soft_wrap=True,
        )


@tenants_app.command("list")
def tenants_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every tenant."""
    with open_creditgate(db) as cg:
        tenants = cg.tenants()
    if as_json:
        print_json(tenants)
        return
    table(
        "tenants", ["id", "name", "created"], [(t.id, t.name, when(t.created_at)) for t in tenants]
    )


def _print_keys(keys: Sequence[BaseModel], as_json: bool) -> None:
    from creditgate.services.catalog.api_keys import display
    from creditgate.services.results import ApiKey

    if as_json:
        print_json(keys)
        return
    rows = [
        (
            k.id,
            display(k.prefix),
            k.name,
            when(k.created_at),
            when(k.last_used_at),
            when(k.revoked_at),
        )
        for k in keys
        if isinstance(k, ApiKey)
    ]
    table("API keys", ["id", "key", "name", "created", "last used", "revoked"], rows)


def _print_new_key(key: BaseModel, as_json: bool) -> None:
    if as_json:
        print_json(key)
        return
    console.print(f"api key [bold green]{getattr(key, 'key', '')}[/] ({getattr(key, 'id', '')})")
    console.print("[dim]the key is shown this once; creditgate keeps only its hash[/]")


@keys_app.command("list")
def keys_list(
    db: DbOption = None, tenant: TenantOption = None, as_json: JsonOption = False
) -> None:
    """The tenant's keys, by prefix."""
    with open_ledger(db, tenant) as t:
        keys = t.api_keys()
    _print_keys(keys, as_json)


@keys_app.command("create")
def keys_create(
    db: DbOption = None,
    tenant: TenantOption = None,
    name: Annotated[str, typer.Option(help="What the key is for")] = "",
    as_json: JsonOption = False,
) -> None:
    """A new key (shown this once)."""
    with open_ledger(db, tenant) as t:
        key = t.create_api_key(name)
    _print_new_key(key, as_json)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop a key working (within seconds on running servers)."""
    with open_ledger(db, tenant) as t:
        key = t.revoke_api_key(key_id)
    if as_json:
        print_json(key)
    else:
        _print_keys([key], as_json)


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key and print its replacement (shown this once)."""
    with open_ledger(db, tenant) as t:
        key = t.rotate_api_key(key_id)
    _print_new_key(key, as_json)


# Assets, customers, grants, balances, authorizations, ledger


@assets_app.command("list")
def assets_list(
    db: DbOption = None, tenant: TenantOption = None, as_json: JsonOption = False
) -> None:
    """The tenant's assets."""
    with open_ledger(db, tenant) as t:
        assets = t.assets()
    if as_json:
        print_json(assets)
        return
    table("assets", ["code", "scale", "name"], [(a.code, a.scale, a.name) for a in assets])


@assets_app.command("create")
def assets_create(
    code: Annotated[str, typer.Argument(help="e.g. credits, USD, gpu_minutes")],
    scale_argument: Annotated[
        int | None,
        typer.Argument(
            metavar="[SCALE]", help="The same as --scale (kept for scripts that pass it here)"
        ),
    ] = None,
    scale: Annotated[
        int | None,
        typer.Option(help="Decimal places of the minor unit: 2 makes 100 minor units 1.00"),
    ] = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    name: str = "",
    as_json: JsonOption = False,
) -> None:
    """Add an asset: `creditgate assets create credits --scale 2`."""
    if scale is not None and scale_argument is not None and scale != scale_argument:
        raise CliError(f"two scales given: {scale_argument} and --scale {scale}")
    scale = scale if scale is not None else scale_argument
    if scale is None:
        raise CliError("give the asset's scale, e.g. --scale 2 (decimal places of its minor unit)")
    with open_ledger(db, tenant) as t:
        asset = t.create_asset(code, scale, name)
    if as_json:
        print_json(asset)
        return
    table("asset created", ["code", "scale", "name"], [(asset.code, asset.scale, asset.name)])


@customers_app.command("list")
def customers_list(
    db: DbOption = None,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    after: Annotated[str | None, typer.Option(help="Start after this customer id")] = None,
    as_json: JsonOption = False,
) -> None:
    """Customers, by id."""
    with open_ledger(db, tenant) as t:
        customers = t.customers(limit=limit, after=after)
    if as_json:
        print_json(customers)
        return
    rows = [
        (c.external_id, c.name, c.policy, c.overdraft_limit, when(c.created_at)) for c in customers
    ]
    table("customers", ["customer", "name", "policy", "overdraft limit", "created"], rows)


@customers_app.command("create")
def customers_create(
    customer: Annotated[str, typer.Argument(help="Your own id for the customer")],
    db: DbOption = None,
    tenant: TenantOption = None,
    name: str = "",
    policy: Annotated[str, typer.Option(help="block, overdraft or allow")] = "block",
    overdraft_limit: Annotated[int | None, typer.Option(help="With --policy overdraft")] = None,
    metadata: Annotated[str | None, typer.Option(help="A JSON object")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add a customer (and its wallet)."""
    with open_ledger(db, tenant) as t:
        created = t.create_customer(
            customer,
            name=name,
            policy=policy,
            overdraft_limit=overdraft_limit,
            metadata=metadata_json(metadata),
        )
    if as_json:
        print_json(created)
    else:
        _fields(f"customer {created.external_id}", created)


@customers_app.command("show")
def customers_show(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """A customer and its balances."""
    with open_ledger(db, tenant) as t:
        found = t.customer(customer)
        wallet = t.wallet(customer)
        scales = {} if as_json else asset_scales(t)
    if as_json:
        print_json(
            {"customer": found.model_dump(mode="json"), "wallet": wallet.model_dump(mode="json")}
        )
        return
    _fields(f"customer {found.external_id}", found)
    _print_wallet(wallet, scales)


@customers_app.command("policy")
def customers_policy(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    asset: Annotated[str, typer.Argument(help="Asset code, e.g. credits")],
    policy: Annotated[str, typer.Option(help="block, overdraft or allow")] = "block",
    overdraft_limit: Annotated[
        int | None, typer.Option(help="With --policy overdraft, in the asset's minor unit")
    ] = None,
    low_balance: Annotated[
        int | None,
        typer.Option(help="Raise balance.low below this available, in the asset's minor unit"),
    ] = None,
    threshold: Annotated[
        list[int] | None,
        typer.Option(
            "--threshold",
            help="Raise balance.threshold_crossed when available falls below this amount, in "
            "the asset's minor unit (repeat it, at most 10)",
        ),
    ] = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set how a customer's wallet decides in one asset, and its alert thresholds: what is not
    given goes back to its default (no overdraft, no low-balance alert, no thresholds)."""
    with open_ledger(db, tenant) as t:
        set_to = t.set_policy(
            customer,
            asset,
            policy,
            overdraft_limit=overdraft_limit,
            low_balance_threshold=low_balance,
            thresholds=threshold,
        )
        scales = {} if as_json else asset_scales(t)
    if as_json:
        print_json(set_to)
    else:
        _fields(f"policy of {customer} in {asset}", set_to, scales)


def _print_wallet(wallet: Any, scales: dict[str, int]) -> None:
    rows = [
        (
            b.asset,
            *(units(v, scales.get(b.asset)) for v in (b.posted, b.held, b.available, b.debt)),
            b.policy,
            units(b.overdraft_limit, scales.get(b.asset)),
        )
        for b in wallet.balances
    ]
    columns = ["asset", "posted", "held", "available", "debt", "policy", "overdraft limit"]
    table(
        f"wallet of {wallet.customer}",
        columns,
        rows,
        drop=["overdraft limit", "debt", "held"],
        caption="amounts in each asset's units",
    )


@app.command()
def balance(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Posted, held and available per asset."""
    with open_ledger(db, tenant) as t:
        wallet = t.wallet(customer)
        scales = {} if as_json else asset_scales(t)
    if as_json:
        print_json(wallet)
    else:
        _print_wallet(wallet, scales)


@grants_app.command("create")
def grants_create(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    asset: Annotated[str, typer.Argument(help="Asset code, e.g. credits")],
    amount: Annotated[int, typer.Argument(help="In the asset's minor unit")],
    db: DbOption = None,
    tenant: TenantOption = None,
    kind: Annotated[
        str, typer.Option(help="included, promotional, purchased, refund or adjustment")
    ] = "promotional",
    priority: int = 0,
    effective_at: Annotated[str | None, typer.Option(help="ISO 8601, with a zone")] = None,
    expires_at: Annotated[str | None, typer.Option(help="ISO 8601, with a zone")] = None,
    cost_basis: Annotated[str, typer.Option(help="Money received per unit")] = "0",
    currency: str = "USD",
    metadata: Annotated[str | None, typer.Option(help="A JSON object")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add a lot of credit to a wallet."""
    with open_ledger(db, tenant) as t:
        lot = t.grant(
            customer,
            asset,
            amount,
            kind=kind,
            priority=priority,
            effective_at=timestamp(effective_at, "--effective-at"),
            expires_at=timestamp(expires_at, "--expires-at"),
            cost_basis=cost_basis,
            currency=currency,
            metadata=metadata_json(metadata),
        )
        scales = asset_scales(t)
    if as_json:
        print_json(lot)
    else:
        _print_lots([lot], f"granted to {customer}", scales)


def _print_lots(lots: Sequence[Any], title: str, scales: dict[str, int]) -> None:
    rows = [
        (
            lot.id,
            lot.asset,
            lot.kind,
            lot.status,
            units(lot.amount, scales.get(lot.asset)),
            units(lot.remaining, scales.get(lot.asset)),
            lot.priority,
            when(lot.expires_at),
            lot.cost_basis,
        )
        for lot in lots
    ]
    columns = [
        "lot",
        "asset",
        "kind",
        "status",
        "amount",
        "remaining",
        "priority",
        "expires",
        "cost basis",
    ]
    table(
        title,
        columns,
        rows,
        drop=["cost basis", "priority", "status", "kind"],
        caption="amounts in each asset's units",
    )


@grants_app.command("list")
def grants_list(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    db: DbOption = None,
    tenant: TenantOption = None,
    asset: str | None = None,
    include_closed: Annotated[
        bool, typer.Option("--all", help="Include expired, voided and used-up lots")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """A wallet's lots in burn order."""
    with open_ledger(db, tenant) as t:
        lots = t.lots(customer, asset=asset, include_closed=include_closed)
        scales = asset_scales(t)
    if as_json:
        print_json(lots)
    else:
        _print_lots(lots, f"lots of {customer} in burn order", scales)


@grants_app.command("void")
def grants_void(
    lot_id: Annotated[str, typer.Argument(help="The lot's id (lot_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    reason: str = "",
    as_json: JsonOption = False,
) -> None:
    """Remove what is left of a lot."""
    with open_ledger(db, tenant) as t:
        lot = t.void_lot(lot_id, reason=reason)
        scales = asset_scales(t)
    if as_json:
        print_json(lot)
    else:
        _print_lots([lot], "voided", scales)


@authorizations_app.command("show")
def authorizations_show(
    authorization_id: Annotated[str, typer.Argument(help="The authorization's id (hld_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """One authorization and its state."""
    with open_ledger(db, tenant) as t:
        auth = t.authorization(authorization_id)
        scales = asset_scales(t)
    if as_json:
        print_json(auth)
    else:
        _fields(f"authorization {auth.id}", auth, scales)


@authorizations_app.command("settle")
def authorizations_settle(
    authorization_id: Annotated[str, typer.Argument(help="The authorization's id (hld_…)")],
    amount: Annotated[int, typer.Argument(help="Actual usage, in the asset's minor unit")],
    db: DbOption = None,
    tenant: TenantOption = None,
    action: str | None = None,
    as_json: JsonOption = False,
) -> None:
    """Charge the actual amount against a pending hold and release the rest."""
    with open_ledger(db, tenant) as t:
        settled = t.settle(authorization_id, amount, action=action)
        scales = asset_scales(t)
    if as_json:
        print_json(settled)
    else:
        _fields(f"charge {settled.charge.id}", settled.charge, scales)


@authorizations_app.command("void")
def authorizations_void(
    authorization_id: Annotated[str, typer.Argument(help="The authorization's id (hld_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Release a pending hold in full."""
    with open_ledger(db, tenant) as t:
        auth = t.void(authorization_id)
        scales = asset_scales(t)
    if as_json:
        print_json(auth)
    else:
        _fields(f"authorization {auth.id}", auth, scales)


@app.command()
def ledger(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    db: DbOption = None,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    asset: str | None = None,
    as_json: JsonOption = False,
) -> None:
    """A wallet's ledger transactions, newest first."""
    with open_ledger(db, tenant) as t:
        page = t.ledger(customer, limit=limit, cursor=cursor, asset=asset)
        scales = asset_scales(t)
    if as_json:
        print_json(page)
        return
    rows = [
        (
            tx.id,
            when(tx.created_at),
            tx.kind,
            tx.asset,
            units(tx.wallet_change, scales.get(tx.asset)),
            tx.reference_id,
        )
        for tx in page.data
    ]
    table(
        f"ledger of {customer}",
        ["transaction", "at", "kind", "asset", "change", "reference"],
        rows,
        drop=["reference", "at"],
        caption="amounts in each asset's units",
    )
    if page.next_cursor:
        console.print(f"[dim]more: --cursor {page.next_cursor}[/]")


# The server


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (PostgreSQL only; SQLite uses one)")
    ] = 1,
    demo: Annotated[bool, typer.Option(help="Seed the demo tenant and print an API key")] = False,
    max_in_flight: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="CREDITGATE_MAX_IN_FLIGHT",
            help="Requests served at once per process; more get 503",
        ),
    ] = DEFAULT_MAX_IN_FLIGHT,
    body_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            envvar="CREDITGATE_BODY_TIMEOUT_SECONDS",
            help="Seconds a request's body may take to arrive; a slower one gets 408",
        ),
    ] = DEFAULT_BODY_TIMEOUT_SECONDS,
    trusted_proxies: Annotated[
        str,
        typer.Option(
            envvar="CREDITGATE_TRUSTED_PROXIES",
            help="Comma-separated addresses or networks of the proxies in front whose "
            "X-Forwarded-For names the client (default: none; the peer is the client)",
        ),
    ] = "",
    pool_size: Annotated[
        int,
        typer.Option(
            min=1,
            help="Database connections per process (on PostgreSQL, as many "
            "requests do database work at once)",
        ),
    ] = 10,
    sweep_seconds: Annotated[
        float, typer.Option(min=0.1, help="How often holds and lots are expired")
    ] = 5.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    allow_private_webhook_targets: Annotated[
        bool,
        typer.Option(
            "--allow-private-webhook-targets",
            help="Let webhooks go to loopback and private networks (self-hosted receivers); "
            "$CREDITGATE_ALLOW_PRIVATE_WEBHOOK_TARGETS=1 alike",
        ),
    ] = False,
    stripe_api_base: Annotated[
        str | None,
        typer.Option(
            help="Where the Stripe client connects instead of Stripe (a proxy, or an offline "
            "fake); $CREDITGATE_STRIPE_API_BASE alike"
        ),
    ] = None,
    edge: Annotated[
        bool,
        typer.Option(
            "--edge/--no-edge",
            hidden=True,
            help="Serve the busiest routes at the app's edge (http/hot.py); --no-edge sends "
            "every request through FastAPI's router, to measure what the edge pays",
        ),
    ] = True,
) -> None:
    """Run the HTTP API (with the background sweeper) until interrupted."""
    import shlex

    from creditgate.server.serve import CannotListen, Listening, ServeOptions
    from creditgate.server.serve import serve as run_server

    def announce(at: Listening) -> None:
        # Plain prints on stdout: scripts and tests read these lines.
        lines = [f"creditgate listening on {at.base_url}", f"API docs: {at.base_url}/docs"]
        if at.demo_key is not None:
            lines.append(f"demo API key: {at.demo_key}")
            lines.append("demo customers:")
            lines += [f"  {id_:<12} {name}" for id_, name in at.demo_customers.items()]
            lines.append("to use the demo from another shell (curl, the SDK), run:")
            lines.append(f"  export CREDITGATE_BASE_URL={shlex.quote(at.base_url)}")
            lines.append(f"  export CREDITGATE_API_KEY={shlex.quote(at.demo_key)}")
        print("\n".join(lines), flush=True)

    options = ServeOptions(
        url=db or default_url(),
        host=host,
        port=port,
        workers=workers,
        demo=demo,
        max_in_flight=max_in_flight,
        body_timeout_seconds=body_timeout,
        trusted_proxies=trusted_proxies,
        pool_size=pool_size,
        sweep_seconds=sweep_seconds,
        log_level=log_level,
        allow_private_webhook_targets=allow_private_webhook_targets,
        stripe_api_base=stripe_api_base,
        edge=edge,
    )
    try:
        run_server(options, announce)
    except CannotListen as e:
        raise CliError(str(e), exit_code=1) from None


@bench_app.command("gate")
def bench_gate(
    backend: Backend = "sqlite",
    seconds: Annotated[float, typer.Option(help="Total measuring time")] = 10.0,
    priced: Annotated[bool, typer.Option(help="Price actions with a rate card")] = False,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Authorize + settle pairs per second, against raw SQL doing the same effects."""
    from creditgate.bench.gate import run_gate
    from creditgate.bench.target import bench_database

    with bench_database(backend, _given_db(db)) as url:
        result = run_gate(url, seconds, priced=priced)
    _print_result(result, as_json)


@bench_app.command("hot-wallet")
def bench_hot_wallet(
    backend: Backend = "postgres",
    clients: Annotated[int, typer.Option(help="Concurrent clients")] = 32,
    seconds: Annotated[float, typer.Option()] = 10.0,
    processes: Annotated[int, typer.Option(help="Client processes")] = 4,
    members: Annotated[
        int,
        typer.Option(
            min=0, help="Spread the clients over this many members, each under a hard budget"
        ),
    ] = 0,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Concurrent debits on one wallet: throughput, and never one approval too many."""
    from creditgate.bench.hot_wallet import run_hot_wallet
    from creditgate.bench.target import bench_database

    with bench_database(backend, _given_db(db)) as url:
        result = run_hot_wallet(url, clients, seconds, processes=processes, members=members)
    _print_result(result, as_json)
    if result["overdrafts"] or result["approved"] > result["expected_approved"]:
        raise typer.Exit(1)


@bench_app.command("http")
def bench_http(
    backend: Backend = "postgres",
    workers: Annotated[int, typer.Option(min=1, help="Server processes (PostgreSQL)")] = 2,
    rate: Annotated[float, typer.Option(min=1, help="Pairs per second offered")] = 500.0,
    seconds: Annotated[float, typer.Option(min=1, help="Measuring time")] = 10.0,
    max_in_flight: Annotated[
        int, typer.Option(min=1, help="Server in-flight limit")
    ] = DEFAULT_MAX_IN_FLIGHT,
    pool_size: Annotated[
        int, typer.Option(min=1, help="Database connections (and threads) per server process")
    ] = 10,
    client_processes: Annotated[int, typer.Option(min=1, help="Load processes")] = 2,
    connections: Annotated[
        int, typer.Option(min=1, help="Client connections opened up front (more when all busy)")
    ] = 128,
    floor: Annotated[
        bool,
        typer.Option(
            "--floor",
            help="Against the floor (a minimal raw-ASGI, raw-SQL server doing the same "
            "effects), interleaved, fresh database each run (PostgreSQL)",
        ),
    ] = False,
    rates: Annotated[
        str, typer.Option(help="With --floor: pairs/s offered, comma-separated")
    ] = "150,1000",
    rounds: Annotated[int, typer.Option(min=1, help="With --floor: interleaved rounds")] = 3,
    before: Annotated[
        str | None,
        typer.Option(
            help="With --floor: also the creditgate run from this PYTHONPATH (an earlier "
            "commit's src/ and sdk/python/src), as `before`"
        ),
    ] = None,
    no_edge: Annotated[
        bool,
        typer.Option(
            "--no-edge",
            help="Serve every request through FastAPI's router (`serve --no-edge`); with "
            "--floor, that server as one more contender, `no-edge`",
        ),
    ] = False,
    lean: Annotated[
        bool,
        typer.Option(
            "--lean",
            help="With --floor: also creditgate's ledger behind the floor's raw ASGI handling "
            "(bench/lean.py), as `lean`: what a lighter HTTP stack could buy",
        ),
    ] = False,
    pin_workers: Annotated[
        bool,
        typer.Option(
            "--pin-workers",
            help="With --floor: every contender's worker processes each on one CPU, in turn "
            "(a measurement: the servers run so only in this bench)",
        ),
    ] = False,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Authorize + settle pairs over HTTP against `creditgate serve`, open loop at --rate."""
    from creditgate.bench.http import run_http
    from creditgate.bench.target import bench_database

    if floor:
        _bench_http_floor(
            rates,
            rounds,
            seconds,
            workers,
            pool_size,
            max_in_flight,
            client_processes,
            connections,
            db,
            as_json,
            before,
            no_edge,
            lean,
            pin_workers,
        )
        return
    if lean or pin_workers:
        raise CliError("--lean and --pin-workers go with --floor")
    with bench_database(backend, _given_db(db)) as url:
        result = run_http(
            url,
            workers=workers,
            rate=rate,
            seconds=seconds,
            max_in_flight=max_in_flight,
            pool_size=pool_size,
            client_processes=client_processes,
            connections=connections,
            edge=not no_edge,
        )
    _print_result(result, as_json)


def _rates(rates: str, example: str) -> list[float]:
    """A bench's --rates: rates per second above 0, comma-separated (`example` in errors)."""
    try:
        offered = [float(part) for part in rates.split(",") if part.strip()]
    except ValueError:
        raise CliError(f"--rates must be numbers separated by commas, e.g. {example}") from None
    if not offered or any(rate <= 0 for rate in offered):
        raise CliError(f"--rates must be numbers above 0, e.g. {example}")
    return offered


def _bench_http_floor(
    rates: str,
    rounds: int,
    seconds: float,
    workers: int,
    pool_size: int,
    max_in_flight: int,
    client_processes: int,
    connections: int,
    db: str | None,
    as_json: bool,
    before: str | None = None,
    no_edge: bool = False,
    lean: bool = False,
    pin_workers: bool = False,
) -> None:
    from creditgate.bench.http_floor import run_http_floor
    from creditgate.bench.target import bench_server

    offered = _rates(rates, "150,1000")
    given = _given_db(db)
    if given is not None and not given.startswith("postgresql"):
        raise CliError("--floor runs on PostgreSQL: give --db a postgresql:// server URL")
    with bench_server(given) as server:
        result = run_http_floor(
            server,
            rates=offered,
            seconds=seconds,
            rounds=rounds,
            workers=workers,
            pool_size=pool_size,
            max_in_flight=max_in_flight,
            client_processes=client_processes,
            connections=connections,
            before_src=before,
            without_edge=no_edge,
            lean=lean,
            pinned=pin_workers,
            progress=None if as_json else console.print,
        )
    if as_json:
        print(json.dumps(result))
        return
    _print_floor(result)


def _print_floor(result: dict[str, Any]) -> None:
    table = Table(title="bench http --floor: medians of the interleaved rounds")
    for column in ("rate/s", "contender", "pairs/s", "p50 ms", "p99 ms", "server ms/pair"):
        table.add_column(column, justify="right")
    for column in ("postgres ms/pair", "load ms/pair", "commits/pair", "errors"):
        table.add_column(column, justify="right")
    for row in result["summary"]:
        for who in result["contenders"]:
            f = row[who]
            table.add_row(
                f"{row['rate']:g}",
                who,
                *(
                    str(f[k])
                    for k in (
                        "pairs_per_s",
                        "p50_ms",
                        "p99_ms",
                        "server_cpu_ms_per_pair",
                        "postgres_cpu_ms_per_pair",
                        "client_cpu_ms_per_pair",
                        "commits_per_pair",
                        "errors",
                    )
                ),
            )
        for name in (n for n in row if n.startswith("ratio")):
            ratio = row[name]
            table.add_row(
                f"{row['rate']:g}",
                name.replace("_", " "),
                str(ratio["pairs_per_s"]),
                "",
                "",
                str(ratio["server_cpu_ms_per_pair"]),
                str(ratio["postgres_cpu_ms_per_pair"]),
                "",
                "",
                "",
            )
    console.print(table)
    for who, counted in result["counted"].items():
        console.print(
            f"{who}: {counted['statements_per_pair']} statements, "
            f"{counted['round_trips_per_pair']} round trips, "
            f"{counted['commits_per_pair']} commits, {counted['index_scans_per_pair']} index "
            f"scans, {counted['index_entries_written_per_pair']} index entries written per pair"
        )
        for text, n in counted["statements"].items():
            console.print(f"  {n:>5} {text[:150]}")
    console.print(
        f"peak ratio (creditgate / floor at {max(result['rates']):g}/s): {result['peak_ratio']}"
        f"; over the time until the last pair was answered: {result['peak_ratio_sustained']}"
    )


@bench_app.command("gateway")
def bench_gateway(
    backend: Backend = "sqlite",
    rates: Annotated[
        str, typer.Option(help="Gateway calls per second offered, comma-separated")
    ] = "50,200",
    seconds: Annotated[float, typer.Option(min=1, help="Measuring time per rate and kind")] = 10.0,
    workers: Annotated[int, typer.Option(min=1, help="Server processes (PostgreSQL)")] = 1,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Latency the LLM gateway adds over calling the provider directly (a local stand-in),
    whole and streamed chat completions, open loop at each rate, the two paths interleaved."""
    from creditgate.bench.gateway import run_gateway
    from creditgate.bench.target import bench_database

    offered = _rates(rates, "50,200")
    with bench_database(backend, _given_db(db)) as url:
        result = run_gateway(url, rates=offered, seconds=seconds, workers=workers)
    if as_json:
        print(json.dumps(result))
        return
    _print_gateway(result)


def _print_gateway(result: dict[str, Any]) -> None:
    table = Table(title="bench gateway: the gateway over a direct call (ms)")
    for column in ("rate/s", "call", "measure", "gateway p50", "direct p50", "added p50"):
        table.add_column(column, justify="right")
    for column in ("gateway p99", "direct p99", "added p99", "ratio p50", "errors"):
        table.add_column(column, justify="right")
    for row in result["phases"]:
        table.add_row(
            f"{row['rate']:g}",
            row["kind"],
            row["measure"],
            str(row["gateway_p50_ms"]),
            str(row["direct_p50_ms"]),
            str(row["added_p50_ms"]),
            str(row["gateway_p99_ms"]),
            str(row["direct_p99_ms"]),
            str(row["added_p99_ms"]),
            str(row["ratio_p50"]),
            str(row["gateway_errors"] + row["direct_errors"]),
        )
    console.print(table)
    targets = result["targets"]
    console.print(
        f"{result['backend']} ({result['durability']}), {result['workers']} worker(s), "
        f"{result['seconds']:g} s per row; load average {result['load_average_before']} before, "
        f"{result['load_average_after']} after; {result['charges']} charges for "
        f"{result['gateway_answered']} gateway calls answered, verified: {result['verified']}; "
        f"target at {targets['rate']:g}/s (added p50 <= {targets['added_p50_ms']:g} ms, "
        f"p99 <= {targets['added_p99_ms']:g} ms) met: {targets['met']}"
    )


def _given_db(db: str | None) -> str | None:
    """--db of the benches and chaos, read as everywhere else (a plain path is a SQLite file);
    without it they make a throwaway database of their own."""
    return database_url(db) if db else None


def _print_result(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"bench {result['benchmark']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    console.print(table)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: every error is one line on stderr, exit 1 (2 for a mistake in how
    the command was called), never a traceback unless --debug or $CREDITGATE_DEBUG=1."""
    sys.exit(run(argv))


@functools.cache
def command() -> TyperGroup:
    """The command tree, built from `app` once per process: Typer builds it from every
    command's signature (about 0.1 s of CPU), which `app()` would do at each call."""
    built = typer.main.get_command(app)
    assert isinstance(built, TyperGroup)
    return built


def run(argv: Sequence[str] | None = None) -> int:
    try:
        args = None if argv is None else list(argv)
        result = command().main(args=args, standalone_mode=False)
    except NoArgsIsHelpError:
        return 2  # the help is printed
    except UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        return _fail(f"{exc.format_message()}{hint}", 2, exc)
    except ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code, exc)
    except typer.Abort:
        return _fail("aborted", 1, None)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`creditgate ... | head`): nothing more to say.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - Python flushes it at exit
        return 1
    except CreditgateError as exc:
        field = f" ({exc.field})" if exc.field else ""
        return _fail(f"{exc.message}{field}", 1, exc)
    except CliError as exc:
        return _fail(str(exc), exc.exit_code, exc)
    except Exception as exc:
        return _fail(_describe(exc), 1, exc)
    return result if isinstance(result, int) else 0


def _fail(message: str, code: int, exc: BaseException | None) -> int:
    if exc is not None and (state.debug or debug_requested()):
        traceback.print_exception(exc)
    line = Text("error: ", style="red")
    line.append(" ".join(message.split()))  # one line, whatever the message held
    errors.print(line)
    return code


def _describe(exc: Exception) -> str:
    """One line for an error no part of creditgate names: the database's, the system's."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    where = shown_url(state.url) if state.url else "the database"
    if isinstance(exc, DBAPIError):
        lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
        detail = "; ".join(lines) or type(exc.orig).__name__
        if "no such table" in detail or "UndefinedTable" in type(exc.orig).__name__:
            return f"{where} has no creditgate schema (or an old one): run `creditgate migrate`"
        if exc.connection_invalidated or isinstance(exc.orig, _connection_errors()):
            first = _plain_connection(lines[0] if lines else detail)
            return f"cannot use the database {where}: {first}"
        return f"database error on {where}: {detail}"
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        return f"a setting is wrong: {describe(exc)}"
    if isinstance(exc, SQLAlchemyError):
        return f"database error on {where}: {' '.join(str(exc).split())}"
    if isinstance(exc, OSError):
        target = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{target}"
    return f"{type(exc).__name__}: {exc} (--debug shows where)"


def _connection_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return (sqlite3.OperationalError,)
    return (sqlite3.OperationalError, psycopg.OperationalError)


def _plain_connection(detail: str) -> str:
    # psycopg says "connection failed: connection to server at "…", port … failed: FATAL: …"
    for prefix in ("connection failed: ",):
        detail = detail.removeprefix(prefix)
    return detail.replace("FATAL: ", "")


@app.command()
def chaos(
    backend: Backend = "sqlite",
    minutes: Annotated[float, typer.Option(min=0.1, help="How long the whole run lasts")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Reproduce a run (printed by every run)")] = None,
    clients: Annotated[int, typer.Option(min=1, max=256, help="Concurrent HTTP clients")] = 12,
    servers: Annotated[int, typer.Option(min=1, max=8, help="Server processes")] = 2,
    pool_size: Annotated[
        int, typer.Option(min=1, max=64, help="Each server's database connections")
    ] = 8,
    crash_every: Annotated[
        float, typer.Option(min=0, help="Mean seconds between server SIGKILLs (0: none)")
    ] = 10.0,
    cut_every: Annotated[
        float,
        typer.Option(min=0, help="PostgreSQL: mean seconds between cutting connections (0: none)"),
    ] = 5.0,
    collect_clients: Annotated[
        int,
        typer.Option(
            min=0, max=64, help="Clients collecting money on a test-mode tenant (0: none)"
        ),
    ] = 2,
    db: DbOption = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="patroni: a 3-node Patroni cluster of its own (Debian's patroni and "
            "etcd-server) whose primary is killed, whose leader's Patroni is killed, and "
            "which is switched over, in turn"
        ),
    ] = None,
    failover_every: Annotated[
        float, typer.Option(min=1, help="--cluster: mean seconds between failovers")
    ] = 12.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Bank workload with crashes, cut connections and clock faults, overspend races and
    hostile input; checks every balance against a reference model. Exits 1 on any violation.
    With --cluster patroni, on a replicated cluster that fails over again and again."""
    from creditgate.chaos.runner import ChaosOptions, run_chaos

    _sigterm_unwinds()

    def spread(mean: float) -> tuple[float, float] | None:
        return (mean * 0.5, mean * 1.5) if mean > 0 else None

    if cluster not in (None, "patroni"):
        raise typer.BadParameter("the cluster there is is patroni", param_hint="--cluster")
    if cluster and db:
        raise typer.BadParameter("--cluster makes its own database", param_hint="--db")

    options = ChaosOptions(
        backend=backend,
        seconds=minutes * 60,
        seed=seed,
        clients=clients,
        servers=servers,
        pool_size=pool_size,
        crash_every=spread(crash_every),
        cut_every=spread(cut_every),
        race_rounds=max(1, int(minutes // 3)),
        hostile_share=min(0.15, 45 / (minutes * 60)),  # at most 45 s of hostile input
        db=_given_db(db),
        cluster=cluster,
        failover_every=(failover_every * 0.5, failover_every * 1.5),
        collect_clients=collect_clients,
    )
    progress = None if as_json else (lambda message: console.print(f"[dim]{message}[/]"))
    report = run_chaos(options, progress)
    if as_json:
        print(report.as_json())
    else:
        for failure in report.failures[:40]:
            console.print(f"[red]{failure}[/]")
        print(report.line())
    if not report.ok:
        raise typer.Exit(1)
