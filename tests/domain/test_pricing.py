"""Rate cards: parsing with exact error paths, rule matching, one rounding, and the examples."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditgate.domain.amounts import Asset
from creditgate.domain.errors import AmountOverflow, InvalidInput
from creditgate.domain.pricing import (
    ROUNDINGS,
    CostSource,
    RateCard,
    VendorCost,
    dimension_combinations,
    parse_rate_card,
    quote,
)
from creditgate.domain.pricing_errors import NoPrice, VendorCostUnknown

CREDITS = Asset("credits", 2)

EXAMPLES: dict[str, Any] = {
    "asset": "credits",
    "credit_value_usd": "0.10",
    "actions": {
        "image.generate": {
            "prices": [
                {"match": {"quality": "standard"}, "flat": "1", "vendor": {"flat": "0.04"}},
                {"match": {"quality": "ultra"}, "flat": "20", "vendor": {"flat": "0.30"}},
            ]
        },
        "tts.speak": {
            "prices": [
                {
                    "match": {"model": "multilingual"},
                    "per_unit": {"characters": "1"},
                    "vendor": {"per_unit": {"characters": "0.00018"}},
                },
                {"match": {"model": "flash"}, "per_unit": {"characters": "0.5"}},
            ]
        },
        "app.build": {
            "prices": [
                {"match": {"complexity": "simple"}, "flat": "0.5"},
                {"match": {"complexity": "auth_flow"}, "flat": "1.2"},
            ]
        },
        "chat.completion": {
            "prices": [
                {
                    "match": {"model": "claude-sonnet-4"},
                    "per_unit": {
                        "input_tokens": "0.003",
                        "output_tokens": "0.015",
                        "cached_tokens": "0.0003",
                    },
                    "minimum": "1",
                    "vendor": {"llm": {"provider": "anthropic"}},
                }
            ],
            "multipliers": [{"match": {"complexity": "high"}, "factor": "1.5"}],
        },
    },
}


@pytest.fixture
def card() -> RateCard:
    return parse_rate_card(EXAMPLES)


def price(
    card: RateCard,
    action: str,
    dimensions: dict[str, Any] | None = None,
    quantities: dict[str, Any] | None = None,
    asset: Asset = CREDITS,
) -> tuple[Decimal, int]:
    q = quote(card, action, dimensions or {}, quantities or {}, asset=asset)
    return q.units, q.amount


# The issue's examples


def test_images_cost_1_credit_standard_and_20_ultra(card: RateCard) -> None:
    assert price(card, "image.generate", {"quality": "standard"}) == (Decimal(1), 100)
    assert price(card, "image.generate", {"quality": "ultra"}) == (Decimal(20), 2_000)


def test_tts_is_per_character_and_fractional_credits_work(card: RateCard) -> None:
    multilingual = price(card, "tts.speak", {"model": "multilingual"}, {"characters": 1_001})
    assert multilingual == (Decimal(1_001), 100_100)
    units, amount = price(card, "tts.speak", {"model": "flash"}, {"characters": 1_001})
    assert units == Decimal("500.5") and amount == 50_050


def test_app_builder_prices_by_complexity(card: RateCard) -> None:
    assert price(card, "app.build", {"complexity": "simple"}) == (Decimal("0.5"), 50)
    assert price(card, "app.build", {"complexity": "auth_flow"}) == (Decimal("1.2"), 120)


# Matching


def test_rules_are_tried_in_order_and_an_empty_match_is_the_default() -> None:
    card = parse_rate_card(
        {
            "asset": "credits",
            "actions": {
                "render": {
                    "prices": [
                        {"match": {"region": "eu", "tier": "pro"}, "flat": "3"},
                        {"match": {"region": "eu"}, "flat": "2"},
                        {"flat": "1"},
                        {"match": {"region": "us"}, "flat": "9"},  # shadowed by the default
                    ]
                }
            },
        }
    )
    assert price(card, "render", {"region": "eu", "tier": "pro"})[0] == 3
    assert price(card, "render", {"region": "eu", "tier": "free"})[0] == 2
    assert price(card, "render", {"region": "us"})[0] == 1
    assert price(card, "render", {})[0] == 1
    q = quote(card, "render", {"region": "eu", "extra": "x"}, {}, asset=CREDITS)
    assert q.rule == 1 and q.match == {"region": "eu"}
    assert q.dimensions == {"region": "eu", "extra": "x"}


def test_tenant_defined_dimensions_and_quantities_price_like_built_in_ones() -> None:
    card = parse_rate_card(
        {
            "asset": "credits",
            "actions": {
                "video.render": {
                    "prices": [
                        {
                            "match": {"resolution": "4k", "codec": "av1"},
                            "per_unit": {"frames": "0.02", "seconds": "1"},
                        }
                    ]
                }
            },
        }
    )
    units, amount = price(
        card, "video.render", {"resolution": "4k", "codec": "av1"}, {"frames": 240, "seconds": 10}
    )
    assert units == Decimal("14.8") and amount == 1_480
    with pytest.raises(NoPrice):
        price(card, "video.render", {"resolution": "4k"}, {"frames": 1})


def test_no_rule_is_a_named_error_not_a_free_call(card: RateCard) -> None:
    with pytest.raises(NoPrice) as info:
        price(card, "image.generate", {"quality": "draft"})
    assert info.value.code == "no_price" and isinstance(info.value, InvalidInput)
    assert info.value.field == "dimensions" and "quality=draft" in info.value.message
    with pytest.raises(NoPrice) as unknown:
        price(card, "video.render")
    assert unknown.value.field == "action"


def test_an_unknown_quantity_is_rejected_by_name(card: RateCard) -> None:
    with pytest.raises(InvalidInput) as info:
        price(card, "tts.speak", {"model": "flash"}, {"charaters": 10})
    assert info.value.field == "quantities.charaters"
    assert "characters" in info.value.message  # says what the action does price


GOOD_QUANTITIES = [10, "10", "2.5", Decimal("7"), 0]
BAD_QUANTITIES = [2.5, -1, "-0.1", "1e99", "nan", True, None, [1], "ten"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [(v, True) for v in GOOD_QUANTITIES] + [(v, False) for v in BAD_QUANTITIES],
)
def test_quantities_are_non_negative_ints_or_decimal_strings(
    card: RateCard, value: object, ok: bool
) -> None:
    if ok:
        price(card, "tts.speak", {"model": "flash"}, {"characters": value})
        return
    with pytest.raises(InvalidInput) as info:
        price(card, "tts.speak", {"model": "flash"}, {"characters": value})
    assert info.value.field == "quantities.characters"


def test_a_missing_quantity_counts_as_zero_and_the_minimum_still_applies(card: RateCard) -> None:
    q = quote(card, "chat.completion", {"model": "claude-sonnet-4"}, {}, asset=CREDITS)
    assert q.subtotal == 0 and q.units == 1 and q.amount == 100


def test_dimension_values_in_a_request_are_strings(card: RateCard) -> None:
    with pytest.raises(InvalidInput) as info:
        price(card, "image.generate", {"quality": 1})
    assert info.value.field == "dimensions.quality"


def test_the_card_prices_one_asset(card: RateCard) -> None:
    with pytest.raises(InvalidInput) as info:
        price(card, "image.generate", {"quality": "standard"}, asset=Asset("USD", 2))
    assert info.value.field == "asset"


# Multipliers, minimum, rounding


def test_matching_multipliers_all_apply_before_the_minimum() -> None:
    card = parse_rate_card(
        {
            "asset": "credits",
            "actions": {
                "agent.run": {
                    "prices": [{"per_unit": {"steps": "0.2"}, "minimum": "1"}],
                    "multipliers": [
                        {"match": {"complexity": "high"}, "factor": "1.5"},
                        {"match": {"priority": "rush"}, "factor": "2"},
                        {"match": {"complexity": "low"}, "factor": "0.5"},
                    ],
                }
            },
        }
    )
    both = quote(
        card, "agent.run", {"complexity": "high", "priority": "rush"}, {"steps": 10}, asset=CREDITS
    )
    assert both.units == 6 and [m.index for m in both.multipliers] == [0, 1]
    # 2 steps at low complexity: 0.4 x 0.5 = 0.2, raised to the minimum of 1.
    low = quote(card, "agent.run", {"complexity": "low"}, {"steps": 2}, asset=CREDITS)
    assert low.subtotal == Decimal("0.2") and low.units == 1


def test_the_issue_chat_example_multiplies_the_sum_of_token_lines(card: RateCard) -> None:
    q = quote(
        card,
        "chat.completion",
        {"model": "claude-sonnet-4", "complexity": "high"},
        {"input_tokens": 1_200, "output_tokens": 800},
        asset=CREDITS,
    )
    assert [(line.name, line.subtotal) for line in q.lines] == [
        ("input_tokens", Decimal("3.6")),
        ("output_tokens", Decimal(12)),
        ("cached_tokens", Decimal(0)),
    ]
    assert q.units == Decimal("23.4") and q.amount == 2_340


def test_lines_are_not_rounded_on_their_own_only_the_total_is() -> None:
    card = parse_rate_card(
        {
            "asset": "credits",
            "actions": {"embed": {"prices": [{"per_unit": {"a": "0.004", "b": "0.004"}}]}},
        }
    )
    # Rounding each line to cents would give 0 + 0; the total 0.008 rounds to 0.01.
    assert price(card, "embed", {}, {"a": 1, "b": 1}) == (Decimal("0.008"), 1)


@pytest.mark.parametrize(
    ("units", "scale", "amount"),
    [("0.125", 2, 12), ("0.135", 2, 14), ("0.1251", 2, 13), ("2.5", 0, 2), ("3.5", 0, 4)],
)
def test_a_half_even_card_rounds_the_total_half_to_even(
    units: str, scale: int, amount: int
) -> None:
    card = parse_rate_card(
        {
            "asset": "credits",
            "rounding": "half_even",
            "actions": {"x": {"prices": [{"flat": units}]}},
        }
    )
    assert price(card, "x", asset=Asset("credits", scale)) == (Decimal(units), amount)


def round_half_even(value: Fraction) -> int:
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        return floor + 1
    return floor


# Each rounding a card may state, on a non-negative exact value.
REFERENCE_ROUNDING = {
    "up": lambda v: -(-v.numerator // v.denominator),
    "down": lambda v: v.numerator // v.denominator,
    "half_up": lambda v: (v + Fraction(1, 2)).numerator // (v + Fraction(1, 2)).denominator,
    "half_down": lambda v: -(-(v - Fraction(1, 2)).numerator // (v - Fraction(1, 2)).denominator),
    "half_even": round_half_even,
}


decimals = st.decimals(min_value=0, max_value=100, places=6, allow_nan=False)


@given(
    prices=st.lists(decimals, min_size=1, max_size=4),
    counts=st.lists(st.integers(min_value=0, max_value=10**6), min_size=4, max_size=4),
    flat=decimals,
    factors=st.lists(st.decimals(min_value="0.001", max_value=10, places=3), max_size=3),
    scale=st.integers(min_value=0, max_value=6),
    rounding=st.sampled_from(sorted(REFERENCE_ROUNDING)),
)
def test_price_is_the_exact_sum_rounded_once_by_the_cards_rule(
    prices: list[Decimal],
    counts: list[int],
    flat: Decimal,
    factors: list[Decimal],
    scale: int,
    rounding: str,
) -> None:
    names = [f"q{i}" for i in range(len(prices))]
    per_unit = {name: str(p) for name, p in zip(names, prices, strict=True)}
    card = parse_rate_card(
        {
            "asset": "credits",
            "rounding": rounding,
            "actions": {
                "x": {
                    "prices": [{"flat": str(flat), "per_unit": per_unit}],
                    "multipliers": [{"factor": str(f)} for f in factors],
                }
            },
        }
    )
    quantities = dict(zip(names, counts, strict=False))
    exact = Fraction(flat) + sum(
        (Fraction(p) * c for p, c in zip(prices, counts, strict=False)), start=Fraction(0)
    )
    for factor in factors:
        exact *= Fraction(factor)
    q = quote(card, "x", {}, quantities, asset=Asset("credits", scale))
    assert Fraction(q.units) == exact
    assert q.amount == REFERENCE_ROUNDING[rounding](exact * 10**scale)
    assert q.rounding == rounding and q.rounded_units == Decimal(q.amount).scaleb(-scale)


def test_a_price_past_64_bits_is_an_overflow_not_a_wrap() -> None:
    card = parse_rate_card(
        {"asset": "credits", "actions": {"x": {"prices": [{"per_unit": {"n": "1e20"}}]}}}
    )
    with pytest.raises(AmountOverflow) as info:
        price(card, "x", {}, {"n": 10**9})
    assert info.value.field == "quantities"


# vendor_multiple


def test_vendor_multiple_prices_from_the_vendor_cost_at_the_credit_value() -> None:
    card = parse_rate_card(
        {
            "asset": "credits",
            "credit_value_usd": "0.10",
            "actions": {"x": {"prices": [{"vendor_multiple": "2.5", "flat": "1"}]}},
        }
    )

    def cost(*_: object) -> VendorCost:
        return VendorCost(Decimal("0.04"), CostSource.EXPLICIT)

    q = quote(card, "x", {}, {}, asset=CREDITS, vendor_cost=cost)
    # $0.04 x 2.5 = $0.10 = 1 credit, plus the flat credit.
    assert q.lines[-1].name == "vendor_cost" and q.lines[-1].subtotal == 1
    assert q.units == 2 and q.amount == 200
    with pytest.raises(VendorCostUnknown) as info:
        quote(card, "x", {}, {}, asset=CREDITS)
    assert isinstance(info.value, NoPrice) and info.value.code == "vendor_cost_unknown"


def test_vendor_multiple_needs_the_card_credit_value() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_rate_card({"asset": "USD", "actions": {"x": {"prices": [{"vendor_multiple": "1"}]}}})
    assert info.value.field == "credit_value_usd"


# Parsing


def with_change(path: list[str | int], value: object) -> dict[str, Any]:
    spec: Any = json.loads(json.dumps(EXAMPLES))
    target = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return dict(spec)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (
            ["actions", "tts.speak", "prices", 1, "per_unit", "characters"],
            0.5,
            "actions.tts.speak.prices[1].per_unit.characters",
        ),
        (
            ["actions", "image.generate", "prices", 1, "flat"],
            "-20",
            "actions.image.generate.prices[1].flat",
        ),
        (
            ["actions", "image.generate", "prices", 0, "vendor", "flat"],
            "a lot",
            "actions.image.generate.prices[0].vendor.flat",
        ),
        (
            ["actions", "image.generate", "prices", 0, "per_units"],
            {"images": "1"},
            "actions.image.generate.prices[0].per_units",
        ),
        (["actions", "image.generate", "prices"], [], "actions.image.generate.prices"),
        (["actions", "image.generate", "prices"], {"flat": "1"}, "actions.image.generate.prices"),
        (
            ["actions", "chat.completion", "multipliers", 0, "factor"],
            "0",
            "actions.chat.completion.multipliers[0].factor",
        ),
        (
            ["actions", "chat.completion", "prices", 0, "match", "model"],
            "",
            "actions.chat.completion.prices[0].match.model",
        ),
        (
            ["actions", "chat.completion", "prices", 0, "vendor", "llm"],
            {"provider": "anthropic", "region": "eu"},
            "actions.chat.completion.prices[0].vendor.llm.region",
        ),
        (["actions", "app.build", "prices", 0], {"match": {"complexity": "x"}}, None),
        (["credit_value_usd"], "0", "credit_value_usd"),
        (["asset"], "", "asset"),
        (["actions"], {}, "actions"),
        (["actions"], {"bad action": {"prices": [{"flat": "1"}]}}, "actions.bad action"),
        (["currency"], "USD", "currency"),
    ],
)
def test_a_bad_card_names_the_path_at_fault(
    path: list[str | int], value: object, field: str | None
) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_rate_card(with_change(path, value))
    assert info.value.field == (field or "actions.app.build.prices[0]")


def test_a_rule_must_price_something() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_rate_card({"asset": "credits", "actions": {"x": {"prices": [{"match": {}}]}}})
    assert 'flat: "0"' in info.value.message
    free = parse_rate_card({"asset": "credits", "actions": {"x": {"prices": [{"flat": "0"}]}}})
    assert price(free, "x") == (Decimal(0), 0)


def test_yaml_integers_in_a_match_read_as_strings() -> None:
    card = parse_rate_card(
        {"asset": "credits", "actions": {"x": {"prices": [{"match": {"tier": 2}, "flat": "3"}]}}}
    )
    assert price(card, "x", {"tier": "2"})[0] == 3


def test_the_canonical_spec_round_trips_and_is_json(card: RateCard) -> None:
    spec = card.spec()
    assert parse_rate_card(json.loads(json.dumps(spec))) == card
    assert spec["credit_value_usd"] == "0.1"
    assert spec["actions"]["tts.speak"]["prices"][1] == {
        "match": {"model": "flash"},
        "per_unit": {"characters": "0.5"},
    }


def test_the_snapshot_is_json_with_decimal_strings(card: RateCard) -> None:
    q = quote(card, "tts.speak", {"model": "flash"}, {"characters": "1001"}, asset=CREDITS)
    snapshot = json.loads(json.dumps(q.snapshot()))
    assert snapshot == {
        "action": "tts.speak",
        "asset": "credits",
        "scale": 2,
        "rule": 1,
        "match": {"model": "flash"},
        "dimensions": {"model": "flash"},
        "quantities": {"characters": "1001"},
        "lines": [
            {"name": "characters", "quantity": "1001", "unit_price": "0.5", "subtotal": "500.5"}
        ],
        "multipliers": [],
        "subtotal": "500.5",
        "minimum": None,
        "units": "500.5",
        "rounded_units": "500.5",
        "amount": 50_050,
        "rounding": "up",
        "credit_value_usd": "0.1",
        "vendor_cost": None,
    }


def test_combinations_cover_each_reachable_rule_with_its_multipliers() -> None:
    card = parse_rate_card(
        {
            "asset": "credits",
            "actions": {
                "x": {
                    "prices": [
                        {"match": {"model": "a"}, "flat": "1"},
                        {"flat": "2"},
                        {"match": {"model": "b"}, "flat": "3"},  # shadowed
                    ],
                    "multipliers": [
                        {"match": {"complexity": "high"}, "factor": "2"},
                        {"match": {"model": "a"}, "factor": "3"},
                    ],
                }
            },
        }
    )
    combos, complete = dimension_combinations(card.actions["x"])
    assert complete
    assert combos == [
        {"model": "a"},
        {"model": "a", "complexity": "high"},
        {},
        {"complexity": "high"},
    ]


# Fuzzing: any input is a card or an InvalidInput; any request is a quote or a named error


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.decimals(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10) | st.integers(), children, max_size=4)
    ),
    max_leaves=25,
)
good_numbers = st.decimals(min_value=0, max_value=10**6, places=4).map(str) | st.integers(
    min_value=0, max_value=10**6
)
factors = st.decimals(min_value="0.0001", max_value=100, places=4).map(str)
bad_numbers = (
    st.decimals(allow_nan=True, allow_infinity=True).map(str)
    | st.integers(min_value=-(10**45), max_value=10**45)
    | st.sampled_from(["1e-31", "1e30", "1" * 50, "-0", "0E+5", " 2 ", "1_0"])
    | st.floats()
    | st.text(max_size=6)
)
good_names = st.sampled_from(["model", "quality", "characters", "input_tokens", "n"])
bad_names = st.sampled_from(["", "a b", "9x", "x" * 70]) | st.text(max_size=8)
values = st.sampled_from(["a", "b", "flash", "ultra"])


def card_specs(valid: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Near-valid cards (each field sometimes wrong), or always-valid ones."""
    numbers = good_numbers if valid else st.one_of(good_numbers, good_numbers, bad_numbers)
    names = good_names if valid else st.one_of(good_names, good_names, bad_names)
    match_values = values if valid else values | st.integers() | st.booleans() | bad_names
    matches = st.dictionaries(names, match_values, max_size=2)
    per_units = st.dictionaries(names, numbers, max_size=3)
    llm = st.fixed_dictionaries({}, optional={"provider": values, "model": values})
    vendor = st.fixed_dictionaries({"flat": numbers}, optional={"per_unit": per_units, "llm": llm})
    rule_fields: dict[str, st.SearchStrategy[Any]] = {
        "match": matches,
        "per_unit": per_units,
        "minimum": numbers,
        "vendor": vendor,
    }
    if not valid:
        rule_fields |= {"vendor_multiple": numbers, "bogus": json_values, "vendor": json_values}
    rule = st.fixed_dictionaries({"flat": numbers}, optional=rule_fields)
    multiplier = st.fixed_dictionaries(
        {"factor": factors if valid else numbers}, optional={"match": matches}
    )
    action = st.fixed_dictionaries(
        {"prices": st.lists(rule, min_size=1, max_size=4)},
        optional={"multipliers": st.lists(multiplier, max_size=3)},
    )
    action_names = st.sampled_from(["x", "image.generate"])
    if not valid:
        action_names |= st.sampled_from(["bad action", ""]) | st.text(max_size=6)
        action = st.one_of(action, action, json_values)
    return st.fixed_dictionaries(
        {
            "asset": st.just("credits") if valid else st.sampled_from(["credits", "", 7]),
            "actions": st.dictionaries(action_names, action, min_size=1, max_size=3),
        },
        optional={
            "credit_value_usd": factors if valid else numbers,
            "description": st.text(max_size=5) if valid else json_values,
            "rounding": st.sampled_from(sorted(ROUNDINGS))
            if valid
            else st.sampled_from([*ROUNDINGS, "ceiling", "UP", ""]) | json_values,
        },
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(spec=json_values | card_specs(valid=False))
def test_any_spec_parses_or_raises_invalid_input(spec: object) -> None:
    try:
        card = parse_rate_card(spec)
    except InvalidInput as exc:
        assert exc.field is not None
        return
    assert parse_rate_card(card.spec()) == card


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=card_specs(valid=True),
    action=st.sampled_from(["x", "image.generate", "y"]),
    dimensions=st.dictionaries(good_names | bad_names, values | st.integers(), max_size=3),
    quantities=st.dictionaries(good_names | bad_names, good_numbers | bad_numbers, max_size=3),
)
def test_any_request_is_priced_or_refused_by_name(
    spec: dict[str, Any], action: str, dimensions: Any, quantities: Any
) -> None:
    card = parse_rate_card(spec)
    assert parse_rate_card(card.spec()) == card
    asset = Asset("credits", 2)
    try:
        q = quote(card, action, dimensions, quantities, asset=asset)
    except (InvalidInput, NoPrice):
        return
    assert q.amount == asset.to_minor(q.units, ROUNDINGS[card.rounding]) >= 0
    json.dumps(q.snapshot())
