"""The `creditgate rate-cards` and `creditgate report` commands."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml  # type: ignore[import-untyped]

from creditgate.cli._shared import (
    CliError,
    DbOption,
    JsonOption,
    TenantOption,
    Typer,
    console,
    errors,
    money,
    open_ledger,
    table,
)
from creditgate.domain.amounts import decimal_text, quantized

if TYPE_CHECKING:
    from creditgate.domain.pricing import Quote
    from creditgate.services.pricing.margin import FullMarginReport, MarginReport, MarginRow

rate_cards_app = Typer(
    help="Rate cards: what each action costs in credits, versioned.", no_args_is_help=True
)
report_app = Typer(help="Reports.", no_args_is_help=True)

CardOption = Annotated[str, typer.Option("--rate-card", help="The card's name")]


def _fail(message: str, exit_code: int = 2) -> Exception:
    return CliError(message, exit_code=exit_code)


def _moment(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 timestamp with a zone, or a date (midnight UTC)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"{option} must be a date or an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise _fail(f"{option} needs a time zone, e.g. 2026-01-31T00:00:00Z")
    return parsed


def _pairs(values: Sequence[str] | None, option: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"{option} takes name=value, got {item!r}")
        found[key] = value
    return found


def _exact_float(loader: Any, node: Any) -> str:
    # As written: the card reads "0.30" as a decimal, exactly (and .inf as an error).
    return str(loader.construct_scalar(node))


# A SafeLoader whose decimal numbers (`0.5`) load as their text, never as binary floats.
_ExactLoader: Any = type("_ExactLoader", (yaml.SafeLoader,), {})
_ExactLoader.add_constructor("tag:yaml.org,2002:float", _exact_float)


def load_spec(path: Path) -> dict[str, Any]:
    """A rate card spec from a YAML or JSON file; decimal numbers are kept as their exact text,
    so the spec stays JSON as written."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}", 1) from None
    except UnicodeDecodeError:
        raise _fail(f"{path} is not UTF-8 text", 1) from None
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        if kind == "JSON":
            spec = json.loads(text, parse_float=str)
        else:
            spec = yaml.load(text, Loader=_ExactLoader)  # noqa: S506 - a SafeLoader
    except (ValueError, yaml.YAMLError) as exc:
        raise _fail(f"{path} is not valid {kind}: {exc}", 1) from None
    except RecursionError:
        raise _fail(f"{path} is nested too deeply to be a rate card", 1) from None
    if not isinstance(spec, dict):
        raise _fail(f"{path} must hold a mapping (asset, credit_value_usd, actions)", 1)
    return spec


def _number(value: Decimal | None, places: int = 6) -> str:
    if value is None:
        return ""
    shown = quantized(value, Decimal(1).scaleb(-places))
    return format(shown.normalize(), "f") if shown else "0"


def _percent(value: Decimal | None, loss: bool = False) -> str:
    """A margin as a percentage; with no revenue (or list value) to divide by, "loss" if it
    cost something: never 100%."""
    if value is None:
        return "loss" if loss else ""
    return f"{_number(value * 100, 1)}%"


def _times(value: Decimal | None) -> str:
    return "" if value is None else f"{_number(value, 2)}x"


def _table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    drop: Sequence[str] = (),
) -> None:
    """A report table: the first column left-aligned, figures right-aligned; fitted to the
    terminal by dropping the columns in `drop` first."""
    table(title, columns, rows, right=columns[1:], drop=drop)


# Rate cards


