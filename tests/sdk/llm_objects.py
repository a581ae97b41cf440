"""LLM responses and stream events built from the real `openai` and `anthropic` packages."""

from __future__ import annotations

from typing import Any

from anthropic.lib.streaming import MessageStopEvent
from anthropic.types import (
    Message,
    MessageDeltaUsage,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextBlock,
    TextDelta,
)
from anthropic.types import Usage as AnthropicUsage
from anthropic.types.raw_message_delta_event import Delta
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.completion_usage import (
    CompletionTokensDetails,
    CompletionUsage,
    PromptTokensDetails,
)
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseUsage,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails


def _cache_writes(count: int) -> dict[str, int]:
    # newer openai releases report prompt-cache writes (and require the field here)
    return (
        {"cache_write_tokens": count}
        if "cache_write_tokens" in InputTokensDetails.model_fields
        else {}
    )


def chat_completion(
    prompt: int = 1_200, completion: int = 300, cached: int = 0, reasoning: int = 0
) -> ChatCompletion:
    return ChatCompletion(
        id="chatcmpl-1",
        object="chat.completion",
        created=1_767_268_800,
        model="gpt-4.1-2025-04-14",
        choices=[
            Choice(
                index=0,
                finish_reason="stop",
                message=ChatCompletionMessage(role="assistant", content="Hello!"),
            )
        ],
        usage=CompletionUsage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
            completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning),
        ),
    )


def chat_stream(
    prompt: int = 1_200, completion: int = 300, cached: int = 0, include_usage: bool = True
) -> list[ChatCompletionChunk]:
    """A streamed chat completion; with stream_options include_usage the last chunk has usage."""

    def chunk(
        delta: ChoiceDelta | None, finish: Any = None, usage: CompletionUsage | None = None
    ) -> ChatCompletionChunk:
        choices = [] if delta is None else [ChunkChoice(index=0, delta=delta, finish_reason=finish)]
        return ChatCompletionChunk(
            id="chatcmpl-2",
            object="chat.completion.chunk",
            created=1_767_268_800,
            model="gpt-4.1-2025-04-14",
            choices=choices,
            usage=usage,
        )

    chunks = [
        chunk(ChoiceDelta(role="assistant", content="")),
        chunk(ChoiceDelta(content="Hel")),
        chunk(ChoiceDelta(content="lo!")),
        chunk(ChoiceDelta(), finish="stop"),
    ]
    if include_usage:
        usage = CompletionUsage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        )
        chunks.append(chunk(None, usage=usage))
    return chunks


def response(
    input_tokens: int = 900, output_tokens: int = 250, cached: int = 0, reasoning: int = 0
) -> Response:
    return Response(
        id="resp_1",
        object="response",
        created_at=1_767_268_800,
        model="gpt-4.1",
        status="completed",
        output=[
            ResponseOutputMessage(
                id="msg_1",
                type="message",
                role="assistant",
                status="completed",
                content=[ResponseOutputText(type="output_text", text="Hi", annotations=[])],
            )
        ],
        parallel_tool_calls=True,
        tool_choice="auto",
        tools=[],
        usage=ResponseUsage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=cached, **_cache_writes(0)),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=reasoning),
        ),
    )


def response_stream(input_tokens: int = 900, output_tokens: int = 250) -> list[Any]:
    done = response(input_tokens, output_tokens)
    started = done.model_copy(update={"status": "in_progress", "usage": None, "output": []})
    return [
        ResponseCreatedEvent(type="response.created", response=started, sequence_number=0),
        ResponseTextDeltaEvent(
            type="response.output_text.delta",
            item_id="msg_1",
            output_index=0,
            content_index=0,
            delta="Hi",
            logprobs=[],
            sequence_number=1,
        ),
        ResponseCompletedEvent(type="response.completed", response=done, sequence_number=2),
    ]


def message(
    input_tokens: int = 800,
    output_tokens: int = 200,
    cache_read: int | None = None,
    cache_write: int | None = None,
) -> Message:
    return Message(
        id="msg_01",
        type="message",
        role="assistant",
        model="claude-sonnet-4-5",
        content=[TextBlock(type="text", text="Hello!")],
        stop_reason="end_turn",
        stop_sequence=None,
        usage=AnthropicUsage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_input_tokens=cache_read,
            cache_creation_input_tokens=cache_write,
        ),
    )


def message_stream(
    input_tokens: int = 800,
    output_tokens: int = 200,
    cache_read: int | None = None,
    with_helper_stop: bool = False,
) -> list[Any]:
    """Raw Anthropic stream events: message_start carries the input, message_delta the
    running output count. The SDK's stream helper also ends with a message_stop that
    carries the accumulated message."""
    start = message(input_tokens, 1, cache_read).model_copy(update={"content": []})
    events: list[Any] = [
        RawMessageStartEvent(type="message_start", message=start),
        RawContentBlockStartEvent(
            type="content_block_start", index=0, content_block=TextBlock(type="text", text="")
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta", index=0, delta=TextDelta(type="text_delta", text="Hel")
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta", index=0, delta=TextDelta(type="text_delta", text="lo!")
        ),
        RawContentBlockStopEvent(type="content_block_stop", index=0),
        RawMessageDeltaEvent(
            type="message_delta",
            delta=Delta(stop_reason="end_turn", stop_sequence=None),
            usage=MessageDeltaUsage(output_tokens=output_tokens),
        ),
    ]
    if with_helper_stop:
        final = message(input_tokens, output_tokens, cache_read)
        events.append(MessageStopEvent(type="message_stop", message=final))
    else:
        events.append(RawMessageStopEvent(type="message_stop"))
    return events
