"""The guard: hold before the call, settle the real usage after it, void when it fails."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from creditgate_sdk import (
    AsyncClient,
    AsyncGuard,
    Client,
    Declined,
    Guard,
    HoldExpired,
    Usage,
    UsageNotFound,
    usage_from,
)
from tests.sdk import llm_objects as llm
from tests.sdk.conftest import NO_WAIT, RATE
from tests.sdk.fakes import API_KEY, BASE_URL, FakeCreditgate

START = 10_000


def price_of(*responses: Any) -> int:
    return RATE(usage_from(*responses))


def keys(fake: FakeCreditgate, pattern: str) -> list[str]:
    return [r.headers["idempotency-key"] for r in fake.calls("POST", pattern)]


@pytest.fixture
def unpriced(fake: FakeCreditgate) -> Iterator[Client]:
    http = httpx.Client(transport=httpx.MockTransport(fake.handler))
    with Client(BASE_URL, API_KEY, retry=NO_WAIT, http_client=http) as client:
        yield client


# Sync guard


def test_the_hold_covers_the_estimate_and_the_settle_charges_the_real_usage(
    cg: Client, fake: FakeCreditgate
) -> None:
    with cg.guard(
        "cust_42", "chat.completion", model="gpt-4.1", input_tokens=1_200, max_tokens=800
    ) as g:
        # 1,200 in * 0.1 + 800 out * 0.4
        assert g.amount == 440 and fake.available() == START - 440
        resp = llm.chat_completion(prompt=1_200, completion=300, cached=1_000)
        settlement = g.settle(resp)

    # 200 uncached * 0.1 + 1,000 cached * 0.025 + 300 out * 0.4
    assert settlement.charge.amount == 165 and fake.available() == START - 165
    assert g.status == "settled" and g.settlement == settlement
    assert g.usage == Usage(
        input_tokens=200, output_tokens=300, cached_tokens=1_000, model="gpt-4.1-2025-04-14"
    )
    charge = fake.charges[0]
    assert charge.action == "chat.completion"
    assert charge.metadata["usage"] == {
        "input_tokens": 200,
        "output_tokens": 300,
        "cached_tokens": 1_000,
        "model": "gpt-4.1-2025-04-14",
    }
    hold = fake.holds[settlement.authorization.id]
    assert hold.metadata == {
        "action": "chat.completion",
        "model": "gpt-4.1",
        "estimate": {"input_tokens": 1_200, "output_tokens": 800, "model": "gpt-4.1"},
    }


def test_a_decline_raises_before_the_body_runs(cg: Client, fake: FakeCreditgate) -> None:
    ran = False
    with pytest.raises(Declined) as caught:  # noqa: SIM117 - the body must be inside the guard
        with cg.guard("cust_42", "image.generate", amount=25_000):
            ran = True
    assert not ran
    declined = caught.value
    assert (declined.reason, declined.requested, declined.available) == (
        "insufficient_funds",
        25_000,
        START,
    )
    assert declined.authorization.status == "declined"
    assert len(fake.requests) == 1 and fake.available() == START


def test_an_exception_in_the_body_voids_the_hold_and_propagates(
    cg: Client, fake: FakeCreditgate
) -> None:
    guard = cg.guard("cust_42", "chat.completion", amount=700)
    with pytest.raises(RuntimeError, match="model timed out"), guard:
        assert fake.available() == START - 700
        raise RuntimeError("model timed out")
    assert guard.status == "voided" and fake.available() == START
    (authorize_key,) = keys(fake, "/v1/authorizations")
    assert keys(fake, r"/v1/authorizations/.*/void") == [f"{authorize_key}:void"]


def test_leaving_without_settling_voids(cg: Client, fake: FakeCreditgate) -> None:
    with cg.guard("cust_42", amount=700) as g:
        pass
    assert g.status == "voided" and g.authorization is not None
    assert g.authorization.status == "voided" and fake.available() == START


def test_settle_with_an_explicit_amount(unpriced: Client, fake: FakeCreditgate) -> None:
    with unpriced.guard("cust_42", "image.generate", amount=400) as g:
        g.settle(amount=400)
    assert fake.available() == START - 400 and g.usage is None


def test_settle_with_plain_quantities(cg: Client, fake: FakeCreditgate) -> None:
    with cg.guard("cust_42", "chat.completion", model="m1", max_tokens=1_000) as g:
        g.settle(input_tokens=1_000, output_tokens=100)
    assert fake.available() == START - 140
    assert g.usage == Usage(input_tokens=1_000, output_tokens=100, model="m1")


@pytest.mark.parametrize(
    "responses",
    [
        [llm.chat_completion(2_000, 500, cached=1_024, reasoning=200)],
        llm.chat_stream(2_000, 500, cached=1_024),
        [llm.response(1_500, 400, cached=256, reasoning=50)],
        llm.response_stream(1_500, 400),
        [llm.message(300, 250, cache_read=4_000, cache_write=1_000)],
        llm.message_stream(3_000, 250, cache_read=500),
        llm.message_stream(3_000, 250, with_helper_stop=True),
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
def test_settle_reads_every_provider_whole_or_streamed(
    cg: Client, fake: FakeCreditgate, responses: list[Any]
) -> None:
    expected = price_of(*responses)
    assert expected > 0
    with cg.guard("cust_42", "chat.completion", input_tokens=4_000, max_tokens=1_000) as g:
        g.settle(*responses)
    assert fake.charges[0].amount == expected and fake.available() == START - expected


@pytest.mark.parametrize(
    "stream",
    [llm.chat_stream(800, 90), llm.response_stream(800, 90), llm.message_stream(800, 90)],
    ids=["openai-chat", "openai-responses", "anthropic"],
)
def test_a_stream_observed_chunk_by_chunk_settles_on_its_final_usage(
    cg: Client, fake: FakeCreditgate, stream: list[Any]
) -> None:
    with cg.guard("cust_42", "chat.completion", input_tokens=800, max_tokens=500) as g:
        text = [chunk for chunk in map(g.observe, stream)]
        g.settle()
    assert text == stream
    assert g.usage is not None and (g.usage.input_tokens, g.usage.output_tokens) == (800, 90)
    assert fake.available() == START - (80 + 36)


def test_a_stream_without_usage_raises_and_the_hold_is_voided(
    cg: Client, fake: FakeCreditgate
) -> None:
    with pytest.raises(UsageNotFound, match="include_usage"):  # noqa: SIM117
        with cg.guard("cust_42", "chat.completion", max_tokens=500) as g:
            for chunk in llm.chat_stream(include_usage=False):
                g.observe(chunk)
            g.settle()
    assert g.status == "voided" and fake.available() == START


def test_an_explicit_amount_settles_a_stream_that_had_no_usage(
    cg: Client, fake: FakeCreditgate
) -> None:
    with cg.guard("cust_42", "chat.completion", max_tokens=500) as g:
        for chunk in llm.chat_stream(include_usage=False):
            g.observe(chunk)
        g.settle(amount=200)  # e.g. the hold's estimate, by the caller's own choice
    assert fake.available() == START - 200 and g.usage is None


def test_settling_from_two_sources_is_refused(cg: Client, fake: FakeCreditgate) -> None:
    with cg.guard("cust_42", max_tokens=100) as g:
        g.observe(llm.chat_stream()[-1])
        with pytest.raises(ValueError, match="one source"):
            g.settle(llm.chat_completion())
        with pytest.raises(ValueError, match="one source"):
            g.settle(input_tokens=5)
    assert g.status == "voided" and fake.charges == []


def test_without_amount_price_or_action_the_guard_refuses_before_any_request(
    unpriced: Client, fake: FakeCreditgate
) -> None:
    # With an action it would be the rate card's to price (see test_priced_guard).
    with pytest.raises(TypeError, match="action"):
        unpriced.guard("cust_42", input_tokens=10, max_tokens=10)
    with pytest.raises(ValueError, match="differ"):
        unpriced.guard("cust_42", "chat.completion", model="a", dimensions={"model": "b"})
    assert fake.requests == []


def test_usage_without_a_price_cannot_be_settled_and_the_hold_is_voided(
    unpriced: Client, fake: FakeCreditgate
) -> None:
    with pytest.raises(TypeError, match="no price"), unpriced.guard("cust_42", amount=500) as g:
        g.settle(llm.chat_completion())
    assert g.status == "voided" and fake.available() == START


def test_a_hold_of_nothing_is_refused(cg: Client) -> None:
    with pytest.raises(ValueError, match="1 or more"):
        cg.guard("cust_42", price=lambda usage: 0)


def test_a_price_function_sizes_the_hold_and_the_charge(cg: Client, fake: FakeCreditgate) -> None:
    def per_image(usage: Usage) -> int:
        return 250 * usage.quantities["images"]

    with cg.guard("cust_42", "image.generate", price=per_image, quantities={"images": 4}) as g:
        assert g.amount == 1_000
        g.settle(quantities={"images": 3})
    assert fake.available() == START - 750
    assert fake.charges[0].metadata["usage"] == {"images": 3}


def test_retried_requests_inside_a_guard_keep_their_keys(cg: Client, fake: FakeCreditgate) -> None:
    fake.fail_with = [httpx.ConnectError("refused")]
    with cg.guard("cust_42", "chat.completion", amount=600, idempotency_key="req-9") as g:
        fake.lose_answers = 1
        g.settle(amount=550)
    assert keys(fake, "/v1/authorizations") == ["req-9", "req-9"]
    assert keys(fake, r"/v1/authorizations/.*/settle") == ["req-9:settle", "req-9:settle"]
    assert len(fake.holds) == 1 and len(fake.charges) == 1
    assert fake.available() == START - 550


def test_a_failed_void_leaves_the_original_exception_with_a_note(
    cg: Client, fake: FakeCreditgate, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="creditgate_sdk"),
        pytest.raises(KeyError) as caught,
        cg.guard("cust_42", amount=300) as g,
    ):
        fake.fail_with = [503, 503, 503]
        raise KeyError("the caller's own bug")
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) == 1 and "could not void" in notes[0] and "TTL" in notes[0]
    assert "could not void" in caplog.text
    assert g.status == "pending" and fake.available() == START - 300  # expires after its TTL


def test_a_hold_resolves_once(cg: Client, fake: FakeCreditgate) -> None:
    with cg.guard("cust_42", amount=300) as g:
        g.settle(amount=100)
        with pytest.raises(RuntimeError, match="settled"):
            g.settle(amount=100)
        with pytest.raises(RuntimeError, match="settled"):
            g.void()
    assert len(fake.charges) == 1 and fake.calls("POST", r".*/void") == []
    with pytest.raises(RuntimeError, match="once"), g:
        pass


def test_a_hold_that_expired_during_the_call_is_not_voided_again(
    cg: Client, fake: FakeCreditgate
) -> None:
    with pytest.raises(HoldExpired), cg.guard("cust_42", amount=300) as g:
        assert g.authorization is not None
        hold = fake.holds[g.authorization.id]
        hold.status = "expired"  # the server's sweeper ran while the model was thinking
        fake.held["cust_42"] -= hold.amount
        g.settle(amount=100)
    assert g.status == "closed" and fake.calls("POST", r".*/void") == []


def test_caller_metadata_is_kept_on_the_hold_and_the_charge(
    cg: Client, fake: FakeCreditgate
) -> None:
    with cg.guard("cust_42", "tts.speak", amount=50, metadata={"request": "r1"}) as g:
        g.settle(amount=40, metadata={"voice": "alloy"})
    assert g.authorization is not None
    assert fake.holds[g.authorization.id].metadata == {"action": "tts.speak", "request": "r1"}
    assert fake.charges[0].metadata == {"request": "r1", "voice": "alloy"}


# Decorator form


def test_a_guarded_function_is_held_for_and_settled_on_its_return(
    cg: Client, fake: FakeCreditgate
) -> None:
    during: list[int] = []

    @cg.guarded(
        "chat.completion",
        model="gpt-4.1",
        input_tokens=lambda customer, prompt: len(prompt),
        max_tokens=500,
    )
    def reply(customer: str, prompt: str) -> Any:
        during.append(fake.available())
        return llm.chat_completion(prompt=len(prompt), completion=120)

    resp = reply("cust_42", "x" * 1_000)
    assert resp.usage is not None and resp.usage.completion_tokens == 120
    assert during == [START - (100 + 200)]
    assert fake.available() == START - (100 + 48)
    assert reply.__name__ == "reply"


def test_a_guarded_function_is_not_called_when_declined(cg: Client) -> None:
    calls: list[str] = []

    @cg.guarded("image.generate", amount=50_000)
    def draw(customer: str) -> None:
        calls.append(customer)

    with pytest.raises(Declined):
        draw(customer="cust_42")
    assert calls == []


def test_a_guarded_function_can_settle_itself(cg: Client, fake: FakeCreditgate) -> None:
    @cg.guarded("chat.completion", customer=lambda user: user["customer"], max_tokens=100)
    def stream_reply(user: dict[str, str]) -> str:
        g = Guard.current()
        parts = [
            c.choices[0].delta.content for c in map(g.observe, llm.chat_stream(40, 3)) if c.choices
        ]
        g.settle()
        return "".join(p or "" for p in parts)

    assert stream_reply({"customer": "cust_42"}) == "Hello!"
    assert fake.available() == START - 6  # 40 * 0.1 + 3 * 0.4 = 5.2, rounded up once
    with pytest.raises(LookupError):
        Guard.current()


def test_a_guarded_function_that_returns_no_usage_is_voided(
    cg: Client, fake: FakeCreditgate
) -> None:
    @cg.guarded("chat.completion", max_tokens=100)
    def reply(customer: str) -> str:
        return "plain text"

    with pytest.raises(UsageNotFound):
        reply("cust_42")
    assert fake.available() == START and fake.charges == []


def test_the_decorator_needs_a_customer(cg: Client) -> None:
    def no_customer(prompt: str) -> None: ...

    async def coroutine(customer: str) -> None: ...

    with pytest.raises(TypeError, match="customer"):
        cg.guarded("chat.completion", amount=1)(no_customer)
    with pytest.raises(TypeError, match="AsyncClient"):
        cg.guarded("chat.completion", amount=1)(coroutine)


# Async


@pytest.mark.anyio
async def test_async_guard_settles_an_anthropic_message(
    acg: AsyncClient, fake: FakeCreditgate
) -> None:
    message = llm.message(input_tokens=200, output_tokens=300, cache_read=1_000)
    async with acg.guard("cust_42", "chat.completion", input_tokens=1_200, max_tokens=1_000) as g:
        assert AsyncGuard.current() is g
        assert fake.available() == START - (120 + 400)
        await g.settle(message)
    # 200 * 0.1 + 1,000 cached * 0.025 + 300 * 0.4
    assert fake.available() == START - 165 and g.status == "settled"


@pytest.mark.anyio
async def test_async_guard_declines_before_and_voids_after_an_error(
    acg: AsyncClient, fake: FakeCreditgate
) -> None:
    ran = False
    with pytest.raises(Declined):
        async with acg.guard("cust_42", amount=99_999):
            ran = True
    assert not ran

    guard = acg.guard("cust_42", amount=800)
    with pytest.raises(ConnectionResetError):
        async with guard:
            raise ConnectionResetError("provider hung up")
    assert guard.status == "voided" and fake.available() == START

    async with acg.guard("cust_42", amount=800) as left:
        pass
    assert left.status == "voided" and fake.available() == START


@pytest.mark.anyio
async def test_async_guarded_function(acg: AsyncClient, fake: FakeCreditgate) -> None:
    @acg.guarded("chat.completion", max_tokens=300, input_tokens=100)
    async def reply(customer: str) -> Any:
        return llm.response(input_tokens=100, output_tokens=50)

    resp = await reply("cust_42")
    assert resp.id == "resp_1" and fake.available() == START - (10 + 20)

    def sync_fn(customer: str) -> None: ...

    with pytest.raises(TypeError, match="async functions"):
        acg.guarded(amount=1)(sync_fn)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_async_stream_observed_then_settled(acg: AsyncClient, fake: FakeCreditgate) -> None:
    async with acg.guard("cust_42", "chat.completion", max_tokens=500) as g:
        for event in llm.message_stream(600, 70, cache_read=400):
            g.observe(event)
        settlement = await g.settle()
    # 600 uncached * 0.1 + 400 cached * 0.025 + 70 * 0.4
    assert settlement.charge.amount == 60 + 10 + 28
