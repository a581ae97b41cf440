"""Hypothesis fuzzing of the parsers that read what a client or a file hands in: rate cards and
model prices, rate card files, API keys, and Stripe webhook payloads.

Each either returns a valid value or raises the project's named error (InvalidInput,
Unauthenticated, CliError); never KeyError, TypeError, AttributeError, RecursionError...
"""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from creditgate.cli._shared import CliError
from creditgate.cli.pricing import load_spec
from creditgate.domain.amounts import MAX_AMOUNT, Asset
from creditgate.domain.errors import CreditgateError, InvalidInput, Unauthenticated
from creditgate.domain.pricing import (
    RateCard,
    TokenPrices,
    parse_model_prices,
    parse_rate_card,
    quote,
)
from creditgate.services.billing.payments import stripe_event_tenant
from creditgate.services.catalog.api_keys import (
    MAX_KEY_LENGTH,
    PREFIX_ALPHABET,
    SECRET_ALPHABET,
    parse_key,
)

# CREDITGATE_FUZZ_EXAMPLES=N for a longer run of every parser here.
EXAMPLES = int(os.environ.get("CREDITGATE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

CARD: dict[str, Any] = {
    "asset": "credits",
    "description": "fuzzed",
    "credit_value_usd": "0.01",
    "actions": {
        "chat.completion": {
            "description": "LLM calls",
            "prices": [
                {
                    "match": {"model": "claude-sonnet-4", "tier": 2},
                    "per_unit": {"input_tokens": "0.003", "output_tokens": "0.015"},
                    "vendor_multiple": "1.5",
                    "minimum": "1",
                    "vendor": {"llm": {"provider": "anthropic"}},
                },
                {"flat": "2", "vendor": {"flat": "0.04", "per_unit": {"characters": "0.0001"}}},
            ],
            "multipliers": [{"match": {"complexity": "high"}, "factor": "1.5"}],
            "margin_guard": {"headroom": "0.1", "mode": "warn"},
        },
        "image.generate": {"prices": [{"flat": "40"}]},
    },
}
MODEL_PRICES: dict[str, Any] = {
    "gpt-4.1": {"input_mtok": "2", "output_mtok": "8", "cache_read_mtok": "0.5"},
    "Claude-X": {"input_mtok": 3, "output_mtok": "15", "cache_write_mtok": "3.75"},
}

# What JSON and YAML can hand a parser: YAML adds dates, bytes, sets and non-text keys.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["0", "1.5", "-1", "1e400", "NaN", "sNaN", "1_000", " 2 ", "0x10", "∞"])
    | st.binary(max_size=10)
    | st.dates()
    | st.datetimes(timezones=st.just(UTC))
)
keys = st.text(max_size=20) | st.integers() | st.none() | st.booleans() | st.tuples(st.integers())
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.frozensets(st.integers() | st.text(max_size=5), max_size=3)
        | st.dictionaries(keys, children, max_size=5)
        | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=25,
)


def _json(value: Any) -> bytes:
    return json.dumps(value, default=str, skipkeys=True).encode()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def near_valid(draw: st.DrawFn, valid: dict[str, Any]) -> Any:
    """A valid document with one to three parts replaced, removed or added to."""
    spec = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(spec)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            if action == "replace":
                spec = draw(json_like)
            continue
        parent: Any = spec
        for part in path[:-1]:
            parent = parent[part]
        if not isinstance(parent, dict | list):
            continue
        if action == "replace":
            parent[path[-1]] = draw(json_like)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(json_like)
        else:
            parent.append(draw(json_like))
    return spec


def _valid_card(card: RateCard) -> None:
    assert card.asset and card.actions
    assert parse_rate_card(card.spec()) == card  # the canonical spec parses back the same
    json.dumps(card.spec())  # and is JSON


def test_the_seed_documents_are_valid() -> None:
    _valid_card(parse_rate_card(CARD))
    assert set(parse_model_prices(MODEL_PRICES)) == {"gpt-4.1", "claude-x"}


