"""The usage mapping of every vendor, from the shared vectors in tests/fixtures/usage_vectors.json.

Each vector's raw usage is built into the `openai` and `anthropic` packages' own objects the
way those SDKs build answers off the wire (`construct`, without validation, so impossible
counts arrive as sent), read as a bare usage, as a whole answer, as a stream and as JSON;
the guard settles with it; and genai-prices, which prices the server's vendor costs, reads
the same vendor JSON into the same quantities at the same cost.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from anthropic.types import Message, MessageDeltaUsage, RawMessageDeltaEvent, RawMessageStartEvent
from anthropic.types import Usage as AnthropicUsage
from anthropic.types.raw_message_delta_event import Delta
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage
from openai.types.responses import Response, ResponseCompletedEvent, ResponseUsage
from pydantic import BaseModel

from creditgate.domain.vendor_cost import LlmUsage
from creditgate.services.pricing.vendor_cost import genai_prices_cost
from creditgate_sdk import Client, ImpossibleUsage, Usage, usage_from
from creditgate_sdk.usage import PRICED_TOKENS, usage_of
from tests.sdk.fakes import FakeCreditgate

VECTORS_FILE = Path(__file__).parents[1] / "fixtures" / "usage_vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text())["vectors"]
COUNTS = (
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def vectors(
    *, vendors: tuple[str, ...] = ("openai", "anthropic"), valid: bool | None = None
) -> Any:
    chosen = [
        v
        for v in VECTORS
        if v["vendor"] in vendors and (valid is None or ("expected" in v) == valid)
    ]
    return pytest.mark.parametrize("vector", chosen, ids=[v["name"] for v in chosen])


def counts(usage: Usage) -> dict[str, int]:
    return {name: getattr(usage, name) for name in COUNTS}


def bare(vector: dict[str, Any]) -> BaseModel:
    """The vendor package's usage object, as the package builds it from the answer's JSON."""
    kind: type[BaseModel] = {
        "chat.completions": CompletionUsage,
        "responses": ResponseUsage,
        "messages": AnthropicUsage,
    }[vector["api"]]
    return kind.construct(**vector["usage"])


def answers(vector: dict[str, Any]) -> list[list[Any]]:
    """The answers that carry the usage: a whole response, and the events of its stream."""
    raw, model = vector["usage"], vector.get("model", "some-model")
    if vector["api"] == "chat.completions":
        common = {"id": "chatcmpl-1", "created": 1_767_268_800, "model": model, "choices": []}
        whole = ChatCompletion.construct(object="chat.completion", usage=raw, **common)
        last = ChatCompletionChunk.construct(object="chat.completion.chunk", usage=raw, **common)
        return [[whole], [last]]
    if vector["api"] == "responses":
        response = Response.construct(
            id="resp_1", object="response", model=model, status="completed", output=[], usage=raw
        )
        done = ResponseCompletedEvent.construct(
            type="response.completed", response=response, sequence_number=1
        )
        return [[response], [done]]
    message = Message.construct(
        id="msg_01", type="message", role="assistant", model=model, content=[], usage=raw
    )
    # A stream: message_start carries the input counts, message_delta the final (cumulative)
    # counts, as the newer API versions send them.
    start = RawMessageStartEvent.construct(type="message_start", message=message)
    delta = RawMessageDeltaEvent.construct(
        type="message_delta",
        delta=Delta(stop_reason="end_turn", stop_sequence=None),
        usage=MessageDeltaUsage.construct(**raw),
    )
    return [[message], [start, delta]]


@vectors(valid=True)
def test_vendor_usage_maps_to_the_expected_disjoint_counts(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    assert counts(usage_of(bare(vector))) == expected
    assert counts(usage_of(vector["usage"])) == expected  # the JSON itself
    for items in answers(vector):
        assert counts(usage_from(*items)) == expected, items
    # The server is sent the priced counts as they are, without reasoning (inside output).
    sent = {name: expected[name] for name in PRICED_TOKENS if expected[name]}
    assert usage_of(bare(vector)).as_quantities() == sent


@vectors(valid=True)
def test_the_validated_package_objects_map_the_same(vector: dict[str, Any]) -> None:
    validated = type(bare(vector)).model_validate(vector["usage"])
    assert counts(usage_of(validated)) == vector["expected"]


@vectors(valid=False)
def test_impossible_vendor_usage_is_a_named_error_not_a_clamp(vector: dict[str, Any]) -> None:
    error = vector["error"]
    for item in ([bare(vector)], [vector["usage"]], *answers(vector)):
        with pytest.raises(ImpossibleUsage) as raised:
            usage_from(*item)
        assert (raised.value.code, raised.value.field) == (error["code"], error["field"])
        assert raised.value.source is not None and vector["vendor"] in raised.value.source
        assert error["field"] in str(raised.value)


@vectors(vendors=("creditgate",), valid=True)
def test_counts_a_caller_gives_are_taken_as_disjoint(vector: dict[str, Any]) -> None:
    assert counts(Usage(**vector["usage"])) == vector["expected"]


@vectors(vendors=("creditgate",), valid=False)
def test_impossible_counts_from_a_caller_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(ImpossibleUsage) as raised:
        Usage(**vector["usage"])
    assert (raised.value.code, raised.value.field) == (
        vector["error"]["code"],
        vector["error"]["field"],
    )


# Through the guard, priced by the (fake) server's card: what settle sends.


def settled_quantities(fake: FakeCreditgate) -> Any:
    (request,) = fake.calls("POST", r"/v1/authorizations/.*/settle")
    return fake.body(request).get("quantities")


@vectors(vendors=("openai", "anthropic", "creditgate"), valid=True)
def test_the_guard_settles_the_mapped_quantities(
    vector: dict[str, Any], plain: Client, fake: FakeCreditgate
) -> None:
    fake.balances["cust_42"] = 10_000_000
    with plain.guard("cust_42", "chat.completion", max_tokens=10) as g:
        if vector["vendor"] == "creditgate":
            g.settle(**vector["usage"])
        else:
            g.settle(answers(vector)[0][0])
    expected = vector["expected"]
    assert settled_quantities(fake) == {n: expected[n] for n in PRICED_TOKENS if expected[n]}
    assert g.usage is not None and counts(g.usage) == expected


@vectors(vendors=("openai", "anthropic", "creditgate"), valid=False)
def test_the_guard_refuses_impossible_usage_before_settling(
    vector: dict[str, Any], plain: Client, fake: FakeCreditgate
) -> None:
    with pytest.raises(ImpossibleUsage):  # noqa: SIM117
        with plain.guard("cust_42", "chat.completion", max_tokens=10) as g:
            if vector["vendor"] == "creditgate":
                g.settle(**vector["usage"])
            else:
                g.settle(answers(vector)[0][0])
    # Nothing was charged: the exception voided the hold.
    assert fake.calls("POST", r"/v1/authorizations/.*/settle") == []
    assert g.status == "voided" and fake.available() == 10_000


# The server's vendor cost reads the quantities as genai-prices reads the vendor's JSON.


FLAVOR = {"chat.completions": "chat", "responses": "responses", "messages": "default"}


@vectors(valid=True)
def test_genai_prices_reads_the_vendor_usage_into_the_same_quantities(
    vector: dict[str, Any],
) -> None:
    extracted = genai_prices.extract_usage(
        {"model": vector["model"], "usage": vector["usage"]},
        provider_id=vector["vendor"],
        api_flavor=FLAVOR[vector["api"]],
    )
    theirs = extracted.usage  # input_tokens there include cache reads and writes
    cached, written = theirs.cache_read_tokens or 0, theirs.cache_write_tokens or 0
    expected = vector["expected"]
    assert (theirs.input_tokens or 0) - cached - written == expected["input_tokens"]
    assert (cached, written) == (expected["cached_tokens"], expected["cache_write_tokens"])
    assert theirs.output_tokens == expected["output_tokens"]

    ours = LlmUsage(
        input_tokens=Decimal(expected["input_tokens"]),
        output_tokens=Decimal(expected["output_tokens"]),
        cached_tokens=Decimal(expected["cached_tokens"]),
        cache_write_tokens=Decimal(expected["cache_write_tokens"]),
    )
    cost = genai_prices_cost(vector["vendor"], vector["model"], ours, at=NOW)
    reference = genai_prices.calc_price(
        theirs, vector["model"], provider_id=vector["vendor"], genai_request_timestamp=NOW
    )
    assert cost.usd is not None and cost.usd == reference.total_price
