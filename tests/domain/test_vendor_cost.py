"""Vendor cost: card prices, genai-prices (offline), tenant overrides, explicit costs; margins."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, calc_price, data_snapshot

from creditgate.domain.amounts import Asset
from creditgate.domain.errors import InvalidInput
from creditgate.domain.pricing import CostSource, RateCard, parse_model_prices, parse_rate_card
from creditgate.domain.pricing_errors import VendorCostUnknown
from creditgate.domain.vendor_cost import LlmUsage
from creditgate.services.pricing.margin import credit_to_cost, list_margin, margin_rate
from creditgate.services.pricing.vendor_cost import genai_prices_cost, quote
from tests.domain.test_pricing import EXAMPLES

CREDITS = Asset("credits", 2)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def card() -> RateCard:
    return parse_rate_card(EXAMPLES)


def reference(model: str, provider: str | None, usage: LlmUsage, at: datetime = NOW) -> Decimal:
    """genai-prices' own answer, with cache reads and writes counted inside input_tokens."""
    cached, written = usage.cached_tokens, usage.cache_write_tokens
    return calc_price(
        Usage(
            input_tokens=int(usage.input_tokens + cached + written),
            output_tokens=int(usage.output_tokens),
            cache_read_tokens=int(cached),
            cache_write_tokens=int(written),
        ),
        model_ref=model,
        provider_id=provider,
        genai_request_timestamp=at,
    ).total_price


def tokens(input_tokens: int = 0, output: int = 0, cached: int = 0, written: int = 0) -> LlmUsage:
    return LlmUsage(Decimal(input_tokens), Decimal(output), Decimal(cached), Decimal(written))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# From the card


def test_a_flat_vendor_price_is_the_cost_of_each_action(card: RateCard) -> None:
    q = quote(card, "image.generate", {"quality": "ultra"}, {}, asset=CREDITS)
    assert q.vendor_cost is not None
    assert q.vendor_cost.usd == Decimal("0.30") and q.vendor_cost.source == CostSource.CARD


def test_a_per_unit_vendor_price_scales_with_the_quantity(card: RateCard) -> None:
    q = quote(card, "tts.speak", {"model": "multilingual"}, {"characters": 1_000}, asset=CREDITS)
    assert q.vendor_cost is not None and q.vendor_cost.usd == Decimal("0.18")


def test_a_rule_without_a_vendor_price_has_an_unknown_cost_with_a_reason(card: RateCard) -> None:
    q = quote(card, "tts.speak", {"model": "flash"}, {"characters": 10}, asset=CREDITS)
    assert q.amount == 500
    assert q.vendor_cost is not None and q.vendor_cost.usd is None
    assert q.vendor_cost.source == CostSource.UNKNOWN and "no vendor price" in str(
        q.vendor_cost.reason
    )


# LLMs via genai-prices


def test_an_llm_call_is_priced_by_genai_prices_from_the_model_dimension(card: RateCard) -> None:
    q = quote(
        card,
        "chat.completion",
        {"model": "claude-sonnet-4"},
        {"input_tokens": 1_000, "output_tokens": 500},
        asset=CREDITS,
        at=NOW,
    )
    assert q.vendor_cost is not None
    assert q.vendor_cost.source == CostSource.PRICE_TABLE
    assert q.vendor_cost.provider == "anthropic" and q.vendor_cost.model == "claude-sonnet-4"
    assert q.vendor_cost.usd == reference("claude-sonnet-4", "anthropic", tokens(1_000, 500))
    assert q.vendor_cost.usd == Decimal("0.0105")  # $3 and $15 per million tokens


def test_cached_tokens_are_apart_from_input_tokens() -> None:
    cost = genai_prices_cost("anthropic", "claude-sonnet-4", tokens(1_000, 0, 1_000), at=NOW)
    # 1,000 fresh input tokens at $3/M and 1,000 cache reads at $0.30/M.
    assert cost.usd == Decimal("0.0033")


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "claude-sonnet-4"),
        ("anthropic", "claude-sonnet-4-5"),  # tiered above 200k input tokens
        ("openai", "gpt-4o"),
        ("google", "gemini-2.5-pro"),  # tiered
        ("deepseek", "deepseek-chat"),  # off-peak prices by time of day
        (None, "gpt-4.1"),  # provider found from the model
    ],
)
@pytest.mark.parametrize(
    "usage",
    [tokens(), tokens(1_000, 500), tokens(250_000, 10, 3_000, 7), tokens(1, 1, 1, 1)],
)
@pytest.mark.parametrize(
    "at", [NOW, datetime(2026, 6, 1, 2, 0, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC)]
)
def test_the_cost_is_exactly_what_genai_prices_computes(
    provider: str | None, model: str, usage: LlmUsage, at: datetime
) -> None:
    cost = genai_prices_cost(provider, model, usage, at=at)
    assert cost.usd == reference(model, provider, usage, at)


