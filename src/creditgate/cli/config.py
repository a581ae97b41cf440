"""`creditgate config`: settings kept in a small file, so commands need fewer options."""

from __future__ import annotations

from typing import Annotated

import typer

from creditgate.cli._shared import (
    CONFIG_KEYS,
    ENV_TENANT,
    CliError,
    JsonOption,
    Typer,
    config_path,
    console,
    print_json,
    read_config,
    write_config,
)

config_app = Typer(
    help="Settings in $XDG_CONFIG_HOME/creditgate/config.toml ($CREDITGATE_CONFIG names another "
    "file): `tenant`, the default for --tenant.",
    no_args_is_help=True,
)

KeyArgument = Annotated[str, typer.Argument(help=f"One of: {', '.join(CONFIG_KEYS)}")]


def _key(key: str) -> str:
    if key not in CONFIG_KEYS:
        raise CliError(f"unknown setting {key!r}: the settings are {', '.join(CONFIG_KEYS)}")
    return key


@config_app.command("set")
def config_set(
    key: KeyArgument,
    value: Annotated[str, typer.Argument(help="e.g. a tenant's id (ten_…)")],
) -> None:
    """Set a setting, e.g. `creditgate config set tenant ten_…`."""
    values = read_config()
    values[_key(key)] = value
    path = write_config(values)
    console.print(f"{key} = {value} (in {path})", highlight=False)


@config_app.command("get")
def config_get(key: KeyArgument) -> None:
    """Print a setting (nothing, exit 1, if it is not set)."""
    value = read_config().get(_key(key))
    if value is None:
        raise typer.Exit(1)
    print(value)


@config_app.command("unset")
def config_unset(key: KeyArgument) -> None:
    """Remove a setting."""
    values = read_config()
    if values.pop(_key(key), None) is not None:
        write_config(values)
    console.print(f"{key} is not set", highlight=False)


@config_app.command("show")
def config_show(as_json: JsonOption = False) -> None:
    """Every setting, and the file that holds them."""
    values = read_config()
    path = config_path()
    if as_json:
        print_json({"path": str(path), "settings": values})
        return
    console.print(f"[dim]{path}[/]", highlight=False)
    for key in CONFIG_KEYS:
        console.print(f"{key} = {values.get(key, '(not set)')}", highlight=False)
    console.print(f"[dim]${ENV_TENANT} overrides tenant; --tenant overrides both[/]")
