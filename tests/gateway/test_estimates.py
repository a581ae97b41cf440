"""A call is held at the same estimate whichever way it is gated: the SDK's mirror of the
gateway's rule (`creditgate_sdk.estimates`, used by the LiteLLM plugin) agrees with the
server's (`creditgate.domain.gateway`) on every request below, valid or refused."""

from __future__ import annotations

from typing import Any

import pytest

from creditgate.domain import gateway as server
from creditgate.domain.errors import InvalidInput
from creditgate.gateway.settings import DEFAULT_MAX_OUTPUT_TOKENS
from creditgate_sdk import estimates as sdk

REQUESTS: dict[str, dict[str, Any]] = {
    "chat": {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 50},
    "no cap": {"messages": [{"role": "system", "content": "Be terse."}]},
    "completion cap first": {
        "messages": [{"role": "user", "content": "x" * 401}],
        "max_completion_tokens": 7,
        "max_tokens": 9,
    },
    "responses": {"input": "Write a haiku.", "instructions": "Be kind.", "max_output_tokens": 3},
    "anthropic": {
        "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "data": "iVBORw0KGgo" * 50}},
                ],
            }
        ],
        "max_tokens": 100,
    },
    "tools": {
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
    },
    "image url": {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
            }
        ]
    },
    "token ids": {"input": [[1, 2, 3], [4, 5]], "model": "embed"},
    "empty": {},
    "not counted": {"model": "gpt-test", "temperature": 0.2, "user": "cust_1", "n": 2},
}
BAD_CAPS: dict[str, dict[str, Any]] = {
    "zero": {"max_tokens": 0},
    "negative": {"max_completion_tokens": -1},
    "text": {"max_output_tokens": "100"},
    "boolean": {"max_tokens": True},
    "fraction": {"max_tokens": 1.5},
}


@pytest.mark.parametrize("request_", REQUESTS.values(), ids=list(REQUESTS))
@pytest.mark.parametrize("output", [True, False], ids=["chat", "embedding"])
def test_the_sdk_estimates_a_request_as_the_gateway_does(
    request_: dict[str, Any], output: bool
) -> None:
    ours = server.estimate(request_, default_cap=4096, output=output)
    theirs = sdk.estimate(request_, default_max_tokens=4096, output=output)
    assert (theirs.input_tokens, theirs.output_tokens) == (ours.input_tokens, ours.output_tokens)
    assert theirs.as_quantities() == ours.as_quantities()


def test_the_sdk_and_the_gateway_share_the_rules_constants() -> None:
    assert sdk.CHARS_PER_TOKEN == server.CHARS_PER_TOKEN
    assert sdk.PROMPT_FIELDS == server.PROMPT_FIELDS
    assert sdk.OUTPUT_CAPS == server.OUTPUT_CAPS
    assert sdk.DEFAULT_MAX_TOKENS == DEFAULT_MAX_OUTPUT_TOKENS  # the gateway's default cap


@pytest.mark.parametrize("request_", BAD_CAPS.values(), ids=list(BAD_CAPS))
def test_a_cap_the_gateway_refuses_the_sdk_refuses_naming_the_field(
    request_: dict[str, Any],
) -> None:
    with pytest.raises(InvalidInput) as ours:
        server.output_cap(request_, 4096)
    with pytest.raises(ValueError, match=f"^{ours.value.field} must be a whole number"):
        sdk.output_cap(request_, 4096)


def test_a_message_object_counts_as_its_json() -> None:
    class Message:  # a client SDK's message object, as an earlier answer returns it
        def model_dump(self) -> dict[str, Any]:
            return {"role": "assistant", "content": "Hello there, world."}

    as_json = sdk.estimate_input_tokens({"messages": [Message().model_dump()]})
    assert sdk.estimate_input_tokens({"messages": [Message()]}) == as_json > 0
