"""The SVG charts' axes: round ticks that cannot crowd or repeat, labelled in their unit."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal

import pytest

from creditgate.portal.charts import lines, stacked_days, ticks
from creditgate.portal.web import usd

CENT = Decimal("0.01")


@pytest.mark.parametrize(
    ("low", "high", "least", "expected"),
    [
        ("0", "12", "0.01", ["0", "5", "10", "15"]),
        ("-0.30", "0.08", "0.01", ["-0.3", "-0.2", "-0.1", "0", "0.1"]),
        ("0", "0.003", "0.01", ["0", "0.01"]),  # never finer than a cent
        ("0", "0", "0.01", ["0", "0.01"]),
        ("-0.30", "0.001", "0.01", ["-0.3", "-0.2", "-0.1", "0", "0.1"]),
        ("0", "7", "1", ["0", "2", "4", "6", "8"]),
    ],
)
def test_ticks_are_round_steps_covering_the_values_with_zero_among_them(
    low: str, high: str, least: str, expected: list[str]
) -> None:
    found = ticks(Decimal(low), Decimal(high), least=Decimal(least))
    assert [format(t.normalize(), "f") for t in found] == expected


def _tick_ys(svg: str) -> list[float]:
    return [float(y) for y in re.findall(r'<text class="tick" x="[\d.]+" y="([\d.]+)"', svg)]


def test_margin_axis_labels_are_distinct_and_never_overlap() -> None:
    # A margin a cent above zero and one far below: the labels once sat on top of each other.
    chart = str(
        lines(
            ["2026-01-01", "2026-01-02"],
            {"a": [Decimal("0.004"), Decimal("-0.30")], "b": [None, Decimal("0.01")]},
            title="t",
            label=usd,
            least=CENT,
        )
    )
    labels = re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', chart)
    assert labels == ["-$0.30", "-$0.20", "-$0.10", "$0.00", "$0.10"]
    ys = sorted(_tick_ys(chart))
    assert all(b - a >= 20 for a, b in itertools.pairwise(ys)), ys  # 12px text
    assert "$-" not in chart


def test_the_usage_axis_names_its_unit_and_counts_in_it() -> None:
    chart = str(
        stacked_days(
            ["2026-01-01", "2026-01-02"],
            {"chat": [Decimal("0.25"), Decimal("0.05")]},
            title="credits used per day",
            unit="credits per day",
            least=CENT,
        )
    )
    assert '<text class="unit" x="0" y="11">credits per day</text>' in chart
    assert re.findall(r'text-anchor="end">([^<]+)</text>', chart) == [
        "0.0", "0.1", "0.2", "0.3",
    ]  # fmt: skip
