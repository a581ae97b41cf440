"""The gateway's estimate of a request: characters/4 rounded up, the request's own cap on
output or the default one, token ids counted one each."""

from __future__ import annotations

import pytest

from creditgate.domain.errors import InvalidInput
from creditgate.domain.gateway import Usage, estimate, estimate_input_tokens, output_cap


def test_input_is_the_prompts_characters_over_four_rounded_up() -> None:
    request = {
        "model": "gpt-4.1",  # not text of the prompt
        "messages": [
            {"role": "system", "content": "abc"},  # "system" + "abc"
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        ],
        "temperature": 0.5,
    }
    chars = len("system") + len("abc") + len("user") + len("text") + len("hello")
    assert estimate_input_tokens(request) == -(-chars // 4)
    assert estimate_input_tokens({"messages": []}) == 0
    assert estimate_input_tokens({"input": "a"}) == 1
    assert estimate_input_tokens({"input": "abcd"}) == 1
    assert estimate_input_tokens({"input": "abcde"}) == 2


def test_anthropic_system_and_tools_count_media_does_not() -> None:
    request = {
        "system": "be brief",
        "tools": [{"name": "lookup", "description": "find it"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "data": "A" * 10_000}},
                    {"type": "text", "text": "what is this"},
                ],
            }
        ],
    }
    chars = sum(
        len(s) for s in ("be brief", "lookup", "find it", "user", "image", "text", "what is this")
    )
    assert estimate_input_tokens(request) == -(-chars // 4)


def test_pre_tokenized_input_counts_one_token_an_id() -> None:
    assert estimate_input_tokens({"input": [[1, 2, 3], [4, 5]]}) == 5
    assert estimate_input_tokens({"input": ["abcd", "abcd"]}) == 2


def test_output_is_the_requests_cap_or_the_default() -> None:
    assert output_cap({}, 4096) == 4096
    assert output_cap({"max_tokens": 10}, 4096) == 10
    assert output_cap({"max_completion_tokens": 7, "max_tokens": 10}, 4096) == 7
    assert output_cap({"max_output_tokens": 3}, 4096) == 3
    assert output_cap({"max_tokens": None}, 4096) == 4096
    for bad in (0, -1, "10", 1.5, True):
        with pytest.raises(InvalidInput):
            output_cap({"max_tokens": bad}, 4096)


def test_embeddings_hold_no_output() -> None:
    held = estimate({"input": "abcdefgh", "max_tokens": 50}, default_cap=99, output=False)
    assert held == Usage(input_tokens=2)
    assert held.as_quantities() == {"input_tokens": 2}
    assert estimate({"input": "abcd"}, default_cap=99).as_quantities() == {
        "input_tokens": 1,
        "output_tokens": 99,
    }
