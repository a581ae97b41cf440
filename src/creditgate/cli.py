"""The `creditgate` command line."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from creditgate.storage.database import default_url

app = typer.Typer(
    help="creditgate: credit wallets and a pre-call gate for AI products.", no_args_is_help=True
)
bench_app = typer.Typer(help="Benchmarks (figures go to BENCHMARKS.md).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console()

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $CREDITGATE_DB or ./creditgate.db)"),
]


@app.command()
def migrate(db: DbOption = None) -> None:
    """Create or upgrade the schema."""
    from creditgate.storage.database import Database
    from creditgate.storage.migrate import current_revision, upgrade

    database = Database(db or default_url())
    upgrade(database)
    console.print(f"schema at revision [bold]{current_revision(database)}[/] on {database.dialect}")
    database.dispose()


@app.command()
def demo(db: DbOption = None) -> None:
    """Seed a demo tenant with assets, customers and stacked lots (idempotent)."""
    from creditgate.api import Creditgate
    from creditgate.demo import seed_demo

    with Creditgate(db or default_url()) as cg:
        tenant = seed_demo(cg)
        t = cg.tenant(tenant.id)
        table = Table(title=f"{tenant.name} ({tenant.id})")
        for col in ("customer", "asset", "posted", "held", "available", "policy"):
            table.add_column(col)
        for customer in t.customers():
            for b in t.wallet(customer.external_id).balances:
                table.add_row(
                    customer.external_id,
                    b.asset,
                    str(b.posted),
                    str(b.held),
                    str(b.available),
                    b.policy,
                )
        console.print(table)
        console.print("amounts are in each asset's minor unit (credits and USD have scale 2)")


@app.command()
def verify(
    db: DbOption = None,
    tenant: Annotated[str | None, typer.Option(help="Check one tenant only")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Rebuild every balance from the ledger and check the invariants; exit 1 on a violation."""
    from creditgate.api import Creditgate

    with Creditgate(db or default_url(), migrate=False) as cg:
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

    with bench_database(backend, db) as url:
        result = run_gate(url, seconds, priced=priced)
    _print_result(result, as_json)


@bench_app.command("hot-wallet")
def bench_hot_wallet(
    backend: Backend = "postgres",
    clients: Annotated[int, typer.Option(help="Concurrent clients")] = 32,
    seconds: Annotated[float, typer.Option()] = 10.0,
    processes: Annotated[int, typer.Option(help="Client processes")] = 4,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Concurrent debits on one wallet: throughput, and never one approval too many."""
    from creditgate.bench.hot_wallet import run_hot_wallet
    from creditgate.bench.target import bench_database

    with bench_database(backend, db) as url:
        result = run_hot_wallet(url, clients, seconds, processes=processes)
    _print_result(result, as_json)
    if result["overdrafts"] or result["approved"] > result["expected_approved"]:
        raise typer.Exit(1)


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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
