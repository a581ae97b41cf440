"""Margins that are losses are reported as losses, never as 100%; and every margin ratio is
computed from exact values and rounded once."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from creditgate.api import TenantLedger
from creditgate.services.pricing import margin
from tests.http.test_card_warnings import no_cache_writes
from tests.integration.test_margin_reports import JAN, add_charge, report, run

PERIOD = ["--from", "2026-01-01", "--to", "2026-02-01"]


def walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in walk(v, f"{path}[{i}]")]
    return [(path, value)]


def test_a_quantity_priced_at_0_that_costs_money_is_a_loss_not_a_100_percent_margin(
    ledger: TenantLedger, db_url: str
) -> None:
    ledger.publish_rate_card(no_cache_writes())
    add_charge(ledger, "c1", "chat.completion", 0, revenue="0", cost="0.05", model="gpt-4.1")
    full = json.loads(run(ledger, db_url, "report", "margin", *PERIOD, "--json").stdout)

    (chat,) = full["card"]["actions"]
    worst = chat["worst"]
    assert worst["quantities"] == {"cache_write_tokens": "1000"}
    assert (worst["ratio"], worst["list_margin"], worst["loss"]) == ("0", None, True)
    assert full["what_if"]["card_actions"] == [
        {"action": "chat.completion", "ratio": "0", "list_margin": None, "loss": True}
    ]
    (row,) = full["report"]["rows"]
    assert (row["revenue"], row["margin"], row["loss"]) == ("0", None, True)
    (customer,) = full["what_if"]["customers"]
    assert (customer["margin"], customer["loss"]) == (None, True)
    margins = [v for path, v in walk(full) if path.endswith(("margin", "list_margin"))]
    assert "1" not in margins

    shown = " ".join(run(ledger, db_url, "report", "margin", *PERIOD).stdout.split())
    assert "100%" not in shown and "100.0%" not in shown
    assert "0x │ loss" in shown  # the card's worst case
    csv = run(ledger, db_url, "report", "margin", *PERIOD, "--csv").stdout.splitlines()
    assert csv[0].endswith(",loss") and csv[1].endswith(",true")


def test_a_profitable_row_is_no_loss_and_a_costly_one_with_revenue_is_a_negative_margin(
    ledger: TenantLedger,
) -> None:
    add_charge(ledger, "c1", "a", 100, revenue="0.10", cost="0.04")
    add_charge(ledger, "c1", "b", 100, revenue="0.10", cost="0.25")
    rows = {row.key: row for row in report(ledger).rows}
    assert (rows["a"].margin, rows["a"].loss) == (Decimal("0.6"), False)
    assert (rows["b"].margin, rows["b"].loss) == (Decimal("-1.5"), True)


def test_the_what_if_list_margin_is_computed_from_exact_values(ledger: TenantLedger) -> None:
    # 4.999 credits, charged as 5, at $0.01 for a $0.10 call: with vendor prices +20% it
    # costs $0.12, and the margin at list price is exactly (0.05 - 0.12) / 0.05 = -1.4 (from
    # a ratio rounded to 0.416667 first it would be -1.399998).
    spec = {
        "asset": "credits",
        "credit_value_usd": "0.01",
        "actions": {"image.generate": {"prices": [{"flat": "4.999", "vendor": {"flat": "0.10"}}]}},
    }
    ledger.publish_rate_card(spec)
    full = report(
        ledger,
        fn=margin.tenant_margin_report,
        end=JAN.replace(month=2),
        change=Decimal("0.2"),
    )
    (image,) = full.card.actions
    assert image.worst.ratio == Decimal("0.5") and image.worst.list_margin == Decimal(-1)
    assert (image.worst.units, image.worst.credits) == (Decimal("4.999"), Decimal(5))
    (after,) = full.what_if.card_actions
    assert (after.ratio, after.list_margin, after.loss) == (
        Decimal("0.416667"),
        Decimal("-1.4"),
        True,
    )


def test_the_median_customer_margin_is_rounded_once(ledger: TenantLedger) -> None:
    add_charge(ledger, "c1", "a", 100, revenue="1", cost="0.8765436")  # margin 0.1234564
    add_charge(ledger, "c2", "a", 100, revenue="1", cost="0.8765434")  # margin 0.1234566
    spread = report(ledger, fn=margin.customer_margins)
    # The exact median 0.1234565, rounded half to even; not the mean of two rounded margins.
    assert spread.median == Decimal("0.123456")
    assert (spread.p10, spread.p90) == (Decimal("0.123456"), Decimal("0.123457"))
