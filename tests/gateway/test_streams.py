"""Streams through the gateway with the real clients: passed through event by event, settled
from the reported usage at the end, settled for what was streamed when the client goes
away (the provider's request cancelled), voided when the provider fails mid-stream."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from creditgate.bench.standin import StandIn
from creditgate.domain.gateway import estimate_input_tokens
from tests.gateway.conftest import FUNDS, Tenant, wait_for

MESSAGES = [{"role": "user", "content": "Say hello to the world"}]


def _settled(tenant: Tenant, auth_id: str) -> bool:
    return tenant.ledger.authorization(auth_id).status == "settled"


def _resolved(tenant: Tenant, auth_id: str) -> str | None:
    status = tenant.ledger.authorization(auth_id).status
    return None if status == "pending" else status


def test_openai_stream_without_usage_asked_strips_the_usage_chunk(
    tenant: Tenant, standin: StandIn
) -> None:
    client = tenant.openai()
    with client.chat.completions.with_streaming_response.create(
        model="gpt-test", messages=MESSAGES, stream=True, max_tokens=64
    ) as raw:
        auth_id = raw.headers["x-creditgate-authorization"]
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world!"
    assert all(c.choices for c in chunks)  # no usage-only chunk reached the client
    # The provider was asked for the usage all the same, and the call is charged by it.
    assert standin.received[0].body["stream_options"] == {"include_usage": True}
    wait_for(lambda: _settled(tenant, auth_id))
    expected = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    assert tenant.available() == FUNDS - expected
    (charge,) = tenant.charges()
    assert charge.metadata["stream"] == "complete"
    assert charge.metadata["upstream_request_id"] == standin.received[0].request_id


def test_openai_stream_with_usage_asked_keeps_it(tenant: Tenant) -> None:
    stream = tenant.openai().chat.completions.create(
        model="gpt-test",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 1200
    expected = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    wait_for(lambda: tenant.available() == FUNDS - expected)


def test_openai_async_stream(tenant: Tenant) -> None:
    async def call() -> str:
        async with tenant.async_openai() as client:
            stream = await client.chat.completions.create(
                model="gpt-test", messages=MESSAGES, stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(call()) == "Hello, world!"
    expected = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    wait_for(lambda: tenant.available() == FUNDS - expected)


def test_openai_responses_stream(tenant: Tenant) -> None:
    stream = tenant.openai().responses.create(model="gpt-test", input="Say hello", stream=True)
    events = list(stream)
    assert events[-1].type == "response.completed"
    expected = tenant.price("gpt-test", input_tokens=900, output_tokens=200)
    wait_for(lambda: tenant.available() == FUNDS - expected)


def test_anthropic_stream_is_settled_from_message_start_and_delta(
    tenant: Tenant, standin: StandIn
) -> None:
    with tenant.anthropic().messages.stream(
        model="claude-test", max_tokens=100, messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
        auth_id = stream.response.headers["x-creditgate-authorization"]
    assert text == "Hello, world!"
    wait_for(lambda: _settled(tenant, auth_id))
    expected = tenant.price("claude-test", input_tokens=700, output_tokens=150)
    assert tenant.available() == FUNDS - expected
    (charge,) = tenant.charges()
    assert charge.metadata["upstream_id"] == "msg_standin"
    assert standin.received[0].body["stream"] is True


def test_anthropic_async_stream(tenant: Tenant) -> None:
    async def call() -> str:
        async with tenant.async_anthropic() as client:
            stream = await client.messages.create(
                model="claude-test", max_tokens=100, messages=MESSAGES, stream=True
            )
            pieces = []
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    pieces.append(event.delta.text)
            return "".join(pieces)

    assert asyncio.run(call()) == "Hello, world!"
    expected = tenant.price("claude-test", input_tokens=700, output_tokens=150)
    wait_for(lambda: tenant.available() == FUNDS - expected)


def test_openai_client_disconnect_cancels_upstream_and_settles_what_was_streamed(
    tenant: Tenant, standin: StandIn
) -> None:
    standin.hang_after = 2  # "Hello", ", " then the provider waits
    client = tenant.openai()
    with client.chat.completions.with_streaming_response.create(
        model="gpt-test", messages=MESSAGES, stream=True, max_tokens=500
    ) as raw:
        auth_id = raw.headers["x-creditgate-authorization"]
        seen = ""
        for chunk in raw.parse():
            if chunk.choices:
                seen += chunk.choices[0].delta.content or ""
            if seen == "Hello, ":
                break  # the client goes away mid-stream
    assert standin.cancelled.wait(5), "the provider's request was not cancelled"
    wait_for(lambda: _settled(tenant, auth_id))
    # No usage was reported: the estimated input and the streamed text's estimate of output.
    output = math.ceil(len("Hello, ") / 4)
    expected = tenant.price(
        "gpt-test", input_tokens=estimate_input_tokens({"messages": MESSAGES}), output_tokens=output
    )
    assert tenant.available() == FUNDS - expected
    (charge,) = tenant.charges()
    assert charge.metadata["stream"] == "client_disconnected"
    assert charge.quantities["output_tokens"] == str(output)


def test_anthropic_client_disconnect_settles_the_reported_input_and_streamed_output(
    tenant: Tenant, standin: StandIn
) -> None:
    standin.pieces = ["Hello there, ", "a long answer ", "that never ends"]
    standin.hang_after = 2
    with tenant.anthropic().messages.stream(
        model="claude-test", max_tokens=400, messages=MESSAGES
    ) as stream:
        auth_id = stream.response.headers["x-creditgate-authorization"]
        seen = ""
        for piece in stream.text_stream:
            seen += piece
            if seen == "Hello there, a long answer ":
                break
    assert standin.cancelled.wait(5)
    wait_for(lambda: _settled(tenant, auth_id))
    # message_start reported 700 input tokens (and 1 output); the text streamed is more.
    output = max(1, math.ceil(len("Hello there, a long answer ") / 4))
    expected = tenant.price("claude-test", input_tokens=700, output_tokens=output)
    assert tenant.available() == FUNDS - expected


def test_a_provider_failing_mid_stream_voids_the_hold(tenant: Tenant, standin: StandIn) -> None:
    standin.fail_mid_stream = True
    with tenant.anthropic().messages.with_streaming_response.create(
        model="claude-test", max_tokens=100, messages=MESSAGES, stream=True
    ) as raw:
        auth_id = raw.headers["x-creditgate-authorization"]
        body = b"".join(raw.iter_bytes())
    assert b"overloaded_error" in body  # the provider's error event reaches the client
    assert wait_for(lambda: _resolved(tenant, auth_id)) == "voided"
    assert tenant.available() == FUNDS and tenant.charges() == []

    with tenant.openai().chat.completions.with_streaming_response.create(
        model="gpt-test", messages=MESSAGES, stream=True
    ) as raw:
        auth_id = raw.headers["x-creditgate-authorization"]
        b"".join(raw.iter_bytes())
    assert wait_for(lambda: _resolved(tenant, auth_id)) == "voided"
    assert tenant.available() == FUNDS


def test_events_arrive_before_the_stream_ends(tenant: Tenant, standin: StandIn) -> None:
    """Nothing is buffered: the first event reaches the client while the provider waits."""
    standin.hang_after = 1
    with tenant.openai().chat.completions.with_streaming_response.create(
        model="gpt-test", messages=MESSAGES, stream=True
    ) as raw:
        auth_id = raw.headers["x-creditgate-authorization"]
        first = next(c for c in raw.parse() if c.choices and c.choices[0].delta.content)
        assert first.choices[0].delta.content == "Hello"
        assert not standin.cancelled.is_set()
    # Then the client goes away: settled for the one piece it was sent.
    assert standin.cancelled.wait(5)
    wait_for(lambda: _settled(tenant, auth_id))
    (charge,) = tenant.charges()
    assert charge.quantities["output_tokens"] == str(math.ceil(len("Hello") / 4))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_first_event_reaches_the_client_before_the_provider_sends_the_rest(
    tenant: Tenant, standin: StandIn, provider: str
) -> None:
    """Time to first byte is the provider's: the stand-in sends "Hello" and then holds the
    rest until the client has it (or 5 s pass, which a buffering gateway would wait out)."""
    standin.pause_after = 1
    standin.pause_seconds = 5
    if provider == "openai":
        stream: Any = tenant.openai().chat.completions.create(
            model="gpt-test", messages=MESSAGES, stream=True
        )
        texts = (c.choices[0].delta.content for c in stream if c.choices)
        expected = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    else:
        stream = tenant.anthropic().messages.create(
            model="claude-test", max_tokens=100, messages=MESSAGES, stream=True
        )
        texts = (e.delta.text for e in stream if e.type == "content_block_delta")
        expected = tenant.price("claude-test", input_tokens=700, output_tokens=150)
    pieces = iter(t for t in texts if t)
    first = next(pieces)
    rest_sent_before = standin.resumed.is_set()
    standin.resume.set()
    assert first == "Hello"
    assert not rest_sent_before, "the first event came only once the provider sent the rest"
    assert first + "".join(pieces) == "Hello, world!"
    wait_for(lambda: tenant.available() == FUNDS - expected)


class _Upstream:
    """A provider's streamed answer, every event already come."""

    status = 200
    headers: dict[str, str] = {}

    def __init__(self, events: list[bytes]) -> None:
        self.events = events
        self.content = self
        self.released = self.closed = False

    async def iter_any(self) -> Any:
        for event in self.events:
            yield event

    def release(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


class _Gateway:
    def __init__(self) -> None:
        self.settled: list[dict[str, Any]] = []
        self.voided = 0

    async def settle(self, call: Any, usage: Any, **details: Any) -> None:
        self.settled.append({"usage": usage, **details})

    async def void(self, call: Any) -> None:
        self.voided += 1


def _relay_to_a_client_who_leaves(after_last_event: bool) -> tuple[_Gateway, _Upstream]:
    """The relay of a whole stream to a client that disconnects once it has the provider's
    last event (`after_last_event`) or once it has the first."""
    from types import SimpleNamespace

    from creditgate.domain.gateway import Usage
    from creditgate.gateway.routes import Relay
    from creditgate.gateway.streams import StreamMeter

    usage = b'data: {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}\n\n'
    events = [
        b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n',
        b'data: {"choices": [{"delta": {"content": "lo"}}]}\n\n',
        usage,
        b"data: [DONE]\n\n",
    ]
    upstream, gateway = _Upstream(events), _Gateway()
    call = SimpleNamespace(estimate=Usage(input_tokens=12, output_tokens=64))
    meter = StreamMeter("openai_chat")
    relay = Relay(gateway, upstream, call, meter, {}, "text/event-stream")  # type: ignore[arg-type]

    async def main() -> None:
        left = asyncio.Event()
        wanted = events[-1] if after_last_event else events[0]

        async def receive() -> dict[str, Any]:
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if left.is_set():
                await asyncio.sleep(1)  # a client that left: its socket takes nothing more
            elif message.get("body") == wanted:
                left.set()  # this one reached the client, which then leaves

        await relay({"type": "http"}, receive, send)

    asyncio.run(main())
    return gateway, upstream


def test_a_client_leaving_after_the_last_event_left_a_complete_stream() -> None:
    """A client that reads the provider's last event and closes before the closing empty
    chunk has had the whole answer: the stream is complete, charged by the usage reported."""
    gateway, upstream = _relay_to_a_client_who_leaves(after_last_event=True)
    (settled,) = gateway.settled
    assert settled["stream"] == "complete"
    assert (settled["usage"].input_tokens, settled["usage"].output_tokens) == (12, 3)
    assert upstream.released and not upstream.closed


def test_a_client_leaving_in_the_middle_cuts_the_stream_short() -> None:
    gateway, upstream = _relay_to_a_client_who_leaves(after_last_event=False)
    (settled,) = gateway.settled
    assert settled["stream"] == "client_disconnected"
    assert upstream.closed and not upstream.released
