"""`creditgate bench http`: authorize + settle pairs over HTTP against `creditgate serve`.

The server runs as its own process (`--workers N` of them on PostgreSQL); the load comes
from other processes over loopback, open loop: pair i is due at start + i / rate whether or
not earlier pairs have finished, and its latency counts from when it was due, so a server
that falls behind shows it (no coordinated omission). Refusals (503/429) are counted apart
from errors. The client is a minimal HTTP/1.1 keep-alive client on asyncio streams, because
a general-purpose client would be the bottleneck on a small machine.
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
from dataclasses import dataclass, field
from typing import Any

from creditgate.api import Creditgate, TenantLedger

HOLD = 1_000
ACTUAL = 800
CUSTOMERS = 100
WARMUP_SECONDS = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n{head}\r\n"
            ).encode()
            + payload
        )
        await self.writer.drain()
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Tally:
    pairs: int = 0
    declined: int = 0
    refused: int = 0
    errors: int = 0
    pair_ms: list[float] = field(default_factory=list)
    authorize_ms: list[float] = field(default_factory=list)


async def _generate(
    port: int,
    key: str,
    customers: list[str],
    rate: float,
    seconds: float,
    start_at: float,
    connections: int,
    label: str,
) -> Tally:
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(port))
    auth = {"Authorization": f"Bearer {key}"}
    tally = Tally()
    # Wall clock to agree on the start across processes; perf_counter for every interval.
    await asyncio.sleep(max(0.0, start_at - time.time()))
    origin = time.perf_counter()
    measured_from = origin + WARMUP_SECONDS
    end = measured_from + seconds

    async def pair(i: int, due: float) -> None:
        counted = due >= measured_from
        conn = await pool.get()
        try:
            status, body = await conn.request(
                "/v1/authorizations",
                {"customer": customers[i % len(customers)], "asset": "credits", "amount": HOLD},
                {**auth, "Idempotency-Key": f"{label}-a{i}"},
            )
            authorized = time.perf_counter()
            if status in (429, 503):
                tally.refused += counted
                return
            if status != 201:
                tally.errors += counted
                return
            answer = json.loads(body)
            if not answer["approved"]:
                tally.declined += counted
                return
            status, _ = await conn.request(
                f"/v1/authorizations/{answer['id']}/settle",
                {"amount": ACTUAL},
                {**auth, "Idempotency-Key": f"{label}-s{i}"},
            )
            done = time.perf_counter()
            if status in (429, 503):
                tally.refused += counted
            elif status != 200:
                tally.errors += counted
            elif counted:
                tally.pairs += 1
                tally.authorize_ms.append((authorized - due) * 1000)
                tally.pair_ms.append((done - due) * 1000)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            tally.errors += counted
            conn.close()
            conn = await Connection.open(port)
        finally:
            pool.put_nowait(conn)

    tasks = []
    i = 0
    while True:
        due = origin + i / rate
        if due >= end:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(pair(i, due)))
        i += 1
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return tally


def _client_process(args: tuple[Any, ...], out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional
        pass
    out.put(asyncio.run(_generate(*args)))


def _start_server(url: str, port: int, workers: int, max_in_flight: int) -> subprocess.Popen[bytes]:
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
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("creditgate serve exited before it was ready")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(64):
                    return process
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("creditgate serve did not become ready in 60 s")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1], 2)


def run_http(
    url: str,
    *,
    workers: int,
    rate: float,
    seconds: float,
    max_in_flight: int = 64,
    client_processes: int = 2,
    connections: int = 128,
) -> dict[str, Any]:
    cg = Creditgate(url)
    tenant, key = cg.create_tenant_with_key(f"bench http {uuid.uuid4().hex[:6]}")
    assert key.key is not None
    t = TenantLedger(cg, tenant.id)
    t.create_asset("credits", 2)
    customers = [f"bench-{n}" for n in range(CUSTOMERS)]
    for customer in customers:
        t.create_customer(customer)
        t.grant(customer, "credits", 10**15, kind="purchased", cost_basis="0.01")
    backend = "sqlite" if cg.db.is_sqlite else "postgres"
    durability = cg.db.durability()
    cg.close()

    port = _free_port()
    workers = workers if backend == "postgres" else 1
    server = _start_server(url, port, workers, max_in_flight)
    try:
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        start_at = time.time() + 2.0
        procs = []
        for n in range(client_processes):
            args = (
                port,
                key.key,
                customers,
                rate / client_processes,
                seconds,
                start_at,
                max(1, connections // client_processes),
                f"{os.getpid()}-{n}",
            )
            procs.append(ctx.Process(target=_client_process, args=(args, out)))
        for p in procs:
            p.start()
        tallies: list[Tally] = [out.get() for _ in procs]
        for p in procs:
            p.join()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    pair_ms = [v for t_ in tallies for v in t_.pair_ms]
    authorize_ms = [v for t_ in tallies for v in t_.authorize_ms]
    pairs = sum(t_.pairs for t_ in tallies)
    return {
        "benchmark": "http",
        "backend": backend,
        "durability": durability,
        "workers": workers,
        "max_in_flight": max_in_flight,
        "client_processes": client_processes,
        "rate": rate,
        "seconds": seconds,
        "offered_pairs": int(rate * seconds),
        "pairs": pairs,
        "pairs_per_s": round(pairs / seconds, 1),
        "p50_ms": _pct(pair_ms, 50),
        "p99_ms": _pct(pair_ms, 99),
        "authorize_p50_ms": _pct(authorize_ms, 50),
        "authorize_p99_ms": _pct(authorize_ms, 99),
        "declined": sum(t_.declined for t_ in tallies),
        "refused": sum(t_.refused for t_ in tallies),
        "errors": sum(t_.errors for t_ in tallies),
    }
