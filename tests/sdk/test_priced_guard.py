"""The guard priced by the server's rate card: the hold sends the estimate, the settle the
real usage in the server's disjoint token counts, and neither sends an amount."""

from __future__ import annotations

from typing import Any

import pytest

from creditgate_sdk import AsyncClient, Client, Declined, NoPrice, Usage
from tests.sdk import llm_objects as llm
from tests.sdk.fakes import CARD_ID, FakeCreditgate

START = 10_000


@pytest.fixture
def cg(plain: Client) -> Client:
    """A client with no price of its own: guards are priced by the server."""
    return plain


@pytest.fixture
def acg(aplain: AsyncClient) -> AsyncClient:
    return aplain


def sent(fake: FakeCreditgate, pattern: str) -> list[Any]:
    return [fake.body(r) for r in fake.calls("POST", pattern)]


def test_the_hold_is_the_cards_price_of_the_estimate(cg: Client, fake: FakeCreditgate) -> None:
    with cg.guard(
        "cust_42", "chat.completion", model="gpt-4.1", input_tokens=1_200, max_tokens=800
    ) as g:
        # 1,200 in * 0.1 + 800 out * 0.4, priced by the server.
        assert g.server_priced and g.amount == 440 and fake.available() == START - 440
        g.settle(llm.chat_completion(prompt=1_200, completion=300, cached=1_000))
    (hold,) = sent(fake, "/v1/authorizations")
    assert hold == {
        "customer": "cust_42",
        "action": "chat.completion",
        "dimensions": {"model": "gpt-4.1"},
        "quantities": {"input_tokens": 1_200, "output_tokens": 800},
    }
    (settle,) = sent(fake, r"/v1/authorizations/.*/settle")
    # OpenAI's prompt_tokens include the 1,000 cached: the server's input_tokens do not.
    assert settle == {
        "action": "chat.completion",
        "quantities": {"input_tokens": 200, "output_tokens": 300, "cached_tokens": 1_000},
    }
    assert g.settlement is not None
    charge = g.settlement.charge
    # 200 * 0.1 + 1,000 * 0.025 + 300 * 0.4
    assert charge.amount == 165 and fake.available() == START - 165
    assert charge.rate_card_id == CARD_ID == g.settlement.authorization.rate_card_id
    assert charge.model == "gpt-4.1" and charge.quantities == {
        "input_tokens": "200",
        "output_tokens": "300",
        "cached_tokens": "1000",
    }
    assert g.usage == Usage(
        input_tokens=200, output_tokens=300, cached_tokens=1_000, model="gpt-4.1-2025-04-14"
    )


@pytest.mark.parametrize(
    ("responses", "quantities"),
    [
        (
            [llm.chat_completion(2_000, 500, cached=1_024, reasoning=200)],
            {"input_tokens": 976, "output_tokens": 500, "cached_tokens": 1_024},
        ),
        (
            llm.chat_stream(2_000, 500, cached=1_024),
            {"input_tokens": 976, "output_tokens": 500, "cached_tokens": 1_024},
        ),
        (
            [llm.response(1_500, 400, cached=256, reasoning=50)],
            {"input_tokens": 1_244, "output_tokens": 400, "cached_tokens": 256},
        ),
        (llm.response_stream(1_500, 400), {"input_tokens": 1_500, "output_tokens": 400}),
        (
            # Anthropic's input_tokens already leave out cache reads and writes.
            [llm.message(300, 250, cache_read=4_000, cache_write=1_000)],
            {
                "input_tokens": 300,
                "output_tokens": 250,
                "cached_tokens": 4_000,
                "cache_write_tokens": 1_000,
            },
        ),
        (
            llm.message_stream(3_000, 250, cache_read=500),
            {"input_tokens": 3_000, "output_tokens": 250, "cached_tokens": 500},
        ),
        (
            llm.message_stream(3_000, 250, with_helper_stop=True),
            {"input_tokens": 3_000, "output_tokens": 250},
        ),
    ],
    ids=[
        "openai-chat",
        "openai-chat-stream",
        "openai-responses",
        "openai-responses-stream",
        "anthropic-message",
        "anthropic-stream",
        "anthropic-stream-helper",
    ],
)
def test_settle_sends_each_providers_usage_in_the_servers_counts(
    cg: Client, fake: FakeCreditgate, responses: list[Any], quantities: dict[str, int]
) -> None:
    with cg.guard("cust_42", "chat.completion", input_tokens=4_000, max_tokens=1_000) as g:
        g.settle(*responses)
    (settle,) = sent(fake, r"/v1/authorizations/.*/settle")
    assert settle["quantities"] == quantities and "amount" not in settle
    expected = fake.price("chat.completion", quantities)
    assert fake.charges[0].amount == expected and fake.available() == START - expected