@FUZZ
@given(json_like | near_valid(CARD))
@example({"asset": "credits", "actions": {"a": {"prices": [{"flat": "1"}] * 1001}}})
@example({"asset": "credits", "actions": {"a": {"prices": [{"flat": "1e30"}]}}})
@example({"asset": "credits", "actions": {"a": {"prices": [{"flat": Decimal("NaN")}]}}})
@example({"asset": "credits", "actions": {"a": {"prices": [{"flat": date(2026, 1, 1)}]}}})
@example({"asset": "credits", "actions": {"a": {"prices": [{"match": {1: "x"}, "flat": "1"}]}}})
@example({"asset": "credits", "actions": {"a": {"prices": {"flat": "1"}}}})
def test_rate_cards_parse_or_name_the_fault(spec: Any) -> None:
    try:
        card = parse_rate_card(spec)
    except CreditgateError as exc:
        assert isinstance(exc, InvalidInput) and exc.field, exc
        return
    _valid_card(card)


@FUZZ
@given(
    json_like | near_valid(CARD["actions"]["chat.completion"]),
    st.dictionaries(st.text(max_size=12), json_like, max_size=4)
    | st.fixed_dictionaries({"input_tokens": json_like, "output_tokens": json_like}),
    st.dictionaries(st.text(max_size=12), json_like, max_size=4) | json_like,
)
def test_quotes_price_or_name_the_fault(action_spec: Any, quantities: Any, dims: Any) -> None:
    try:
        card = parse_rate_card({"asset": "credits", "actions": {"a": action_spec}})
    except CreditgateError:
        card = parse_rate_card({"asset": "credits", "actions": {"a": {"prices": [{"flat": "1"}]}}})
    try:
        priced = quote(card, "a", dims, quantities, asset=Asset("credits", 2))
    except CreditgateError as exc:
        assert isinstance(exc, InvalidInput), exc
        return
    assert 0 <= priced.amount <= MAX_AMOUNT


@FUZZ
@given(json_like | near_valid(MODEL_PRICES))
@example(
    {"GPT": {"input_mtok": "1", "output_mtok": "1"}, "gpt": {"input_mtok": "1", "output_mtok": "1"}}
)
@example({"m": {"input_mtok": "1"}})
def test_model_prices_parse_or_name_the_fault(spec: Any) -> None:
    try:
        prices = parse_model_prices(spec)
    except CreditgateError as exc:
        assert isinstance(exc, InvalidInput) and exc.field, exc
        return
    assert all(isinstance(p, TokenPrices) and model == model.lower() for model, p in prices.items())


card_files = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    json_like.map(lambda v: _json(v)),
    near_valid(CARD).map(lambda v: _json(v)),
    # Nested past the interpreter's recursion limit (1,000), and short of it.
    st.sampled_from([10, 900, 1_500, 5_000]).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([10, 900, 1_500, 5_000]).map(lambda n: b"a:\n" + b"[" * n),
    st.integers(4_000, 5_000).map(lambda n: b"x: " + b"9" * n),
    st.sampled_from(
        [
            b"!!python/object/apply:os.system ['true']",
            b"a: &a [*a]",
            b"a: !!binary aGVsbG8=\nb: 2001-12-14\nc: !!set {x, y}",
            b"? [1, 2]\n: 3",
            b'{"a": NaN, "b": Infinity}',
            b"\xef\xbb\xbf{}",
            b"\xff\xfe\x00a\x00",
            b"asset: credits\nactions: {a: {prices: [{flat: .inf}]}}",
            b"asset: credits\nactions: {a: {prices: [{flat: 0.30}]}}",
        ]
    ),
)


