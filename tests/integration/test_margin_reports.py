"""Margin reports over posted charges, and a rate card's worst case, on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import insert
from typer.testing import CliRunner, Result

from creditgate.api import TenantLedger
from creditgate.cli.pricing import rate_cards_app, report_app
from creditgate.domain.errors import InvalidInput, UnknownAsset
from creditgate.domain.pricing import parse_rate_card
from creditgate.services.pricing import margin
from creditgate.storage.ids import new_id
from creditgate.storage.tables import charges
from tests.domain.test_pricing import EXAMPLES

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
CARD = parse_rate_card(EXAMPLES)


def add_charge(
    ledger: TenantLedger,
    customer: str,
    action: str | None,
    amount: int,
    *,
    revenue: str | None,
    cost: str | None,
    at: datetime = JAN + timedelta(days=3),
    model: str | None = None,
    asset: str = "credits",
    tenant_id: str | None = None,
) -> None:
    row: dict[str, Any] = {
        "tenant_id": tenant_id or ledger.tenant_id,
        "wallet_id": f"wal_{customer}",
        "id": new_id("chg"),
        "customer": customer,
        "hold_id": None,
        "asset": asset,
        "requested": amount,
        "amount": amount,
        "debt": 0,
        "shortfall": 0,
        "action": action,
        "metadata": {},
        "created_at": at,
        "model": model,
        "dimensions": {} if model is None else {"model": model},
        "quantities": {},
        "price": None,
        "rate_card_id": None,
        "rate_card_version": None,
        "vendor_cost": None if cost is None else Decimal(cost),
        "revenue": None if revenue is None else Decimal(revenue),
    }
    ledger.cg.db.run(lambda conn: conn.execute(insert(charges).values(row)))


def report(ledger: TenantLedger, **options: Any) -> Any:
    options.setdefault("start", JAN)
    options.setdefault("end", FEB)
    fn = options.pop("fn", margin.margin_by)
    if fn in (margin.margin_report, margin.tenant_margin_report):
        # These take the report's period and options as one request.
        fields = set(margin.MarginRequest.__dataclass_fields__)
        request = margin.MarginRequest(**{k: options.pop(k) for k in list(options) if k in fields})
        return ledger._read(fn, request=request, **options)
    return ledger._read(fn, **options)


def by_key(rows: list[Any]) -> dict[str | None, Any]:
    return {row.key: row for row in rows}


def test_one_image_at_4_cents_sold_at_a_10_cent_credit_is_2_5x_and_60_percent(
    ledger: TenantLedger,
) -> None:
    add_charge(ledger, "c1", "image.generate", 100, revenue="0.10", cost="0.04")
    result = report(ledger, credit_value_usd=Decimal("0.10"))
    [row] = result.rows
    assert (row.key, row.charges, row.amount, row.credits) == ("image.generate", 1, 100, 1)
    assert (row.revenue, row.vendor_cost, row.gross_margin) == (
        Decimal("0.10"),
        Decimal("0.04"),
        Decimal("0.06"),
    )
    assert row.margin == Decimal("0.6") and row.credit_to_cost == Decimal("2.5")
    assert row.list_value == Decimal("0.10")


def test_margin_by_action_sums_exactly_and_says_what_it_could_not_cost(
    ledger: TenantLedger,
) -> None:
    add_charge(ledger, "c1", "image.generate", 100, revenue="0.1", cost="0.04")
    add_charge(ledger, "c2", "image.generate", 2_000, revenue="2.000000000000000001", cost="0.3")
    add_charge(ledger, "c1", "tts.speak", 50_050, revenue="50.05", cost=None)
    add_charge(ledger, "c3", None, 300, revenue=None, cost="0.01")  # a raw-amount charge
    result = report(ledger, credit_value_usd=Decimal("0.10"))
    rows = by_key(result.rows)
    assert list(rows) == ["image.generate", "tts.speak", None]
    image = rows["image.generate"]
    assert image.credits == 21 and image.revenue == Decimal("2.100000000000000001")
    assert image.vendor_cost == Decimal("0.34") and image.cost_unknown == 0
    assert image.credit_to_cost == Decimal("6.176471")  # $2.10 / $0.34
    tts = rows["tts.speak"]
    assert tts.credits == Decimal("500.5") and tts.cost_unknown == 1 and tts.vendor_cost == 0
    assert tts.credit_to_cost is None  # no known cost: no ratio, not infinity
    raw = rows[None]
    assert raw.revenue == 0 and raw.margin is None and raw.gross_margin == Decimal("-0.01")
    total = result.total
    assert total.charges == 4 and total.amount == 52_450 and total.cost_unknown == 1
    assert total.revenue == Decimal("52.150000000000000001")
    # Exact decimals go out as plain strings on both backends.
    dumped = json.loads(result.model_dump_json())
    assert dumped["total"]["revenue"] == "52.150000000000000001"
    assert dumped["rows"][0]["margin"] == "0.838095"


def test_the_period_is_start_inclusive_end_exclusive_and_one_tenant_and_asset(
    ledger: TenantLedger,
) -> None:
    ledger.create_asset("USD", 2)
    other = ledger.cg.create_tenant("another product")
    add_charge(ledger, "c1", "a", 1, revenue="1", cost="0", at=JAN)
    add_charge(ledger, "c1", "a", 10, revenue="1", cost="0", at=FEB - timedelta(microseconds=1))
    add_charge(ledger, "c1", "a", 100, revenue="1", cost="0", at=FEB)
    add_charge(ledger, "c1", "a", 1_000, revenue="1", cost="0", at=JAN - timedelta(seconds=1))
    add_charge(ledger, "c1", "a", 10_000, revenue="1", cost="0", asset="USD")
    add_charge(ledger, "c1", "a", 100_000, revenue="1", cost="0", tenant_id=other.id)
    assert report(ledger).total.amount == 11
    assert report(ledger, asset="USD").total.amount == 10_000
    assert report(ledger, start=JAN - timedelta(days=1)).total.amount == 1_011


@pytest.mark.parametrize(
    ("by", "keys"),
    [
        ("model", ["claude-sonnet-4", "gpt-4.1", None]),
        ("customer", ["alice", "bob"]),
        ("day", ["2026-01-02", "2026-01-31"]),
    ],
)
def test_margin_groups_by_model_customer_or_day(
    ledger: TenantLedger, by: str, keys: list[str | None]
) -> None:
    day = JAN + timedelta(days=1, hours=23, minutes=59)
    add_charge(ledger, "bob", "chat", 5, revenue="1", cost="0.5", model="gpt-4.1", at=day)
    add_charge(ledger, "alice", "chat", 7, revenue="1", cost="0.1", model="claude-sonnet-4", at=day)
    add_charge(ledger, "alice", "image", 11, revenue="1", cost="0.2", at=FEB - timedelta(hours=1))
    result = report(ledger, by=by)
    assert result.by == by and [row.key for row in result.rows] == keys
    assert sum(row.amount for row in result.rows) == 23


def test_customers_margin_distribution_and_the_worst_customers(ledger: TenantLedger) -> None:
    margins = {"a": "0.9", "b": "0.8", "c": "0.5", "d": "0.2", "e": "-0.5"}
    for customer, kept in margins.items():
        revenue = Decimal(10)
        add_charge(
            ledger, customer, "x", 100, revenue="10", cost=str(revenue * (1 - Decimal(kept)))
        )
    add_charge(ledger, "promo", "x", 100, revenue=None, cost="1")  # promotional credit only
    result = report(ledger, fn=margin.customer_margins, worst=3)
    assert (result.customers, result.with_revenue) == (6, 5)
    assert result.median == Decimal("0.5")
    assert result.p10 == Decimal("-0.5") and result.p90 == Decimal("0.9")
    assert [row.key for row in result.worst] == ["e", "promo", "d"]
    assert result.worst[0].gross_margin == Decimal(-5) and result.worst[1].margin is None


def test_an_even_number_of_customers_has_the_mean_of_the_middle_two_as_median(
    ledger: TenantLedger,
) -> None:
    for customer, cost in {"a": "1", "b": "2", "c": "3", "d": "7"}.items():
        add_charge(ledger, customer, "x", 1, revenue="10", cost=cost)
    result = report(ledger, fn=margin.customer_margins)
    assert result.median == Decimal("0.75") and result.p90 == Decimal("0.9")


def test_what_if_lists_actions_and_customers_that_fall_below_the_target(
    ledger: TenantLedger,
) -> None:
    add_charge(ledger, "safe", "image.generate", 100, revenue="0.10", cost="0.04")  # 60%
    add_charge(ledger, "thin", "chat.completion", 100, revenue="0.10", cost="0.045")  # 55%
    result = report(ledger, fn=margin.what_if)
    assert (result.change, result.target) == (Decimal("0.2"), Decimal("0.5"))
    assert [row.key for row in result.actions] == ["chat.completion"]
    [thin] = result.customers
    assert thin.key == "thin" and thin.vendor_cost == Decimal("0.054")
    assert thin.margin == Decimal("0.46") and thin.margin_before == Decimal("0.55")
    doubled = report(ledger, fn=margin.what_if, change=Decimal(1), target=Decimal("0.25"))
    assert [row.key for row in doubled.actions] == ["chat.completion", "image.generate"]
    cheaper = report(ledger, fn=margin.what_if, change=Decimal("-0.5"))
    assert cheaper.actions == [] and cheaper.customers == []


def test_card_worst_case_per_action(ledger: TenantLedger) -> None:
    result = ledger._read(margin.card_ratios, card=CARD)
    actions = {a.action: a for a in result.actions}
    image = actions["image.generate"]
    assert image.complete and len(image.cases) == 2
    assert image.worst is not None and image.worst.dimensions == {"quality": "standard"}
    assert image.worst.ratio == Decimal("2.5") and image.worst.list_margin == Decimal("0.6")
    ultra = next(c for c in image.cases if c.dimensions == {"quality": "ultra"})
    assert ultra.ratio == Decimal("6.666667")  # 20 credits x $0.10 / $0.30
    tts = actions["tts.speak"]
    assert tts.worst is not None and tts.worst.ratio == Decimal("555.555556")
    flash = [c for c in tts.cases if c.dimensions == {"model": "flash"}]
    assert flash and all(c.ratio is None and c.reason for c in flash)
    assert actions["app.build"].worst is None  # no vendor prices at all
    chat = actions["chat.completion"]
    by_probe = {
        (tuple(sorted(c.dimensions.items())), tuple(sorted(c.quantities))): c for c in chat.cases
    }
    sonnet = (("model", "claude-sonnet-4"),)
    # 1,000 input and 500 output tokens: 10.5 credits = $1.05 for $0.0105 of tokens.
    assert by_probe[sonnet, ("input_tokens", "output_tokens")].ratio == 100
    high = (("complexity", "high"), ("model", "claude-sonnet-4"))
    assert by_probe[high, ("input_tokens", "output_tokens")].ratio == 150
    # The card does not price cache writes: 1,000 of them alone cost $0.00375 and are charged
    # the 1-credit minimum. That is the worst case, and the report shows it.
    assert chat.worst is not None and chat.worst.quantities == {"cache_write_tokens": 1_000}
    assert chat.worst.dimensions == {"model": "claude-sonnet-4"}
    assert chat.worst.ratio == Decimal("26.666667")


def test_card_worst_case_needs_a_credit_value(ledger: TenantLedger) -> None:
    spec = {k: v for k, v in EXAMPLES.items() if k != "credit_value_usd"}
    with pytest.raises(InvalidInput) as info:
        ledger._read(margin.card_ratios, card=parse_rate_card(spec))
    assert info.value.field == "credit_value_usd"
    full = report(ledger, fn=margin.margin_report, card=parse_rate_card(spec))
    assert full.card is None and full.report.credit_value_usd is None


def test_the_full_report_joins_the_card_and_the_what_if(ledger: TenantLedger) -> None:
    add_charge(ledger, "c1", "image.generate", 100, revenue="0.10", cost="0.04")
    add_charge(ledger, "c2", "image.generate", 100, revenue="0", cost="0.04")  # promotional
    full = report(ledger, fn=margin.margin_report, by="customer", card=CARD, target=Decimal("0.55"))
    assert full.report.credit_value_usd == Decimal("0.10")
    assert [row.key for row in full.report.rows] == ["c1", "c2"]
    assert full.report.rows[1].credit_to_cost == Decimal("2.5")  # list price, not revenue
    assert full.card is not None and full.customers.with_revenue == 1
    # +20% on $0.04 leaves the standard image 2.083333x, a 52% list margin: below 55%.
    [image] = [a for a in full.what_if.card_actions if a.action == "image.generate"]
    assert image.ratio == Decimal("2.083333") and image.list_margin == Decimal("0.52")
    assert [row.key for row in full.what_if.customers] == ["c1", "c2"]
    json.loads(full.model_dump_json())


def test_report_inputs_are_checked(ledger: TenantLedger) -> None:
    naive = datetime(2026, 1, 1)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"start": naive}, "start"),
        ({"start": FEB, "end": JAN}, "start"),
        ({"by": "week"}, "by"),
        ({"fn": margin.what_if, "change": Decimal(-1)}, "change"),
        ({"fn": margin.customer_margins, "worst": 0}, "worst"),
    ]
    for options, field in cases:
        with pytest.raises(InvalidInput) as info:
            report(ledger, **options)
        assert info.value.field == field, options
    with pytest.raises(UnknownAsset):
        report(ledger, asset="gems")


# The command line


CARD_YAML = """
asset: credits
credit_value_usd: 0.10          # unquoted decimals load exactly, never as floats
actions:
  image.generate:
    prices:
      - match: {quality: standard}
        flat: 1
        vendor: {flat: 0.04}
  tts.speak:
    prices:
      - match: {model: flash}
        per_unit: {characters: 0.5}
