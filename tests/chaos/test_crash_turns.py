"""Aimed crashes take turns: one at most every CRASH_EVERY seconds across the collection's
requests and the members' calls, in rotation, so adding a party adds no crashes; a turn left
untaken goes to whoever asks."""

from __future__ import annotations

import pytest

from creditgate.chaos import cluster
from creditgate.chaos.cluster import CRASH_EVERY, CrashTurns


def test_turns_rotate_at_most_one_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(cluster.time, "monotonic", lambda: now[0])
    turns = CrashTurns(parties=2)
    assert turns.take(1)  # the first turn: whoever asks
    assert not turns.take(0) and not turns.take(1)  # too soon for anyone
    now[0] += CRASH_EVERY
    assert not turns.take(1)  # party 0's turn
    assert turns.take(0)
    now[0] += CRASH_EVERY
    assert not turns.take(0)
    assert turns.take(1)
    # Party 0 does not ask for its turn: after another interval it goes to party 1.
    now[0] += CRASH_EVERY
    assert not turns.take(1)
    now[0] += CRASH_EVERY
    assert turns.take(1)


def test_one_party_takes_every_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(cluster.time, "monotonic", lambda: now[0])
    turns = CrashTurns()
    taken = 0
    for _ in range(10):
        taken += turns.take(0)
        now[0] += CRASH_EVERY / 2
    assert taken == 5
