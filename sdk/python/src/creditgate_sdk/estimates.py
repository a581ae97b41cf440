"""What an LLM request is held at before it is sent, by the same rule as creditgate's gateway.

The server's gateway (`creditgate.domain.gateway`) holds a request at this estimate; a client
that gates calls itself (the LiteLLM plugin) holds them at the same one, so a call costs the
same hold whichever way it is gated. tests/gateway/test_estimates.py pins the two together.

**Input tokens** are counted from the request's text: every string inside the fields that
become the prompt (`messages`, `system`, `tools`, `functions`, `tool_choice`, `input`,
`instructions`, `prompt`, `response_format`, `text`) is added up in characters and divided
by `CHARS_PER_TOKEN` (4), rounded up; images, audio and other media (`image_url`, `source`,
`data`, `file_data`) and `cache_control` markers are not counted; a list of token ids (an
embeddings `input`) counts one token each. **Output tokens** are the request's own cap —
`max_completion_tokens`, `max_tokens` or `max_output_tokens` — or, when it gives none, a
default cap (`DEFAULT_MAX_TOKENS`, the gateway's default too). Embeddings hold no output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from creditgate_sdk.usage import Usage

CHARS_PER_TOKEN = 4
DEFAULT_MAX_TOKENS = 4096
# The request fields whose text becomes the model's input.
PROMPT_FIELDS = (
    "messages",
    "system",
    "tools",
    "functions",
    "tool_choice",
    "input",
    "instructions",
    "prompt",
    "response_format",
    "text",
)
# The request's own cap on output tokens, in the order they are looked for.
OUTPUT_CAPS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
# Keys whose values are media or markers, not text: their tokens are not estimated.
_NOT_TEXT = frozenset({"image_url", "source", "data", "file_data", "cache_control"})


def tokens_for_chars(chars: int) -> int:
    """Characters of text as tokens: `CHARS_PER_TOKEN` a token, rounded up."""
    return -(-chars // CHARS_PER_TOKEN)


def _text_size(value: Any) -> tuple[int, int]:
    """(characters of text, token ids) inside a JSON value."""
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, bool) or value is None:
        return 0, 0
    if isinstance(value, int):
        return 0, 1  # a token id in a pre-tokenized input
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, Mapping):
        # an SDK's message object (e.g. a previous answer's message passed back): its JSON
        value = dump()
    if isinstance(value, Mapping):
        chars = ids = 0
        for key, item in value.items():
            if key in _NOT_TEXT:
                continue
            c, i = _text_size(item)
            chars, ids = chars + c, ids + i
        return chars, ids
    if isinstance(value, list | tuple):
        chars = ids = 0
        for item in value:
            c, i = _text_size(item)
            chars, ids = chars + c, ids + i
        return chars, ids
    return 0, 0


def estimate_input_tokens(request: Mapping[str, Any]) -> int:
    """The request's input tokens, estimated from its text (see the module's docstring)."""
    chars = ids = 0
    for name in PROMPT_FIELDS:
        if name in request:
            c, i = _text_size(request[name])
            chars, ids = chars + c, ids + i
    return tokens_for_chars(chars) + ids


def output_cap(request: Mapping[str, Any], default: int = DEFAULT_MAX_TOKENS) -> int:
    """The request's cap on output tokens, or `default` when it gives none.

    A cap that is not a whole number of 1 or more raises `ValueError` naming the field.
    """
    for name in OUTPUT_CAPS:
        value = request.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of 1 or more, got {value!r}")
        return value
    return default


def estimate(
    request: Mapping[str, Any],
    *,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    output: bool = True,
) -> Usage:
    """What the request is held at: its input estimated, its output at its cap (none for an
    embedding: `output=False`)."""
    return Usage(
        input_tokens=estimate_input_tokens(request),
        output_tokens=output_cap(request, default_max_tokens) if output else 0,
    )
