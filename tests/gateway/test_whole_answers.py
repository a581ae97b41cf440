"""Whole (non-streaming) answers through the gateway with the real openai and anthropic
clients: held from the request, charged exactly the card's price of the reported usage."""

from __future__ import annotations

import asyncio
import math

import httpx

from creditgate.bench.standin import StandIn
from creditgate.domain.gateway import estimate_input_tokens
from tests.gateway.conftest import ANTHROPIC_KEY, DEFAULT_CAP, FUNDS, OPENAI_KEY, Tenant, wait_for

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello to the world, please."},
]


def test_openai_chat_is_charged_the_cards_price_of_the_reported_usage(
    tenant: Tenant, standin: StandIn
) -> None:
    client = tenant.openai()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, max_tokens=50
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello, world!"
    assert completion.usage is not None and completion.usage.prompt_tokens == 1200

    # Settled once the answer was sent: the hold the answer names, charged the card's price.
    expected = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    auth_id = raw.headers["x-creditgate-authorization"]
    wait_for(lambda: tenant.ledger.authorization(auth_id).status == "settled")
    assert tenant.available() == FUNDS - expected
    (charge,) = tenant.charges()
    assert charge.amount == expected
    assert charge.hold_id == auth_id
    assert charge.action == "chat.completion" and charge.model == "gpt-test"
    assert charge.metadata["upstream_request_id"] == standin.received[0].request_id
    assert charge.metadata["upstream_id"] == "chatcmpl-standin"
    assert charge.metadata["endpoint"] == "openai.chat.completions"
    assert raw.headers["x-upstream-request-id"] == standin.received[0].request_id

    # The hold was sized from the request: its text's estimate and its max_tokens.
    auth = tenant.ledger.authorization(auth_id)
    sent = {"messages": MESSAGES}
    assert auth.quantities == {
        "input_tokens": str(estimate_input_tokens(sent)),
        "output_tokens": "50",
    }
    # The provider got the tenant's key and the request as sent, never the creditgate key.
    (received,) = standin.received
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert tenant.key not in str(received.headers)
    assert received.body["messages"] == MESSAGES and "stream_options" not in received.body


def test_a_request_without_a_cap_is_held_at_the_default_cap(tenant: Tenant) -> None:
    raw = tenant.openai().chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES
    )
    auth = tenant.ledger.authorization(raw.headers["x-creditgate-authorization"])
    assert auth.quantities is not None
    assert auth.quantities["output_tokens"] == str(DEFAULT_CAP)
    raw = tenant.openai().chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, max_completion_tokens=77
    )
    auth = tenant.ledger.authorization(raw.headers["x-creditgate-authorization"])
    assert auth.quantities is not None and auth.quantities["output_tokens"] == "77"


def test_openai_async_chat(tenant: Tenant) -> None:
    async def call() -> None:
        async with tenant.async_openai() as client:
            done = await asyncio.gather(
                *(
                    client.chat.completions.create(model="gpt-test", messages=MESSAGES)
                    for _ in range(3)
                )
            )
            assert all(c.choices[0].message.content == "Hello, world!" for c in done)

    asyncio.run(call())
    each = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    wait_for(lambda: tenant.available() == FUNDS - 3 * each)
    assert len(tenant.charges()) == 3


def test_openai_responses(tenant: Tenant, standin: StandIn) -> None:
    response = tenant.openai().responses.create(
        model="gpt-test", input="Say hello", max_output_tokens=64
    )
    assert response.output_text == "Hello, world!"
    expected = tenant.price("gpt-test", input_tokens=900, output_tokens=200)
    wait_for(lambda: tenant.available() == FUNDS - expected)
    (charge,) = tenant.charges()
    assert charge.metadata["endpoint"] == "openai.responses"
    assert standin.received[0].path == "/v1/responses"


def test_openai_embeddings_are_charged_their_input(tenant: Tenant) -> None:
    raw = tenant.openai().embeddings.with_raw_response.create(
        model="embed-test", input=["some text to embed", "and more"]
    )
    assert raw.parse().data[0].embedding == [0.1, 0.2, 0.3]
    auth = tenant.ledger.authorization(raw.headers["x-creditgate-authorization"])
    chars = len("some text to embed") + len("and more")
    assert auth.quantities == {"input_tokens": str(math.ceil(chars / 4))}
    expected = tenant.price("embed-test", "embedding", input_tokens=40)
    wait_for(lambda: tenant.available() == FUNDS - expected)
    (charge,) = tenant.charges()
    assert charge.action == "embedding" and charge.amount == expected


def test_anthropic_messages(tenant: Tenant, standin: StandIn) -> None:
    client = tenant.anthropic()
    raw = client.messages.with_raw_response.create(
        model="claude-test",
        max_tokens=100,
        system="You are terse.",
        messages=[{"role": "user", "content": "Say hello"}],
    )
    message = raw.parse()
    assert message.content[0].text == "Hello, world!"  # type: ignore[union-attr]
    expected = tenant.price("claude-test", input_tokens=700, output_tokens=150)
    wait_for(lambda: tenant.available() == FUNDS - expected)
    (charge,) = tenant.charges()
    assert charge.amount == expected and charge.model == "claude-test"
    assert charge.metadata["upstream_request_id"] == standin.received[0].request_id
    assert charge.metadata["upstream_id"] == "msg_standin"
    auth = tenant.ledger.authorization(raw.headers["x-creditgate-authorization"])
    assert auth.quantities is not None and auth.quantities["output_tokens"] == "100"
    (received,) = standin.received
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == ANTHROPIC_KEY
    assert received.headers["anthropic-version"]
    assert "authorization" not in received.headers


def test_anthropic_async_messages(tenant: Tenant) -> None:
    async def call() -> None:
        async with tenant.async_anthropic() as client:
            message = await client.messages.create(
                model="claude-test",
                max_tokens=100,
                messages=[{"role": "user", "content": "Say hello"}],
            )
            assert message.usage.input_tokens == 700

    asyncio.run(call())
    expected = tenant.price("claude-test", input_tokens=700, output_tokens=150)
    wait_for(lambda: tenant.available() == FUNDS - expected)


def test_cache_counts_are_priced_as_the_sdk_maps_them(tenant: Tenant, standin: StandIn) -> None:
    standin.chat_usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 1000},
    }
    tenant.openai().chat.completions.create(model="gpt-test", messages=MESSAGES)
    (charge,) = wait_for(tenant.charges)
    assert charge.quantities == {
        "input_tokens": "200",
        "cached_tokens": "1000",
        "output_tokens": "300",
    }
    assert charge.amount == tenant.price(
        "gpt-test", input_tokens=200, cached_tokens=1000, output_tokens=300
    )


def test_a_gateway_call_carries_its_request_id_and_is_measured_by_its_route(
    tenant: Tenant,
) -> None:
    raw = tenant.openai().chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, extra_headers={"X-Request-Id": "trace-42"}
    )
    assert raw.headers["x-request-id"] == "trace-42"
    metrics = httpx.get(f"{tenant.gateway_url}/metrics").text
    measured = (
        'creditgate_http_request_duration_seconds_count{method="POST",'
        'route="/gateway/openai/v1/chat/completions",status="200"}'
    )
    assert any(line.startswith(measured) for line in metrics.splitlines())
