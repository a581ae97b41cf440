"""`creditgate bench http --floor`: creditgate against the floor (`bench.floor`), interleaved.

Each run gets a fresh database on the same PostgreSQL server, a fresh server (creditgate
serve or the floor, the same workers and connections per worker) and the same open-loop
load (`bench.http.load`) at the same offered rate; the two alternate within each round,
and which goes first alternates between rounds, so a machine whose speed moves (it is
shared) moves both. Reported per contender and rate: the medians over the rounds of pairs/s,
p50/p99, and CPU ms per pair by process (the server's tree, PostgreSQL's processes for that
database plus the shared ones, the load generator), and commits per pair from
`pg_stat_database`; the ratios of creditgate to the floor at each rate.

Then, once per contender, a short counted run at a low rate through `bench.pgwire`'s relay:
statements and round trips (Syncs) per pair, with each statement's count, and from
PostgreSQL's statistics the index scans and rows written per pair. `no-edge` is not counted:
it sends the statements creditgate sends (the edge only serves HTTP).

With `pin_workers`, every contender's worker processes are each put on one CPU, in turn,
once its server answers (`pin_workers`): a measurement of what a worker whose threads stay
on one CPU costs, for every contender alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from creditgate.bench import floor
from creditgate.bench.http import (
    CUSTOMERS,
    WARMUP_SECONDS,
    _cpu_ticks,
    load,
    setup_creditgate,
    start_server,
    stop_server,
    wait_ready,
)
from creditgate.bench.pgwire import StatementCounter, is_commit
from creditgate.http import DEFAULT_MAX_IN_FLIGHT
from creditgate.storage.throwaway import create_database, drop_database, libpq_dsn, listening_port

CONTENDERS = ("floor", "creditgate")
# Contenders served by a server of their own (bench.floor, .lean), not `creditgate serve`.
OWN_SERVERS = ("floor", "lean")
# Contenders that send creditgate's own statements: a counted run of theirs would repeat it.
UNCOUNTED = ("no-edge", "lean")
COUNT_RATE = 20.0  # pairs/s of the counted run: one at a time, nothing combined
COUNT_SECONDS = 4.0

# Per table: index scans, rows inserted, updated (of which HOT: no index touched), deleted.
_TABLE_STATS = """
select coalesce(sum(idx_scan), 0), coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0),
       coalesce(sum(n_tup_hot_upd), 0), coalesce(sum(n_tup_del), 0),
       coalesce(sum((select count(*) from pg_index i where i.indrelid = t.relid)
                    * (n_tup_ins + n_tup_upd - n_tup_hot_upd)), 0)
