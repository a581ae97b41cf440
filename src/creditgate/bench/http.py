"""`creditgate bench http`: authorize + settle pairs over HTTP against `creditgate serve`.

The server runs as its own process (`--workers N` of them on PostgreSQL); the load comes
from other processes over loopback, open loop: pair i is due at start + i / rate whether or
not earlier pairs have finished, and its latency counts from when it was due, so a server
that falls behind shows it (no coordinated omission). A pair due while every connection is
busy opens another one, as one more user would: the client never queues requests itself,
so a server that lets a queue grow shows it in its latency, and one that sheds load shows
it in refusals (503/429, counted apart from errors). The client is a minimal HTTP/1.1
keep-alive client on asyncio, because a general-purpose client would be the bottleneck on a
small machine.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from creditgate.http import DEFAULT_MAX_IN_FLIGHT
from creditgate.storage.throwaway import listening_port

# The ledger (`creditgate.api`) is imported where a tenant is set up, not here: the load
# processes import this module and start in a moment.

HOLD = 1_000
ACTUAL = 800
CUSTOMERS = 100
WARMUP_SECONDS = 1.0
START_AHEAD_SECONDS = 0.3  # from every load process being ready to their common start
MAX_CONNECTIONS = 2_000  # per client process


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time.

    A protocol rather than streams, and responses parsed by hand: they come from our own
    server, always with a Content-Length, so the client stays cheap next to the server on
    the same cores.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    @classmethod
    async def open(cls, port: int) -> Connection:
        _, conn = await asyncio.get_running_loop().create_connection(cls, "127.0.0.1", port)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        line_end = head.find(b"\r\n", at + 2)
        if line_end < 0:  # the last header
            line_end = len(head)
        length = int(head[at + 17 : line_end]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def request(self, head: bytes, body: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Send `head` (request line and headers, but for Content-Length) and `body`."""
        waiter = asyncio.get_running_loop().create_future()
        if self.transport is None:
            waiter.set_exception(ConnectionResetError("not connected"))
            return waiter
        self.waiter = waiter
        self.transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
        return waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Tally:
    pairs: int = 0
    all_pairs: int = 0  # warm-up included: what the CPU account divides by
    cpu_seconds: float = 0.0  # the client process's own
    declined: int = 0
    refused: int = 0
    settles_refused: int = 0
    errors: int = 0
    connections: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)  # by status or exception
    pair_ms: list[float] = field(default_factory=list)
    authorize_ms: list[float] = field(default_factory=list)
    # Seconds from the start of the measured load to the last measured pair's answer: past
    # the measured seconds when the server answers late (a queue that keeps growing).
    span: float = 0.0


async def _generate(
    port: int,
    key: str,
    customers: list[str],
    rate: float,
    seconds: float,
    start_at: float,
    connections: int,
    label: str,
    warmup_seconds: float = WARMUP_SECONDS,
) -> Tally:
    # First in, first out: every connection keeps being used, so none sits idle long enough
    # for the server to close it (uvicorn's keep-alive timeout is 5 s).
    idle = deque([await Connection.open(port) for _ in range(connections)])
    opened = [len(idle)]
    common = (
        b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\n" % key.encode()
    )
    holds = [
        json.dumps({"customer": c, "asset": "credits", "amount": HOLD}).encode() for c in customers
    ]
    usage = json.dumps({"amount": ACTUAL}).encode()
    tag = label.encode()
    tally = Tally()
    # Wall clock to agree on the start across processes; perf_counter for every interval.
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu_from = time.process_time()
    origin = time.perf_counter()
    warm, measured = pair_counts(rate, warmup_seconds, seconds)
    measured_from = origin + warm / rate

    def error(counted: bool, kind: str) -> None:
        if counted:
            tally.errors += 1
            tally.error_kinds[kind] = tally.error_kinds.get(kind, 0) + 1

    async def pair(i: int, due: float) -> None:
        counted = i >= warm
        conn = None
        try:
            while idle and conn is None:
                conn = idle.popleft()
                if conn.transport is None:  # closed by the server meanwhile
                    conn = None
            if conn is None:  # every connection is busy: one more user
                if opened[0] >= MAX_CONNECTIONS:
                    raise ConnectionError("too many connections")
                opened[0] += 1
                conn = await Connection.open(port)
            status, body = await conn.request(
                b"POST /v1/authorizations HTTP/1.1\r\n%sIdempotency-Key: %s-a%d\r\n"
                % (common, tag, i),
                holds[i % len(holds)],
            )
            authorized = time.perf_counter()
            if status in (429, 503):
                tally.refused += counted
                return
            if status != 201:
                error(counted, f"authorize {status}")
                return
            answer = json.loads(body)
            if not answer["approved"]:
                tally.declined += counted
                return
            status, _ = await conn.request(
                b"POST /v1/authorizations/%s/settle HTTP/1.1\r\n%sIdempotency-Key: %s-s%d\r\n"
                % (answer["id"].encode(), common, tag, i),
                usage,
            )
            done = time.perf_counter()
            if status in (429, 503):
                tally.refused += counted
                tally.settles_refused += counted  # the hold stays taken until it expires
            elif status != 200:
                error(counted, f"settle {status}")
            else:
                tally.all_pairs += 1
                if counted:
                    tally.pairs += 1
                    tally.authorize_ms.append((authorized - due) * 1000)
                    tally.pair_ms.append((done - due) * 1000)
                    tally.span = max(tally.span, done - measured_from)
        except (OSError, ValueError, KeyError) as exc:
            error(counted, type(exc).__name__)
            if conn is not None:
                conn.close()
                conn = None
        finally:
            if conn is not None and conn.transport is not None:
                idle.append(conn)

    tasks = []
    i = 0
    while i < warm + measured:
        due = origin + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(pair(i, due)))
        i += 1
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()
    tally.connections = opened[0]
    tally.cpu_seconds = time.process_time() - cpu_from
    return tally