@rate_cards_app.command("load")
def rate_cards_load(
    file: Annotated[Path, typer.Argument(help="A YAML or JSON rate card")],
    db: DbOption = None,
    tenant: TenantOption = None,
    rate_card: CardOption = "default",
    effective_at: Annotated[
        str | None, typer.Option(help="When it starts to apply (default: now)")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Publish at most once")] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse (exit 1) a card that prices at 0 a quantity its LLM vendor charges for",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check the card and show how it differs from the live version; publish nothing",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Publish a card file as the next version of the card; warn of quantities it prices at 0
    that its LLM vendor charges for. --dry-run shows the change first."""
    spec = load_spec(file)
    if dry_run:
        with open_ledger(db, tenant) as t:
            plan = t._read(
                _dry_run,
                spec=spec,
                name=rate_card,
                effective_at=_moment(effective_at, "--effective-at"),
            )
        _print_dry_run(plan, as_json)
        if strict and plan["warnings"]:
            raise CliError(
                "--strict would refuse this card: it prices at 0 what its vendor charges for",
                exit_code=1,
            )
        return
    with open_ledger(db, tenant) as t:
        version = t.publish_rate_card(
            spec,
            name=rate_card,
            effective_at=_moment(effective_at, "--effective-at"),
            strict=strict,
            idempotency_key=idempotency_key,
        )
    if as_json:
        print(version.model_dump_json())
        return
    for warning in version.warnings:
        errors.print(f"[yellow]warning:[/] {warning}")
    actions = len(version.spec.get("actions", {}))
    console.print(
        f"rate card [bold]{version.name}[/] version [bold]{version.version}[/] ({version.id}): "
        f"{actions} actions, in effect from {version.effective_at:%Y-%m-%d %H:%M:%S} UTC, "
        f"rounded {version.spec.get('rounding', 'up')}"
    )


def _dry_run(
    tx: Any, *, spec: dict[str, Any], name: str, effective_at: datetime | None
) -> dict[str, Any]:
    """What publishing `spec` would do, checked as publishing checks it, in a read-only
    transaction: the version it would be, its diff against the live version, its warnings."""
    from creditgate.domain.errors import InvalidInput
    from creditgate.domain.pricing import parse_rate_card
    from creditgate.services.pricing import rate_cards, vendor_cost

    parsed = parse_rate_card(spec)
    tx.asset(parsed.asset)
    when = effective_at or tx.now
    if when < tx.now:
        raise InvalidInput("effective_at must not be in the past", field="effective_at")
    warnings = vendor_cost.unpriced_costs(parsed, model_prices=rate_cards.model_prices(tx), at=when)
    versions = rate_cards.list_versions(tx, name=name)
    live = None
    for version in versions:
        if version.effective_at <= tx.now:
            live = version
    new = parsed.spec()
    old = live.spec if live is not None else {}
    old_actions, new_actions = old.get("actions", {}), new.get("actions", {})
    changed = [
        {"component": "card", "path": key, "was": old.get(key), "would_be": new.get(key)}
        for key in sorted(set(old) | set(new))
        if key != "actions" and old.get(key) != new.get(key)
    ]
    for action in sorted(set(old_actions) & set(new_actions)):
        before, after = _flat(old_actions[action]), _flat(new_actions[action])
        changed += [
            {
                "component": action,
                "path": path,
                "was": before.get(path),
                "would_be": after.get(path),
            }
            for path in sorted(set(before) | set(after))
            if before.get(path) != after.get(path)
        ]
    return {
        "dry_run": True,
        "name": name,
        "version": max((v.version for v in versions), default=0) + 1,
        "effective_at": when.isoformat(),
        "live": None
        if live is None
        else {
            "id": live.id,
            "version": live.version,
            "effective_at": live.effective_at.isoformat(),
        },
        "scheduled": [
            {"id": v.id, "version": v.version, "effective_at": v.effective_at.isoformat()}
            for v in versions
            if v.effective_at > tx.now
        ],
        "added": sorted(set(new_actions) - set(old_actions)) if live is not None else [],
        "removed": sorted(set(old_actions) - set(new_actions)),
        "changed": changed if live is not None else [],
        "warnings": [str(w) for w in warnings],
        "spec": new,
    }


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A spec's leaves by path: `prices[0].per_unit.input_tokens` -> "0.5"."""
    if isinstance(value, dict):
        found: dict[str, Any] = {}
        for key, item in value.items():
            found.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return found
    if isinstance(value, list):
        found = {}
        for i, item in enumerate(value):
            found.update(_flat(item, f"{prefix}[{i}]"))
        return found if value else {prefix: []}
    return {prefix: value}


def _print_dry_run(plan: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(plan))
        return
    for warning in plan["warnings"]:
        errors.print(f"[yellow]warning:[/] {warning}")
    live = plan["live"]
    actions = len(plan["spec"]["actions"])
    console.print(
        f"dry run: rate card [bold]{plan['name']}[/] would be version [bold]{plan['version']}[/] "
        f"({actions} actions), in effect from {plan['effective_at']}; nothing published",
        highlight=False,
    )
    if live is None:
        console.print("no version is live yet: every action is new")
        return
    for later in plan["scheduled"]:
        console.print(
            f"[yellow]version {later['version']} is scheduled from {later['effective_at']}[/]",
            highlight=False,
        )

    def shown(value: Any) -> str:
        return "" if value is None else value if isinstance(value, str) else json.dumps(value)

    rows = [[name, "added", "", ""] for name in plan["added"]]
    rows += [[name, "removed", "", ""] for name in plan["removed"]]
    rows += [
        [c["component"], c["path"], shown(c["was"]), shown(c["would_be"])] for c in plan["changed"]
    ]
    title = f"against live version {live['version']} ({live['id']})"
    if rows:
        table(title, ["action", "change", "was", "would be"], rows, right=())
    else:
        console.print(f"{title}: no change", highlight=False)


@rate_cards_app.command("list")
def rate_cards_list(
    db: DbOption = None,
    tenant: TenantOption = None,
    rate_card: Annotated[str | None, typer.Option("--rate-card", help="One card only")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every version of the tenant's cards."""
    with open_ledger(db, tenant) as t:
        versions = t.rate_cards(name=rate_card)
    if as_json:
        print(json.dumps({"data": [v.model_dump(mode="json") for v in versions]}))
        return
    rows = [
        (
            v.name,
            v.version,
            v.id,
            f"{v.effective_at:%Y-%m-%d %H:%M:%S}",
            v.spec.get("asset", ""),
            v.spec.get("credit_value_usd", ""),
            len(v.spec.get("actions", {})),
        )
        for v in versions
    ]
    columns = ["card", "version", "id", "in effect from", "asset", "credit $", "actions"]
    _table("rate cards", columns, rows, drop=["credit $", "asset", "actions"])


@rate_cards_app.command("price")
def rate_cards_price(
    action: Annotated[str, typer.Argument(help="e.g. chat.completion")],
    dim: Annotated[
        list[str] | None, typer.Option("--dim", help="A dimension, name=value (repeatable)")
    ] = None,
    qty: Annotated[
        list[str] | None, typer.Option("--qty", help="A quantity, name=value (repeatable)")
    ] = None,
    db: DbOption = None,
    tenant: TenantOption = None,
    rate_card: CardOption = "default",
    at: Annotated[str | None, typer.Option(help="Price by the card in effect then")] = None,
    as_json: JsonOption = False,
) -> None:
    """What an action costs for these dimensions and quantities, line by line."""
    dimensions = _pairs(dim, "--dim")
    quantities = _pairs(qty, "--qty")
    with open_ledger(db, tenant) as t:
        quote = t.quote(action, dimensions, quantities, rate_card=rate_card, at=_moment(at, "--at"))
    if as_json:
        print(json.dumps(quote.snapshot()))
        return
    _print_quote(quote)


def _print_quote(quote: Quote) -> None:
    rows: list[tuple[object, ...]] = [
        (line.name, _number(line.quantity), _number(line.unit_price, 12), _number(line.subtotal))
        for line in quote.lines
    ]
    rows += [
        (
            f"x {m.factor} ({', '.join(f'{k}={v}' for k, v in m.match.items()) or 'always'})",
            "",
            "",
            "",
        )
        for m in quote.multipliers
    ]
    if quote.minimum is not None:
        rows.append(("minimum", "", "", _number(quote.minimum)))
    rows.append(("total", "", "", f"{_number(quote.units)} {quote.asset}"))
    match = ", ".join(f"{k}={v}" for k, v in quote.match.items()) or "default"
    _table(
        f"{quote.action}: rule {quote.rule} ({match})",
        ["line", "quantity", "unit", "credits"],
        rows,
    )
    console.print(
        f"charged: [bold]{_plain(quote.rounded_units)}[/] {quote.asset} ({quote.amount} minor "
        f"units; {_plain(quote.units)} rounded {quote.rounding})"
    )
    cost = quote.vendor_cost
    if cost is not None and cost.usd is not None:
        console.print(f"vendor cost: {_usd(cost.usd)} ({cost.source.value})")
        if quote.credit_value_usd is not None and cost.usd:
            from creditgate.services.pricing.margin import credit_to_cost, is_loss, list_margin

            value = quote.rounded_units * quote.credit_value_usd
            ratio = credit_to_cost(value, cost.usd)
            margin = _percent(list_margin(value, cost.usd), is_loss(value, cost.usd))
            console.print(f"credit-to-cost: {_times(ratio)}, list margin {margin}")
    elif cost is not None:
        console.print(f"[yellow]vendor cost unknown:[/] {cost.reason}")


# Reports


GroupOption = Annotated[str, typer.Option("--by", help="action, model, customer, member or day")]


@report_app.command("margin")
def report_margin(
    db: DbOption = None,
    tenant: TenantOption = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Start, inclusive (default: 30 days before --to)")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive (default: now)")] = None,
    by: GroupOption = "action",
    asset: Annotated[
        str | None, typer.Option(help="Asset charged (default: the card's, else credits)")
    ] = None,
    rate_card: CardOption = "default",
    worst: Annotated[int, typer.Option(min=1, max=1000, help="Worst customers shown")] = 10,
    change: Annotated[
        str, typer.Option(help="What-if change of vendor prices, e.g. 0.2 for +20%")
    ] = "0.2",
    target: Annotated[str, typer.Option(help="Target gross margin, e.g. 0.5")] = "0.5",
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the grouped rows as CSV")] = False,
) -> None:
    """Revenue, vendor cost and gross margin; the spread across customers; the card's worst
    case; and which actions and customers a vendor price change would push below target."""

    until = _moment(end, "--to") or datetime.now(UTC)
    since = _moment(start, "--from") or until - timedelta(days=30)
    with open_ledger(db, tenant) as t:
        full = t.margin_report(
            start=since,
            end=until,
            by=by,
            asset=asset,
            worst=worst,
            change=_decimal(change, "--change"),
            target=_decimal(target, "--target"),
            rate_card=rate_card,
        )
    if as_json:
        print(full.model_dump_json())
    elif as_csv:
        _print_csv(full)
    else:
        _print_report(full)


@report_app.command("revenue")
def report_revenue(
    db: DbOption = None,
    tenant: TenantOption = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Start (default: 30 days ago)")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive (default: now)")] = None,
    customer: Annotated[str | None, typer.Option(help="One customer only")] = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV")] = False,
) -> None:
    """Deferred revenue at the start, sold, recognized, breakage, voided, refunded (usage
    given back), purchases refunded, and deferred at the end of the period, per currency."""
    until = _moment(end, "--to") or datetime.now(UTC)
    since = _moment(start, "--from") or until - timedelta(days=30)
    with open_ledger(db, tenant) as t:
        report = t.revenue_report(start=since, end=until, customer=customer)
    columns = [
        "opening_deferred", "sold", "recognized", "breakage", "voided", "refunded",
        "purchases_refunded", "closing_deferred",
    ]  # fmt: skip
    if as_json:
        print(report.model_dump_json())
        return
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["currency", *columns])
        for line in report.lines:
            writer.writerow([line.currency, *(decimal_text(getattr(line, c)) for c in columns)])
        return
    # A figure a row and a currency a column: it reads top to bottom from the opening to the
    # closing balance, and fits any terminal.
    rows = [
        [c.replace("_", " "), *(money(getattr(line, c), line.currency) for line in report.lines)]
        for c in columns
    ]
    _table(
        f"revenue {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC",
        ["", *(line.currency for line in report.lines)],
        rows,
    )
    console.print(
        "[dim]money rounded to the currency's minor unit; --json and --csv give exact figures[/]"
    )