# A file on disk per example, read by the YAML or JSON loader: a fifth of the other parsers'
# examples (the parsing behind it is fuzzed at full count above).
@settings(FUZZ, max_examples=max(1, EXAMPLES // 5))
@given(card_files, st.sampled_from([".json", ".yaml", ".yml", ".txt"]))
def test_rate_card_files_load_or_say_why(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = tmp_path / f"card{suffix}"
    path.write_bytes(content)
    try:
        spec = load_spec(path)
    except CliError as exc:
        assert str(exc)
        return
    assert isinstance(spec, dict)
    try:
        parse_rate_card(spec)
    except CreditgateError as exc:
        assert exc.field, exc


def test_a_rate_card_file_reads_its_decimals_exactly(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text("asset: credits\nactions: {a: {prices: [{flat: 0.30}]}}\n")
    card = parse_rate_card(load_spec(path))
    assert card.actions["a"].rules[0].flat == Decimal("0.30")


key_texts = st.one_of(
    st.text(max_size=MAX_KEY_LENGTH + 20),
    st.builds(
        lambda prefix, secret: f"cg_{prefix}_{secret}",
        st.text(PREFIX_ALPHABET, min_size=7, max_size=9),
        st.text(min_size=30, max_size=60),
    ),
    st.builds(
        lambda prefix, secret: f"cg_{prefix}_{secret}",
        st.text(PREFIX_ALPHABET, min_size=8, max_size=8),
        st.text(sorted(SECRET_ALPHABET), min_size=30, max_size=MAX_KEY_LENGTH),
    ),
)


@FUZZ
@given(key_texts)
@example("cg_abcdefgh_" + "\ud800" * 40)
@example("cg_abcdefgh_" + "é" * 40)
@example("cg_ABCDEFGH_" + "a" * 40)
@example("cg_abcdefgh_" + "a" * 400)
def test_api_keys_parse_or_are_refused(key: str) -> None:
    try:
        prefix, secret = parse_key(key)
    except Unauthenticated:
        return
    assert key == f"cg_{prefix}_{secret}" and len(key) <= MAX_KEY_LENGTH
    assert len(prefix) == 8 and set(prefix) <= set(PREFIX_ALPHABET)
    assert len(secret) >= 32 and set(secret) <= SECRET_ALPHABET
    secret.encode("ascii")  # hashable as sent: no surrogates, nothing outside ASCII


def test_a_created_key_parses() -> None:
    import secrets

    secret = secrets.token_urlsafe(32)
    assert parse_key(f"cg_abcd1234_{secret}") == ("abcd1234", secret)


def _event(metadata: Any) -> bytes:
    return _json({"id": "evt_1", "data": {"object": {"metadata": metadata}}})


stripe_payloads = st.one_of(
    st.binary(max_size=200),
    json_like.map(lambda v: _json(v)),
    json_like.map(lambda v: _json({"data": v})),
    json_like.map(lambda v: _json({"data": {"object": v}})),
    json_like.map(lambda v: _event(v)),
    json_like.map(lambda v: _event({"creditgate_tenant": v})),
    st.integers(1, 100_000).map(lambda n: b'{"data":' * n + b"1" + b"}" * n),
    st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
)


@FUZZ
@given(stripe_payloads)
@example(b'{"data": {"object": {"metadata": {"creditgate_tenant": "ten_1"}}}}')
@example(b'{"data": {"object": {"metadata": "x"}}}')
@example(b'{"data": {"object": []}}')
@example(b'{"data": {"object": {"metadata": {"creditgate_tenant": 5}}}}')
@example("\ud800".encode("utf-8", "surrogatepass"))
def test_stripe_events_name_a_tenant_or_none(payload: bytes) -> None:
    tenant = stripe_event_tenant(payload)
    assert tenant is None or isinstance(tenant, str)


@pytest.mark.parametrize(
    "payload, tenant",
    [
        (b'{"data": {"object": {"metadata": {"creditgate_tenant": "ten_1"}}}}', "ten_1"),
        (b'{"data": {"object": {"metadata": null}}}', None),
        (b'{"data": ' * 100_000 + b"{}" + b"}" * 100_000, None),
    ],
)
def test_stripe_event_tenants(payload: bytes, tenant: str | None) -> None:
    assert stripe_event_tenant(payload) == tenant
