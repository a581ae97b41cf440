"""What every `creditgate` command group shares: options, opening a tenant, printing."""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

try:  # Typer >= 0.20 carries its own copy of click; older ones use click itself.
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click  # type: ignore[no-redef]


from creditgate.domain.amounts import money_text, units_text
from creditgate.settings import Settings
from creditgate.storage.database import DEFAULT_SQLITE_FILE

if TYPE_CHECKING:
    from pydantic import BaseModel

    from creditgate.api import Creditgate, TenantLedger


# The errors click raises for a command line it cannot parse.
ClickException = click.exceptions.ClickException
UsageError = click.exceptions.UsageError
NoArgsIsHelpError = click.exceptions.NoArgsIsHelpError


def _console_width() -> int | None:
    # A terminal (or $COLUMNS) sets the width; piped output is read by people too (and grep):
    # give it room rather than Rich's 80 columns.
    return None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160


console = Console(width=_console_width())
errors = Console(stderr=True, soft_wrap=True, highlight=False)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="A SQLite file path or a postgresql:// URL "
        "(default: $CREDITGATE_DB or ./creditgate.db)",
    ),
]
TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        help="Tenant id (default: $CREDITGATE_TENANT, else `creditgate config set tenant`, "
        "else the only tenant)",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]

ENV_TENANT = "CREDITGATE_TENANT"
ENV_CONFIG = "CREDITGATE_CONFIG"
ENV_DEBUG = "CREDITGATE_DEBUG"


class CliError(Exception):
    """An error the command prints as one line, without a traceback. Exit code 2 for a mistake
    in how the command was called (the default), 1 for anything else (a file, the database)."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class State:
    """What the whole invocation shares: --debug, and the database it opened (for errors)."""

    debug = False
    url: str | None = None


state = State()


# Negative numbers as arguments


_NEGATIVE = re.compile(r"^-\d+(\.\d+)?$")


class _Parser(click.parser._OptionParser):
    """Click's parser, except that a negative number (`-100`) is an argument, not an option:
    it reaches the command, whose validation says what is wrong with it."""

    def _process_opts(self, arg: str, state: Any) -> None:
        if _NEGATIVE.match(arg) and arg not in self._long_opt and arg not in self._short_opt:
            state.largs.append(arg)
            return
        super()._process_opts(arg, state)


class Command(TyperCommand):
    def make_parser(self, ctx: click.Context) -> click.parser._OptionParser:
        parser = _Parser(ctx)
        for param in self.get_params(ctx):
            param.add_to_parser(parser, ctx)
        return parser


class Typer(typer.Typer):
    """typer.Typer whose commands take negative numbers as arguments."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)


# The database


SUPPORTED = "SQLite (a file path, or sqlite:///path) and PostgreSQL (postgresql://user@host/db)"
_SCHEMES = {"sqlite", "sqlite+pysqlite", "postgres", "postgresql", "postgresql+psycopg"}


def database_url(db: str | None) -> str:
    """The database URL from --db, else $CREDITGATE_DB, else ./creditgate.db. A plain path is a
    SQLite file; a URL must name SQLite or PostgreSQL."""
    source = "--db"
    if not db:
        db, source = Settings().db or DEFAULT_SQLITE_FILE, "$CREDITGATE_DB"
    scheme, sep, rest = db.partition("://")
    path: Path | None
    if not sep:
        path = Path(db).expanduser().resolve()
        url = f"sqlite:///{path}"
    elif scheme.lower() not in _SCHEMES:
        raise CliError(
            f"{source}: unsupported database {scheme}://…; creditgate runs on {SUPPORTED}"
        )
    elif scheme.lower().startswith("sqlite"):
        url = db
        name = rest[1:] if rest.startswith("/") else rest
        path = Path(name).expanduser() if name and name != ":memory:" else None
    else:
        url = db
        path = None
    if path is not None and not path.parent.is_dir():
        raise CliError(
            f"cannot open the SQLite database {path}: the folder {path.parent} does not exist",
            exit_code=1,
        )
    state.url = url
    return url


