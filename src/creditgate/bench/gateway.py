"""`creditgate bench gateway`: the latency the LLM gateway adds over calling the provider.

The stand-in upstream (`creditgate.bench.standin`) runs as its own process, and
`creditgate serve` as another, with `CREDITGATE_GATEWAY_OPENAI_BASE` pointing at it (an
operator's setting, so loopback is allowed). A tenant with a rate card, its provider key
and funded customers is made first. Then, for each offered rate and each kind of call (a
whole chat completion, a streamed one), calls go open loop on a timer: gateway call i at
start + i / rate, and a direct call to the stand-in, the same request, half a period later.
The two paths share the minutes, the machine's load and the stand-in, so the difference of
their latencies is what the gateway adds (its hold, forward and settle), and the direct
call is the floor.

A call's time counts from when its task starts (a connection is taken or opened then)
to the end of the answer; a stream's time to first byte ends at the first byte of its
body (the first event). The client is a small asyncio HTTP/1.1 client: a general-purpose
one would cost more CPU than the stand-in on a small machine, and it runs on the same cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from creditgate.api import Creditgate, TenantLedger
from creditgate.api.gateway import TenantGateway
from creditgate.bench.http import CpuAccount, percentile, start_server
from creditgate.storage.secret_keys import ENV_KEYS, generate_key
from creditgate.storage.throwaway import listening_port

MODEL = "gpt-bench"
UPSTREAM_KEY = "sk-bench-standin-0123456789"
CUSTOMERS = 20
WARMUP_SECONDS = 1.0
IDLE_CONNECTIONS = 8  # opened up front for each path
KINDS = ("chat", "stream")
# The targets: added latency at 50 calls/s on the development machine.
TARGET_RATE = 50.0
TARGET_P50_MS = 3.0
TARGET_P99_MS = 10.0
CARD = {
    "asset": "credits",
    "actions": {
        "chat.completion": {
            "prices": [
                {
                    "match": {"model": MODEL},
                    "per_unit": {"input_tokens": "0.01", "output_tokens": "0.03"},
                }
            ]
        }
    },
}
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "Write a haiku about prepaid credits and the calls they pay for."},
]


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one request at a time. Reads bodies by Content-Length,
    chunked, or to the connection's close, and notes when the body's first byte arrived."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Answer] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.mode = ""  # "" (reading the head), "length", "chunked" or "close"
        self.remaining = 0
        self.reusable = True
        self.first_byte = 0.0
        self.body = bytearray()

    @classmethod
    async def open(cls, port: int) -> Connection:
        _, conn = await asyncio.get_running_loop().create_connection(cls, "127.0.0.1", port)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.mode == "close":
            self._finish(time.perf_counter())
            return
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc or ConnectionResetError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        if not self.mode:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            del self.buffer[: end + 4]
            self.status = int(head[9:12])
            headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            self.reusable = headers.get(b"connection", b"").strip() != b"close"
            if b"chunked" in headers.get(b"transfer-encoding", b""):
                self.mode = "chunked"
            elif b"content-length" in headers:
                self.mode = "length"
                self.remaining = int(headers[b"content-length"])
            else:
                self.mode = "close"
                self.reusable = False
        if self.buffer and not self.first_byte:
            self.first_byte = now
        if self.mode == "length":
            if len(self.buffer) >= self.remaining:
                self.body += self.buffer[: self.remaining]
                del self.buffer[: self.remaining]
                self._finish(now)
        elif self.mode == "chunked":
            self._chunks(now)
        else:
            self.body += self.buffer
            self.buffer.clear()

    def _chunks(self, now: float) -> None:
        while True:
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(self.buffer[:line_end]).split(b";")[0], 16)
            if size == 0:
                if self.buffer.find(b"\r\n\r\n", line_end) < 0:
                    return
                self.buffer.clear()
                self._finish(now)
                return
            if len(self.buffer) < line_end + 2 + size + 2:
                return
            self.body += self.buffer[line_end + 2 : line_end + 2 + size]
            del self.buffer[: line_end + 2 + size + 2]

    def _finish(self, now: float) -> None:
        answer = Answer(self.status, self.first_byte or now, now, bytes(self.body))
        if not self.reusable and self.transport is not None:
            self.transport.close()
        self._reset()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def request(self, data: bytes) -> asyncio.Future[Answer]:
        waiter = asyncio.get_running_loop().create_future()
        if self.transport is None:
            waiter.set_exception(ConnectionResetError("not connected"))
            return waiter
        self.waiter = waiter
        self.transport.write(data)
        return waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    first_byte: float  # perf_counter when the body's first byte arrived
    done: float  # perf_counter when the answer was complete
    body: bytes


class Pool:
    """Keep-alive connections to one server, first in first out (so none sits idle long
    enough to be closed); a call that finds none idle opens one, as one more user would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: deque[Connection] = deque()

    async def fill(self, n: int) -> None:
        for _ in range(n):
            self.idle.append(await Connection.open(self.port))

    async def call(self, data: bytes) -> Answer:
        conn = None
        while self.idle and conn is None:
            conn = self.idle.popleft()
            if conn.transport is None:
                conn = None
        if conn is None:
            conn = await Connection.open(self.port)
        try:
            answer = await conn.request(data)
        except BaseException:
            conn.close()
            raise
        if conn.transport is not None:
            self.idle.append(conn)
        return answer

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