def pair_counts(rate: float, warmup_seconds: float, seconds: float) -> tuple[int, int]:
    """How many pairs a load sends in its warm-up, then in its measured seconds.

    The schedule goes by index, not by comparing float times: pair i is due at
    `origin + i / rate`, the first `warm` pairs are the warm-up and the next `measured` are
    counted. Compared as times, `origin + 0.2 + 1.0` can be above `origin + 18 / 15`, and a
    second at 15/s after 0.2 s of warm-up counted 16 pairs."""
    return round(warmup_seconds * rate), round(seconds * rate)


def _client_process(args: tuple[Any, ...], out: Any, ready: Any, go: Any) -> None:
    """One load process: says it is ready (imported), then loads from the start it is told."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional
        pass
    ready.put(os.getpid())
    start_at = go.get()
    port, key, customers, rate, seconds, connections, label, warmup = args
    out.put(
        asyncio.run(
            _generate(port, key, customers, rate, seconds, start_at, connections, label, warmup)
        )
    )


def start_server(
    url: str,
    port: int,
    workers: int,
    max_in_flight: int,
    pool_size: int,
    env: dict[str, str] | None = None,
    sweep_seconds: float | None = None,
    src: str | None = None,
    edge: bool = True,
) -> subprocess.Popen[bytes]:
    """`creditgate serve` on `port`, once it answers /readyz; `env` adds to the environment;
    `src`: the source tree to run it from (PYTHONPATH), an earlier commit's for comparing;
    `edge=False`: `serve --no-edge`, every request through FastAPI's router."""
    command = [
        sys.executable,
        "-m",
        "creditgate",
        "serve",
        "--db",
        url,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--max-in-flight",
        str(max_in_flight),
        "--pool-size",
        str(pool_size),
        "--log-level",
        "warning",
    ]
    if sweep_seconds is not None:
        command += ["--sweep-seconds", str(sweep_seconds)]
    if not edge:
        command.append("--no-edge")
    environment = {**os.environ, **(env or {})}
    if src is not None:
        environment["PYTHONPATH"] = src
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=environment)
    return wait_ready(process, port, "creditgate serve")


