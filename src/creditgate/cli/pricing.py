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
from rich.console import Console
from rich.table import Table

from creditgate.cli._shared import CliError, DbOption, JsonOption, TenantOption, open_ledger
from creditgate.domain.amounts import decimal_text

if TYPE_CHECKING:
    from creditgate.domain.pricing import Quote
    from creditgate.services.pricing.margin import FullMarginReport, MarginReport, MarginRow

rate_cards_app = typer.Typer(
    help="Rate cards: what each action costs in credits, versioned.", no_args_is_help=True
)
report_app = typer.Typer(help="Reports.", no_args_is_help=True)
console = Console()

CardOption = Annotated[str, typer.Option("--rate-card", help="The card's name")]


def _fail(message: str) -> Exception:
    return CliError(message)


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
        raise _fail(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise _fail(f"{path} is not UTF-8 text") from None
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        if kind == "JSON":
            spec = json.loads(text, parse_float=str)
        else:
            spec = yaml.load(text, Loader=_ExactLoader)  # noqa: S506 - a SafeLoader
    except (ValueError, yaml.YAMLError) as exc:
        raise _fail(f"{path} is not valid {kind}: {exc}") from None
    except RecursionError:
        raise _fail(f"{path} is nested too deeply to be a rate card") from None
    if not isinstance(spec, dict):
        raise _fail(f"{path} must hold a mapping (asset, credit_value_usd, actions)")
    return spec


def _number(value: Decimal | None, places: int = 6) -> str:
    if value is None:
        return ""
    quantized = value.quantize(Decimal(1).scaleb(-places))
    return format(quantized.normalize(), "f") if quantized else "0"


def _percent(value: Decimal | None, loss: bool = False) -> str:
    """A margin as a percentage; with no revenue (or list value) to divide by, "loss" if it
    cost something: never 100%."""
    if value is None:
        return "loss" if loss else ""
    return f"{_number(value * 100, 1)}%"


def _times(value: Decimal | None) -> str:
    return "" if value is None else f"{_number(value, 2)}x"


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


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
    as_json: JsonOption = False,
) -> None:
    """Publish a card file as the next version of the card; warn of quantities it prices at 0
    that its LLM vendor charges for."""
    spec = load_spec(file)
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
        Console(stderr=True).print(f"[yellow]warning:[/] {warning}", highlight=False)
    actions = len(version.spec.get("actions", {}))
    console.print(
        f"rate card [bold]{version.name}[/] version [bold]{version.version}[/] ({version.id}): "
        f"{actions} actions, in effect from {version.effective_at:%Y-%m-%d %H:%M:%S} UTC, "
        f"rounded {version.spec.get('rounding', 'up')}"
    )


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
    _table("rate cards", columns, rows)


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


GroupOption = Annotated[str, typer.Option("--by", help="action, model, customer or day")]


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
            rate_card=rate_card,
            worst=worst,
            change=_decimal(change, "--change"),
            target=_decimal(target, "--target"),
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
    table = Table(title=f"revenue {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC")
    table.add_column("currency")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for line in report.lines:
        table.add_row(line.currency, *(decimal_text(getattr(line, c)) for c in columns))
    Console().print(table)


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


def _print_csv(full: FullMarginReport) -> None:
    report = full.report
    writer = csv.writer(sys.stdout)
    writer.writerow([report.by, *(c.replace(" ", "_") for c in _ROW_COLUMNS), "loss"])
    for row in [*report.rows, report.total]:
        key = "total" if row is report.total else (row.key or "")
        writer.writerow(
            [
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
            row.key or "(none)",
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
    rows = [[row.key or "(none)", *_cells(row)] for row in report.rows]
    rows.append(["total", *_cells(report.total)])
    _table(f"margin by {report.by}, {report.asset}, {period}", [report.by, *_ROW_COLUMNS], rows)
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
        _table(title, columns, case_rows)

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
