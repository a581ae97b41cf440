"""How a price becomes minor units: the card's stated rounding, up by default, in one place;
and the one written form of a Decimal."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditgate.domain.amounts import Asset, decimal_text
from creditgate.domain.balances import DebitPlan, Draw
from creditgate.domain.errors import InvalidInput
from creditgate.domain.pricing import DEFAULT_ROUNDING, ROUNDINGS, parse_rate_card, quote

USD = Asset("USD", 2)

# A chat call at the vendor's own rates, in dollars: $2 and $8 per million tokens.
AT_VENDOR_RATES: dict[str, Any] = {
    "asset": "USD",
    "actions": {
        "chat.completion": {
            "prices": [{"per_unit": {"input_tokens": "0.000002", "output_tokens": "0.000008"}}]
        }
    },
}
SMALL_CALL = {"input_tokens": 1_000, "output_tokens": 100}  # $0.0028


def card(rounding: str | None = None) -> Any:
    spec = AT_VENDOR_RATES if rounding is None else {**AT_VENDOR_RATES, "rounding": rounding}
    return parse_rate_card(spec)


def test_a_card_rounds_up_by_default_so_a_priced_call_never_costs_zero() -> None:
    q = quote(card(), "chat.completion", {}, SMALL_CALL, asset=USD)
    assert (q.units, q.amount, q.rounding) == (Decimal("0.0028"), 1, "up")
    assert q.rounded_units == Decimal("0.01") and q.need == 1
    assert q.snapshot()["units"] == "0.0028" and q.snapshot()["rounded_units"] == "0.01"
    # The card states its rounding, so the stored spec says what it was priced by.
    assert card().spec()["rounding"] == DEFAULT_ROUNDING == "up"


@pytest.mark.parametrize(
    ("rounding", "cents"),
    [
        ("up", [1, 1, 1, 2]),
        ("down", [0, 0, 0, 1]),
        ("half_up", [0, 1, 1, 2]),
        ("half_down", [0, 0, 1, 1]),
        ("half_even", [0, 0, 1, 2]),
    ],
)
def test_a_card_that_states_its_rounding_is_priced_by_it(rounding: str, cents: list[int]) -> None:
    flat = ["0.0028", "0.005", "0.0051", "0.015"]  # dollars
    found = []
    for price in flat:
        spec = {
            "asset": "USD",
            "rounding": rounding,
            "actions": {"x": {"prices": [{"flat": price}]}},
        }
        found.append(quote(parse_rate_card(spec), "x", {}, {}, asset=USD).amount)
    assert found == cents


def test_a_price_above_zero_that_rounds_to_zero_still_needs_one_minor_unit() -> None:
    q = quote(card("half_even"), "chat.completion", {}, SMALL_CALL, asset=USD)
    assert (q.amount, q.need) == (0, 1)
    free = quote(card("half_even"), "chat.completion", {}, {}, asset=USD)
    assert (free.units, free.amount, free.need) == (Decimal(0), 0, 0)


@pytest.mark.parametrize("rounding", ["ceiling", "UP", "", 7, None, ["up"], {"up": 1}])
def test_an_unknown_rounding_is_refused_naming_the_field(rounding: object) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_rate_card({**AT_VENDOR_RATES, "rounding": rounding})
    assert info.value.field == "rounding"
    assert "up, down, half_up, half_down, half_even" in info.value.message


@given(
    units=st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False),
    scale=st.integers(min_value=0, max_value=6),
    rounding=st.sampled_from(sorted(ROUNDINGS)),
)
def test_every_price_becomes_minor_units_through_the_one_function(
    units: Decimal, scale: int, rounding: str
) -> None:
    spec = {
        "asset": "x",
        "rounding": rounding,
        "actions": {"a": {"prices": [{"flat": str(units)}]}},
    }
    asset = Asset("x", scale)
    q = quote(parse_rate_card(spec), "a", {}, {}, asset=asset)
    assert q.amount == asset.to_minor(units, ROUNDINGS[rounding])
    if rounding == "up":
        assert q.rounded_units >= units and (q.amount > 0) == (units > 0)
    if rounding == "down":
        assert q.rounded_units <= units


def test_money_keeps_rounding_half_to_even() -> None:
    assert Asset("USD", 2).to_minor(Decimal("0.125")) == 12
    assert Asset("USD", 2).to_minor(Decimal("0.125"), ROUND_HALF_EVEN) == 12


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("20.000", "20"),
        ("20.00000000000000000000", "20"),
        ("0E-18", "0"),
        ("-0", "0"),
        ("-0.00", "0"),
        ("1E+3", "1000"),
        ("0.10", "0.1"),
        ("-1.400000", "-1.4"),
        ("0.00000028", "0.00000028"),
        ("2.8E-7", "0.00000028"),
        # All 38 digits of a NUMERIC(38, 18), where normalize() at 28 digits would round.
        ("12345678901234567890.123456789012345678", "12345678901234567890.123456789012345678"),
    ],
)
def test_a_decimal_is_written_one_way(value: str, written: str) -> None:
    assert decimal_text(Decimal(value)) == written


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**20), max_value=10**20))
def test_the_written_form_is_plain_exact_and_canonical(value: Decimal) -> None:
    written = decimal_text(value)
    assert Decimal(written) == value
    assert "e" not in written.lower() and written != "-0"
    assert written == "0" or not ("." in written and written.endswith("0"))
    assert json.loads(json.dumps(written)) == written


def test_revenue_is_summed_exactly_and_rounded_once_to_18_places() -> None:
    # 1,234,567,890,123.45 credits at $0.123456789012345675 is exactly
    # $152,415,787,532.38752453894982357875 (32 digits, past the default context's 28), and
    # 9,876,543.21 credits at $10^-18 adds $0.00000000000987654321; the sum is rounded once.
    plan = DebitPlan(
        debit=123456789012345 + 987654321,
        draws=[
            Draw("lot_1", 123456789012345, Decimal("0.123456789012345675")),
            Draw("lot_2", 987654321, Decimal("0.000000000000000001")),
        ],
        debt=0,
        shortfall=0,
    )
    assert str(plan.revenue(2)) == "152415787532.387524538959700122"