def wait_ready(process: subprocess.Popen[bytes], port: int, what: str) -> subprocess.Popen[bytes]:
    """`process` once it answers GET /readyz with 200 on `port` (killed if it never does:
    within 180 s, as a worker's start-up on a loaded machine can take a minute; killed too
    when the wait is interrupted, by Ctrl-C or SIGTERM, as nothing else knows of it yet)."""
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited before it was ready")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if b" 200 " in s.recv(64):
                        return process
            except OSError:
                pass
            time.sleep(0.2)
    except BaseException:
        process.kill()
        process.wait()
        raise
    process.kill()
    raise RuntimeError(f"{what} did not become ready in 180 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _cpu_ticks() -> dict[int, tuple[int, str, int]]:
    """Every process's (parent, name, user + system clock ticks), read off /proc."""
    seen: dict[int, tuple[int, str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # it ended meanwhile
        name_end = stat.rfind(b")")
        fields = stat[name_end + 2 :].split()
        name = stat[stat.find(b"(") + 1 : name_end].decode(errors="replace")
        seen[int(entry)] = (int(fields[1]), name, int(fields[11]) + int(fields[12]))
    return seen


def _tree(ticks: dict[int, tuple[int, str, int]], root: int) -> set[int]:
    tree, grown = {root}, True
    while grown:
        grown = False
        for pid, (parent, _, _) in ticks.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grown = True
    return tree


class CpuAccount:
    """CPU seconds spent by the server's process tree and by PostgreSQL over an interval.

    The machine is shared and its speed moves; CPU per pair moves much less than pairs per
    second. PostgreSQL is every process named `postgres` on this machine (the bench's server
    when it runs here), so the figure is only meaningful when nothing else uses PostgreSQL.
    Linux only; elsewhere the figures are absent.
    """

    def __init__(self, server_pid: int, database: str | None = None) -> None:
        self.server_pid = server_pid
        self.database = database
        self.available = os.path.isdir("/proc/self") and hasattr(os, "sysconf")
        self.hz = os.sysconf("SC_CLK_TCK") if self.available else 100
        self.start = _cpu_ticks() if self.available else {}

    def _split(
        self, ticks: dict[int, tuple[int, str, int]]
    ) -> tuple[dict[int, int], dict[int, int]]:
        tree = _tree(ticks, self.server_pid)
        server = {pid: ticks[pid][2] for pid in tree if pid in ticks}
        postgres = {
            pid: t
            for pid, (_, name, t) in ticks.items()
            if name == "postgres" and _serves(pid, self.database)
        }
        return server, postgres

    def seconds(self) -> tuple[float, float] | None:
        """(server, postgres) CPU seconds since the account opened."""
        if not self.available:
            return None
        end = _cpu_ticks()
        before_server, before_pg = self._split(self.start)
        after_server, after_pg = self._split(end)
        # A process that ended meanwhile is lost to the count; one that started counts whole.
        server = sum(t - before_server.get(pid, 0) for pid, t in after_server.items())
        postgres = sum(t - before_pg.get(pid, 0) for pid, t in after_pg.items())
        return server / self.hz, postgres / self.hz


def _serves(pid: int, database: str | None) -> bool:
    """Whether PostgreSQL process `pid` works for `database`: its own backends and
    autovacuum workers, and the shared ones (WAL writer, checkpointer, ...); not the backends
    of other databases on a shared server. Its title says which (`postgres: USER DB HOST`)."""
    if database is None:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().replace(b"\0", b" ").decode(errors="replace").split()
    except OSError:
        return False
    if title[:1] != ["postgres:"]:
        return True  # the postmaster
    if title[1:3] == ["autovacuum", "worker"]:
        return title[3:4] == [database]
    # A client backend: user, database, host(port).
    if len(title) >= 4 and ("(" in title[3] or title[3] == "[local]"):
        return title[2] == database
    return True


def merged(counts: list[dict[str, int]]) -> dict[str, int]:
    """Counts by kind, added up."""
    merged: dict[str, int] = {}
    for one in counts:
        for kind, n in one.items():
            merged[kind] = merged.get(kind, 0) + n
    return merged


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1], 2)


def setup_creditgate(url: str, src: str | None = None) -> tuple[str, list[str], str, str]:
    """A tenant with a key and funded customers in the database at `url`: (key, customers,
    backend, durability). With `src`, by the creditgate whose source is there (its own
    migrations), in a process of its own."""
    if src is not None:
        # Through the public API an older tree has too.
        done = subprocess.run(
            [sys.executable, "-c", _SETUP_ANY, url],
            env={**os.environ, "PYTHONPATH": src},
            check=True,
            capture_output=True,
            text=True,
        )
        key, customers, backend, durability = json.loads(done.stdout.strip().splitlines()[-1])
        return key, customers, backend, durability
    from creditgate.api import Creditgate, TenantLedger

    cg = Creditgate(url)
    try:
        tenant, key = cg.create_tenant_with_key(f"bench http {uuid.uuid4().hex[:6]}")
        assert key.key is not None
        t = TenantLedger(cg, tenant.id)
        t.create_asset("credits", 2)
        customers = [f"bench-{n}" for n in range(CUSTOMERS)]
        for customer in customers:
            t.create_customer(customer)
            t.grant(customer, "credits", 10**15, kind="purchased", cost_basis="0.01")
        backend = "sqlite" if cg.db.is_sqlite else "postgres"
        return key.key, customers, backend, cg.db.durability()
    finally:
        cg.close()


_SETUP_ANY = """
import json, sys
CUSTOMERS = 100
from creditgate.api import Creditgate, TenantLedger
cg = Creditgate(sys.argv[1])
tenant, key = cg.create_tenant_with_key("bench http")
t = TenantLedger(cg, tenant.id)
t.create_asset("credits", 2)
customers = [f"bench-{n}" for n in range(CUSTOMERS)]
for customer in customers:
    t.create_customer(customer)
    t.grant(customer, "credits", 10**15, kind="purchased", cost_basis="0.01")
print(json.dumps([key.key, customers, "postgres", cg.db.durability()]))
cg.close()
"""


def load(
    port: int,
    key: str,
    customers: list[str],
    server: subprocess.Popen[bytes],
    *,
    rate: float,
    seconds: float,
    client_processes: int = 2,
    connections: int = 128,
    database: str | None = None,
    warmup_seconds: float = WARMUP_SECONDS,
) -> dict[str, Any]:
    """Pairs at `rate` for `seconds` (after `warmup_seconds` of the same load, not measured)
    against the server on `port`, from `client_processes` processes: throughput, latency,
    outcomes and CPU per pair."""
    ctx = mp.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Queue()
    procs = []
    for n in range(client_processes):
        args = (
            port,
            key,
            customers,
            rate / client_processes,
            seconds,
            max(1, connections // client_processes),
            f"{os.getpid()}-{uuid.uuid4().hex[:6]}-{n}",
            warmup_seconds,
        )
        procs.append(ctx.Process(target=_client_process, args=(args, out, ready, go)))
    for p in procs:
        p.start()
    # Every process started (its imports done), then one start for all, time enough ahead to
    # open their connections.
    for _ in procs:
        ready.get(timeout=120)
    start_at = time.time() + START_AHEAD_SECONDS
    for _ in procs:
        go.put(start_at)
    time.sleep(max(0.0, start_at - time.time()))
    account = CpuAccount(server.pid, database)
    tallies: list[Tally] = [out.get() for _ in procs]
    cpu = account.seconds()
    for p in procs:
        p.join()
    pair_ms = [v for t_ in tallies for v in t_.pair_ms]
    authorize_ms = [v for t_ in tallies for v in t_.authorize_ms]
    pairs = sum(t_.pairs for t_ in tallies)
    all_pairs = max(1, sum(t_.all_pairs for t_ in tallies))
    client_cpu = sum(t_.cpu_seconds for t_ in tallies)
    cpu_figures: dict[str, float] = {}
    if cpu is not None:
        cpu_figures = {
            "server_cpu_ms_per_pair": round(cpu[0] * 1000 / all_pairs, 3),
            "postgres_cpu_ms_per_pair": round(cpu[1] * 1000 / all_pairs, 3),
        }
    cpu_figures["client_cpu_ms_per_pair"] = round(client_cpu * 1000 / all_pairs, 3)
    return {
        "rate": rate,
        "seconds": seconds,
        "offered_pairs": int(rate * seconds),
        "pairs": pairs,
        "all_pairs": sum(t_.all_pairs for t_ in tallies),
        "pairs_per_s": round(pairs / seconds, 1),
        # The same pairs over the time until the last of them was answered: what a server
        # that queues what it cannot serve yet sustains, rather than what it was offered.
        "sustained_pairs_per_s": round(pairs / max(seconds, *(t_.span for t_ in tallies)), 1),
        "p50_ms": percentile(pair_ms, 50),
        "p99_ms": percentile(pair_ms, 99),
        "authorize_p50_ms": percentile(authorize_ms, 50),
        "authorize_p99_ms": percentile(authorize_ms, 99),
        "declined": sum(t_.declined for t_ in tallies),
        "refused": sum(t_.refused for t_ in tallies),
        "settles_refused": sum(t_.settles_refused for t_ in tallies),
        "errors": sum(t_.errors for t_ in tallies),
        "error_kinds": merged([t_.error_kinds for t_ in tallies]),
        "client_connections": sum(t_.connections for t_ in tallies),
        # Refused and declined requests cost CPU too: these are per pair completed.
        **cpu_figures,
    }


def run_http(
    url: str,
    *,
    workers: int,
    rate: float,
    seconds: float,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    pool_size: int = 10,
    client_processes: int = 2,
    connections: int = 128,
    edge: bool = True,
) -> dict[str, Any]:
    key, customers, backend, durability = setup_creditgate(url)
    port = listening_port()
    workers = workers if backend == "postgres" else 1
    server = start_server(url, port, workers, max_in_flight, pool_size, edge=edge)
    try:
        figures = load(
            port,
            key,
            customers,
            server,
            rate=rate,
            seconds=seconds,
            client_processes=client_processes,
            connections=connections,
        )
    finally:
        stop_server(server)
    return {
        "benchmark": "http",
        "backend": backend,
        "durability": durability,
        "workers": workers,
        "max_in_flight": max_in_flight,
        "pool_size": pool_size,
        "client_processes": client_processes,
        "edge": edge,
        **figures,
    }
