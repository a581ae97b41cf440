"""The `creditgate members` and `creditgate budgets` commands: an organization's members,
budgets per member or customer, and their usage per period."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from creditgate.cli._shared import (
    DbOption,
    JsonOption,
    TenantOption,
    Typer,
    asset_scales,
    metadata_json,
    open_ledger,
    print_json,
    table,
    timestamp,
    units,
    when,
)

if TYPE_CHECKING:
    from creditgate.services.results import Budget, Member

members_app = Typer(
    help="Members of a customer (an organization), drawing on its wallet under budgets.",
    no_args_is_help=True,
)
budgets_app = Typer(
    help="Budgets: what a member (or a whole customer) may use per period.",
    no_args_is_help=True,
)

Customer = Annotated[str, typer.Argument(help="The customer's id")]
MemberArg = Annotated[str, typer.Argument(help="The member's id, unique within the customer")]
MemberOption = Annotated[
    str | None, typer.Option("--member", help="A member's id; left out: the customer as a whole")
]


def _print_members(members: Sequence[Member], title: str) -> None:
    rows = [
        (m.external_id, m.name, m.status, when(m.created_at), when(m.removed_at)) for m in members
    ]
    table(title, ["member", "name", "status", "added", "removed"], rows, drop=["removed"])


@members_app.command("create")
def members_create(
    customer: Customer,
    member: MemberArg,
    db: DbOption = None,
    tenant: TenantOption = None,
    name: str = "",
    metadata: Annotated[str | None, typer.Option(help="A JSON object")] = None,
    inactive: Annotated[bool, typer.Option(help="Add it inactive (its calls declined)")] = False,
    as_json: JsonOption = False,
) -> None:
    """Add a member to a customer."""
    with open_ledger(db, tenant) as t:
        created = t.create_member(
            customer, member, name=name, metadata=metadata_json(metadata), active=not inactive
        )
    if as_json:
        print_json(created)
    else:
        _print_members([created], f"member of {customer}")


@members_app.command("list")
def members_list(
    customer: Customer,
    db: DbOption = None,
    tenant: TenantOption = None,
    include_removed: Annotated[bool, typer.Option("--all", help="Also removed members")] = False,
    after: Annotated[str | None, typer.Option(help="Start after this member id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    as_json: JsonOption = False,
) -> None:
    """A customer's members, by id."""
    with open_ledger(db, tenant) as t:
        found = t.members(customer, include_removed=include_removed, after=after, limit=limit)
    if as_json:
        print_json(found)
    else:
        _print_members(found.data, f"members of {customer}")


@members_app.command("update")
def members_update(
    customer: Customer,
    member: MemberArg,
    db: DbOption = None,
    tenant: TenantOption = None,
    name: Annotated[str | None, typer.Option(help="A new display name")] = None,
    metadata: Annotated[str | None, typer.Option(help="A JSON object")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Let its calls through, or not")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a member's name, metadata or whether it is active."""
    with open_ledger(db, tenant) as t:
        changed = t.update_member(
            customer, member, name=name, metadata=metadata_json(metadata), active=active
        )
    if as_json:
        print_json(changed)
    else:
        _print_members([changed], f"member of {customer}")


@members_app.command("remove")
def members_remove(
    customer: Customer,
    member: MemberArg,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove a member for good: its calls are declined, its history stays."""
    with open_ledger(db, tenant) as t:
        removed = t.remove_member(customer, member)
    if as_json:
        print_json(removed)
    else:
        _print_members([removed], f"member of {customer}")


@members_app.command("usage")
def members_usage(
    customer: Customer,
    member: Annotated[
        str | None, typer.Argument(help="The member's id; left out: the customer's own budgets")
    ] = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    periods: Annotated[int, typer.Option(min=1, max=24, help="Periods per budget")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Spent, held and remaining per budget period."""
    with open_ledger(db, tenant) as t:
        found = t.usage(customer, member=member, periods=periods)
        scales = asset_scales(t)
    if as_json:
        print_json(found)
        return
    rows = [
        (
            p.asset,
            p.period,
            when(p.period_start) if p.period_start else "total",
            *(units(v, scales.get(p.asset)) for v in (p.amount, p.spent, p.held, p.remaining)),
            p.mode,
            ", ".join(f"{c}%" for c in p.thresholds_crossed),
        )
        for p in found.data
    ]
    columns = ["asset", "period", "from", "budget", "spent", "held", "remaining", "mode", "alerts"]
    title = f"usage of {member} ({customer})" if member else f"usage of {customer}"
    table(title, columns, rows, drop=["alerts", "mode"], caption="amounts in each asset's units")


def _print_budgets(budgets: Sequence[Budget], title: str, scales: dict[str, int]) -> None:
    rows = [
        (
            b.member or "(customer)",
            b.asset,
            units(b.amount, scales.get(b.asset)),
            b.period,
            b.mode,
            ", ".join(f"{p}%" for p in b.thresholds),
            when(b.anchor),
        )
        for b in budgets
    ]
    columns = ["member", "asset", "amount", "period", "mode", "thresholds", "anchor"]
    table(title, columns, rows, drop=["anchor", "thresholds"])


@budgets_app.command("set")
def budgets_set(
    customer: Customer,
    asset: Annotated[str, typer.Argument(help="Asset code, e.g. credits")],
    amount: Annotated[int, typer.Argument(help="The most per period, in the asset's minor unit")],
    period: Annotated[str, typer.Option(help="day, week, month or total")],
    member: MemberOption = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    anchor: Annotated[
        str | None,
        typer.Option(help="ISO 8601, with a zone: where periods count from (default: calendar)"),
    ] = None,
    mode: Annotated[str, typer.Option(help="hard (decline past it) or soft")] = "hard",
    threshold: Annotated[
        list[int] | None,
        typer.Option("--threshold", help="An alert threshold, a percentage (repeat it)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set a member's (or the customer's own) budget in one asset."""
    with open_ledger(db, tenant) as t:
        budget = t.set_budget(
            customer,
            asset,
            amount,
            period=period,
            member=member,
            anchor=timestamp(anchor, "--anchor"),
            mode=mode,
            thresholds=threshold,
        )
        scales = asset_scales(t)
    if as_json:
        print_json(budget)
    else:
        _print_budgets([budget], f"budget of {customer}", scales)


@budgets_app.command("list")
def budgets_list(
    customer: Customer,
    member: MemberOption = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """A member's (or the customer's own) budgets."""
    with open_ledger(db, tenant) as t:
        found = t.budgets(customer, member=member)
        scales = asset_scales(t)
    if as_json:
        print_json(found)
    else:
        _print_budgets(found.data, f"budgets of {member or customer}", scales)


@budgets_app.command("delete")
def budgets_delete(
    customer: Customer,
    asset: Annotated[str, typer.Argument(help="Asset code, e.g. credits")],
    member: MemberOption = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove a member's (or the customer's own) budget in one asset."""
    with open_ledger(db, tenant) as t:
        gone = t.delete_budget(customer, asset, member=member)
        scales = asset_scales(t)
    if as_json:
        print_json(gone)
    else:
        _print_budgets([gone], "budget removed", scales)
