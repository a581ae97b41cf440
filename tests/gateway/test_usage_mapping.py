"""The gateway reads usage as the SDK does: the server's mirror of the SDK's mapping
(`creditgate.domain.gateway`) agrees with `creditgate_sdk.usage` on every shared vector in
tests/fixtures/usage_vectors.json, valid or impossible."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from creditgate.domain import gateway as server
from creditgate_sdk import usage as sdk

VECTORS_FILE = Path(__file__).parents[1] / "fixtures" / "usage_vectors.json"
VECTORS: list[dict[str, Any]] = [
    v for v in json.loads(VECTORS_FILE.read_text())["vectors"] if v["vendor"] != "creditgate"
]
SERVER = {
    "chat.completions": server.openai_chat_usage,
    "responses": server.openai_responses_usage,
    "messages": server.anthropic_usage,
}
SDK = {
    "chat.completions": sdk.openai_chat_usage,
    "responses": sdk.openai_responses_usage,
    "messages": sdk.anthropic_usage,
}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_the_server_maps_usage_as_the_sdk_does(vector: dict[str, Any]) -> None:
    raw, api = vector["usage"], vector["api"]
    if "expected" in vector:
        theirs = SDK[api](raw)
        ours = SERVER[api](raw)
        assert ours.counts() == {name: getattr(theirs, name) for name in server.TOKEN_FIELDS}
        assert ours.counts() == vector["expected"]
        assert ours.as_quantities() == theirs.as_quantities()
        assert server.usage_of(raw) == ours  # told apart by its fields, as the SDK tells
        return
    with pytest.raises(sdk.ImpossibleUsage) as theirs_raised:
        SDK[api](raw)
    with pytest.raises(server.ImpossibleUsage) as ours_raised:
        SERVER[api](raw)
    expected = vector["error"]
    assert (ours_raised.value.reason, ours_raised.value.field) == (
        expected["code"],
        expected["field"],
    )
    assert (theirs_raised.value.code, theirs_raised.value.field) == (
        ours_raised.value.reason,
        ours_raised.value.field,
    )