def test_an_unknown_model_is_an_unknown_cost_not_a_crash(card: RateCard) -> None:
    cost = genai_prices_cost("anthropic", "claude-nonexistent-9", tokens(10, 10), at=NOW)
    assert cost.usd is None and cost.source == CostSource.UNKNOWN
    assert "claude-nonexistent-9" in str(cost.reason)
    assert genai_prices_cost("nobody", "gpt-4o", tokens(10), at=NOW).usd is None
    # The credit price does not depend on it.
    q = quote(
        card,
        "chat.completion",
        {"model": "claude-sonnet-4"},
        {"input_tokens": 1_000},
        asset=CREDITS,
        model_prices=None,
        at=NOW,
    )
    assert q.vendor_cost is not None and q.vendor_cost.usd is not None


def test_a_model_genai_prices_does_not_list_is_looked_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """genai-prices keeps the models it found; creditgate keeps the ones it did not, so a
    tenant's own model priced by vendor cost does not walk every provider on each call."""
    snapshot = data_snapshot.get_snapshot()
    looked_up: list[str] = []
    real = type(snapshot).find_provider_model

    def counting(self: Any, model_ref: str, *args: Any) -> Any:
        looked_up.append(model_ref)
        return real(self, model_ref, *args)

    monkeypatch.setattr(type(snapshot), "find_provider_model", counting)
    first = genai_prices_cost("openai", "our-own-model-7", tokens(10, 10), at=NOW)
    again = genai_prices_cost("openai", "Our-Own-Model-7", tokens(5), at=NOW)
    assert first.usd is None and again.usd is None
    assert again.reason == first.reason and "our-own-model-7" in str(first.reason)
    assert looked_up == ["our-own-model-7"]
    # Under another provider it is another question; a listed model is unaffected.
    assert genai_prices_cost("anthropic", "our-own-model-7", tokens(1), at=NOW).usd is None
    assert genai_prices_cost("openai", "gpt-4o", tokens(10), at=NOW).usd is not None
    assert looked_up == ["our-own-model-7", "our-own-model-7", "gpt-4o"]


def test_an_llm_rule_needs_a_model() -> None:
    card = parse_rate_card(
        {
            "asset": "credits",
            "actions": {"chat": {"prices": [{"flat": "1", "vendor": {"llm": {}}}]}},
        }
    )
    q = quote(card, "chat", {}, {"input_tokens": 10}, asset=CREDITS, at=NOW)
    assert q.amount == 100
    assert q.vendor_cost is not None and q.vendor_cost.usd is None
    assert "model" in str(q.vendor_cost.reason)


def test_prices_come_from_the_bundled_data_without_the_network(offline: None) -> None:
    assert data_snapshot.get_snapshot().from_auto_update is False
    cost = genai_prices_cost("mistral", "mistral-large-latest", tokens(1_000, 1_000), at=NOW)
    assert cost.usd is not None and cost.usd > 0
    assert genai_prices.__version__  # the installed package is the price source


# Overrides and explicit costs


FLOAT: Any = 0.3
SONNET_AT_COST = parse_model_prices(
    {"Claude-Sonnet-4": {"input_mtok": "1", "output_mtok": "2", "cache_read_mtok": "0.1"}}
)


def test_a_tenant_override_wins_over_genai_prices(card: RateCard) -> None:
    q = quote(
        card,
        "chat.completion",
        {"model": "claude-sonnet-4"},
        {"input_tokens": 1_000, "output_tokens": 500, "cached_tokens": 10_000},
        asset=CREDITS,
        model_prices=SONNET_AT_COST,
        at=NOW,
    )
    assert q.vendor_cost is not None and q.vendor_cost.source == CostSource.TENANT_OVERRIDE
    # (1,000 x $1 + 500 x $2 + 10,000 x $0.10) per million
    assert q.vendor_cost.usd == Decimal("0.003")


def test_an_override_without_cache_prices_charges_input_price_for_them() -> None:
    prices = parse_model_prices({"m": {"input_mtok": "4", "output_mtok": "8"}})
    card = parse_rate_card(
        {
            "asset": "credits",
            "actions": {"chat": {"prices": [{"flat": "1", "vendor": {"llm": {"model": "m"}}}]}},
        }
    )
    q = quote(
        card,
        "chat",
        {},
        {"cached_tokens": 1_000_000, "cache_write_tokens": 500_000},
        asset=CREDITS,
        model_prices=prices,
    )
    assert q.vendor_cost is not None and q.vendor_cost.usd == 6


