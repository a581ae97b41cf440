"""Identifiers keep their shape: a prefix, 10 base32 digits of milliseconds, 16 of randomness."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from creditgate.storage import ids

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def digit_at_a_time(value: int, length: int) -> str:
    """The encoding ids had from the start, written out: `length` digits, least significant
    last."""
    out = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        out.append(CROCKFORD[rem])
    return "".join(reversed(out))


@given(st.integers(0, (1 << 50) - 1), st.integers(0, (1 << 80) - 1))
def test_an_id_is_written_as_it_always_was(millis: int, rand: int) -> None:
    # Ids already stored sort among new ones by their text: the digits must not change.
    assert ids._encode(millis, rand) == digit_at_a_time(millis, 10) + digit_at_a_time(rand, 16)


def test_the_extremes_are_written_as_they_always_were() -> None:
    for millis, rand in [(0, 0), ((1 << 50) - 1, (1 << 80) - 1), (1, 1 << 79)]:
        assert ids._encode(millis, rand) == digit_at_a_time(millis, 10) + digit_at_a_time(rand, 16)


def test_ids_have_their_shape_and_follow_creation_order() -> None:
    made = [ids.new_id("hld") for _ in range(2_000)]
    assert all(re.fullmatch(r"hld_[0-9a-hjkmnp-tv-z]{26}", i) for i in made)
    assert made == sorted(made)
    assert len(set(made)) == len(made)
