"""Client-side pricing of usage, for guards not priced by the server's rate card."""

from __future__ import annotations

from decimal import Decimal

import pytest

from creditgate_sdk import TokenRate, Usage


def test_a_token_rate_prices_each_kind_of_token() -> None:
    rate = TokenRate(input="0.1", output="0.4", cached_input="0.025", cache_write="0.125")
    usage = Usage(
        input_tokens=4_000, cached_tokens=4_000, cache_write_tokens=2_000, output_tokens=1_000
    )
    # 4,000 uncached * 0.1 + 4,000 cached * 0.025 + 2,000 writes * 0.125 + 1,000 out * 0.4
    assert rate.cost(usage) == Decimal("1150.000")
    assert rate(usage) == 1_150


def test_cache_rates_default_to_the_input_rate() -> None:
    rate = TokenRate(input=2, output=8)
    assert rate(Usage(input_tokens=100, cached_tokens=100, output_tokens=1)) == 408


def test_a_price_rounds_up_to_a_minor_unit_by_default_as_a_card_does() -> None:
    rate = TokenRate(input="250", output="1000", per=1_000_000)
    assert rate(Usage(input_tokens=4)) == 1  # 0.001 is never free
    assert rate(Usage(input_tokens=2_000)) == 1  # 0.5
    assert rate(Usage(input_tokens=6_000)) == 2  # 1.5
    assert rate(Usage(input_tokens=10_000, output_tokens=2_500)) == 5  # 2.5 + 2.5 exactly
    assert rate(Usage()) == 0  # nothing used costs nothing


def test_a_rate_may_name_another_rounding() -> None:
    half_even = TokenRate(input="250", output="1000", per=1_000_000, rounding="half_even")
    assert half_even(Usage(input_tokens=2_000)) == 0  # 0.5 rounds to even
    assert half_even(Usage(input_tokens=6_000)) == 2  # 1.5 rounds to even
    down = TokenRate(input="250", output="1000", per=1_000_000, rounding="down")
    assert down(Usage(input_tokens=7_999)) == 1
    with pytest.raises(ValueError, match="rounding"):
        TokenRate(input=1, output=1, rounding="nearest")  # type: ignore[arg-type]


def test_other_quantities_have_their_own_rates() -> None:
    rate = TokenRate(input=0, output=0, quantities={"images": 400})
    assert rate(Usage(quantities={"images": 3})) == 1_200
    with pytest.raises(ValueError, match="seconds"):
        rate(Usage(quantities={"seconds": 1}))


def test_floats_and_negative_rates_are_refused() -> None:
    with pytest.raises(TypeError, match="float"):
        TokenRate(input=0.1, output="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output"):
        TokenRate(input="1", output="-1")
    with pytest.raises(ValueError, match="per"):
        TokenRate(input="1", output="1", per=0)
