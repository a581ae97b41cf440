"""`creditgate bench http --floor` runs end to end, briefly: the floor server and `creditgate
serve` on fresh databases, the same load on each, CPU per pair by process, and the statements
each sends per pair counted through the wire relay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from creditgate.bench.floor import SCHEMA
from creditgate.bench.http_floor import pin_workers, run_http_floor
from creditgate.bench.pgwire import StatementCounter, is_commit, normalize
from creditgate.cli.main import run
from creditgate.storage.throwaway import create_database, drop_database, libpq_dsn


def test_the_floor_and_creditgate_serve_the_same_pairs(postgres_server: str) -> None:
    result = run_http_floor(
        postgres_server,
        rates=[15.0],
        seconds=1.0,
        rounds=1,
        workers=1,
        pool_size=2,
        client_processes=1,
        connections=4,
        without_edge=True,
        lean=True,
        pinned=True,
        count_seconds=1.0,
        warmup_seconds=0.2,
    )
    assert result["contenders"] == ["floor", "creditgate", "no-edge", "lean"]
    assert result["pinned"] is True
    assert [(r["contender"], r["rate"]) for r in result["runs"]] == [
        ("floor", 15.0),
        ("creditgate", 15.0),
        ("no-edge", 15.0),
        ("lean", 15.0),
    ]
    for run_ in result["runs"]:
        # Open loop: a second at 15/s is 15 pairs, each authorized and settled, or refused at
        # once (429/503) if the server was over its in-flight limit: on a 2-core machine busy
        # with the rest of the suite, a server can stall long enough for that. Nothing fails.
        assert run_["errors"] == 0 and run_["declined"] == 0, run_
        assert run_["pairs"] + run_["refused"] == 15 and run_["pairs"] > 0, run_
        assert run_["p99_ms"] >= run_["p50_ms"] > 0
        # Over the time until the last pair was answered: never more than over the offered
        # seconds, and less when answers came after them.
        assert 0 < run_["sustained_pairs_per_s"] <= run_["pairs_per_s"]
        assert run_["server_cpu_ms_per_pair"] > 0 and run_["client_cpu_ms_per_pair"] > 0
        # An authorize and a settle: a commit each, and more (on so short a run, the
        # database's own transactions, autovacuum's analyses among them, weigh in).
        assert run_["commits_per_pair"] >= 2
    (row,) = result["summary"]
    served = {run_["contender"]: run_["pairs_per_s"] for run_ in result["runs"]}
    assert row["ratio"]["pairs_per_s"] == round(served["creditgate"] / served["floor"], 2)
    sustained = {run_["contender"]: run_["sustained_pairs_per_s"] for run_ in result["runs"]}
    ratio = round(sustained["creditgate"] / sustained["floor"], 2)
    assert row["ratio"]["sustained_pairs_per_s"] == result["peak_ratio_sustained"] == ratio
    # The same creditgate without its edge (`serve --no-edge`): its own ratio to creditgate.
    ratio = round(served["creditgate"] / served["no-edge"], 2)
    assert row["ratio_with_edge_to_without"]["pairs_per_s"] == ratio
    # creditgate's ledger behind the floor's handling (`bench.lean`): its ratio to the floor.
    assert row["ratio_lean"]["pairs_per_s"] == round(served["lean"] / served["floor"], 2)
    # Counted: the floor and creditgate (without its edge, or behind the floor's handling, it
    # sends the same statements).
    assert set(result["counted"]) == {"floor", "creditgate"}
    floor, creditgate = result["counted"]["floor"], result["counted"]["creditgate"]
    # The floor's pair, statement by statement: per call a key lookup, one write of the
    # balance (with the hold's, at settle), one insert of its own and the key's record.
    assert floor["statements_per_pair"] == 12 and floor["commits_per_pair_sent"] == 2
    assert floor["statements"]["BEGIN"] == 2 and floor["statements"]["COMMIT"] == 2
    assert creditgate["commits_per_pair_sent"] >= 2
    assert creditgate["statements_per_pair"] > floor["statements_per_pair"]
    assert creditgate["index_entries_written_per_pair"] > 0


def test_the_relay_counts_statements_by_text_prepared_or_not(postgres_server: str) -> None:
    url = make_url(create_database(postgres_server, "creditgate_test_relay"))
    relay = StatementCounter(url.host or "127.0.0.1", url.port or 5432)
    try:
        through = url.set(host="127.0.0.1", port=relay.port).update_query_dict(
            {"sslmode": "disable", "gssencmode": "disable"}
        )
        with psycopg.connect(libpq_dsn(through.render_as_string(hide_password=False))) as conn:
            conn.execute(SCHEMA)
            relay.reset()
            for n in range(7):  # prepared from the fifth on: parsed once, executed each time
                conn.execute("select  key\n from floor_keys where key = %s", (str(n),))
            conn.commit()
            with conn.pipeline():
                conn.execute("insert into floor_keys values ('a')")
                conn.execute("insert into floor_keys values ('b')")
        statements, syncs = relay.snapshot()
    finally:
        relay.close()
        drop_database(postgres_server, "creditgate_test_relay")
    assert statements[normalize("select key from floor_keys where key = $1")] == 7
    assert statements["insert into floor_keys values ('a')"] == 1
    assert sum(n for text, n in statements.items() if is_commit(text)) == 2
    assert syncs >= 8


def test_bench_http_floor_needs_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["bench", "http", "--floor", "--db", "sqlite:///x.db", "--json"]) != 0
    assert "PostgreSQL" in capsys.readouterr().err


def test_pinning_puts_each_worker_and_its_threads_on_one_cpu(tmp_path: Path) -> None:
    """`pin_workers` on a server of two spawned workers, each with a thread started before it
    is pinned and one after: each worker, and every thread of it, on a CPU of its own in
    turn."""
    script = textwrap.dedent(
        """
        import multiprocessing, os, sys, threading, time

        def worker(ready, go, out):
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
            ready.put(os.getpid())
            go.wait()
            late = threading.Thread(target=lambda: out.put(
                (os.getpid(), sorted(os.sched_getaffinity(0)))), daemon=True)
            late.start()
            late.join()
            tasks = os.listdir(f"/proc/{os.getpid()}/task")
            out.put((os.getpid(), sorted({c for t in tasks for c in os.sched_getaffinity(int(t))})))
            time.sleep(60)

        if __name__ == "__main__":
            multiprocessing.set_start_method("spawn")
            ready, out = multiprocessing.Queue(), multiprocessing.Queue()
            go = multiprocessing.Event()
            for _ in range(2):
                multiprocessing.Process(target=worker, args=(ready, go, out), daemon=True).start()
            pids = sorted(ready.get(timeout=60) for _ in range(2))
            print(" ".join(map(str, pids)), flush=True)
            sys.stdin.readline()
            go.set()
            for _ in range(4):
                print(*out.get(timeout=60), flush=True)
        """
    )
    (tmp_path / "server.py").write_text(script)
    server = subprocess.Popen(
        [sys.executable, str(tmp_path / "server.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        workers = [int(pid) for pid in server.stdout.readline().split()]
        cpus = sorted(os.sched_getaffinity(0))
        pinned = pin_workers(server)  # type: ignore[arg-type]
        assert pinned == [cpus[0], cpus[1 % len(cpus)]]
        server.stdin.write("go\n")
        server.stdin.flush()
        seen: dict[int, set[int]] = {}
        for _ in range(4):
            pid, found = server.stdout.readline().split(" ", 1)
            seen.setdefault(int(pid), set()).update(json.loads(found))
        assert {pid: sorted(c) for pid, c in seen.items()} == {
            workers[0]: [pinned[0]],
            workers[1]: [pinned[1]],
        }
    finally:
        server.kill()
        server.wait()
