"""Aimed crashes take turns: one at most every CRASH_EVERY seconds across the collection's
requests and the members' calls, in rotation, so adding a party adds no crashes; a turn left
untaken goes to whoever asks. The first aimed crash freezes its server before the
operation goes, so that one operation at least is surely cut in the middle."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from creditgate.chaos import cluster
from creditgate.chaos.cluster import CRASH_EVERY, Crasher, CrashTurns, ServerProcess
from creditgate.storage.throwaway import listening_port


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


def test_a_run_may_space_its_aimed_crashes_closer(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(cluster.time, "monotonic", lambda: now[0])
    turns = CrashTurns(parties=2, every=4.0)
    assert turns.take(0)
    now[0] += 3.9
    assert not turns.take(1)  # still too soon
    now[0] += 0.1
    assert turns.take(1)  # the second party's turn, 4 s on rather than CRASH_EVERY
    now[0] += 4.0
    assert not turns.take(1) and turns.take(0)


def test_one_party_takes_every_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(cluster.time, "monotonic", lambda: now[0])
    turns = CrashTurns()
    taken = 0
    for _ in range(10):
        taken += turns.take(0)
        now[0] += CRASH_EVERY / 2
    assert taken == 5


class _Draw(random.Random):
    """A caller's draw that always gives `value`."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_a_party_asks_at_every_operation_until_its_first_aimed_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A short run has an aimed crash from each party: before its first, a party's
    operations do not draw whether to ask, they all ask; after it, only `share` of them."""
    now = [100.0]
    monkeypatch.setattr(cluster.time, "monotonic", lambda: now[0])
    turns = CrashTurns(parties=2)
    crashed: list[str] = []
    crashers = [
        Crasher(lambda rng, down, base: crashed.append(base), random.Random(n), turns, party=n)
        for n in (0, 1)
    ]
    never, always = _Draw(0.999), _Draw(0.0)
    assert crashers[0].aim(["a"], 0.25, never) == "a"  # its first: no draw
    now[0] += 1.0
    assert crashers[1].aim(["b"], 0.25, never) is None  # its first, but not its turn yet
    now[0] += CRASH_EVERY
    assert crashers[1].aim(["b"], 0.25, never) == "b"
    now[0] += CRASH_EVERY
    assert crashers[0].aim(["a"], 0.25, never) is None  # its turn, but the draw says no
    assert crashers[0].aim(["a"], 0.25, always) == "a"
    for crasher in crashers:
        crasher.join()
    assert sorted(crashed) == ["a", "a", "b"] and [c.aimed for c in crashers] == [2, 1]


def test_the_first_aimed_crash_cuts_its_operation_in_the_middle(tmp_path: Path) -> None:
    """A request sent to the server an aimed crash picks is never answered: the server is
    frozen before the request goes (its socket still accepts) and killed after, so however
    quick the operation, its client sees a cut connection, not an answer or a refusal."""
    port = listening_port()
    server = ServerProcess("-", port, dict(os.environ), tmp_path / "server.log")
    server.proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(server.base + "/", timeout=1.0).status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the stand-in server did not start"
                time.sleep(0.05)
        killed: list[str] = []

        def crash(rng: random.Random, down: float, base: str) -> None:
            killed.append(base)
            server.kill()

        crasher = Crasher(crash, random.Random(1), freeze=lambda base: server.freeze())
        aimed = crasher.aim([server.base])
        assert aimed == server.base
        with pytest.raises(httpx.TransportError) as cut:
            httpx.get(aimed + "/", timeout=10.0)
        assert not isinstance(cut.value, httpx.ConnectError)  # sent, then cut: indefinite
        crasher.join()
        assert killed == [server.base] and crasher.aimed == 1 and crasher.errors == []
    finally:
        server.kill()


HOLD_THE_WRITE_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
time.sleep(600)
"""


def test_a_crash_kills_a_frozen_server_before_it_starts_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server frozen for an aimed crash holds what it held when stopped: on SQLite, the
    database's write lock. A crash of another server that comes before the frozen one's own
    kills the frozen one first, so the server it starts again does not wait on that lock (a
    chaos run on SQLite once waited 5 minutes there, each start given up after 60 s)."""
    # A start that waits on the lock fails here in 20 s, at its first attempt.
    monkeypatch.setattr(ServerProcess.wait_ready, "__defaults__", (20.0,))
    monkeypatch.setattr(cluster.Cluster._restart, "__defaults__", (1,))
    db = tmp_path / "chaos.db"
    cluster_ = cluster.Cluster(f"sqlite:///{db}", size=1, workdir=tmp_path)
    cluster_.start()
    (served,) = cluster_.servers
    holder = ServerProcess("-", listening_port(), dict(os.environ), tmp_path / "holder.log")
    holder.proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_WRITE_LOCK, str(db)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    cluster_.servers.append(holder)
    try:
        assert holder.proc.stdout is not None
        assert holder.proc.stdout.readline() == b"holding\n"
        cluster_.freeze(holder.base)
        assert holder.frozen and holder.alive()
        started = time.monotonic()
        cluster_.crash_one(random.Random(1), 0.0, served.base)
        assert not holder.alive() and not holder.frozen
        assert served.alive() and served.starts == 2
        assert time.monotonic() - started < 30
        ready = httpx.get(f"{served.base}/readyz", timeout=5.0)
        assert ready.status_code == 200
    finally:
        holder.kill()
        cluster_.stop()
