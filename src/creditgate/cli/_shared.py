"""What every `creditgate` command group shares: options, opening a tenant, printing."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from creditgate.storage.database import default_url

if TYPE_CHECKING:
    from pydantic import BaseModel

    from creditgate.api import Creditgate, TenantLedger

# Piped output is read by people too (and grep): give it room rather than 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $CREDITGATE_DB or ./creditgate.db)"),
]
TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="Tenant id (default: the only tenant)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]


class CliError(Exception):
    """A mistake in how the command was called; printed without a traceback."""


@contextmanager
def open_creditgate(db: str | None) -> Iterator[Creditgate]:
    from creditgate.api import Creditgate

    with Creditgate(db or default_url()) as cg:
        yield cg


def pick_tenant(cg: Creditgate, tenant: str | None) -> TenantLedger:
    from creditgate.api import TenantLedger

    if tenant is not None:
        return cg.tenant(tenant)
    tenants = cg.tenants()
    if len(tenants) == 1:
        return TenantLedger(cg, tenants[0].id)
    if not tenants:
        raise CliError("there is no tenant yet: create one with `creditgate tenants create NAME`")
    ids = ", ".join(t.id for t in tenants[:10])
    raise CliError(f"there are {len(tenants)} tenants: pass --tenant (one of {ids})")


@contextmanager
def open_ledger(db: str | None, tenant: str | None) -> Iterator[TenantLedger]:
    with open_creditgate(db) as cg:
        yield pick_tenant(cg, tenant)


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    if isinstance(value, dict):
        print(json.dumps(value))
    elif isinstance(value, Sequence):
        print(json.dumps({"data": [item.model_dump(mode="json") for item in value]}))
    else:
        print(value.model_dump_json())


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


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    out = Table(title=title)
    for i, column in enumerate(columns):
        values = [row[i] for row in cells]
        # Ids and times are copied and compared: never wrap or cut them.
        whole = bool(values) and all(_WHOLE.match(v) for v in values if v)
        out.add_column(
            column,
            justify="right" if column in _NUMERIC else "left",
            overflow="fold" if whole else "ellipsis",
        )
    for row in cells:
        out.add_row(*row)
    console.print(out)


_WHOLE = re.compile(r"^([a-z]{3}_[0-9a-z]{26}|cg_[0-9a-z]{8}_…|\d{4}-\d\d-\d\d \d\d:\d\d)$")
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
}
