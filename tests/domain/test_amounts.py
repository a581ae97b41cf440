"""Amounts, assets and decimals: integers in minor units, never floats, within 64 bits."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditgate.domain.amounts import (
    MAX_AMOUNT,
    MAX_BALANCE,
    MAX_SCALE,
    Asset,
    check_amount,
    check_asset_code,
    check_balance_bound,
    check_decimal,
    check_money,
    check_scale,
    currency_digits,
    money_text,
    rounded_text,
    stored_money,
    units_text,
)
from creditgate.domain.errors import AmountOverflow, InvalidInput


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, InvalidInput),
        (-1, InvalidInput),
        (-(2**70), InvalidInput),
        (1.0, InvalidInput),
        (0.5, InvalidInput),
        (float("nan"), InvalidInput),
        (True, InvalidInput),
        (False, InvalidInput),
        ("10", InvalidInput),
        (Decimal(10), InvalidInput),
        (None, InvalidInput),
        (MAX_AMOUNT + 1, AmountOverflow),
        (2**100, AmountOverflow),
    ],
)
def test_bad_amounts_raise_a_named_error_naming_the_field(
    value: object, error: type[InvalidInput]
) -> None:
    with pytest.raises(error) as info:
        check_amount(value, "estimate")
    assert type(info.value) is error
    assert info.value.field == "estimate"
    assert info.value.as_dict()["field"] == "estimate"


def test_a_negative_amount_is_not_reported_as_an_overflow() -> None:
    with pytest.raises(InvalidInput) as info:
        check_amount(-(2**64))
    assert not isinstance(info.value, AmountOverflow)


@pytest.mark.parametrize("value", [1, 42, MAX_AMOUNT])
def test_positive_64_bit_amounts_pass_unchanged(value: int) -> None:
    assert check_amount(value) == value


def test_zero_only_with_allow_zero() -> None:
    assert check_amount(0, allow_zero=True) == 0
    with pytest.raises(InvalidInput, match="greater than zero"):
        check_amount(0)
    with pytest.raises(InvalidInput, match="zero or more"):
        check_amount(-1, allow_zero=True)


def test_errors_carry_a_stable_code_and_kind() -> None:
    with pytest.raises(AmountOverflow) as info:
        check_amount(2**63)
    assert info.value.as_dict()["code"] == "amount_overflow"
    assert isinstance(info.value, InvalidInput)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (MAX_BALANCE, True),
        (-MAX_BALANCE, True),
        (0, True),
        (MAX_BALANCE + 1, False),
        (-MAX_BALANCE - 1, False),
    ],
)
def test_balance_bound(value: int, ok: bool) -> None:
    if ok:
        assert check_balance_bound(value) == value
    else:
        with pytest.raises(AmountOverflow) as info:
            check_balance_bound(value, "posted")
        assert info.value.field == "posted"


@pytest.mark.parametrize(
    ("units", "scale", "minor"),
    [
        ("500.5", 2, 50_050),
        ("500.5", 0, 500),  # half to even: down to the even 500
        ("501.5", 0, 502),  # half to even: up to the even 502
        ("500.005", 2, 50_000),
        ("500.015", 2, 50_002),
        ("500.0051", 2, 50_001),
        ("-2.5", 0, -2),
        ("0.004", 2, 0),
        ("12", 3, 12_000),
        ("1.000000000000000001", 18, 10**18 + 1),
    ],
)
def test_to_minor_rounds_half_to_even(units: str, scale: int, minor: int) -> None:
    assert Asset("credits", scale).to_minor(Decimal(units)) == minor


@given(
    minor=st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT),
    scale=st.integers(min_value=0, max_value=MAX_SCALE),
)
def test_to_units_and_back_is_exact(minor: int, scale: int) -> None:
    asset = Asset("credits", scale)
    assert asset.to_minor(asset.to_units(minor)) == minor


@given(
    units=st.decimals(
        min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, places=6
    ),
    scale=st.integers(min_value=0, max_value=6),
)
def test_to_minor_matches_exact_half_even_rounding(units: Decimal, scale: int) -> None:
    exact = units * (Decimal(10) ** scale)
    expected = int(exact.quantize(Decimal(1), rounding=decimal.ROUND_HALF_EVEN))
    assert Asset("credits", scale).to_minor(units) == expected
    # Never further than half a minor unit from the exact value.
    assert abs(Decimal(expected) - exact) <= Decimal("0.5")


def test_to_minor_rounds_once_even_with_many_digits() -> None:
    # 1.49999999999999999999999999995 is below one half past 1: half-even gives 1.
    assert Asset("gpu_minutes", 0).to_minor(Decimal("1.49999999999999999999999999995")) == 1


@pytest.mark.parametrize("code", ["credits", "USD", "gpu_minutes", "a", "m.units-2", "A" * 32])
def test_asset_codes_accepted(code: str) -> None:
    assert check_asset_code(code) == code


@pytest.mark.parametrize("code", ["", "1credits", "_x", "with space", "A" * 33, None, 7, "€"])
def test_asset_codes_rejected(code: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_asset_code(code, "code")
    assert info.value.field == "code"


@pytest.mark.parametrize("scale", [-1, MAX_SCALE + 1, 2.0, True, "2", None])
def test_bad_scales(scale: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_scale(scale)
    assert info.value.field == "scale"


@pytest.mark.parametrize("scale", [0, 2, MAX_SCALE])
def test_good_scales(scale: int) -> None:
    assert check_scale(scale) == scale


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.25", Decimal("0.25")), (3, Decimal(3)), (Decimal("1.5"), Decimal("1.5")), ("0", 0)],
)
def test_decimals_from_strings_ints_and_decimals(value: object, expected: Decimal) -> None:
    result = check_decimal(value, "cost_basis")
    assert isinstance(result, Decimal) and result == expected


@pytest.mark.parametrize(
    "value",
    [
        0.25,  # floats are never money
        True,
        "abc",
        "NaN",
        "Infinity",
        Decimal("-Infinity"),
        "-0.01",  # below the default minimum of zero
        "1e40",  # out of range
        "1e-40",
        None,
        [1],
    ],
)
def test_bad_decimals_name_the_field(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_decimal(value, "cost_basis")
    assert info.value.field == "cost_basis"


def test_decimal_minimum_is_configurable() -> None:
    assert check_decimal("-3", "delta", minimum=Decimal(-10)) == Decimal(-3)
    with pytest.raises(InvalidInput, match="at least 1"):
        check_decimal("0.5", "rate", minimum=Decimal(1))


def test_an_amount_is_written_in_its_assets_units_exactly() -> None:
    assert units_text(176, 2) == "1.76" and units_text(-5, 2) == "-0.05"
    assert units_text(7, 0) == "7" and units_text(0, 2) == "0.00"
    assert units_text(123_456, 2, grouped=True) == "1,234.56"
    assert units_text(MAX_AMOUNT, MAX_SCALE) == "9.223372036854775807"
    assert Asset("credits", 2).amount_text(176) == "1.76 credits"


@given(st.integers(-MAX_AMOUNT, MAX_AMOUNT), st.integers(0, MAX_SCALE))
def test_the_written_amount_reads_back_as_the_same_minor_units(amount: int, scale: int) -> None:
    assert Asset("x", scale).to_minor(Decimal(units_text(amount, scale))) == amount


def test_money_is_rounded_half_to_even_to_the_currencys_minor_unit() -> None:
    assert money_text(Decimal("56.200020000000")) == "56.20"
    assert money_text(Decimal("0.125")) == "0.12" and money_text(Decimal("0.135")) == "0.14"
    assert money_text(Decimal("-0.004")) == "0.00"  # never "-0.00"
    assert money_text(Decimal("1500"), "JPY") == "1500" and currency_digits("kwd") == 3
    # With the symbol, the sign comes first: one way of writing a loss.
    assert money_text(Decimal("-0.07"), symbol=True) == "-$0.07"
    assert money_text(Decimal("5.3395"), symbol=True) == "$5.34"
    assert money_text(Decimal("-1234.5"), symbol=True, grouped=True) == "-$1,234.50"
    assert money_text(Decimal("-5"), "CHF", symbol=True) == "-5.00 CHF"
    assert rounded_text(Decimal("2.125"), 2) == "2.12" and rounded_text(Decimal("2.5"), 0) == "2"
    # More digits than any fixed context holds: still rounded once, half to even.
    assert rounded_text(Decimal("1" + "0" * 60 + ".125"), 2) == "1" + "0" * 60 + ".12"


def test_stored_money_rounds_half_to_even_to_18_places_whatever_its_whole_digits() -> None:
    assert stored_money(Decimal("0.1234567890123456785")) == Decimal("0.123456789012345678")
    assert stored_money(Decimal("0.1234567890123456775")) == Decimal("0.123456789012345678")
    # 31 digits, computed exactly in a wider context: more than the default context's 28.
    exact = Decimal("15241578753.2578882561918959375")
    assert str(stored_money(exact)) == "15241578753.257888256191895938"
    assert stored_money(Decimal("12.5")) == Decimal("12.5")  # nothing to round: as it is


def test_money_with_too_many_places_is_refused_by_name_however_many_whole_digits() -> None:
    # 31 digits: checking its places must not trip the default context's 28.
    with pytest.raises(InvalidInput, match="price must have at most 18 decimal places"):
        check_money(Decimal("12345678901.1234567890123456789"), "price")
    assert check_money(Decimal("12345678901.123456789012345678"), "price") == Decimal(
        "12345678901.123456789012345678"
    )