def shown_url(url: str) -> str:
    """A database URL fit to print: its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


# The settings file (a default tenant)


CONFIG_KEYS = {"tenant": "The tenant commands use when --tenant is not given"}


def config_path() -> Path:
    """$CREDITGATE_CONFIG, else $XDG_CONFIG_HOME/creditgate/config.toml (~/.config by default)."""
    explicit = Settings().config
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "creditgate" / "config.toml"


def read_config() -> dict[str, str]:
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # no settings file: no settings
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the settings file {path}: {exc}", exit_code=1) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"the settings file {path} is not valid TOML: {exc}", exit_code=1) from None
    return {key: value for key, value in data.items() if isinstance(value, str)}


def write_config(values: dict[str, str]) -> Path:
    path = config_path()
    lines = ["# creditgate's settings: `creditgate config set KEY VALUE` writes this file."]
    lines += [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"cannot write the settings file {path}: {exc.strerror}", exit_code=1
        ) from None
    return path


def default_tenant() -> tuple[str, str] | None:
    """The default tenant and where it is set, if it is."""
    from_env = Settings().tenant
    if from_env:
        return from_env, f"${ENV_TENANT}"
    configured = read_config().get("tenant")
    if configured:
        return configured, f"tenant in {config_path()}"
    return None


# Opening a tenant


@contextmanager
def open_creditgate(db: str | None, *, migrate: bool = True) -> Iterator[Creditgate]:
    from creditgate.api import Creditgate

    with Creditgate(database_url(db), migrate=migrate) as cg:
        yield cg


def pick_tenant(cg: Creditgate, tenant: str | None) -> TenantLedger:
    from creditgate.api import TenantLedger
    from creditgate.domain.errors import NotFound

    if tenant is not None:
        return cg.tenant(tenant)
    default = default_tenant()
    if default is not None:
        tenant, source = default
        try:
            return cg.tenant(tenant)
        except NotFound:
            raise CliError(
                f"tenant {tenant!r} ({source}) does not exist in this database", exit_code=1
            ) from None
    tenants = cg.tenants()
    if len(tenants) == 1:
        return TenantLedger(cg, tenants[0].id)
    if not tenants:
        raise CliError("there is no tenant yet: create one with `creditgate tenants create NAME`")
    ids = ", ".join(t.id for t in tenants[:10])
    raise CliError(
        f"there are {len(tenants)} tenants: pass --tenant (one of {ids}), or set a default with "
        "`creditgate config set tenant ID` or $CREDITGATE_TENANT"
    )


@contextmanager
def open_ledger(db: str | None, tenant: str | None) -> Iterator[TenantLedger]:
    with open_creditgate(db) as cg:
        yield pick_tenant(cg, tenant)


# Printing


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    if isinstance(value, dict):
        print(json.dumps(value))
    elif isinstance(value, Sequence):
        print(json.dumps({"data": [item.model_dump(mode="json") for item in value]}))
    else:
        print(value.model_dump_json())


def metadata_json(value: str | None) -> dict[str, Any] | None:
    """A --metadata option: a JSON object, or None when left out."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        raise CliError("--metadata must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise CliError("--metadata must be a JSON object")
    return parsed


def when(value: datetime | None, *, seconds: bool = False) -> str:
    if not value:
        return ""
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def timestamp(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option} must be an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise CliError(f"{option} needs a time zone, e.g. 2026-01-31T00:00:00Z")
    return parsed


def units(amount: int | None, scale: int | None) -> str:
    """An amount in minor units, written in the asset's units: 176 at scale 2 is "1.76"."""
    if amount is None:
        return ""
    if scale is None:
        return str(amount)
    return units_text(amount, scale)


def asset_scales(t: TenantLedger) -> dict[str, int]:
    return {asset.code: asset.scale for asset in t.assets()}


def money(value: Decimal | str | int | None, currency: str | None = None) -> str:
    """Money in a currency's minor unit (cents for most), rounded half to even: "56.20"."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return money_text(amount, currency or "USD")


def table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    right: Collection[str] | None = None,
    drop: Sequence[str] = (),
    caption: str | None = None,
) -> None:
    """A table that fits the console: when even wrapped at word boundaries it is too wide, the
    columns in `drop` go first (in that order, named in the caption); what still does not fit
    folds rather than being cut. Columns in `right` (default: the usual numeric ones) are
    right-aligned."""
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    aligned = _NUMERIC if right is None else set(right)
    shown = list(range(len(columns)))
    dropped: list[str] = []

    compact = False

    def build() -> Table:
        notes = [c for c in (caption, _hidden(dropped)) if c]
        out = Table(title=title, caption="\n".join(notes) or None)
        if compact:  # no outer border, one space between columns
            out.box, out.show_edge, out.pad_edge, out.collapse_padding = (
                box.SIMPLE_HEAD,
                False,
                False,
                True,
            )
        for i in shown:
            values = [row[i] for row in cells if row[i]]
            out.add_column(
                columns[i],
                justify="right" if columns[i] in aligned else "left",
                # Ids and times are copied and compared: never wrap them.
                no_wrap=bool(values) and all(_WHOLE.match(v) for v in values),
                overflow="fold",
            )
        for row in cells:
            out.add_row(*(row[i] for i in shown))
        return out

    out = build()
    for name in drop:
        if _narrowest(out) <= console.width:
            break
        if name in columns and columns.index(name) in shown:
            shown.remove(columns.index(name))
            dropped.append(name)
            out = build()
    if _narrowest(out) > console.width:
        compact = True
        out = build()
    if _narrowest(out) > console.width and cells:
        _records(title, columns, cells, caption)
        return
    console.print(out)


def _records(
    title: str, columns: Sequence[str], cells: Sequence[Sequence[str]], caption: str | None
) -> None:
    """Rows too wide for the terminal even without their optional columns: each row as a list
    of fields, one a line, so that nothing is cut."""
    out = Table(title=title, caption=caption, show_header=False, box=box.SIMPLE_HEAD)
    out.add_column("field", style="bold", no_wrap=True)
    out.add_column("value", overflow="fold")
    for n, row in enumerate(cells):
        if n:
            out.add_section()
        for column, value in zip(columns, row, strict=True):
            out.add_row(column, value)
    console.print(out)


def _narrowest(out: Table) -> int:
    """The width a table needs to show every cell on one line."""
    return console.measure(out, options=console.options.update_width(100_000)).maximum


def _hidden(dropped: Sequence[str]) -> str:
    return f"not shown at this width: {', '.join(dropped)}" if dropped else ""


_WHOLE = re.compile(
    r"^([a-z]{2,4}_[0-9a-z]{26}|cg_[0-9a-z]{8}_…|\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?)$"
)
_NUMERIC = {
    "amount",
    "remaining",
    "posted",
    "held",
    "available",
    "debt",
    "change",
    "scale",
    "priority",
    "included",
    "rollover_cap",
    "fee",
    "price",
    "unused",
    "consumed",
    "money",
    "refunded_money",
    "overdraft limit",
}