def _decimal(value: str, option: str) -> Decimal:
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise _fail(f"{option} must be a decimal number, e.g. 0.2") from None
    if not parsed.is_finite():
        raise _fail(f"{option} must be a finite number")
    return parsed


_ROW_COLUMNS = [
    "charges",
    "credits",
    "revenue",
    "vendor cost",
    "cost unknown",
    "gross margin",
    "margin",
    "list value",
    "credit:cost",
]


def _cells(row: MarginRow) -> list[object]:
    return [
        row.charges,
        _number(row.credits),
        _number(row.revenue),
        _number(row.vendor_cost),
        row.cost_unknown,
        _number(row.gross_margin),
        _percent(row.margin, row.loss),
        _number(row.list_value),
        _times(row.credit_to_cost),
    ]


def _plain(value: Decimal | None) -> str:
    return "" if value is None else decimal_text(value)


def _label(row: MarginRow) -> str:
    """A row's group as a person reads it: by member, the customer's name for it too."""
    if row.customer is not None:
        return f"{row.customer} / {row.key}"
    return row.key or "(none)"


def _print_csv(full: FullMarginReport) -> None:
    report = full.report
    writer = csv.writer(sys.stdout)
    # By member, a column for the member's customer too (members are named per customer).
    keys = ["customer", "member"] if report.by == "member" else [report.by]
    writer.writerow([*keys, *(c.replace(" ", "_") for c in _ROW_COLUMNS), "loss"])
    for row in [*report.rows, report.total]:
        key = "total" if row is report.total else (row.key or "")
        writer.writerow(
            [
                *([row.customer or ""] if report.by == "member" else []),
                key,
                row.charges,
                _plain(row.credits),
                _plain(row.revenue),
                _plain(row.vendor_cost),
                row.cost_unknown,
                _plain(row.gross_margin),
                _plain(row.margin),
                _plain(row.list_value),
                _plain(row.credit_to_cost),
                "true" if row.loss else "false",
            ]
        )


