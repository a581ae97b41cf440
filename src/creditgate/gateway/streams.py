"""Server-sent events as they pass through: split into events, read for usage, passed on.

Each event goes to the client as soon as its blank line arrives (nothing is held back past
an event's end). What a stream reported or produced is kept for the settle:

- OpenAI chat completions: the gateway asks for `stream_options.include_usage`; the last
  chunk (`choices: []`, `usage: {…}`) reports the usage, and is not passed on when the
  client did not ask for it. The text of every delta is counted.
- OpenAI Responses: `response.completed` (or `.incomplete`) carries the usage; the text of
  `response.output_text.delta` events is counted; `response.failed` and `error` are errors.
- Anthropic messages: `message_start` reports the input counts, `message_delta` the running
  totals; the text of `content_block_delta` events is counted; `error` is an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from creditgate.domain.gateway import (
    ImpossibleUsage,
    Usage,
    anthropic_usage,
    openai_chat_usage,
    openai_responses_usage,
    tokens_for_chars,
)

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class EventSplitter:
    """Bytes in, whole events (each with its blank line) out."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        events: list[bytes] = []
        while True:
            match = _EVENT_END.search(self._buffer)
            if match is None:
                return events
            events.append(self._buffer[: match.end()])
            self._buffer = self._buffer[match.end() :]

    def rest(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return rest


def parse_event(raw: bytes) -> tuple[str | None, str]:
    """(event name, data) of one event."""
    name: str | None = None
    data: list[str] = []
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    return name, "\n".join(data)


def _text_chars(value: object) -> int:
    return len(value) if isinstance(value, str) else 0


@dataclass
class StreamMeter:
    """What one stream reported and produced. `kind`: openai_chat, openai_responses or
    anthropic. `strip_usage`: drop OpenAI's usage chunk (the client did not ask for it)."""

    kind: str
    strip_usage: bool = False
    reported: Usage | None = None
    output_chars: int = 0
    failed: bool = False
    finished: bool = False
    upstream_id: str | None = None
    _notes: list[str] = field(default_factory=list)

    def output_estimate(self) -> int:
        """Output tokens estimated from the text streamed so far (characters/4, rounded up)."""
        return tokens_for_chars(self.output_chars)

    def observe(self, raw: bytes) -> bool:
        """Read one event; whether to pass it on."""
        name, data = parse_event(raw)
        if not data:
            return True
        if data.strip() == "[DONE]":
            self.finished = True
            return True
        try:
            doc = json.loads(data)
        except ValueError:
            return True
        if not isinstance(doc, dict):
            return True
        try:
            if self.kind == "openai_chat":
                return self._openai_chat(doc)
            if self.kind == "openai_responses":
                self._openai_responses(name or str(doc.get("type", "")), doc)
            else:
                self._anthropic(name or str(doc.get("type", "")), doc)
        except ImpossibleUsage:
            self.reported = None  # settled from the estimate instead
        return True

    def _openai_chat(self, doc: dict[str, Any]) -> bool:
        self.upstream_id = self.upstream_id or doc.get("id")
        if "error" in doc and not doc.get("choices"):
            self.failed = True
            return True
        choices = doc.get("choices") or []
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                self.output_chars += _text_chars(delta.get("content"))
                self.output_chars += _text_chars(delta.get("refusal"))
                for call in delta.get("tool_calls") or []:
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict):
                        self.output_chars += _text_chars(function.get("arguments"))
                        self.output_chars += _text_chars(function.get("name"))
        usage = doc.get("usage")
        if usage is not None:
            self.reported = openai_chat_usage(usage)
            if self.strip_usage and not choices:
                return False
        return True

    def _openai_responses(self, name: str, doc: dict[str, Any]) -> None:
        if name in ("response.output_text.delta", "response.function_call_arguments.delta"):
            self.output_chars += _text_chars(doc.get("delta"))
        elif name in ("response.created", "response.in_progress"):
            response = doc.get("response")
            if isinstance(response, dict):
                self.upstream_id = self.upstream_id or response.get("id")
        elif name in ("response.completed", "response.incomplete"):
            response = doc.get("response")
            if isinstance(response, dict):
                self.upstream_id = self.upstream_id or response.get("id")
                if response.get("usage") is not None:
                    self.reported = openai_responses_usage(response["usage"])
            self.finished = True
        elif name in ("response.failed", "error"):
            self.failed = True

    def _anthropic(self, name: str, doc: dict[str, Any]) -> None:
        if name == "message_start":
            message = doc.get("message")
            if isinstance(message, dict):
                self.upstream_id = message.get("id")
                if message.get("usage") is not None:
                    self.reported = anthropic_usage(message["usage"])
        elif name == "message_delta":
            if doc.get("usage") is not None:
                snapshot = anthropic_usage(doc["usage"])
                self.reported = (self.reported or Usage()).latest(snapshot)
        elif name == "content_block_delta":
            delta = doc.get("delta")
            if isinstance(delta, dict):
                for key in ("text", "partial_json", "thinking"):
                    self.output_chars += _text_chars(delta.get(key))
        elif name == "message_stop":
            self.finished = True
        elif name == "error":
            self.failed = True

    def usage(self, estimate: Usage, *, complete: bool) -> Usage:
        """What to settle for: the reported usage of a finished stream; for one cut short,
        the reported counts with output at least the streamed text's estimate; without a
        report, the estimated input and the streamed text's estimate of output."""
        streamed = self.output_estimate()
        if self.reported is not None:
            if complete:
                return self.reported
            output = max(self.reported.output_tokens, streamed)
            return Usage(
                input_tokens=self.reported.input_tokens,
                cached_tokens=self.reported.cached_tokens,
                cache_write_tokens=self.reported.cache_write_tokens,
                output_tokens=output,
                reasoning_tokens=min(self.reported.reasoning_tokens, output),
            )
        return Usage(input_tokens=estimate.input_tokens, output_tokens=streamed)
