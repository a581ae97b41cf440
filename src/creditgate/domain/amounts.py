"""Assets and integer amounts in an asset's minor unit, with the bounds every balance keeps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

from creditgate.domain.errors import AmountOverflow, InvalidInput

# An amount given for one operation is a signed 64-bit integer.
MAX_AMOUNT = 2**63 - 1
# Every stored balance (posted, held, an overdraft limit) stays within +-2**61, so
# `posted - held + overdraft_limit` can be evaluated by the database without overflow.
MAX_BALANCE = 2**61
MAX_SCALE = 18
MAX_WHOLE_DIGITS = 20
MAX_DECIMAL_PLACES = 18

ASSET_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")

# How money (a purchase's price, an exchange, a refund) becomes minor units, and how computed
# amounts of money are stored. A rate card states its own rule for prices (`pricing.Rounding`).
ROUNDING = ROUND_HALF_EVEN

# Where arithmetic must not round: sums, differences and products of amounts and prices
# (a card's values of at most 40 digits, stored money of 38) fit well within 1,000 digits,
# and Inexact is trapped to prove it. The result is rounded once, where it is stored or shown.
EXACT = Context(
    prec=1_000,
    rounding=ROUNDING,
    Emax=999_999,
    Emin=-999_999,
    traps=[Inexact, InvalidOperation, Overflow, DivisionByZero],
)


@dataclass(frozen=True, slots=True)
class Asset:
    code: str
    scale: int
    name: str = ""

    def to_minor(self, units: Decimal, rounding: str = ROUNDING) -> int:
        """Whole units (e.g. 500.5 credits) to minor units, rounded once by `rounding` (a
        `decimal` rounding mode). Every Decimal amount of an asset becomes minor units here."""
        with localcontext() as ctx:
            # Exact shift: enough precision that only the final rounding happens.
            ctx.prec = max(28, len(units.as_tuple().digits) + self.scale + 2)
            return int(units.scaleb(self.scale).to_integral_value(rounding=rounding))

    def to_units(self, minor: int) -> Decimal:
        return Decimal(minor).scaleb(-self.scale)

    def amount_text(self, minor: int) -> str:
        """An amount of this asset as a person reads it: 176 at scale 2 is "1.76 credits"."""
        return f"{units_text(minor, self.scale)} {self.code}"


def units_text(amount: int, scale: int, *, grouped: bool = False) -> str:
    """Minor units written in the asset's units, exactly (nothing is rounded): 176 at scale 2
    is "1.76", -5 is "-0.05", 7 at scale 0 is "7"; `grouped`, 123456 is "1,234.56". The one
    way every message, page and table writes an amount of an asset."""
    with localcontext() as ctx:
        ctx.prec = 40  # a 64-bit amount at any scale, exactly
        return format(Decimal(amount).scaleb(-scale), ",f" if grouped else "f")


# Decimal places of a currency's minor unit, as payment providers count them: two unless
# listed here. Prices are checked against it, and money is shown with it.
_ZERO_DECIMAL = "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
_CURRENCY_DIGITS = {
    **dict.fromkeys(_ZERO_DECIMAL, 0),
    **dict.fromkeys(("BHD", "JOD", "KWD", "OMR", "TND"), 3),
}
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def currency_digits(currency: str) -> int:
    """Decimal places of the currency's minor unit, as payment providers count them."""
    return _CURRENCY_DIGITS.get(currency.upper(), 2)


def rounded_text(value: Decimal, places: int, *, grouped: bool = False) -> str:
    """A Decimal shown to `places` decimals, rounded once by ROUNDING (half to even, from the
    Decimal itself, never a float): 2.345 to 2 places is "2.34", 2.355 is "2.36"; never
    "-0.00"."""
    shown = quantized(Decimal(value), Decimal(1).scaleb(-places))  # exact before the rounding
    return format(shown if shown else abs(shown), ",f" if grouped else "f")


def money_text(
    value: Decimal, currency: str = "USD", *, symbol: bool = False, grouped: bool = False
) -> str:
    """Money as a person reads it: rounded half to even to the currency's minor unit
    (`rounded_text`), "56.20"; with `symbol`, the sign before it: "-$0.07", "$5.34" (a
    currency without a symbol here is named after the number: "-5.00 CHF")."""
    shown = rounded_text(value, currency_digits(currency), grouped=grouped)
    if not symbol:
        return shown
    mark = _SYMBOLS.get(currency.upper())
    if mark is None:
        return f"{shown} {currency.upper()}"
    return f"-{mark}{shown[1:]}" if shown.startswith("-") else f"{mark}{shown}"