def _print_shortfall(report: MarginReport) -> None:
    """Usage that went unbilled, if any: in total, then per group that had some."""
    short = report.total.shortfall
    if not short.charges:
        return
    lost = "" if short.value is None else f", {_usd(short.value)} of revenue lost at list price"
    console.print(
        f"[yellow]shortfall: {short.charges} charge(s) used {_number(short.credits)} "
        f"{report.asset} more than their wallets could pay{lost}[/]"
    )
    rows = [
        [
            _label(row),
            row.shortfall.charges,
            _number(row.shortfall.credits),
            _number(row.shortfall.value),
        ]
        for row in report.rows
        if row.shortfall.charges
    ]
    _table(f"shortfall by {report.by}", [report.by, "charges", "credits", "value $"], rows)


def _usd(value: Decimal) -> str:
    text = _number(value, 8)
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def _print_report(full: FullMarginReport) -> None:
    report = full.report
    period = f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC"
    rows = [[_label(row), *_cells(row)] for row in report.rows]
    rows.append(["total", *_cells(report.total)])
    _table(
        f"margin by {report.by}, {report.asset}, {period}",
        [report.by, *_ROW_COLUMNS],
        rows,
        drop=["cost unknown", "list value", "charges", "credit:cost", "credits"],
    )
    if report.credit_value_usd is None:
        console.print("[dim]no rate card in effect: list value and credit:cost are not shown[/]")
    _print_shortfall(report)

    spread = full.customers
    console.print(
        f"customers: {spread.customers} ({spread.with_revenue} with revenue); margin "
        f"median {_percent(spread.median) or '-'}, 10th percentile {_percent(spread.p10) or '-'}, "
        f"90th percentile {_percent(spread.p90) or '-'}"
    )
    if spread.worst:
        _table(
            "worst customers (lowest gross margin)",
            ["customer", *_ROW_COLUMNS[:7]],
            [[row.key or "", *_cells(row)[:7]] for row in spread.worst],
            drop=["cost unknown", "charges", "credits"],
        )

    if full.card is not None:
        case_rows = []
        for action in full.card.actions:
            case = action.worst
            if case is None:
                reasons = {c.reason for c in action.cases if c.reason}
                case_rows.append([action.action, "", "", "", "", "", "; ".join(sorted(reasons))])
                continue
            case_rows.append(
                [
                    action.action,
                    ", ".join(f"{k}={v}" for k, v in case.dimensions.items()) or "default",
                    ", ".join(f"{k}={_number(v)}" for k, v in case.quantities.items()),
                    _number(case.credits),
                    _number(case.vendor_cost, 8),
                    _times(case.ratio),
                    _percent(case.list_margin, case.loss)
                    + ("" if action.complete else " (not all combinations tried)"),
                ]
            )
        title = f"worst case per action at {_usd(full.card.credit_value_usd)} a credit"
        columns = ["action", "dimensions", "quantities", "credits", "vendor $", "ratio", "margin"]
        _table(title, columns, case_rows, drop=["quantities", "vendor $", "dimensions"])

    what_if = full.what_if
    change = _percent(what_if.change)
    changed = change if what_if.change < 0 else f"+{change}"
    below: list[list[object]] = [
        ["action", r.key or "(none)", _percent(r.margin_before, r.loss), _percent(r.margin, r.loss)]
        for r in what_if.actions
    ]
    below += [
        [
            "customer",
            r.key or "",
            _percent(r.margin_before, r.loss) or "no revenue",
            _percent(r.margin, r.loss) or f"cost {_usd(r.vendor_cost)}",
        ]
        for r in what_if.customers
    ]
    below += [
        ["card", a.action, "", f"{_percent(a.list_margin, a.loss)} at {_times(a.ratio)}"]
        for a in what_if.card_actions
    ]
    title = f"with vendor prices {changed}: below a {_percent(what_if.target)} margin"
    if below:
        _table(title, ["kind", "name", "margin now", "margin then"], below)
    else:
        console.print(f"{title}: [green]nothing[/]")
