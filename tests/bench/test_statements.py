"""`python -m creditgate.bench.statements`: each gate call's statements and round trips, as
BENCHMARKS.md (issue 20, "One path per backend") accounts for them one by one. A call that
sends more is a change to the hot path that must be measured and written down there."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from creditgate.bench.statements import run_statements
from tests.databases import create_database, drop_database

# call: (statements, round trips) on PostgreSQL, and statements on SQLite.
POSTGRES = {
    "authorize": (5, 1),
    "settle": (10, 2),
    "authorize (to void)": (5, 1),
    "void": (6, 3),
    "charge": (9, 2),
    "authorize, declined": (15, 8),
    "authorize, replayed": (9, 3),
}
SQLITE = {
    "authorize": 6,
    "settle": 13,
    "authorize (to void)": 6,
    "void": 6,
    "charge": 12,
    "authorize, declined": 9,
    "authorize, replayed": 3,
}


def _by_call(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {call["call"]: call for call in result["calls"]}


def test_each_gate_call_on_postgresql(postgres_server: str) -> None:
    name = f"creditgate_statements_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server, name)
    try:
        calls = _by_call(run_statements(url))
    finally:
        drop_database(postgres_server, name)
    counted = {c: (v["statements"], v["round_trips"]) for c, v in calls.items()}
    # A call whose first attempt fails at the commit (a guard that misses, a key already
    # used) may not send that attempt's COMMIT: the driver stops sending a pipeline once an
    # error has come back, and on a busy machine the error can come before the COMMIT went.
    # The declined hold's rollback is also followed by the driver's DEALLOCATE ALL only when
    # its connection had prepared a statement by then (psycopg prepares from a statement's
    # fifth run on that connection).
    for call, extra in (("authorize, declined", (0, 1)), ("authorize, replayed", (0,))):
        statements, round_trips = POSTGRES[call]
        allowed = {(statements + e - cut, round_trips) for e in extra for cut in (0, 1)}
        assert counted.pop(call) in allowed, (call, calls[call]["steps"])
    assert counted == {
        c: v for c, v in POSTGRES.items() if c not in {"authorize, declined", "authorize, replayed"}
    }
    # Two calls run twice: the hold the wallet cannot pay (its guard misses at the commit)
    # and the replayed hold (its key, taken as new, conflicts at the commit).
    assert {c: v["careful_reruns"] for c, v in calls.items()} == {
        c: int(c in {"authorize, declined", "authorize, replayed"}) for c in POSTGRES
    }
    for call in calls.values():
        steps = call["steps"]
        assert steps[0][0].startswith("BEGIN") and steps[-1][-1] == "COMMIT"
    # A hold is one round trip: its BEGIN, its writes and COMMIT.
    assert len(calls["authorize"]["steps"]) == 1
    # The settle's writes all go in the commit's round trip, after its reads went in one
    # with its BEGIN.
    reads, writes = calls["settle"]["steps"]
    assert [s.split()[0] for s in reads] == ["BEGIN", "SELECT", "UPDATE", "SELECT", "SELECT"]
    assert writes[-1] == "COMMIT" and len(writes) == 5


def test_each_gate_call_on_sqlite(tmp_path: Path) -> None:
    calls = _by_call(run_statements(f"sqlite:///{tmp_path / 'statements.db'}"))
    assert {c: v["statements"] for c, v in calls.items()} == SQLITE
    assert all(v["careful_reruns"] == 0 and v["round_trips"] is None for v in calls.values())
    for call in calls.values():
        (steps,) = call["steps"]
        assert steps[0] == "BEGIN IMMEDIATE" and steps[-1] == "COMMIT"
