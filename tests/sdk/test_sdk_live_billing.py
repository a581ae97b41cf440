"""The guard's billing end to end against a live `creditgate serve`, on SQLite and PostgreSQL:
a flat-priced action settled with no usage, disjoint token counts priced and costed as sent,
a settle charged short of its usage."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import httpx
import pytest

import creditgate_sdk as sdk
from creditgate_sdk import AsyncClient, Client
from tests.sdk import test_sdk_live as sdk_live
from tests.sdk.test_sdk_live import GRANTED, Live

# The live tenant's fixtures, as the SDK's live module defines them.
live, cg, customer = sdk_live.live, sdk_live.cg, sdk_live.customer
plain, card = sdk_live.plain, sdk_live.card


def test_a_flat_priced_action_settles_with_no_usage(
    plain: Client, customer: str, card: str
) -> None:
    with plain.guard(customer, "image.generate", rate_card=card) as g:
        assert g.amount == 400  # the card's flat 4 credits
        settlement = g.settle()
    charge = settlement.charge
    assert (charge.amount, charge.shortfall, charge.vendor_cost) == (400, 0, Decimal("0.04"))
    assert charge.rate_card_version == 1 and g.status == "settled"
    assert plain.wallet(customer).balance("credits").available == GRANTED - 400


@pytest.mark.anyio
async def test_an_async_flat_priced_action_settles_with_no_usage(
    live: Live, customer: str, card: str
) -> None:
    async with AsyncClient(live.base_url, live.api_key) as acg:
        async with acg.guard(customer, "image.generate", rate_card=card) as g:
            settlement = await g.settle()
        assert settlement.charge.amount == 400


def test_an_action_priced_by_usage_is_not_settled_without_it(
    plain: Client, customer: str, card: str
) -> None:
    with pytest.raises(sdk.InvalidRequest) as refused:  # noqa: SIM117
        with plain.guard(
            customer, "chat.completion", model="gpt-4.1", max_tokens=100, rate_card=card
        ) as g:
            g.settle()
    assert refused.value.status == 422 and refused.value.field == "quantities"
    assert g.status == "voided"
    assert plain.wallet(customer).balance("credits").available == GRANTED


def test_explicit_token_counts_are_disjoint_and_costed_as_sent(
    plain: Client, customer: str, card: str
) -> None:
    with plain.guard(
        customer, "chat.completion", model="gpt-4.1", max_tokens=100, rate_card=card
    ) as g:
        settlement = g.settle(input_tokens=10, output_tokens=10, cache_write_tokens=100_000)
    charge = settlement.charge
    assert charge.quantities == {
        "input_tokens": "10",
        "output_tokens": "10",
        "cache_write_tokens": "100000",
    }
    # gpt-4.1: $2/M input (cache writes at the input price), $8/M output.
    assert charge.vendor_cost == Decimal("0.2001")
    assert charge.amount == 10  # 10 x 0.002 + 10 x 0.008 credits; the card prices no writes


def test_a_settle_charged_short_warns_and_a_strict_guard_raises(
    live: Live, plain: Client, customer: str, card: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "creditgate_sdk")
    # A hold of 0.8 credits; 2,000,000 output tokens at 0.008 are 16,000 credits.
    with plain.guard(
        customer, "chat.completion", model="gpt-4.1", max_tokens=100, rate_card=card
    ) as g:
        settlement = g.settle(output_tokens=2_000_000)
    charge = settlement.charge
    assert (charge.requested, charge.amount) == (1_600_000, GRANTED)
    assert charge.shortfall == 1_600_000 - GRANTED
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "creditgate_sdk"]
    assert f"{charge.shortfall} went unbilled" in warning

    plain.grant(customer, "credits", 100, kind="promotional")
    with (
        Client(live.base_url, live.api_key, strict=True) as strict,
        pytest.raises(sdk.ChargeShortfall) as short,
        strict.guard(
            customer, "chat.completion", model="gpt-4.1", max_tokens=100, rate_card=card
        ) as g,
    ):
        g.settle(output_tokens=1_000_000)
    assert (short.value.charge.amount, short.value.shortfall) == (100, 800_000 - 100)
    assert g.status == "settled"


def test_refunds_and_manual_purchases_through_the_sdk(
    live: Live, plain: Client, customer: str
) -> None:
    charge = plain.charge(customer, "credits", 700, action="tts.speak")
    refund = plain.refund_charge(charge.id, "the call failed", amount=300)
    assert (refund.amount, refund.charge_refunded, refund.available) == (300, 300, GRANTED - 400)
    assert sum(line.amount for line in refund.lines) == 300

    code = f"pack-{uuid.uuid4().hex[:6]}"
    pack = {"code": code, "asset": "credits", "amount": 1_000, "price": "5.00"}
    headers = {"Authorization": f"Bearer {live.api_key}", "Idempotency-Key": code}
    assert httpx.post(f"{live.base_url}/v1/packs", json=pack, headers=headers).is_success

    bought = plain.create_purchase(customer, pack=code, provider="manual")
    assert (bought.status, bought.amount, bought.price) == ("pending", 1_000, Decimal("5.00"))
    paid = plain.mark_purchase_paid(bought.id)
    assert paid.status == "paid" and paid.lot_id is not None
    assert plain.purchase(bought.id) == paid
    assert plain.wallet(customer).balance("credits").available == GRANTED - 400 + 1_000
    back = plain.refund_purchase(bought.id, "changed their mind", amount=400)
    assert (back.amount, back.unused, back.purchase_id) == (400, 400, bought.id)
    assert back.money == Decimal("2.00")

    unpaid = plain.create_purchase(customer, pack=code, provider="manual")
    failed = plain.mark_purchase_failed(unpaid.id, reason="card declined")
    assert (failed.status, failed.failure_reason) == ("failed", "card declined")
