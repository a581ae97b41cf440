"""Token usage read off LLM SDK responses (OpenAI, Anthropic, their streams) into one shape.

Adapters work by the documented field names, on the SDKs' own objects or on their JSON as
dicts, so this module imports neither SDK. The counting convention is OpenAI's:

- `input_tokens` counts every input token, including those read from or written to a cache
  (Anthropic reports those apart, so its three input counts are added up here);
- `cached_tokens` and `cache_write_tokens` are the parts of `input_tokens` read from and
  written to the prompt cache;
- `output_tokens` counts every output token, including `reasoning_tokens`.

The server's rate cards count tokens disjointly instead (Anthropic's convention): its
`input_tokens` excludes cache reads and writes. `Usage.as_quantities()` converts.
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
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number of zero or more, got {value!r}")
        for name, value in self.quantities.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"quantity {name!r} must be a whole number of zero or more")
        object.__setattr__(self, "quantities", MappingProxyType(dict(self.quantities)))

    @property
    def uncached_input_tokens(self) -> int:
        return max(0, self.input_tokens - self.cached_tokens - self.cache_write_tokens)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

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

        Its `input_tokens` excludes cache reads (`cached_tokens`) and cache writes
        (`cache_write_tokens`), which this class counts inside `input_tokens`; reasoning
        tokens are output tokens. Zero counts are left out (a missing quantity is zero), so an
        action's card need not price a kind of token the call did not use.
        """
        counts = {
            "input_tokens": self.uncached_input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }
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


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(0, value)


def _model(obj: Any) -> str | None:
    value = _get(obj, "model")
    return value if isinstance(value, str) and value else None


def usage_of(raw: Any, model: str | None = None) -> Usage:
    """A provider's usage object (or dict) to `Usage`."""
    if isinstance(raw, Usage):
        return raw
    if _has(raw, "prompt_tokens"):
        # OpenAI chat completions (and legacy completions)
        prompt = _get(raw, "prompt_tokens_details")
        completion = _get(raw, "completion_tokens_details")
        return Usage(
            input_tokens=_int(_get(raw, "prompt_tokens")),
            output_tokens=_int(_get(raw, "completion_tokens")),
            cached_tokens=_int(_get(prompt, "cached_tokens")),
            cache_write_tokens=_int(_get(prompt, "cache_write_tokens")),
            reasoning_tokens=_int(_get(completion, "reasoning_tokens")),
            model=model,
        )
    if _has(raw, "cache_read_input_tokens") or _has(raw, "cache_creation_input_tokens"):
        # Anthropic messages: input_tokens excludes what was read from or written to the cache
        read = _int(_get(raw, "cache_read_input_tokens"))
        written = _int(_get(raw, "cache_creation_input_tokens"))
        return Usage(
            input_tokens=_int(_get(raw, "input_tokens")) + read + written,
            output_tokens=_int(_get(raw, "output_tokens")),
            cached_tokens=read,
            cache_write_tokens=written,
            model=model,
        )
    if _has(raw, "input_tokens") or _has(raw, "output_tokens"):
        # OpenAI Responses API (and any usage with plain input/output counts)
        details_in = _get(raw, "input_tokens_details")
        details_out = _get(raw, "output_tokens_details")
        return Usage(
            input_tokens=_int(_get(raw, "input_tokens")),
            output_tokens=_int(_get(raw, "output_tokens")),
            cached_tokens=_int(_get(details_in, "cached_tokens")),
            cache_write_tokens=_int(_get(details_in, "cache_write_tokens")),
            reasoning_tokens=_int(_get(details_out, "reasoning_tokens")),
            model=model,
        )
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
                self._streaming = _latest(self._streaming, usage_of(usage))
            self.seen = True
            return
        if kind in _ANTHROPIC_RUNNING:
            message = _get(item, "message")
            usage = _get(item, "usage") or _get(message, "usage")
            if usage is not None:
                snapshot = usage_of(usage, _model(message))
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