def test_an_explicit_cost_wins_over_everything(card: RateCard) -> None:
    q = quote(
        card,
        "chat.completion",
        {"model": "claude-sonnet-4"},
        {"input_tokens": 1_000},
        asset=CREDITS,
        model_prices=SONNET_AT_COST,
        vendor_cost_usd="0.00042",
    )
    assert q.vendor_cost is not None
    assert (q.vendor_cost.usd, q.vendor_cost.source) == (Decimal("0.00042"), CostSource.EXPLICIT)
    assert q.snapshot()["vendor_cost"] == {
        "usd": "0.00042",
        "source": "explicit",
        "reason": None,
        "provider": None,
        "model": None,
    }
    with pytest.raises(InvalidInput) as info:
        quote(
            card, "image.generate", {"quality": "ultra"}, {}, asset=CREDITS, vendor_cost_usd=FLOAT
        )
    assert info.value.field == "vendor_cost"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"m": {"input_mtok": "1"}}, "model_prices.m.output_mtok"),
        ({"m": {"input_mtok": "1", "output_mtok": 2.0}}, "model_prices.m.output_mtok"),
        ({"m": {"input_mtok": "1", "output_mtok": "2", "batch": "1"}}, "model_prices.m.batch"),
        ({"M": {"input_mtok": "1", "output_mtok": "2"}, "m": {}}, "model_prices.m"),
        ([], "model_prices"),
    ],
)
def test_bad_overrides_name_the_field(spec: object, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_model_prices(spec)
    assert info.value.field == field


# A $20 USD pool charged at provider API rates


POOL = parse_rate_card(
    {
        "asset": "USD",
        "credit_value_usd": "1",
        "actions": {
            "chat.completion": {
                "prices": [
                    {"match": {"plan": "pro"}, "vendor_multiple": "1.2", "vendor": {"llm": {}}},
                    {"vendor_multiple": "1", "vendor": {"llm": {}}},
                ]
            }
        },
    }
)
MICRO_USD = Asset("USD", 6)
POOL_MINOR = 20 * 10**6
MODELS = ["claude-sonnet-4", "gpt-4.1", "gemini-2.5-flash"]
REQUEST = {"input_tokens": 1_000, "output_tokens": 500}


def requests_bought(model: str, **dimensions: str) -> int:
    q = quote(
        POOL, "chat.completion", {"model": model, **dimensions}, REQUEST, asset=MICRO_USD, at=NOW
    )
    return POOL_MINOR // q.amount


def test_a_20_dollar_pool_at_api_rates_buys_requests_per_model() -> None:
    bought = {model: requests_bought(model) for model in MODELS}
    for model, count in bought.items():
        cost = reference(model, None, tokens(1_000, 500))
        assert count == int(Decimal(20) / cost), model
    # Sonnet 4 at $3/$15 per million tokens: $0.0105 a request.
    assert bought["claude-sonnet-4"] == 1_904
    assert bought["claude-sonnet-4"] < bought["gpt-4.1"] < bought["gemini-2.5-flash"]


def test_a_markup_on_api_rates_buys_fewer_requests() -> None:
    at_cost = requests_bought("claude-sonnet-4")
    marked_up = requests_bought("claude-sonnet-4", plan="pro")
    assert marked_up == POOL_MINOR // 12_600 < at_cost  # $0.0105 x 1.2


def test_a_pool_model_without_a_known_price_is_refused_not_free() -> None:
    with pytest.raises(VendorCostUnknown):
        requests_bought("in-house-model-7")


# The margin arithmetic


def test_a_4_cent_action_sold_at_1_credit_of_10_cents_is_2_5x_and_60_percent(
    card: RateCard,
) -> None:
    q = quote(card, "image.generate", {"quality": "standard"}, {}, asset=CREDITS)
    assert q.vendor_cost is not None and q.vendor_cost.usd == Decimal("0.04")
    assert q.credit_value_usd == Decimal("0.10")
    list_value = CREDITS.to_units(q.amount) * q.credit_value_usd
    ratio = credit_to_cost(list_value, q.vendor_cost.usd)
    assert ratio == Decimal("2.5")
    assert list_margin(list_value, q.vendor_cost.usd) == Decimal("0.6")
    assert margin_rate(list_value, q.vendor_cost.usd) == Decimal("0.6")
    assert credit_to_cost(list_value, Decimal(0)) is None
    assert margin_rate(Decimal(0), Decimal("0.04")) is None


def test_a_card_price_and_an_llm_price_add_up_exactly_before_the_one_rounding() -> None:
    # $12,345,678,901.1234567890123456 of flat cost (28 digits) and $5 x 10^-18 of tokens:
    # 29 digits together, which the default context would round away before it is stored.
    card = parse_rate_card(
        {
            "asset": "credits",
            "actions": {
                "chat": {
                    "prices": [
                        {
                            "flat": "1",
                            "vendor": {
                                "flat": "12345678901.1234567890123456",
                                "llm": {"model": "m"},
                            },
                        }
                    ]
                }
            },
        }
    )
    prices = parse_model_prices({"m": {"input_mtok": "0.000000000005", "output_mtok": "0"}})
    q = quote(card, "chat", {}, {"input_tokens": 1}, asset=CREDITS, model_prices=prices, at=NOW)
    assert q.vendor_cost is not None
    assert q.vendor_cost.usd == Decimal("12345678901.123456789012345605")
