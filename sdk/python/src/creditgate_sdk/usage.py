"""Token usage read off LLM SDK responses (OpenAI, Anthropic, their streams) into one shape.

`Usage` counts tokens disjointly, as the server's rate cards and vendor costs do: no token is
counted twice, and each quantity is priced at its own rate.

- `input_tokens`: input tokens neither read from nor written to the prompt cache;
- `cached_tokens`: input tokens read from the prompt cache;
- `cache_write_tokens`: input tokens written to the prompt cache;
- `output_tokens`: every output token, reasoning included;
- `reasoning_tokens`: the part of `output_tokens` spent reasoning (shown, not priced apart).

Each vendor's usage object maps onto these by one rule (README.md has the same tables, and
tests/fixtures/usage_vectors.json its test vectors):

OpenAI chat completions (a completion's `usage`, or a stream's last chunk's) count the
tokens read from and written to the cache inside `prompt_tokens`:

    input_tokens        prompt_tokens - the two below
    cached_tokens       prompt_tokens_details.cached_tokens
    cache_write_tokens  prompt_tokens_details.cache_write_tokens
    output_tokens       completion_tokens
    reasoning_tokens    completion_tokens_details.reasoning_tokens

OpenAI's Responses API the same, by other names: `input_tokens` less
`input_tokens_details.cached_tokens` and `.cache_write_tokens`; `output_tokens`, with
`output_tokens_details.reasoning_tokens`.

Anthropic messages report the three input counts apart, so they map one to one:

    input_tokens        input_tokens
    cached_tokens       cache_read_input_tokens
    cache_write_tokens  cache_creation_input_tokens
    output_tokens       output_tokens
    reasoning_tokens    output_tokens_details.thinking_tokens

A count that is not a whole number of zero or more, cache counts above OpenAI's prompt
count, or reasoning above the output count cannot come from a real call: they raise
`ImpossibleUsage` (with a stable `code` and the vendor's `field`) instead of being clamped.
A missing or null count is zero. Counts given directly (`Usage(...)`, a guard's
`settle(input_tokens=...)`) are already in these disjoint terms.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
# The quantities a rate card prices tokens by; reasoning is inside output_tokens.
PRICED_TOKENS = ("input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens")


class ImpossibleUsage(ValueError):
    """Usage counts no real call produces; `code` names the fault, `field` where it is.

    Codes: `not_a_count` (not a whole number), `negative_count`, `cache_exceeds_input` (an
    OpenAI usage whose cache reads and writes exceed its prompt tokens),
    `reasoning_exceeds_output`.
    """

    def __init__(self, code: str, field: str, detail: str, *, source: str | None = None) -> None:
        where = f"{source} usage {field}" if source else field
        super().__init__(f"{where}: {detail}")
        self.code = code
        self.field = field
        self.source = source


def _count(value: Any, field: str, source: str | None) -> int:
    """A vendor's (or caller's) token count: a whole number of zero or more; null is zero."""
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


def _check_reasoning(reasoning: int, output: int, field: str, source: str | None) -> None:
    if reasoning > output:
        raise ImpossibleUsage(
            "reasoning_exceeds_output",
            field,
            f"{reasoning} reasoning tokens are more than the {output} output tokens they are"
            " part of",
            source=source,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    model: str | None = None
    # Other quantities an action is priced by (images, characters, seconds), by name.
    quantities: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in _TOKEN_FIELDS:
            _count(getattr(self, name), name, None)
        _check_reasoning(self.reasoning_tokens, self.output_tokens, "reasoning_tokens", None)
        for name, value in self.quantities.items():
            _count(value, f"quantities.{name}", None)
        object.__setattr__(self, "quantities", MappingProxyType(dict(self.quantities)))

    @property
    def prompt_tokens(self) -> int:
        """Every input token: uncached, read from the cache and written to it."""
        return self.input_tokens + self.cached_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        """Usage of two calls together."""
        if not isinstance(other, Usage):
            return NotImplemented
        merged = dict(self.quantities)
        for name, value in other.quantities.items():
            merged[name] = merged.get(name, 0) + value
        return Usage(
            **{n: getattr(self, n) + getattr(other, n) for n in _TOKEN_FIELDS},
            model=self.model or other.model,
            quantities=merged,
        )

    def as_quantities(self) -> dict[str, int]:
        """The counts as the server's rate cards price them, for authorize and settle.

        The token counts as they are (both sides count disjointly), without reasoning tokens
        (they are inside `output_tokens`). Zero counts are left out (a missing quantity is
        zero), so an action's card need not price a kind of token the call did not use.
        """
        counts = {name: getattr(self, name) for name in PRICED_TOKENS}
        counts.update(self.quantities)
        return {name: count for name, count in counts.items() if count}

    def as_dict(self) -> dict[str, Any]:
        """The counts that are not zero (and the model), e.g. for a charge's metadata."""
        out: dict[str, Any] = {n: getattr(self, n) for n in _TOKEN_FIELDS if getattr(self, n)}
        out.update({k: v for k, v in self.quantities.items() if v})
        if self.model:
            out["model"] = self.model
        return out


def _latest(current: Usage, snapshot: Usage) -> Usage:
    """Two running totals of one streamed message: each count as far as either has seen."""
    return replace(
        current,
        **{n: max(getattr(current, n), getattr(snapshot, n)) for n in _TOKEN_FIELDS},
        model=current.model or snapshot.model,
    )


