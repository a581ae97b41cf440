"""The gate prices actions by the tenant's rate card; every charge keeps its price and margin."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from creditgate.api import TenantLedger
from creditgate.domain.errors import IdempotencyConflict, InvalidInput
from creditgate.domain.pricing_errors import NoPrice
from tests.conftest import FakeClock

CARD = {
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
                {"match": {"model": "multilingual"}, "per_unit": {"characters": "1"}},
                {"match": {"model": "flash"}, "per_unit": {"characters": "0.5"}},
            ]
        },
        "chat.completion": {
            "prices": [
                {
                    "match": {"model": "gpt-4.1"},
                    "per_unit": {"input_tokens": "0.002", "output_tokens": "0.008"},
                    "minimum": "1",
                    "vendor": {"llm": {"provider": "openai"}},
                }
            ]
        },
    },
}


@pytest.fixture
def priced(ledger: TenantLedger) -> TenantLedger:
    ledger.publish_rate_card(CARD)
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 1_000_000, kind="purchased", cost_basis="0.10")
    return ledger


def test_authorize_holds_the_priced_estimate_and_settle_prices_actual_usage(
    priced: TenantLedger,
) -> None:
    auth = priced.authorize(
        "c1",
        action="chat.completion",
        dimensions={"model": "gpt-4.1"},
        quantities={"input_tokens": 1_200, "output_tokens": 800},
    )
    # 1,200 x 0.002 + 800 x 0.008 = 8.8 credits = 880 minor units at scale 2.
    assert auth.approved and auth.amount == 880 and auth.asset == "credits"
    settled = priced.settle(auth.id, quantities={"input_tokens": 1_200, "output_tokens": 310})
    charge = settled.charge
    assert charge.amount == 488  # 2.4 + 2.48 = 4.88 credits
    assert charge.action == "chat.completion" and charge.model == "gpt-4.1"
    assert charge.price is not None and charge.price["units"] == "4.88"
    # Vendor cost from the maintained price table: $2/M input, $8/M output for gpt-4.1.
    assert charge.vendor_cost == Decimal("0.00488")
    # Revenue: 4.88 credits drawn from a lot bought at $0.10 a credit.
    assert charge.revenue == Decimal("0.488")
    assert priced.wallet("c1").balance("credits").held == 0


def test_fractional_credits_and_flat_prices(priced: TenantLedger) -> None:
    tts = priced.charge(
        "c1", action="tts.speak", dimensions={"model": "flash"}, quantities={"characters": 1_001}
    )
    assert tts.amount == 50_050  # 500.5 credits
    ultra = priced.charge("c1", action="image.generate", dimensions={"quality": "ultra"})
    assert ultra.amount == 2_000 and ultra.vendor_cost == Decimal("0.30")


def test_settle_uses_the_card_version_the_hold_was_priced_with(
    priced: TenantLedger, clock: FakeClock
) -> None:
    auth = priced.authorize(
        "c1", action="image.generate", dimensions={"quality": "standard"}, quantities={}
    )
    repriced = {**CARD, "actions": {**CARD["actions"]}}
    repriced["actions"]["image.generate"] = {"prices": [{"flat": "3"}]}  # type: ignore[index]
    newer = priced.publish_rate_card(repriced, effective_at=clock.now + timedelta(minutes=1))
    assert newer.version == 2
    clock.advance(minutes=2)
    charge = priced.settle(auth.id, quantities={}).charge
    assert charge.amount == 100 and charge.rate_card_version == 1
    later = priced.charge(
        "c1", action="image.generate", dimensions={"quality": "standard"}, quantities={}
    )
    assert later.amount == 300 and later.rate_card_version == 2
    assert [v.version for v in priced.rate_cards()] == [1, 2]


def test_an_action_with_no_price_is_an_error_not_a_free_call(priced: TenantLedger) -> None:
    with pytest.raises(NoPrice):
        priced.authorize("c1", action="video.render", quantities={"seconds": 10})
    with pytest.raises(NoPrice):
        priced.authorize("c1", action="image.generate", dimensions={"quality": "x"}, quantities={})
    assert priced.wallet("c1").balance("credits").held == 0


def test_rate_card_decimals_are_stored_exactly(ledger: TenantLedger) -> None:
    card = {
        "asset": "credits",
        "actions": {
            "app.change": {
                "prices": [
                    {"match": {"complexity": "simple"}, "flat": Decimal("0.5")},
                    {"match": {"complexity": "auth_flow"}, "flat": Decimal("1.2")},
                ]
            }
        },
    }
    version = ledger.publish_rate_card(card)
    assert version.spec["actions"]["app.change"]["prices"][1]["flat"] == "1.2"
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 1_000)
    simple = ledger.charge("c1", action="app.change", dimensions={"complexity": "simple"})
    auth = ledger.charge("c1", action="app.change", dimensions={"complexity": "auth_flow"})
    assert (simple.amount, auth.amount) == (50, 120)


def test_raw_amounts_still_work_and_take_an_explicit_vendor_cost(priced: TenantLedger) -> None:
    auth = priced.authorize("c1", "credits", 500, action="custom.job")
    charge = priced.settle(auth.id, 450, vendor_cost="0.0125").charge
    assert charge.amount == 450 and charge.vendor_cost == Decimal("0.0125")
    assert charge.price is None
    with pytest.raises(InvalidInput) as info:
        priced.settle(priced.authorize("c1", "credits", 10).id, quantities={"images": 1})
    assert info.value.field == "quantities"


def test_tenant_model_price_override_shows_in_later_charges_only(
    priced: TenantLedger, clock: FakeClock
) -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 0}
    before = priced.charge(
        "c1", action="chat.completion", dimensions={"model": "gpt-4.1"}, quantities=usage
    )
    assert before.vendor_cost == Decimal("2")
    priced.set_model_price("gpt-4.1", input_mtok="1.5", output_mtok="6")
    after = priced.charge(
        "c1", action="chat.completion", dimensions={"model": "gpt-4.1"}, quantities=usage
    )
    assert after.vendor_cost == Decimal("1.5")
    assert priced.ledger("c1").data[0].reference_id == after.id


GUARDED = {
    "asset": "credits",
    "credit_value_usd": "0.10",
    "actions": {
        "image.generate": {
            "prices": [
                {"match": {"quality": "standard"}, "flat": "1", "vendor": {"flat": "0.04"}},
                # Priced below its cost: 2 credits ($0.20) for a $0.30 render.
                {"match": {"quality": "ultra"}, "flat": "2", "vendor": {"flat": "0.30"}},
            ],
            "margin_guard": {"headroom": "0.2", "mode": "decline"},
        },
        "tts.speak": {
            "prices": [
                {
                    "per_unit": {"characters": "0.001"},
                    "vendor": {"per_unit": {"characters": "0.0003"}},
                }
            ],
            "margin_guard": {"headroom": "0", "mode": "warn"},
        },
    },
}


def test_margin_guard_declines_actions_that_would_lose_money(ledger: TenantLedger) -> None:
    ledger.publish_rate_card(GUARDED)
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 100_000)
    fine = ledger.authorize("c1", action="image.generate", dimensions={"quality": "standard"})
    assert fine.approved and fine.warnings == []
    refused = ledger.authorize("c1", action="image.generate", dimensions={"quality": "ultra"})
    assert not refused.approved and refused.decline_reason == "margin_guard"
    assert "vendor cost" in refused.warnings[0]
    charged = ledger.charge("c1", action="image.generate", dimensions={"quality": "ultra"})
    assert charged.status == "declined" and charged.decline_reason == "margin_guard"
    balance = ledger.wallet("c1").balance("credits")
    assert (balance.posted, balance.held) == (100_000, 100)


def test_margin_guard_in_warn_mode_approves_with_a_warning(ledger: TenantLedger) -> None:
    ledger.publish_rate_card(GUARDED)
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 100_000)
    auth = ledger.authorize("c1", action="tts.speak", quantities={"characters": 1_000})
    # 1 credit ($0.10) for $0.30 of vendor cost: approved, flagged.
    assert auth.approved and auth.amount == 100
    assert auth.warnings and auth.warnings[0].startswith("margin_guard")


def test_usage_with_token_kinds_the_card_does_not_price_is_still_charged(
    ledger: TenantLedger,
) -> None:
    card = {
        "asset": "credits",
        "actions": {
            "chat.completion": {
                "prices": [{"per_unit": {"input_tokens": "0.001", "output_tokens": "0.004"}}]
            }
        },
    }
    ledger.publish_rate_card(card)
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 100_000)
    auth = ledger.authorize(
        "c1", action="chat.completion", quantities={"input_tokens": 1_000, "output_tokens": 500}
    )
    usage = {"input_tokens": 800, "cached_tokens": 200, "output_tokens": 100}
    charge = ledger.settle(auth.id, quantities=usage).charge
    assert charge.amount == 120  # 0.8 + 0.4 credits; the cache reads add nothing here
    assert charge.quantities == {
        "input_tokens": "800",
        "cached_tokens": "200",
        "output_tokens": "100",
    }


def test_a_retried_hold_answers_as_the_first_even_when_its_request_no_longer_prices(
    priced: TenantLedger, clock: FakeClock
) -> None:
    """A hold's retry replays its first answer, though the card it was priced by has since
    been replaced by one without its action; another request under a key already used is a
    conflict, not the pricing error it would meet. (On PostgreSQL a hold takes its key as new
    and looks it up only when it cannot go on.)"""
    request = {"action": "image.generate", "dimensions": {"quality": "ultra"}, "quantities": {}}
    first = priced.authorize("c1", idempotency_key="hold-1", **request)  # type: ignore[arg-type]
    assert first.approved and first.amount == 2_000
    without = {**CARD, "actions": {"tts.speak": CARD["actions"]["tts.speak"]}}  # type: ignore[index]
    priced.publish_rate_card(without, effective_at=clock.now + timedelta(seconds=1))
    clock.advance(minutes=1)
    with pytest.raises(NoPrice):
        priced.authorize("c1", **request)  # type: ignore[arg-type]
    assert priced.authorize("c1", idempotency_key="hold-1", **request) == first  # type: ignore[arg-type]
    priced.charge("c1", "credits", 100, idempotency_key="charge-1")
    with pytest.raises(IdempotencyConflict):
        priced.authorize("c1", idempotency_key="charge-1", **request)  # type: ignore[arg-type]
    assert priced.wallet("c1").balance("credits").held == 2_000