def test_a_stream_observed_event_by_event_settles_in_server_counts(
    cg: Client, fake: FakeCreditgate
) -> None:
    with cg.guard("cust_42", "chat.completion", model="claude-sonnet-4-5", max_tokens=500) as g:
        for event in llm.message_stream(600, 70, cache_read=400):
            g.observe(event)
        g.settle()
    (settle,) = sent(fake, r"/v1/authorizations/.*/settle")
    assert settle["quantities"] == {"input_tokens": 600, "output_tokens": 70, "cached_tokens": 400}
    assert fake.available() == START - (60 + 28 + 10)


def test_plain_quantities_and_a_flat_priced_action(cg: Client, fake: FakeCreditgate) -> None:
    with cg.guard("cust_42", "image.generate", dimensions={"quality": "hd"}) as g:
        assert g.amount == 250  # no quantities: the card's flat price
        g.settle(quantities={"images": 2}, vendor_cost="0.08")
    hold, settle = sent(fake, r"/v1/authorizations.*")
    assert hold["quantities"] == {} and hold["dimensions"] == {"quality": "hd"}
    assert settle["quantities"] == {"images": 2} and settle["vendor_cost"] == "0.08"
    assert fake.available() == START - 450
    assert g.settlement is not None and str(g.settlement.charge.vendor_cost) == "0.08"


def test_settle_with_an_amount_overrides_the_card(cg: Client, fake: FakeCreditgate) -> None:
    with cg.guard("cust_42", "chat.completion", max_tokens=1_000) as g:
        g.settle(amount=123)
    (settle,) = sent(fake, r"/v1/authorizations/.*/settle")
    assert settle["amount"] == 123 and "quantities" not in settle
    assert fake.available() == START - 123


def test_a_declined_estimate_raises_before_the_call(cg: Client, fake: FakeCreditgate) -> None:
    ran = False
    with pytest.raises(Declined) as caught:  # noqa: SIM117 - the body must be inside the guard
        with cg.guard("cust_42", "chat.completion", input_tokens=10_000, max_tokens=100_000):
            ran = True
    assert not ran and caught.value.requested == 41_000 and caught.value.available == START


def test_an_action_the_card_does_not_price_is_an_error_before_the_call(
    cg: Client, fake: FakeCreditgate
) -> None:
    ran = False
    with pytest.raises(NoPrice) as caught:  # noqa: SIM117
        with cg.guard("cust_42", "video.render", quantities={"seconds": 10}):
            ran = True
    assert not ran and caught.value.field == "action" and fake.available() == START


def test_a_price_keeps_the_client_pricing(cg: Client, fake: FakeCreditgate) -> None:
    def per_token(usage: Usage) -> int:
        return usage.input_tokens + usage.output_tokens

    with cg.guard(
        "cust_42", "chat.completion", model="m1", input_tokens=10, max_tokens=20, price=per_token
    ) as g:
        assert not g.server_priced
        g.settle(input_tokens=10, output_tokens=5)
    hold, settle = sent(fake, r"/v1/authorizations.*")
    # An amount, with the action and model as labels; no quantities for the card.
    assert hold["amount"] == 30 and hold["dimensions"] == {"model": "m1"}
    assert "quantities" not in hold and "quantities" not in settle and settle["amount"] == 15


def test_the_decorator_is_priced_by_the_card(cg: Client, fake: FakeCreditgate) -> None:
    @cg.guarded("chat.completion", model="gpt-4.1", max_tokens=500)
    def reply(customer: str) -> Any:
        return llm.response(input_tokens=100, output_tokens=50)

    reply("cust_42")
    assert fake.available() == START - (10 + 20)
    (hold,) = sent(fake, "/v1/authorizations")
    assert hold["quantities"] == {"output_tokens": 500}


@pytest.mark.anyio
async def test_the_async_guard_is_priced_by_the_card(
    acg: AsyncClient, fake: FakeCreditgate
) -> None:
    message = llm.message(input_tokens=200, output_tokens=300, cache_read=1_000)
    async with acg.guard("cust_42", "chat.completion", input_tokens=1_200, max_tokens=1_000) as g:
        assert g.amount == 120 + 400
        settlement = await g.settle(message)
    # 200 * 0.1 + 1,000 cached * 0.025 + 300 * 0.4
    assert settlement.charge.amount == 165 and fake.available() == START - 165
    (settle,) = sent(fake, r"/v1/authorizations/.*/settle")
    assert settle["quantities"] == {
        "input_tokens": 200,
        "output_tokens": 300,
        "cached_tokens": 1_000,
    }