class UsageNotFound(ValueError):
    """The object carries no usage: not a response, or a stream without its usage chunk."""


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _has(obj: Any, name: str) -> bool:
    if isinstance(obj, Mapping):
        return name in obj
    return hasattr(obj, name)


def _model(obj: Any) -> str | None:
    value = _get(obj, "model")
    return value if isinstance(value, str) and value else None


def _openai(
    raw: Any,
    source: str,
    names: tuple[str, str, str, str],
    model: str | None,
) -> Usage:
    """OpenAI's usage, whose input count includes the tokens read from and written to cache."""
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
        model=model,
    )


def openai_chat_usage(raw: Any, model: str | None = None) -> Usage:
    """An OpenAI chat completion's `usage` (object or JSON) in creditgate's counts."""
    names = (
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    )
    return _openai(raw, "openai chat.completions", names, model)


def openai_responses_usage(raw: Any, model: str | None = None) -> Usage:
    """An OpenAI Responses API `usage` (object or JSON) in creditgate's counts."""
    names = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
    return _openai(raw, "openai responses", names, model)


def anthropic_usage(raw: Any, model: str | None = None) -> Usage:
    """An Anthropic message's `usage` (object or JSON): its counts are disjoint already."""
    source = "anthropic messages"
    output = _count(_get(raw, "output_tokens"), "output_tokens", source)
    reasoning_field = "output_tokens_details.thinking_tokens"
    details = _get(raw, "output_tokens_details")
    reasoning = _count(_get(details, "thinking_tokens"), reasoning_field, source)
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
        model=model,
    )


def usage_of(raw: Any, model: str | None = None) -> Usage:
    """A vendor's usage object (or its JSON) to `Usage`, by the vendor's mapping.

    The vendor is told by the fields it reports: `prompt_tokens` is OpenAI's chat
    completions, `input_tokens_details` OpenAI's Responses API; anything else with
    `input_tokens` or `output_tokens` is read as Anthropic's disjoint counts (which is also
    how plain counts without cache details read).
    """
    if isinstance(raw, Usage):
        return raw
    if _has(raw, "prompt_tokens"):
        return openai_chat_usage(raw, model)
    if _has(raw, "input_tokens_details"):
        return openai_responses_usage(raw, model)
    if _has(raw, "input_tokens") or _has(raw, "output_tokens"):
        return anthropic_usage(raw, model)
    raise UsageNotFound(f"{type(raw).__name__} is not a usage object")


# Anthropic stream events that carry a running total of the message being streamed.
_ANTHROPIC_RUNNING = frozenset({"message_delta", "message_stop"})
# OpenAI Responses stream events that carry the finished response.
_RESPONSE_DONE = frozenset({"response.completed", "response.incomplete", "response.failed"})


class UsageMeter:
    """Adds up the usage of responses and stream events, as the guard sees them.

    A complete answer (a chat completion, a response, a message, the final chunk of an OpenAI
    stream, a `response.completed` event) adds its usage. An Anthropic stream reports running
    totals: `message_start` opens a message, `message_delta` (and the stream helper's
    `message_stop`) move its counts forward. Events without usage are ignored.
    """

    def __init__(self) -> None:
        self._done = Usage()
        self._streaming: Usage | None = None
        self.seen = False

    @property
    def total(self) -> Usage:
        if self._streaming is None:
            return self._done
        return self._done + self._streaming

    def observe(self, item: Any) -> None:
        if isinstance(item, Usage):
            self._add(item)
            return
        kind = _get(item, "type")
        if kind == "message_start":
            message = _get(item, "message")
            self._close_stream()
            self._streaming = Usage(model=_model(message))
            if (usage := _get(message, "usage")) is not None:
                self._streaming = _latest(self._streaming, anthropic_usage(usage))
            self.seen = True
            return
        if kind in _ANTHROPIC_RUNNING:
            message = _get(item, "message")
            usage = _get(item, "usage") or _get(message, "usage")
            if usage is not None:
                snapshot = anthropic_usage(usage, _model(message))
                self._streaming = _latest(self._streaming or Usage(), snapshot)
                self.seen = True
            return
        if kind in _RESPONSE_DONE:
            self.observe(_get(item, "response"))
            return
        usage = _get(item, "usage")
        if usage is not None:
            self._add(usage_of(usage, _model(item)))
            return
        if item is not None and not _has(item, "usage") and not isinstance(kind, str):
            # a bare usage object or dict, e.g. `response.usage`
            with contextlib.suppress(UsageNotFound):
                self._add(usage_of(item))

    def _add(self, usage: Usage) -> None:
        self._done = self._done + usage
        self.seen = True

    def _close_stream(self) -> None:
        if self._streaming is not None:
            self._done = self._done + self._streaming
            self._streaming = None


def usage_from(*items: Any) -> Usage:
    """The usage of one or more responses, or of all the events of a stream, added up."""
    meter = UsageMeter()
    for item in items:
        meter.observe(item)
    if not meter.seen:
        names = ", ".join(type(i).__name__ for i in items) or "nothing"
        raise UsageNotFound(
            f"no usage found in {names}: pass a response object, the final usage chunk of a"
            " stream (OpenAI: stream_options={'include_usage': True}), or explicit quantities"
        )
    return meter.total