"""


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(rate_cards_app, name="rate-cards")
    app.add_typer(report_app, name="report")
    return app


def run(ledger: TenantLedger, db_url: str, *args: str) -> Result:
    result = CliRunner().invoke(cli(), [*args, "--db", db_url, "--tenant", ledger.tenant_id])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def test_the_cli_loads_a_card_prices_an_action_and_reports_margin(
    ledger: TenantLedger, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(CARD_YAML)
    loaded = json.loads(run(ledger, db_url, "rate-cards", "load", str(path), "--json").stdout)
    # The stored spec is canonical: decimals as exact, normalized strings.
    assert loaded["version"] == 1 and loaded["spec"]["credit_value_usd"] == "0.1"
    listed = json.loads(run(ledger, db_url, "rate-cards", "list", "--json").stdout)
    assert [v["version"] for v in listed["data"]] == [1]

    args = ["rate-cards", "price", "tts.speak", "--dim", "model=flash", "--qty", "characters=1001"]
    priced = json.loads(run(ledger, db_url, *args, "--json").stdout)
    assert (priced["units"], priced["amount"]) == ("500.5", 50_050)
    shown = run(
        ledger, db_url, "rate-cards", "price", "image.generate", "--dim", "quality=standard"
    )
    assert "credit-to-cost: 2.5x, list margin 60%" in " ".join(shown.stdout.split())

    yesterday = datetime.now(UTC) - timedelta(days=1)
    add_charge(ledger, "c1", "image.generate", 100, revenue="0.10", cost="0.04", at=yesterday)
    report = json.loads(run(ledger, db_url, "report", "margin", "--json").stdout)
    assert report["report"]["credit_value_usd"] == "0.1"
    assert report["report"]["rows"][0]["credit_to_cost"] == "2.5"
    assert report["card"]["actions"][0]["worst"]["ratio"] == "2.5"
    rows = run(ledger, db_url, "report", "margin", "--by", "customer", "--csv").stdout
    assert rows.splitlines()[1] == "c1,1,1,0.1,0.04,0,0.06,0.6,0.1,2.5,false"
    text = run(ledger, db_url, "report", "margin", "--target", "0.55").stdout
    assert "worst case per action" in text and "below a 55% margin" in " ".join(text.split())


def test_the_cli_refuses_malformed_options(ledger: TenantLedger, db_url: str) -> None:
    from creditgate.cli import CliError

    with pytest.raises(CliError, match="name=value"):
        run(ledger, db_url, "rate-cards", "price", "x", "--dim", "quality")
    with pytest.raises(CliError, match="time zone"):
        run(ledger, db_url, "report", "margin", "--from", "2026-01-01T00:00:00")