def _request(path: bytes, headers: bytes, body: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s" % (
        path,
        headers,
    ) + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


@dataclass
class Path:
    """One way to call: its connections and its requests, one per customer."""

    name: str
    pool: Pool
    requests: dict[str, list[bytes]]
    ms: list[float] = field(default_factory=list)  # whole answer
    ttfb_ms: list[float] = field(default_factory=list)  # first byte of the body
    lag_ms: list[float] = field(default_factory=list)  # task start behind schedule
    calls: int = 0
    answered: int = 0  # warm-up included: each was charged
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


def _paths(
    gateway_port: int, standin_port: int, key: str, customers: list[str]
) -> tuple[Path, Path]:
    gateway_requests: dict[str, list[bytes]] = {}
    direct_requests: dict[str, list[bytes]] = {}
    for kind in KINDS:
        doc: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "max_tokens": 300}
        if kind == "stream":
            doc["stream"] = True
        body = json.dumps(doc).encode()
        gateway_requests[kind] = [
            _request(
                b"/gateway/openai/v1/chat/completions",
                b"Authorization: Bearer %s\r\nX-Creditgate-Customer: %s\r\n"
                % (key.encode(), customer.encode()),
                body,
            )
            for customer in customers
        ]
        direct_requests[kind] = [
            _request(
                b"/v1/chat/completions",
                b"Authorization: Bearer %s\r\n" % UPSTREAM_KEY.encode(),
                body,
            )
        ]
    return (
        Path("gateway", Pool(gateway_port), gateway_requests),
        Path("direct", Pool(standin_port), direct_requests),
    )


def _answered(kind: str, answer: Answer) -> str | None:
    """What is wrong with an answer, or None."""
    if answer.status != 200:
        return f"status {answer.status}"
    if kind == "stream":
        return None if b"data: [DONE]" in answer.body else "stream cut short"
    return None if b'"choices"' in answer.body else "no choices"


async def _call(path: Path, kind: str, n: int, due: float, counted: bool) -> None:
    started = time.perf_counter()
    requests = path.requests[kind]
    try:
        answer = await path.pool.call(requests[n % len(requests)])
    except OSError as exc:
        if counted:
            path.error(type(exc).__name__)
        return
    wrong = _answered(kind, answer)
    if wrong is None:
        path.answered += 1
    if not counted:
        return
    if wrong is not None:
        path.error(wrong)
        return
    path.calls += 1
    path.lag_ms.append((started - due) * 1000)
    path.ms.append((answer.done - started) * 1000)
    path.ttfb_ms.append((answer.first_byte - started) * 1000)


async def _phase(
    gateway_port: int,
    standin_port: int,
    key: str,
    customers: list[str],
    kind: str,
    rate: float,
    seconds: float,
) -> tuple[Path, Path]:
    gateway, direct = _paths(gateway_port, standin_port, key, customers)
    await gateway.pool.fill(IDLE_CONNECTIONS)
    await direct.pool.fill(IDLE_CONNECTIONS)
    origin = time.perf_counter() + 0.05
    measured_from = origin + WARMUP_SECONDS
    end = measured_from + seconds
    tasks = []
    i = 0
    while True:
        due = origin + i / rate
        if due >= end:
            break
        # The direct call half a period after the gateway's: the same minutes, not the same
        # instant.
        for path, at in ((gateway, due), (direct, due + 0.5 / rate)):
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_call(path, kind, i, at, at >= measured_from)))
        i += 1
    await asyncio.gather(*tasks)
    gateway.pool.close()
    direct.pool.close()
    return gateway, direct


def _figures(kind: str, rate: float, gateway: Path, direct: Path) -> dict[str, Any]:
    """One phase's figures: each path's, and the gateway's over the direct call's."""
    stream = kind == "stream"
    row: dict[str, Any] = {"rate": rate, "kind": kind, "measure": "ttfb" if stream else "whole"}
    for path in (gateway, direct):
        values = path.ttfb_ms if stream else path.ms
        row[f"{path.name}_p50_ms"] = percentile(values, 50)
        row[f"{path.name}_p99_ms"] = percentile(values, 99)
        if stream:
            row[f"{path.name}_complete_p50_ms"] = percentile(path.ms, 50)
    for q in ("p50", "p99"):
        g, d = row[f"gateway_{q}_ms"], row[f"direct_{q}_ms"]
        row[f"added_{q}_ms"] = round(g - d, 2)
        row[f"ratio_{q}"] = round(g / d, 2) if d else None
    row.update(
        {
            "gateway_calls": gateway.calls,
            "gateway_answered": gateway.answered,
            "direct_calls": direct.calls,
            "gateway_errors": gateway.errors,
            "direct_errors": direct.errors,
            "error_kinds": {
                **{f"gateway {k}": n for k, n in gateway.error_kinds.items()},
                **{f"direct {k}": n for k, n in direct.error_kinds.items()},
            },
            "client_lag_p99_ms": percentile(gateway.lag_ms + direct.lag_ms, 99),
        }
    )
    return row