from pg_stat_user_tables t
"""


def _stats(dsn: str, database: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        commits, rollbacks = conn.execute(
            "select xact_commit, xact_rollback from pg_stat_database where datname = %s",
            (database,),
        ).fetchone() or (0, 0)
        scans, ins, upd, hot, dele, entries = conn.execute(_TABLE_STATS).fetchone() or (0,) * 6
    return {
        "commits": int(commits),
        "rollbacks": int(rollbacks),
        "index_scans": int(scans),
        "rows_inserted": int(ins),
        "rows_updated": int(upd),
        "hot_updates": int(hot),
        "rows_deleted": int(dele),
        "index_entries_written": int(entries),
    }


def _delta(after: dict[str, int], before: dict[str, int], pairs: int) -> dict[str, float]:
    return {k: round((after[k] - before[k]) / max(1, pairs), 2) for k in after}


def _stats_once_stopped(server: subprocess.Popen[bytes], dsn: str, database: str) -> dict[str, int]:
    """`_stats` after a run: the server stopped first, so that its backends end and flush
    their statistics."""
    stop_server(server)
    time.sleep(0.5)
    return _stats(dsn, database)


def _start(module: str, args: list[str], port: int, what: str) -> subprocess.Popen[bytes]:
    """`python -m <module> <args>`, serving on `port` once it answers."""
    command = [sys.executable, "-m", module, *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    return wait_ready(process, port, what)


def _start_floor(dsn: str, port: int, workers: int, pool_size: int) -> subprocess.Popen[bytes]:
    args = [dsn, str(port), str(workers), str(pool_size)]
    return _start("creditgate.bench.floor", args, port, "the floor server")


def pin_workers(server: subprocess.Popen[bytes]) -> list[int]:
    """Put each worker process of `server` (uvicorn's spawned workers, or the server itself
    when it has none), every thread of it, on one CPU of those this process may use, in
    turn. Threads a worker starts later inherit it. The CPUs, in the order of the workers."""
    cpus = sorted(os.sched_getaffinity(0))
    children = [pid for pid, (parent, _, _) in _cpu_ticks().items() if parent == server.pid]
    workers = sorted(pid for pid in children if b"spawn_main" in _read(f"/proc/{pid}/cmdline")) or [
        server.pid
    ]
    pinned = []
    for n, pid in enumerate(workers):
        cpu = cpus[n % len(cpus)]
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(task), {cpu})
            except ProcessLookupError:  # a thread that has ended meanwhile
                continue
        pinned.append(cpu)
    return pinned


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # a process that has ended meanwhile
        return b""


class _Run:
    """One contender on a fresh database: set up, served, loaded, stopped, dropped."""

    def __init__(
        self,
        server_url: str,
        who: str,
        workers: int,
        pool_size: int,
        mif: int,
        src: str | None = None,
        edge: bool = True,
        pinned: bool = False,
    ):
        self.server_url = server_url
        self.pinned = pinned
        self.who = who
        self.src = src
        self.edge = edge
        self.workers = workers
        self.pool_size = pool_size
        self.max_in_flight = mif

    def __call__(
        self,
        measure: Callable[[int, str, list[str], subprocess.Popen[bytes], str], Any],
        *,
        through: StatementCounter | None = None,
    ) -> Any:
        name = f"creditgate_floor_{self.who}_{uuid.uuid4().hex[:8]}"
        url = create_database(self.server_url, name)
        try:
            served = url
            if through is not None:  # the server reaches PostgreSQL through the relay
                served = (
                    make_url(url)
                    .set(host="127.0.0.1", port=through.port)
                    .update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
                    .render_as_string(hide_password=False)
                )
            port = listening_port()
            if self.who == "floor":
                customers = [f"bench-{n}" for n in range(CUSTOMERS)]
                key = floor.prepare(libpq_dsn(url), customers, 10**15)
                server = _start_floor(libpq_dsn(served), port, self.workers, self.pool_size)
            elif self.who == "lean":
                key, customers, _, _ = setup_creditgate(url, self.src)
                args = [served, str(port), str(self.workers), str(self.pool_size), key]
                server = _start("creditgate.bench.lean", args, port, "the lean server")
            else:
                key, customers, _, _ = setup_creditgate(url, self.src)
                # The sweeper's rounds would count as the pairs' statements in a counted run.
                server = start_server(
                    served,
                    port,
                    self.workers,
                    self.max_in_flight,
                    self.pool_size,
                    sweep_seconds=3600 if through is not None else None,
                    src=self.src,
                    edge=self.edge,
                )
            if self.pinned:
                pin_workers(server)
            try:
                return measure(port, key, customers, server, url)
            finally:
                stop_server(server)
        finally:
            drop_database(self.server_url, name)


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


FIGURES = (
    "pairs_per_s",
    "sustained_pairs_per_s",
    "p50_ms",
    "p99_ms",
    "server_cpu_ms_per_pair",
    "postgres_cpu_ms_per_pair",
    "client_cpu_ms_per_pair",
    "commits_per_pair",
    "errors",
    "refused",
)


def run_http_floor(
    server_url: str,
    *,
    rates: list[float],
    seconds: float,
    rounds: int = 3,
    workers: int = 2,
    pool_size: int = 10,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    client_processes: int = 2,
    connections: int = 128,
    count: bool = True,
    count_seconds: float = COUNT_SECONDS,
    warmup_seconds: float = WARMUP_SECONDS,
    before_src: str | None = None,
    without_edge: bool = False,
    pinned: bool = False,
    lean: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Creditgate and the floor at each of `rates`, `rounds` times interleaved; see above.
    With `before_src` (an earlier commit's source tree), that creditgate too, as `before`;
    with `without_edge`, this creditgate without its edge (`serve --no-edge`), as `no-edge`;
    with `lean`, creditgate's ledger behind the floor's raw ASGI handling (`bench.lean`), as
    `lean`; with `pinned`, every contender's workers each on one CPU (`pin_workers`)."""
    runs: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    contenders = (
        CONTENDERS
        + (("no-edge",) if without_edge else ())
        + (("lean",) if lean else ())
        + (("before",) if before_src else ())
    )
    sources = {"before": before_src}

    def run_of(who: str) -> _Run:
        kind = who if who in OWN_SERVERS else "creditgate"
        src, edge = sources.get(who), who != "no-edge"
        return _Run(server_url, kind, workers, pool_size, max_in_flight, src, edge, pinned)

    def measured(rate: float) -> Callable[..., dict[str, Any]]:
        def measure(
            port: int, key: str, customers: list[str], server: Any, url: str
        ) -> dict[str, Any]:
            dsn, database = libpq_dsn(url), make_url(url).database or ""
            before = _stats(dsn, database)
            figures = load(
                port,
                key,
                customers,
                server,
                rate=rate,
                seconds=seconds,
                client_processes=client_processes,
                connections=connections,
                database=database,
                warmup_seconds=warmup_seconds,
            )
            after = _stats_once_stopped(server, dsn, database)
            figures["commits_per_pair"] = _delta(after, before, figures["all_pairs"])["commits"]
            return figures

        return measure

    for round_ in range(rounds):
        order = contenders if round_ % 2 == 0 else contenders[::-1]
        for rate in rates:
            for who in order:
                run = run_of(who)
                try:
                    figures = run(measured(rate))
                except RuntimeError as exc:  # a server that never got ready: the run is lost
                    failed.append({"contender": who, "rate": rate, "error": str(exc)})
                    continue
                figures.update(contender=who, round=round_ + 1)
                runs.append(figures)
                if progress is not None:
                    progress(
                        f"round {round_ + 1} {who:>10} at {rate:g}/s: "
                        f"{figures['pairs_per_s']} pairs/s, p50 {figures['p50_ms']} ms, "
                        f"p99 {figures['p99_ms']} ms, server "
                        f"{figures.get('server_cpu_ms_per_pair')} ms/pair, "
                        f"errors {figures['errors']}"
                    )
    summary: list[dict[str, Any]] = []
    for rate in rates:
        row: dict[str, Any] = {"rate": rate}
        for who in contenders:
            mine = [r for r in runs if r["rate"] == rate and r["contender"] == who]
            row[who] = {k: _median(mine, k) for k in FIGURES}
        f = row["floor"]
        for who in contenders[1:]:
            c = row[who]
            row["ratio" if who == "creditgate" else f"ratio_{who}"] = {
                k: round(c[k] / f[k], 2) if c.get(k) and f.get(k) else None
                for k in (
                    "pairs_per_s",
                    "sustained_pairs_per_s",
                    "server_cpu_ms_per_pair",
                    "postgres_cpu_ms_per_pair",
                )
            }
        if without_edge:  # what the edge pays: creditgate with it, to the same without
            on, off = row["creditgate"], row["no-edge"]
            row["ratio_with_edge_to_without"] = {
                k: round(on[k] / off[k], 2) if on.get(k) and off.get(k) else None
                for k in ("pairs_per_s", "server_cpu_ms_per_pair", "postgres_cpu_ms_per_pair")
            }
        summary.append(row)
    counted = {}
    if count:
        for who in contenders:
            if who in UNCOUNTED:
                continue
            run = run_of(who)
            counted[who] = count_statements(
                server_url,
                run.who,
                workers,
                pool_size,
                max_in_flight,
                run.src,
                run.edge,
                seconds=count_seconds,
                warmup_seconds=warmup_seconds,
            )
    peak = max(rates)
    top = next(r for r in summary if r["rate"] == peak)
    return {
        "benchmark": "http --floor",
        "rounds": rounds,
        "seconds": seconds,
        "workers": workers,
        "pool_size": pool_size,
        "rates": rates,
        "contenders": list(contenders),
        "pinned": pinned,
        "peak_ratio": top["ratio"]["pairs_per_s"],
        "peak_ratio_sustained": top["ratio"]["sustained_pairs_per_s"],
        "peak_ratio_before": top.get("ratio_before", {}).get("pairs_per_s"),
        "summary": summary,
        "counted": counted,
        "runs": runs,
        "failed_runs": failed,
    }


