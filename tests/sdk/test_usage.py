"""Usage read off real OpenAI and Anthropic SDK objects, whole and streamed."""

from __future__ import annotations

import pytest
from anthropic.types import MessageDeltaUsage, RawMessageDeltaEvent
from anthropic.types.raw_message_delta_event import Delta
from openai.types.completion_usage import CompletionUsage

from creditgate_sdk import Usage, UsageMeter, UsageNotFound, usage_from
from tests.sdk import llm_objects as llm


def test_openai_chat_completion() -> None:
    usage = usage_from(
        llm.chat_completion(prompt=1_200, completion=300, cached=1_024, reasoning=64)
    )
    # OpenAI counts the 1,024 cached tokens inside its 1,200 prompt tokens.
    assert usage == Usage(
        input_tokens=176,
        output_tokens=300,
        cached_tokens=1_024,
        reasoning_tokens=64,
        model="gpt-4.1-2025-04-14",
    )
    assert usage.prompt_tokens == 1_200 and usage.total_tokens == 1_500


def test_openai_chat_stream_reads_the_final_usage_chunk() -> None:
    usage = usage_from(*llm.chat_stream(prompt=500, completion=42, cached=128))
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (372, 42, 128)
    assert usage.model == "gpt-4.1-2025-04-14"


def test_an_openai_stream_without_include_usage_has_no_usage() -> None:
    with pytest.raises(UsageNotFound, match="include_usage"):
        usage_from(*llm.chat_stream(include_usage=False))


def test_openai_responses_api() -> None:
    usage = usage_from(llm.response(input_tokens=900, output_tokens=250, cached=512, reasoning=100))
    assert usage == Usage(
        input_tokens=388,
        output_tokens=250,
        cached_tokens=512,
        reasoning_tokens=100,
        model="gpt-4.1",
    )


def test_openai_responses_stream_reads_the_completed_event() -> None:
    usage = usage_from(*llm.response_stream(input_tokens=77, output_tokens=33))
    assert (usage.input_tokens, usage.output_tokens, usage.model) == (77, 33, "gpt-4.1")


def test_anthropic_message_counts_cache_reads_and_writes_apart_from_input() -> None:
    usage = usage_from(
        llm.message(input_tokens=50, output_tokens=200, cache_read=2_000, cache_write=300)
    )
    assert usage == Usage(
        input_tokens=50,
        output_tokens=200,
        cached_tokens=2_000,
        cache_write_tokens=300,
        model="claude-sonnet-4-5",
    )
    assert usage.prompt_tokens == 2_350


def test_anthropic_raw_stream_adds_start_input_to_the_running_output() -> None:
    usage = usage_from(*llm.message_stream(input_tokens=800, output_tokens=200, cache_read=100))
    assert usage == Usage(
        input_tokens=800, output_tokens=200, cached_tokens=100, model="claude-sonnet-4-5"
    )


def test_anthropic_helper_stream_ending_with_the_message_is_not_counted_twice() -> None:
    usage = usage_from(
        *llm.message_stream(input_tokens=800, output_tokens=200, with_helper_stop=True)
    )
    assert (usage.input_tokens, usage.output_tokens) == (800, 200)


def test_an_anthropic_delta_with_input_counts_does_not_double_them() -> None:
    # newer API versions repeat the (cumulative) input counts on message_delta
    events = llm.message_stream(input_tokens=800, output_tokens=10)
    events.insert(
        -1,
        RawMessageDeltaEvent(
            type="message_delta",
            delta=Delta(stop_reason="end_turn", stop_sequence=None),
            usage=MessageDeltaUsage(input_tokens=800, output_tokens=200),
        ),
    )
    usage = usage_from(*events)
    assert (usage.input_tokens, usage.output_tokens) == (800, 200)


def test_two_streamed_anthropic_messages_add_up() -> None:
    events = llm.message_stream(800, 200) + llm.message_stream(1_000, 50)
    usage = usage_from(*events)
    assert (usage.input_tokens, usage.output_tokens) == (1_800, 250)


def test_several_responses_add_up() -> None:
    usage = usage_from(llm.chat_completion(100, 10), llm.response(200, 20), llm.message(300, 30))
    assert (usage.input_tokens, usage.output_tokens) == (600, 60)
    assert usage.model == "gpt-4.1-2025-04-14"  # the first one's


def test_json_dumps_and_bare_usage_objects_are_read_too() -> None:
    as_dict = llm.chat_completion(100, 10, cached=40).model_dump()
    assert usage_from(as_dict).cached_tokens == 40
    bare = CompletionUsage(prompt_tokens=5, completion_tokens=6, total_tokens=11)
    assert (usage_from(bare).input_tokens, usage_from(bare).output_tokens) == (5, 6)
    anthropic_json = llm.message(10, 20, cache_read=30).model_dump(mode="json")
    assert usage_from(anthropic_json).prompt_tokens == 40


@pytest.mark.parametrize("thing", [None, "text", 42, {"type": "ping"}, object()])
def test_objects_without_usage_are_refused(thing: object) -> None:
    with pytest.raises(UsageNotFound):
        usage_from(thing)


def test_the_meter_ignores_events_without_usage_and_totals_the_rest() -> None:
    meter = UsageMeter()
    for chunk in llm.chat_stream(prompt=10, completion=5)[:-1]:
        meter.observe(chunk)
    assert not meter.seen and meter.total == Usage()
    meter.observe(llm.chat_stream(prompt=10, completion=5)[-1])
    assert meter.seen and meter.total.total_tokens == 15


def test_usage_values_are_checked_and_added() -> None:
    with pytest.raises(ValueError, match="input_tokens"):
        Usage(input_tokens=-1)
    with pytest.raises(ValueError, match="images"):
        Usage(quantities={"images": -2})
    total = Usage(input_tokens=1, quantities={"images": 1}) + Usage(
        output_tokens=2, quantities={"images": 2, "seconds": 3}
    )
    assert total.as_dict() == {"input_tokens": 1, "output_tokens": 2, "images": 3, "seconds": 3}


def test_quantities_for_the_rate_card_count_tokens_disjointly() -> None:
    # OpenAI's prompt_tokens include the cached ones; the server's input_tokens do not.
    openai = usage_from(
        llm.chat_completion(prompt=1_200, completion=300, cached=1_000, reasoning=50)
    )
    assert openai.as_quantities() == {
        "input_tokens": 200,
        "output_tokens": 300,  # reasoning tokens are inside the output count
        "cached_tokens": 1_000,
    }
    # Anthropic's input_tokens already leave cache reads and writes out: they stay as sent.
    anthropic = usage_from(llm.message(50, 200, cache_read=2_000, cache_write=300))
    assert anthropic.as_quantities() == {
        "input_tokens": 50,
        "output_tokens": 200,
        "cached_tokens": 2_000,
        "cache_write_tokens": 300,
    }
    # Zero counts are left out; other quantities go as they are.
    assert Usage(output_tokens=7, quantities={"images": 2, "seconds": 0}).as_quantities() == {
        "output_tokens": 7,
        "images": 2,
    }