def _prepare(url: str) -> tuple[str, str, list[str]]:
    """A tenant with the card, its provider key and funded customers: (tenant, key, customers)."""
    cg = Creditgate(url)
    try:
        tenant, key = cg.create_tenant_with_key(f"bench gateway {uuid.uuid4().hex[:6]}")
        assert key.key is not None
        ledger = TenantLedger(cg, tenant.id)
        ledger.create_asset("credits", 2)
        ledger.publish_rate_card(CARD)
        customers = [f"bench-{n}" for n in range(CUSTOMERS)]
        for customer in customers:
            ledger.create_customer(customer)
            ledger.grant(customer, "credits", 10**15, kind="purchased", cost_basis="0.01")
        TenantGateway(ledger).set_upstream_key("openai", UPSTREAM_KEY)
        return tenant.id, key.key, customers
    finally:
        cg.close()


def _charges_when_settled(url: str, tenant_id: str, expected: int) -> tuple[int, bool]:
    """(charges the tenant has, whether its ledger verifies), once `expected` charges are
    there (a stream settles after its answer) or 10 s have passed."""
    cg = Creditgate(url, migrate=False)
    try:
        deadline = time.monotonic() + 10
        charged = _charge_count(cg, tenant_id)
        while charged < expected and time.monotonic() < deadline:
            time.sleep(0.1)
            charged = _charge_count(cg, tenant_id)
        return charged, cg.verify(tenant_id).ok
    finally:
        cg.close()


def _charge_count(cg: Creditgate, tenant_id: str) -> int:
    from sqlalchemy import func, select

    from creditgate.storage.tables import charges

    return int(
        cg.db.run(
            lambda conn: conn.execute(
                select(func.count()).select_from(charges).where(charges.c.tenant_id == tenant_id)
            ).scalar_one(),
            read_only=True,
        )
    )


def _start_standin() -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "creditgate.bench.standin"], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("http://127.0.0.1:"):
        process.kill()
        raise RuntimeError("the stand-in upstream did not start")
    return process, int(line.rsplit(":", 1)[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def run_gateway(
    url: str,
    *,
    rates: Sequence[float] = (50.0, 200.0),
    seconds: float = 10.0,
    workers: int = 1,
) -> dict[str, Any]:
    # Provider keys are sealed: a database without the operator's keys gets a new one, for
    # this process and the server alike.
    os.environ.setdefault(ENV_KEYS, generate_key())
    load_before = os.getloadavg()
    tenant_id, key, customers = _prepare(url)
    cg = Creditgate(url, migrate=False)
    backend = "sqlite" if cg.db.is_sqlite else "postgres"
    durability = cg.db.durability()
    cg.close()
    workers = workers if backend == "postgres" else 1

    standin, standin_port = _start_standin()
    server = None
    phases: list[dict[str, Any]] = []
    try:
        port = listening_port()
        server = start_server(
            url,
            port,
            workers,
            max_in_flight=256,
            pool_size=10,
            env={"CREDITGATE_GATEWAY_OPENAI_BASE": f"http://127.0.0.1:{standin_port}"},
        )
        for rate in rates:
            for kind in KINDS:
                account = CpuAccount(server.pid)
                gateway, direct = _run_loop(
                    _phase(port, standin_port, key, customers, kind, rate, seconds)
                )
                cpu = account.seconds()
                row = _figures(kind, rate, gateway, direct)
                if cpu is not None:
                    # Warm-up calls included: they cost CPU too.
                    offered = int(rate * (seconds + WARMUP_SECONDS))
                    row["server_cpu_ms_per_call"] = round(cpu[0] * 1000 / max(1, offered), 3)
                phases.append(row)
    finally:
        if server is not None:
            _stop(server)
        _stop(standin)
    answered = sum(p.pop("gateway_answered") for p in phases)
    charges, verified = _charges_when_settled(url, tenant_id, answered)
    at_target = [p for p in phases if p["rate"] == TARGET_RATE]
    return {
        "benchmark": "gateway",
        "backend": backend,
        "durability": durability,
        "workers": workers,
        "seconds": seconds,
        "rates": list(rates),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "phases": phases,
        # Every gateway call answered (warm-up included) is charged once, and the tenant's
        # ledger verifies.
        "gateway_answered": answered,
        "charges": charges,
        "verified": verified,
        "targets": {
            "rate": TARGET_RATE,
            "added_p50_ms": TARGET_P50_MS,
            "added_p99_ms": TARGET_P99_MS,
            "met": (
                all(
                    p["added_p50_ms"] <= TARGET_P50_MS and p["added_p99_ms"] <= TARGET_P99_MS
                    for p in at_target
                )
                if at_target
                else None
            ),
        },
    }


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is optional
        return asyncio.run(coro)