def count_statements(
    server_url: str,
    who: str,
    workers: int,
    pool_size: int,
    max_in_flight: int,
    src: str | None = None,
    edge: bool = True,
    *,
    seconds: float = COUNT_SECONDS,
    warmup_seconds: float = WARMUP_SECONDS,
) -> dict[str, Any]:
    """Statements, round trips, commits, index scans and rows written per pair, counted over
    a short run at a low rate after a warm-up (connections opened, statements prepared)."""
    host = make_url(server_url)
    relay = StatementCounter(host.host or "127.0.0.1", host.port or 5432)
    try:

        def measure(
            port: int, key: str, customers: list[str], server: Any, url: str
        ) -> dict[str, Any]:
            dsn, database = libpq_dsn(url), make_url(url).database or ""
            # Connections opened and statements prepared before counting (a short count
            # warms for half as long).
            warm = min(2.0, seconds / 2)
            load(
                port,
                key,
                customers,
                server,
                rate=COUNT_RATE,
                seconds=warm,
                client_processes=1,
                warmup_seconds=warmup_seconds,
            )
            relay.reset()
            before = _stats(dsn, database)
            figures = load(
                port,
                key,
                customers,
                server,
                rate=COUNT_RATE,
                seconds=seconds,
                client_processes=1,
                warmup_seconds=warmup_seconds,
            )
            statements, syncs = relay.snapshot()
            after = _stats_once_stopped(server, dsn, database)
            pairs = max(1, figures["all_pairs"])
            per_pair = {
                text: round(n / pairs, 2) for text, n in statements.most_common() if n >= pairs / 4
            }
            return {
                "pairs": pairs,
                "statements_per_pair": round(sum(statements.values()) / pairs, 2),
                "round_trips_per_pair": round(syncs / pairs, 2),
                "commits_per_pair_sent": round(
                    sum(n for t, n in statements.items() if is_commit(t)) / pairs, 2
                ),
                **{f"{k}_per_pair": v for k, v in _delta(after, before, pairs).items()},
                "statements": per_pair,
            }

        run = _Run(server_url, who, workers, pool_size, max_in_flight, src, edge)
        counted: dict[str, Any] = run(measure, through=relay)
        return counted
    finally:
        relay.close()