def decimal_text(value: Decimal) -> str:
    """The one written form of a Decimal in every answer, snapshot and report: plain notation,
    no exponent, no trailing zeros, "0" for zero (never "-0"): "20", "0.1", "-1.4",
    "0.00000028". Exact at any precision (a NUMERIC(38, 18) keeps all 38 digits)."""
    if not value:
        return "0"
    with localcontext() as ctx:
        ctx.prec = max(28, len(value.as_tuple().digits))
        ctx.Emax, ctx.Emin = 999_999, -999_999
        return format(value.normalize(), "f")


def check_asset_code(code: object, field: str = "asset") -> str:
    if not isinstance(code, str) or not ASSET_CODE.match(code):
        raise InvalidInput(
            f"{field} must be 1-32 letters, digits, '_', '.' or '-', starting with a letter",
            field=field,
        )
    return code


def check_scale(scale: object, field: str = "scale") -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= MAX_SCALE:
        raise InvalidInput(f"{field} must be a whole number from 0 to {MAX_SCALE}", field=field)
    return scale


def check_amount(value: object, field: str = "amount", *, allow_zero: bool = False) -> int:
    """A positive (or, with allow_zero, non-negative) integer that fits in 64 bits."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer number of minor units", field=field)
    if value < 0 or (value == 0 and not allow_zero):
        lowest = "zero or more" if allow_zero else "greater than zero"
        raise InvalidInput(f"{field} must be {lowest}, got {value}", field=field)
    if value > MAX_AMOUNT:
        raise AmountOverflow(f"{field} must fit in a signed 64-bit integer", field=field)
    return value


def check_balance_bound(value: int, field: str = "amount") -> int:
    if not -MAX_BALANCE <= value <= MAX_BALANCE:
        raise AmountOverflow(
            f"{field} would take a balance past the largest supported value {MAX_BALANCE}",
            field=field,
        )
    return value


def check_decimal(value: object, field: str, *, minimum: Decimal = Decimal(0)) -> Decimal:
    """A finite Decimal (given as Decimal, int or a decimal string; never a float)."""
    if isinstance(value, bool | float):
        raise InvalidInput(
            f"{field} must be a decimal string or an integer, not a float", field=field
        )
    try:
        result = Decimal(value) if isinstance(value, int | str) else value
    except InvalidOperation:
        raise InvalidInput(
            f"{field} must be a decimal number, got {value!r}", field=field
        ) from None
    if not isinstance(result, Decimal) or not result.is_finite():
        raise InvalidInput(f"{field} must be a finite decimal number", field=field)
    if result < minimum:
        raise InvalidInput(f"{field} must be at least {minimum}", field=field)
    if abs(result.adjusted()) > 30:
        raise InvalidInput(f"{field} is out of range", field=field)
    return result


def fits_money(value: Decimal) -> bool:
    """Whether an amount of money has no more whole digits than it is stored with
    (NUMERIC(38, 18): below 10^20)."""
    return not value or value.adjusted() < MAX_WHOLE_DIGITS


def check_money(value: object, field: str, *, minimum: Decimal = Decimal(0)) -> Decimal:
    """A Decimal amount of money that is stored exactly (NUMERIC(38, 18) on PostgreSQL)."""
    result = check_decimal(value, field, minimum=minimum)
    # Stored exactly as NUMERIC(38, 18): at most 20 whole digits and 18 decimal places.
    if not fits_money(result):
        raise InvalidInput(f"{field} must be below 10^{MAX_WHOLE_DIGITS}", field=field)
    exponent = result.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -MAX_DECIMAL_PLACES
        and result != quantized(result, Decimal(1).scaleb(-MAX_DECIMAL_PLACES))
    ):
        raise InvalidInput(
            f"{field} must have at most {MAX_DECIMAL_PLACES} decimal places", field=field
        )
    return result


_MONEY_QUANTUM = Decimal(1).scaleb(-MAX_DECIMAL_PLACES)


def quantized(value: Decimal, quantum: Decimal) -> Decimal:
    """`value` rounded half to even to `quantum`'s exponent, with the digits that takes:
    the default context's 28 would refuse (InvalidOperation) a value computed exactly in a
    wider one, such as 12345678901.1234567890123456789 to 18 places."""
    with localcontext() as ctx:
        ctx.prec = max(ctx.prec, value.adjusted() - quantum.adjusted() + 2)
        return value.quantize(quantum, rounding=ROUNDING)


def stored_money(value: Decimal) -> Decimal:
    """A computed amount of money (revenue, vendor cost) as stored: at most 18 decimal
    places, rounded half to even, identically on every backend."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        return quantized(value, _MONEY_QUANTUM)
    return value
