"""`creditgate gateway`: a tenant's settings for the LLM gateway (its upstream provider keys)
and its customers' gateway keys (`creditgate gateway customer-keys`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from creditgate.cli._shared import (
    DbOption,
    JsonOption,
    TenantOption,
    asset_scales,
    console,
    open_ledger,
    print_json,
    table,
    units,
    when,
)

if TYPE_CHECKING:
    from creditgate.api.gateway import GatewayKey, UpstreamKey

gateway_app = typer.Typer(
    help="The LLM gateway: the tenant's upstream provider keys (stored sealed, shown by prefix) "
    "and its customers' gateway keys.",
    no_args_is_help=True,
)
customer_keys_app = typer.Typer(
    help="Customer gateway keys (cgk_…): bound to one customer, for calling the gateway "
    "directly, with an optional spend limit and allowed models (shown once, stored hashed).",
    no_args_is_help=True,
)
gateway_app.add_typer(customer_keys_app, name="customer-keys")

ProviderArgument = Annotated[str, typer.Argument(help="openai or anthropic")]


@gateway_app.command("set-key")
def set_key(
    provider: ProviderArgument,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="The provider's API key (asked for, unechoed, when not given; read from "
            "standard input when it is not a terminal)",
        ),
    ] = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store the key the gateway calls PROVIDER with (replacing any before it)."""
    from creditgate.api.gateway import TenantGateway

    secret = key if key is not None else typer.prompt("API key", hide_input=True)
    with open_ledger(db, tenant) as t:
        stored = TenantGateway(t).set_upstream_key(provider, secret.strip())
    _print([stored], as_json, single=True, title=f"{provider} key stored")


@gateway_app.command("clear-key")
def clear_key(
    provider: ProviderArgument,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget the tenant's key for PROVIDER: the gateway refuses its calls from now on."""
    from creditgate.api.gateway import TenantGateway

    with open_ledger(db, tenant) as t:
        cleared = TenantGateway(t).clear_upstream_key(provider)
    _print([cleared], as_json, single=True, title=f"{provider} key cleared")


@gateway_app.command("keys")
def list_keys(
    db: DbOption = None, tenant: TenantOption = None, as_json: JsonOption = False
) -> None:
    """The providers the gateway has a key for, each shown by its first characters."""
    from creditgate.api.gateway import TenantGateway

    with open_ledger(db, tenant) as t:
        found = TenantGateway(t).upstream_keys()
    _print(found, as_json, single=False, title="gateway upstream keys")


def _print(keys: list[UpstreamKey], as_json: bool, *, single: bool, title: str) -> None:
    if as_json:
        print_json(keys[0] if single else keys)
        return
    if single:
        console.print(f"{title}: {keys[0].prefix}")
        return
    rows = [(k.provider, k.prefix, when(k.updated_at)) for k in keys]
    table(title, ["provider", "key", "updated"], rows)


CustomerArgument = Annotated[str, typer.Argument(help="The customer's id (your own)")]


@customer_keys_app.command("create")
def customer_keys_create(
    customer: CustomerArgument,
    name: Annotated[str, typer.Option(help="What the key is for")] = "",
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", help="Spend limit per period, in the asset's minor units (none: no limit)"
        ),
    ] = None,
    asset: Annotated[str, typer.Option(help="The asset the limit counts")] = "credits",
    period: Annotated[
        str, typer.Option(help="The limit's period: day, week, month or total")
    ] = "month",
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="A model the key may call (repeat it; none: any model)"),
    ] = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """A new gateway key bound to CUSTOMER (shown this once)."""
    from creditgate.api.gateway import TenantGateway

    spend_limit = None
    if limit is not None:
        spend_limit = {"asset": asset, "amount": limit, "period": period}
    with open_ledger(db, tenant) as t:
        created = TenantGateway(t).create_customer_key(
            customer, name=name, spend_limit=spend_limit, models=model
        )
    if as_json:
        print_json(created)
        return
    console.print(f"gateway key [bold green]{created.key}[/] ({created.id}) for {customer}")
    console.print("[dim]the key is shown this once; creditgate keeps only its hash[/]")


@customer_keys_app.command("list")
def customer_keys_list(
    customer: CustomerArgument,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """CUSTOMER's gateway keys, by prefix, with the current period's use of their limits."""
    from creditgate.api.gateway import TenantGateway

    with open_ledger(db, tenant) as t:
        found = TenantGateway(t).customer_keys(customer)
        scales = asset_scales(t) if not as_json else {}
    if as_json:
        print_json(found)
        return
    _print_customer_keys(found, scales, title=f"gateway keys of {customer}")


@customer_keys_app.command("revoke")
def customer_keys_revoke(
    customer: CustomerArgument,
    key_id: Annotated[str, typer.Argument(help="The key's id (gwk_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop one of CUSTOMER's gateway keys working (within seconds on running servers)."""
    from creditgate.api.gateway import TenantGateway

    with open_ledger(db, tenant) as t:
        revoked = TenantGateway(t).revoke_customer_key(customer, key_id)
        scales = asset_scales(t) if not as_json else {}
    if as_json:
        print_json(revoked)
        return
    _print_customer_keys([revoked], scales, title="gateway key revoked")


def _print_customer_keys(keys: list[GatewayKey], scales: dict[str, int], *, title: str) -> None:
    rows = []
    for k in keys:
        limit = used = ""
        if k.spend_limit is not None:
            scale = scales.get(k.spend_limit.asset)
            limit = (
                f"{units(k.spend_limit.amount, scale)} {k.spend_limit.asset}"
                f" / {k.spend_limit.period}"
            )
        if k.usage is not None:
            scale = scales.get(k.spend_limit.asset) if k.spend_limit else None
            taken = units(k.usage.spent + k.usage.held, scale)
            used = f"{taken} ({units(k.usage.remaining, scale)} left)"
        rows.append(
            (
                k.id,
                f"cgk_{k.prefix}_…",
                k.name,
                limit,
                used,
                ", ".join(k.models) if k.models is not None else "any",
                "revoked " + when(k.revoked_at) if k.revoked_at else "active",
            )
        )
    table(title, ["id", "key", "name", "limit", "used", "models", "state"], rows)
