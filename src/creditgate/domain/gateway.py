"""The LLM gateway's rules: what a request is estimated at, and what its answer used.

Both are pure: the gateway (`creditgate.gateway`) reads a request's JSON, asks these for the
quantities to hold, forwards the call, and settles with the quantities its answer reports.

**The estimate.** Input tokens are counted from the request's text: every string inside the
fields that become the prompt (`messages`, `system`, `tools`, `input`, `instructions`,
`prompt`, `tool_choice`, `functions`, `response_format`, `text`) is added up in characters
and divided by `CHARS_PER_TOKEN` (4), rounded up; a list of token ids (an embeddings
`input`) counts one token each. Output tokens are the request's own cap —
`max_completion_tokens`, `max_tokens` or `max_output_tokens` — or, when it gives none, the
gateway's default cap. Embeddings produce no output tokens.

**The usage.** An answer's `usage` maps onto creditgate's disjoint counts by the same rules
as the Python SDK's (`creditgate_sdk.usage`, with the vectors in
tests/fixtures/usage_vectors.json): OpenAI counts cache reads and writes inside its input
count, Anthropic reports them apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from creditgate.domain.errors import InvalidInput

CHARS_PER_TOKEN = 4
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
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
# The quantities a rate card prices tokens by; reasoning is inside output_tokens.
PRICED_TOKENS = ("input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens")


class ImpossibleUsage(InvalidInput):
    """Usage counts no real call produces; `reason` names the fault (the SDK's codes:
    not_a_count, negative_count, cache_exceeds_input, reasoning_exceeds_output) and
    `field` the vendor's field at fault."""

    code = "impossible_usage"

    def __init__(self, reason: str, field: str, detail: str, *, source: str) -> None:
        super().__init__(f"{source} usage {field}: {detail}", field=field)
        self.reason = reason
        self.source = source


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts, disjoint: no token is counted twice (see `creditgate_sdk.usage`)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in TOKEN_FIELDS}

    def as_quantities(self) -> dict[str, int]:
        """The priced counts that are not zero, as a settle sends them."""
        counts = {name: getattr(self, name) for name in PRICED_TOKENS}
        return {name: count for name, count in counts.items() if count}

    def latest(self, other: Usage) -> Usage:
        """Two running totals of one streamed message: each count as far as either has seen."""
        return Usage(**{n: max(getattr(self, n), getattr(other, n)) for n in TOKEN_FIELDS})


