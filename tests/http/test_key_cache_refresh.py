"""The key cache verifies a key in use again before its entry ends, on a thread of its own, so
a key in steady use never misses; an entry is never served past its time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from creditgate.domain.errors import Unauthenticated
from creditgate.http.auth import KeyCache

TTL = 0.4


@dataclass(frozen=True)
class Holder:
    key_id: str


class Keys:
    """A key table: `load` as the cache calls it, counting, optionally slow or revoked."""

    def __init__(self) -> None:
        self.loads = 0
        self.revoked = False
        self.gate = threading.Event()
        self.gate.set()

    def load(self, key: str) -> Holder:
        self.gate.wait(5)
        self.loads += 1
        if self.revoked:
            raise Unauthenticated("revoked")
        return Holder(key)


def cache(keys: Keys) -> KeyCache[Any]:
    return KeyCache(object(), ttl=TTL, load=keys.load)  # type: ignore[arg-type]


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_key_in_use_is_verified_again_once_before_its_entry_ends() -> None:
    keys = Keys()
    c = cache(keys)
    assert c.cached("k") is None
    c.load("k")
    assert c.cached("k") == Holder("k") and keys.loads == 1  # first half: no verification
    time.sleep(TTL * 0.6)
    for _ in range(50):  # second half: served, and verified once however many ask
        assert c.cached("k") == Holder("k")
    wait_for(lambda: keys.loads == 2)
    time.sleep(0.05)
    assert keys.loads == 2
    time.sleep(TTL * 0.5)  # past the first entry's end: the new one serves
    assert c.cached("k") == Holder("k")


def test_an_entry_is_never_served_past_its_time() -> None:
    keys = Keys()
    c = cache(keys)
    c.load("k")
    keys.gate.clear()  # the verification hangs
    time.sleep(TTL * 0.6)
    assert c.cached("k") == Holder("k")
    time.sleep(TTL * 0.5)
    assert c.cached("k") is None
    keys.gate.set()


def test_a_key_revoked_meanwhile_is_dropped_by_its_verification() -> None:
    keys = Keys()
    c = cache(keys)
    c.load("k")
    keys.revoked = True
    time.sleep(TTL * 0.6)
    assert c.cached("k") == Holder("k")  # within its time, as before
    wait_for(lambda: c.cached("k") is None)


@pytest.mark.parametrize("during", [True, False])
def test_a_forgotten_key_is_not_brought_back_by_a_verification_begun_before(during: bool) -> None:
    keys = Keys()
    c = cache(keys)
    c.load("k")
    time.sleep(TTL * 0.6)
    keys.gate.clear()
    c.cached("k")  # starts the verification, which waits
    if during:
        c.forget("k")
    keys.gate.set()
    wait_for(lambda: keys.loads == 2)
    time.sleep(0.05)
    assert (c.cached("k") is None) is during
