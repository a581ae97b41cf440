"""`creditgate gateway`: a tenant's settings for the LLM gateway (its upstream provider keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from creditgate.cli._shared import (
    DbOption,
    JsonOption,
    TenantOption,
    console,
    open_ledger,
    print_json,
    table,
    when,
)

if TYPE_CHECKING:
    from creditgate.api.gateway import UpstreamKey

gateway_app = typer.Typer(
    help="The LLM gateway: the tenant's upstream provider keys (stored sealed, shown by prefix).",
    no_args_is_help=True,
)

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