def _get(obj: object, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else None


def _count(value: object, field: str, source: str) -> int:
    """A vendor's token count: a whole number of zero or more; null (or missing) is zero."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ImpossibleUsage(
            "not_a_count", field, f"must be a whole number, got {value!r}", source=source
        )
    if value < 0:
        raise ImpossibleUsage(
            "negative_count", field, f"must be zero or more, got {value}", source=source
        )
    return value


def _check_reasoning(reasoning: int, output: int, field: str, source: str) -> None:
    if reasoning > output:
        raise ImpossibleUsage(
            "reasoning_exceeds_output",
            field,
            f"{reasoning} reasoning tokens are more than the {output} output tokens they are"
            " part of",
            source=source,
        )


def _openai(raw: object, source: str, names: tuple[str, str, str, str]) -> Usage:
    input_name, output_name, input_details, output_details = names
    details_in, details_out = _get(raw, input_details), _get(raw, output_details)
    prompt = _count(_get(raw, input_name), input_name, source)
    cached = _count(_get(details_in, "cached_tokens"), f"{input_details}.cached_tokens", source)
    written_field = f"{input_details}.cache_write_tokens"
    written = _count(_get(details_in, "cache_write_tokens"), written_field, source)
    output = _count(_get(raw, output_name), output_name, source)
    reasoning_field = f"{output_details}.reasoning_tokens"
    reasoning = _count(_get(details_out, "reasoning_tokens"), reasoning_field, source)
    if cached + written > prompt:
        raise ImpossibleUsage(
            "cache_exceeds_input",
            f"{input_details}.cached_tokens",
            f"{cached} cached and {written} cache-write tokens are more than the {prompt}"
            f" {input_name} they are part of",
            source=source,
        )
    _check_reasoning(reasoning, output, reasoning_field, source)
    return Usage(
        input_tokens=prompt - cached - written,
        cached_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output,
        reasoning_tokens=reasoning,
    )


def openai_chat_usage(raw: object) -> Usage:
    """An OpenAI chat completion's (or embedding's) `usage`: cache counts inside prompt_tokens."""
    names = (
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    )
    return _openai(raw, "openai chat.completions", names)


def openai_responses_usage(raw: object) -> Usage:
    """An OpenAI Responses API `usage`: cache counts inside input_tokens."""
    names = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
    return _openai(raw, "openai responses", names)


def anthropic_usage(raw: object) -> Usage:
    """An Anthropic message's `usage`: its counts are disjoint already."""
    source = "anthropic messages"
    output = _count(_get(raw, "output_tokens"), "output_tokens", source)
    reasoning_field = "output_tokens_details.thinking_tokens"
    reasoning = _count(
        _get(_get(raw, "output_tokens_details"), "thinking_tokens"), reasoning_field, source
    )
    _check_reasoning(reasoning, output, reasoning_field, source)
    return Usage(
        input_tokens=_count(_get(raw, "input_tokens"), "input_tokens", source),
        cached_tokens=_count(
            _get(raw, "cache_read_input_tokens"), "cache_read_input_tokens", source
        ),
        cache_write_tokens=_count(
            _get(raw, "cache_creation_input_tokens"), "cache_creation_input_tokens", source
        ),
        output_tokens=output,
        reasoning_tokens=reasoning,
    )


def usage_of(raw: object) -> Usage:
    """A vendor's usage JSON, told apart by its fields as the SDK's `usage_of` does:
    `prompt_tokens` is OpenAI chat (and embeddings), `input_tokens_details` OpenAI's
    Responses API, anything else Anthropic's disjoint counts."""
    if isinstance(raw, Mapping):
        if "prompt_tokens" in raw:
            return openai_chat_usage(raw)
        if "input_tokens_details" in raw:
            return openai_responses_usage(raw)
    return anthropic_usage(raw)


# The estimate


def tokens_for_chars(chars: int) -> int:
    """Characters of text as tokens: `CHARS_PER_TOKEN` a token, rounded up."""
    return -(-chars // CHARS_PER_TOKEN)


def _text_size(value: object) -> tuple[int, int]:
    """(characters of text, token ids) inside a JSON value."""
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, bool) or value is None:
        return 0, 0
    if isinstance(value, int):
        return 0, 1  # a token id in a pre-tokenized input
    if isinstance(value, Mapping):
        chars = ids = 0
        for key, item in value.items():
            if key in ("image_url", "source", "data", "file_data", "cache_control"):
                continue  # media and markers are not text; their tokens are not estimated
            c, i = _text_size(item)
            chars, ids = chars + c, ids + i
        return chars, ids
    if isinstance(value, list):
        chars = ids = 0
        for item in value:
            c, i = _text_size(item)
            chars, ids = chars + c, ids + i
        return chars, ids
    return 0, 0


def estimate_input_tokens(request: Mapping[str, object]) -> int:
    """The request's input tokens, estimated from its text (see the module's docstring)."""
    chars = ids = 0
    for name in PROMPT_FIELDS:
        if name in request:
            c, i = _text_size(request[name])
            chars, ids = chars + c, ids + i
    return tokens_for_chars(chars) + ids


def output_cap(request: Mapping[str, object], default: int) -> int:
    """The request's cap on output tokens, or `default` when it gives none."""
    for name in OUTPUT_CAPS:
        value = request.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"{name} must be a whole number of 1 or more", field=name)
        return value
    return default


def estimate(request: Mapping[str, object], *, default_cap: int, output: bool = True) -> Usage:
    """What the request is held at: its input estimated, its output at its cap."""
    return Usage(
        input_tokens=estimate_input_tokens(request),
        output_tokens=output_cap(request, default_cap) if output else 0,
    )
