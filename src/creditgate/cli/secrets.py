"""`creditgate secrets`: the operator's keys for the secrets stored for tenants."""

from __future__ import annotations

from typing import Annotated

import typer

from creditgate.cli._shared import CliError, DbOption, JsonOption, Typer, console, database_url

secrets_app = Typer(
    help="The keys webhook and provider secrets are sealed with (see SECURITY.md).",
    no_args_is_help=True,
)


@secrets_app.command("generate-key")
def generate_key() -> None:
    """Print a new key for CREDITGATE_SECRET_KEYS (put it first; keep the old ones after it)."""
    from creditgate.storage.secret_keys import generate_key as new_key

    print(new_key())


@secrets_app.command("rotate")
def rotate(
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key", help="First put a new key in front of the key file's (SQLite only)"
        ),
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Seal every stored secret again under the newest key; then older keys may be dropped."""
    from creditgate.services.sealed_secrets import reseal_all
    from creditgate.storage.database import Database
    from creditgate.storage.migrate import upgrade

    database = Database(database_url(db))
    try:
        upgrade(database)
        keys = database.secret_keys
        if new_key:
            try:
                keys.add_key()
            except ValueError as exc:
                raise CliError(str(exc)) from None
        report = reseal_all(database)
    finally:
        database.dispose()
    if as_json:
        print(report.model_dump_json())
        return
    console.print(
        f"sealed under the newest key: {report.webhook_secrets} webhook secret(s), "
        f"{report.provider_secrets} provider secret(s) ({keys.describe()})"
    )
