"""Turning usage into an amount on the client, for guards not priced by the server's rate card.

A price is any function from `Usage` to an integer amount in the asset's minor unit; the
guard calls it on the estimate (to size the hold) and on the actual usage (to settle).
`TokenRate` is the ready-made one: a Decimal rate per token, rounded once to a whole minor
unit, up by default as the server's rate cards do (so a call with a price above zero never
costs zero), or by the `rounding` it names as a card may. Without a price (or an amount)
the guard sends the action, its dimensions and quantities for the server's rate card to
price instead, which also records the price breakdown, the vendor cost and the margin of
each charge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Decimal,
    InvalidOperation,
)
from typing import Literal

from creditgate_sdk.usage import Usage

Price = Callable[[Usage], int]

Rate = Decimal | int | str
Rounding = Literal["up", "down", "half_up", "half_down", "half_even"]

# The names a rate card uses for its rounding, and what each does to a price of zero or more.
ROUNDINGS: dict[str, str] = {
    "up": ROUND_CEILING,
    "down": ROUND_FLOOR,
    "half_up": ROUND_HALF_UP,
    "half_down": ROUND_HALF_DOWN,
    "half_even": ROUND_HALF_EVEN,
}


def _rate(value: object, name: str) -> Decimal:
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
        raise TypeError(
            f"{name} must be a Decimal, an int or a decimal string (never a float), got {value!r}"
        )
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} must be a decimal number, got {value!r}") from None
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"{name} must be a finite rate of zero or more, got {value!r}")
    return rate


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenRate:
    """Minor units of the asset per `per` tokens, e.g. `TokenRate(input="0.3", output="1.2")`.

    Usage counts tokens disjointly: `input` prices the uncached input tokens, `cached_input`
    the cache reads and `cache_write` the cache writes (both default to `input`); reasoning
    tokens are output tokens. `quantities` prices other counts by name,
    per unit (e.g. `{"images": 400}`); a usage with a count this rate has no price for is an
    error rather than free. `rounding` turns the exact price into whole minor units once:
    `up` (the default, as on the server's cards), `down`, `half_up`, `half_down`, `half_even`.
    """

    input: Rate
    output: Rate
    cached_input: Rate | None = None
    cache_write: Rate | None = None
    per: int = 1
    quantities: Mapping[str, Rate] = field(default_factory=dict, hash=False)
    rounding: Rounding = "up"

    def __post_init__(self) -> None:
        if self.rounding not in ROUNDINGS:
            raise ValueError(
                f"rounding must be one of {', '.join(ROUNDINGS)}, got {self.rounding!r}"
            )
        for name in ("input", "output", "cached_input", "cache_write"):
            if (value := getattr(self, name)) is not None:
                _rate(value, name)
        for name, value in self.quantities.items():
            _rate(value, f"quantities[{name!r}]")
        if isinstance(self.per, bool) or not isinstance(self.per, int) or self.per < 1:
            raise ValueError("per must be a whole number of tokens, 1 or more")

    def cost(self, usage: Usage) -> Decimal:
        """The exact price before rounding."""
        rate_in = _rate(self.input, "input")
        rate_cached = rate_in if self.cached_input is None else _rate(self.cached_input, "")
        rate_write = rate_in if self.cache_write is None else _rate(self.cache_write, "")
        total = (
            usage.input_tokens * rate_in
            + usage.cached_tokens * rate_cached
            + usage.cache_write_tokens * rate_write
            + usage.output_tokens * _rate(self.output, "output")
        ) / self.per
        for name, count in usage.quantities.items():
            if name not in self.quantities:
                raise ValueError(f"this TokenRate has no price for the quantity {name!r}")
            total += count * _rate(self.quantities[name], name)
        return total

    def __call__(self, usage: Usage) -> int:
        return int(self.cost(usage).to_integral_value(rounding=ROUNDINGS[self.rounding]))
