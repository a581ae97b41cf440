"""The LiteLLM plugin with the real `litellm` package: every async call is held from its
request before it reaches the provider, charged the card's price of the usage LiteLLM reports
(streams included), released when the call fails, and a decline never reaches the provider."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import litellm
import pytest
from litellm.proxy._types import UserAPIKeyAuth
from litellm.proxy.common_utils.openai_error_payload import error_status_code, openai_error_type

from creditgate.bench.standin import OPENAI_CHAT_USAGE, StandIn
from creditgate.domain.gateway import estimate_input_tokens
from creditgate_sdk.integrations.litellm import CallNotGated, CreditDeclined, CreditgateLogger
from tests.conftest import FakeClock
from tests.gateway.conftest import wait_for
from tests.integrations.conftest import FUNDS, MODEL, POOR, RICH, Calls, Shop

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello to the world, please."},
]
INPUT_ESTIMATE = estimate_input_tokens({"messages": MESSAGES})


def call_id_of(reply: Any) -> str:
    return str(reply._hidden_params["litellm_call_id"])


def test_an_acompletion_is_held_from_its_request_and_charged_the_price_of_its_usage(
    shop: Shop, handler: CreditgateLogger
) -> None:
    async def run() -> Any:
        reply = await litellm.acompletion(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=50,
            mock_response="Hello, world!",
            metadata={"creditgate_customer": RICH},
        )
        assert await handler.flush() == 0
        return reply

    reply = asyncio.run(run())
    assert reply.choices[0].message.content == "Hello, world!"
    usage = reply.usage
    used = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
    expected = shop.price(**used)
    (charge,) = shop.charges()
    assert charge.amount == expected > 0
    assert charge.action == "chat.completion" and charge.model == MODEL
    assert charge.quantities == {name: str(count) for name, count in used.items()}
    assert charge.metadata["litellm_call_id"] == call_id_of(reply)
    assert shop.available() == FUNDS - expected

    # The hold was sized from the request, as the gateway sizes one: its text and max_tokens.
    (hold,) = shop.holds()
    assert hold.status == "settled" and hold.charge_id == charge.id
    assert hold.quantities == {"input_tokens": str(INPUT_ESTIMATE), "output_tokens": "50"}
    assert hold.requested == shop.price(input_tokens=INPUT_ESTIMATE, output_tokens=50)
    assert hold.metadata["litellm_call_id"] == call_id_of(reply)


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage-chunk", "counted"])
def test_a_stream_is_charged_the_price_of_its_usage_when_it_ends(
    shop: Shop, handler: CreditgateLogger, include_usage: bool
) -> None:
    options = {"stream_options": {"include_usage": True}} if include_usage else {}

    async def run() -> tuple[list[Any], int]:
        stream = await litellm.acompletion(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            mock_response="one two three four five",
            user=RICH,
            **options,
        )
        chunks = [chunk async for chunk in stream]
        return chunks, await handler.flush()

    chunks, still_open = asyncio.run(run())
    assert still_open == 0
    # The usage of the stream: its last chunk's when asked for, else what LiteLLM counts of
    # the assembled answer (as it does for a provider that reports none).
    usage = chunks[-1].usage if include_usage else litellm.stream_chunk_builder(chunks).usage
    assert usage is not None and usage.completion_tokens > 0
    expected = shop.price(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)
    (charge,) = shop.charges()
    assert charge.amount == expected
    assert shop.available() == FUNDS - expected
    (hold,) = shop.holds()
    # No cap in the request: held at the default cap, as the gateway holds one.
    assert hold.quantities == {"input_tokens": str(INPUT_ESTIMATE), "output_tokens": "4096"}
    assert hold.status == "settled"


def test_a_decline_raises_402_and_never_reaches_the_provider(
    shop: Shop, handler: CreditgateLogger, provider_calls: Calls
) -> None:
    async def declined() -> CreditDeclined:
        with pytest.raises(CreditDeclined) as raised:
            await litellm.acompletion(
                model=MODEL,
                messages=MESSAGES,
                max_tokens=200,
                mock_response="never sent",
                metadata={"creditgate_customer": POOR},
            )
        return raised.value

    error = asyncio.run(declined())
    assert isinstance(error, litellm.PaymentRequiredError)
    assert error.status_code == 402 and error.code == "insufficient_funds"
    assert error.authorization.available == 10
    assert provider_calls.sent == []
    (hold,) = shop.holds(POOR)
    assert hold.status == "declined" and hold.decline_reason == "insufficient_funds"
    assert shop.charges(POOR) == [] and shop.available(POOR) == 10

    # The same handler lets a customer who can pay through: the recorder sees that call.
    async def approved() -> Any:
        reply = await litellm.acompletion(
            model=MODEL, messages=MESSAGES, max_tokens=200, mock_response="hi", user=RICH
        )
        await handler.flush()
        return reply

    reply = asyncio.run(approved())
    assert provider_calls.sent == [call_id_of(reply)]
    assert len(shop.charges()) == 1


def test_a_decline_sends_nothing_to_an_http_provider(
    shop: Shop, handler: CreditgateLogger, standin: StandIn
) -> None:
    provider = {"custom_llm_provider": "openai", "api_base": f"{standin.url}/v1", "api_key": "sk-x"}

    async def run() -> None:
        with pytest.raises(CreditDeclined):
            await litellm.acompletion(
                model=MODEL, messages=MESSAGES, max_tokens=200, user=POOR, **provider
            )
        assert standin.received == []
        reply = await litellm.acompletion(
            model=MODEL, messages=MESSAGES, max_tokens=200, user=RICH, **provider
        )
        assert reply.choices[0].message.content == "Hello, world!"
        await handler.flush()

    asyncio.run(run())
    (received,) = standin.received
    assert received.path == "/v1/chat/completions"
    expected = shop.price(
        input_tokens=OPENAI_CHAT_USAGE["prompt_tokens"],
        output_tokens=OPENAI_CHAT_USAGE["completion_tokens"],
    )
    (charge,) = shop.charges()
    assert charge.amount == expected
    assert charge.metadata["upstream_id"] == "chatcmpl-standin"
    assert shop.holds(POOR)[0].status == "declined" and shop.charges(POOR) == []


def test_a_failed_call_voids_its_hold(shop: Shop, handler: CreditgateLogger) -> None:
    async def run() -> int:
        with pytest.raises(litellm.InternalServerError):
            await litellm.acompletion(
                model=MODEL,
                messages=MESSAGES,
                max_tokens=50,
                mock_response=Exception("the provider is down"),
                user=RICH,
            )
        return await handler.flush()

    assert asyncio.run(run()) == 0
    (hold,) = shop.holds()
    assert hold.status == "voided"
    assert shop.charges() == [] and shop.available() == FUNDS


def test_a_call_that_names_no_customer_is_refused_before_the_provider(
    shop: Shop, handler: CreditgateLogger, provider_calls: Calls
) -> None:
    async def run() -> CallNotGated:
        with pytest.raises(CallNotGated) as raised:
            await litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response="hi")
        return raised.value

    error = asyncio.run(run())
    assert error.status_code == 400 and error.code == "customer_required"
    assert "creditgate_customer" in str(error)
    assert provider_calls.sent == []
    assert shop.holds() == [] and shop.holds(POOR) == []


def test_a_model_the_card_does_not_price_is_refused_before_the_provider(
    shop: Shop, handler: CreditgateLogger, provider_calls: Calls
) -> None:
    async def run() -> CallNotGated:
        with pytest.raises(CallNotGated) as raised:
            await litellm.acompletion(
                model="gpt-4.1-mini", messages=MESSAGES, mock_response="hi", user=RICH
            )
        return raised.value

    error = asyncio.run(run())
    assert error.status_code == 422 and error.code == "no_price"
    assert provider_calls.sent == [] and shop.holds() == []


def test_the_router_gates_its_deployments_and_a_decline_cools_none_down(
    shop: Shop, handler: CreditgateLogger, standin: StandIn
) -> None:
    router = litellm.Router(
        model_list=[
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": "openai/gpt-4.1-2025-04-14",
                    "api_base": f"{standin.url}/v1",
                    "api_key": "sk-x",
                },
            },
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": "openai/gpt-4.1-2025-04-15",
                    "api_base": f"{standin.url}/v1",
                    "api_key": "sk-y",
                },
            },
        ],
        num_retries=2,
    )

    async def run() -> None:
        for _ in range(10):
            with pytest.raises(CreditDeclined):
                await router.acompletion(model=MODEL, messages=MESSAGES, max_tokens=100, user=POOR)
        assert standin.received == []
        # The deployment is not cooled down by the declines: the next customer is served.
        reply = await router.acompletion(model=MODEL, messages=MESSAGES, max_tokens=100, user=RICH)
        assert reply.choices[0].message.content == "Hello, world!"
        stream = await router.acompletion(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=100,
            stream=True,
            stream_options={"include_usage": True},
            user=RICH,
        )
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert await handler.flush() == 0

    asyncio.run(run())
    assert len(standin.received) == 2
    # Priced as the model group the caller named, at the usage the stand-in reported.
    expected = shop.price(
        input_tokens=OPENAI_CHAT_USAGE["prompt_tokens"],
        output_tokens=OPENAI_CHAT_USAGE["completion_tokens"],
    )
    assert [c.amount for c in shop.charges()] == [expected, expected]
    assert all(c.model == MODEL for c in shop.charges())
    assert [h.status for h in shop.holds(POOR)] == ["declined"] * 10
    assert shop.available() == FUNDS - 2 * expected


def test_the_proxy_hook_holds_for_the_keys_customer_and_the_proxy_answers_402(
    shop: Shop, handler: CreditgateLogger
) -> None:
    call_id = str(uuid.uuid4())
    # What the proxy passes its pre-call hook: the request (with its call id) and the key.
    data: dict[str, Any] = {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 30,
        "user": POOR,
        "metadata": {"creditgate_customer": POOR},
        "litellm_call_id": call_id,
    }
    bound = UserAPIKeyAuth(api_key="sk-hashed", metadata={"creditgate_customer": RICH})

    async def run() -> None:
        await handler.async_pre_call_hook(
            user_api_key_dict=bound, cache=None, data=data, call_type="acompletion"
        )
        # The proxy then calls the model with the same call id: the deployment hook finds
        # the hold, and the success event settles it.
        await litellm.acompletion(**data, mock_response="hi")
        assert await handler.flush() == 0

    asyncio.run(run())
    (hold,) = shop.holds()  # the key's customer, whatever the request says
    assert hold.status == "settled" and hold.metadata["litellm_call_id"] == call_id
    assert hold.quantities == {"input_tokens": str(INPUT_ESTIMATE), "output_tokens": "30"}
    assert shop.holds(POOR) == []
    assert len(shop.charges()) == 1

    poor_key = UserAPIKeyAuth(api_key="sk-hashed-2", metadata={"creditgate_customer": POOR})

    async def declined() -> CreditDeclined:
        with pytest.raises(CreditDeclined) as raised:
            await handler.async_pre_call_hook(
                user_api_key_dict=poor_key,
                cache=None,
                data={**data, "litellm_call_id": str(uuid.uuid4())},
                call_type="acompletion",
            )
        return raised.value

    error = asyncio.run(declined())
    # How the proxy turns the exception into its answer: status and OpenAI error type.
    assert error_status_code(error, 500) == 402
    assert openai_error_type(error, 402) == "insufficient_credits"
    assert error.code == "insufficient_funds"
    assert error.provider_specific_fields["creditgate"] == {
        "decline_reason": "insufficient_funds",
        "authorization": error.authorization.id,
        "customer": POOR,
        "asset": "credits",
        "requested": shop.price(input_tokens=INPUT_ESTIMATE, output_tokens=30),
        "available": 10,
    }
    (declined_hold,) = shop.holds(POOR)
    assert declined_hold.id == error.authorization.id and declined_hold.status == "declined"


def test_one_call_id_holds_once_and_a_retry_after_a_failure_holds_anew(
    shop: Shop, handler: CreditgateLogger
) -> None:
    request = {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 20,
        "user": RICH,
        "litellm_call_id": "call-retried",
    }
    other_process = CreditgateLogger(shop.url, shop.key)

    async def run() -> None:
        await handler.async_pre_call_deployment_hook(dict(request), "acompletion")
        await handler.async_pre_call_deployment_hook(dict(request), "acompletion")
        # Another process gating the same call: creditgate answers the same hold.
        await other_process.async_pre_call_deployment_hook(dict(request), "acompletion")
        assert len(shop.holds()) == 1 and shop.available() < FUNDS
        await handler.async_log_failure_event(request, None, None, None)
        assert [h.status for h in shop.holds()] == ["voided"]
        # LiteLLM retries the call under the same id: a new hold, settled by its success.
        await handler.async_pre_call_deployment_hook(dict(request), "acompletion")
        response = litellm.ModelResponse(
            id="chatcmpl-retried",
            model=MODEL,
            usage=litellm.Usage(prompt_tokens=100, completion_tokens=7, total_tokens=107),
        )
        await handler.async_log_success_event(request, response, None, None)
        await handler.async_log_success_event(request, response, None, None)  # once only

    asyncio.run(run())
    assert [h.status for h in shop.holds()] == ["voided", "settled"]
    (charge,) = shop.charges()
    assert charge.amount == shop.price(input_tokens=100, output_tokens=7)
    assert charge.metadata["upstream_id"] == "chatcmpl-retried"
    assert shop.available() == FUNDS - charge.amount


def test_cache_reads_and_writes_are_charged_at_their_own_prices(
    shop: Shop, handler: CreditgateLogger
) -> None:
    request = {"model": MODEL, "messages": MESSAGES, "user": RICH, "litellm_call_id": "cached"}
    # LiteLLM's usage of an Anthropic answer: the cache counts inside prompt_tokens.
    usage = litellm.Usage(
        prompt_tokens=1000,
        completion_tokens=50,
        total_tokens=1050,
        cache_read_input_tokens=600,
        cache_creation_input_tokens=300,
    )

    async def run() -> None:
        await handler.async_pre_call_deployment_hook(dict(request), "acompletion")
        response = litellm.ModelResponse(model=MODEL, usage=usage)
        await handler.async_log_success_event(request, response, None, None)

    asyncio.run(run())
    (charge,) = shop.charges()
    assert charge.quantities == {
        "input_tokens": "100",
        "cached_tokens": "600",
        "cache_write_tokens": "300",
        "output_tokens": "50",
    }
    assert charge.amount == shop.price(
        input_tokens=100, cached_tokens=600, cache_write_tokens=300, output_tokens=50
    )


def test_an_embedding_is_held_without_output_and_charged_its_input(
    shop: Shop, handler: CreditgateLogger
) -> None:
    texts = ["creditgate holds credit before the call", "and charges after it"]

    async def run() -> Any:
        reply = await litellm.aembedding(
            model="text-embedding-3-small", input=texts, user=RICH, mock_response=[0.1, 0.2]
        )
        await handler.flush()
        return reply

    reply = asyncio.run(run())
    (hold,) = shop.holds()
    assert hold.action == "embedding"
    assert hold.quantities == {"input_tokens": str(estimate_input_tokens({"input": texts}))}
    (charge,) = shop.charges()
    expected = shop.price(
        "embedding", "text-embedding-3-small", input_tokens=reply.usage.prompt_tokens
    )
    assert charge.amount == expected


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_sync_completion_is_charged_after_it_ran(
    shop: Shop, handler: CreditgateLogger, stream: bool
) -> None:
    reply = litellm.completion(
        model=MODEL,
        messages=MESSAGES,
        mock_response="one two three",
        metadata={"creditgate_customer": RICH},
        stream=stream,
    )
    if stream:
        chunks = list(reply)
        usage = litellm.stream_chunk_builder(chunks).usage
        call_id = reply.logging_obj.litellm_call_id
    else:
        usage, call_id = reply.usage, call_id_of(reply)
    (charge,) = wait_for(shop.charges)
    assert charge.amount == shop.price(
        input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens
    )
    assert charge.metadata["litellm_call_id"] == call_id
    assert shop.available() == FUNDS - charge.amount


def test_a_call_that_outlives_its_hold_is_charged_in_one_step(
    shop: Shop, handler: CreditgateLogger, clock: FakeClock
) -> None:
    request = {"model": MODEL, "messages": MESSAGES, "user": RICH, "litellm_call_id": "long"}
    response = litellm.ModelResponse(
        id="chatcmpl-long",
        model=MODEL,
        usage=litellm.Usage(prompt_tokens=300, completion_tokens=900, total_tokens=1200),
    )

    async def gate() -> None:
        await handler.async_pre_call_deployment_hook(dict(request), "acompletion")

    async def answer() -> None:
        await handler.async_log_success_event(request, response, None, None)

    asyncio.run(gate())
    clock.advance(days=1)  # the call ran past its hold's TTL, and the sweeper released it
    assert shop.ledger.expire_holds() == 1
    assert shop.available() == FUNDS
    asyncio.run(answer())
    (hold,) = shop.holds()
    assert hold.status == "expired"
    (charge,) = shop.charges()
    assert charge.amount == shop.price(input_tokens=300, output_tokens=900)
    assert charge.metadata["released_hold"] == hold.id
    assert charge.metadata["litellm_call_id"] == "long"
    assert shop.available() == FUNDS - charge.amount
