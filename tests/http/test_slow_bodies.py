"""A body must arrive within its deadline (408), and only a request that has all its body, is
routed and whose key verifies holds an in-flight slot: clients trickling bodies, to any path
and with any key, never make valid requests 503. In-process on both backends, and with real
sockets against `creditgate serve`."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client import REGISTRY

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate, TenantLedger
from creditgate.server.app import Settings, create_app
from tests.chaos.live import live_server
from tests.http import asgi
from tests.http.asgi import cache_key, pieces, tenant_with_funds

BODY = json.dumps({"customer": "c1", "asset": "credits", "amount": 10}).encode()


def _headers(key: str, n: int, length: int = len(BODY)) -> list[tuple[bytes, bytes]]:
    return [
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(length).encode()),
        (b"idempotency-key", f"slow-{n}".encode()),
    ]


def _count(status: str, route: str) -> float:
    labels = {"method": "POST", "route": route, "status": status}
    return REGISTRY.get_sample_value("creditgate_http_request_duration_seconds_count", labels) or 0


def test_a_body_slow_to_come_holds_no_in_flight_slot(cg: Creditgate) -> None:
    app = create_app(cg, Settings(max_in_flight=4))  # 3 slots for new work
    key, ledger = tenant_with_funds(cg)

    async def main() -> tuple[list[int], list[int]]:
        await cache_key(app, key)
        gate = anyio.Event()
        slow: list[int] = []

        async def one(n: int) -> None:
            status, _, _ = await asgi.post(
                app, "/v1/authorizations", _headers(key, n), pieces([BODY]), gate
            )
            slow.append(status)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                for n in range(5):
                    tasks.start_soon(one, n)
                await anyio.sleep(0.1)  # five requests in, none has its body yet
                quick = [
                    (
                        await asgi.post(
                            app, "/v1/authorizations", _headers(key, 10 + n), pieces([BODY])
                        )
                    )[0]
                    for n in range(4)
                ]
                gate.set()
        return quick, sorted(slow)

    quick, slow = anyio.run(main)
    assert quick == [201] * 4  # every slot free for the requests whose bodies had come
    # Once their bodies came, the five competed for the slots like any requests.
    assert len(slow) == 5 and set(slow) <= {201, 503} and 201 in slow
    assert ledger.wallet("c1").balances[0].held == 10 * (4 + slow.count(201))


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/authorizations", "/v1/authorizations"),  # a hot route, at the edge
        ("/v1/customers", "unmatched"),  # the full stack (the body comes before routing)
        ("/v1/nowhere", "unmatched"),
    ],
)
def test_a_body_not_all_come_in_time_is_408(cg: Creditgate, path: str, route: str) -> None:
    app = create_app(cg, Settings(body_timeout_seconds=0.3))
    key, ledger = tenant_with_funds(cg)
    before = _count("408", route)

    async def main() -> tuple[int, dict[bytes, bytes], bytes, float]:
        await cache_key(app, key)
        start = time.monotonic()
        first = pieces([BODY[:5], b""])[:1]  # the first piece of two
        with anyio.fail_after(5):
            status, headers, body = await asgi.post(app, path, _headers(key, 1), first)
        return status, headers, body, time.monotonic() - start

    status, headers, body, took = anyio.run(main)
    assert status == 408 and 0.3 <= took < 3
    assert json.loads(body)["code"] == "body_timeout"
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"connection"] == b"close"  # the rest of the body may still be coming
    assert _count("408", route) == before + 1
    assert ledger.wallet("c1").balances[0].held == 0


@pytest.mark.parametrize(
    ("path", "route"),
    [("/v1/authorizations", "/v1/authorizations"), ("/v1/customers", "unmatched")],
)
def test_a_client_gone_mid_body_is_counted_as_a_client_close(
    cg: Creditgate, path: str, route: str
) -> None:
    app = create_app(cg)
    key, ledger = tenant_with_funds(cg)
    before = (_count("499", route), _count("500", route))
    messages = [
        {"type": "http.request", "body": BODY[:5], "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def main() -> int:
        await cache_key(app, key)
        with anyio.fail_after(5):
            return (await asgi.post(app, path, _headers(key, 2), messages))[0]

    assert anyio.run(main) == 0  # nothing to answer: the client is gone
    assert (_count("499", route), _count("500", route)) == (before[0] + 1, before[1])
    assert ledger.wallet("c1").balances[0].held == 0


# Real sockets against `creditgate serve`


class Trickler(threading.Thread):
    """A client sending a request's headers, then its body one byte at a time."""

    def __init__(self, base: str, request: bytes, every: float) -> None:
        super().__init__(daemon=True)
        host, port = base.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.request = request
        self.every = every
        self.status: int | None = None
        self.answered_after: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        head, body = self.request.split(b"\r\n\r\n", 1)
        received = b""
        with socket.create_connection(self.address, timeout=30) as sock:
            sock.sendall(head + b"\r\n\r\n")
            sock.setblocking(False)
            for byte in body:
                if self.stop.is_set():
                    break
                try:  # the answer first: a write after the server closed may reset
                    received += sock.recv(4096)
                except BlockingIOError:
                    pass
                except OSError:
                    break
                if received:
                    break
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    break
                time.sleep(self.every)
            if not received:
                sock.setblocking(True)
                with contextlib.suppress(OSError):
                    received = sock.recv(4096)
        if received.startswith(b"HTTP/1.1 "):
            self.status = int(received[9:12])
            self.answered_after = time.monotonic() - start


def _raw(path: str, key: str, length: int = 200) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nIdempotency-Key: trickle-{path}-{key[-4:]}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode() + b" " * length


@pytest.fixture(params=["sqlite", "postgres"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with live_server(
        request,
        request.param,
        tmp_path,
        CREDITGATE_MAX_IN_FLIGHT="8",  # 6 slots for new work
        CREDITGATE_BODY_TIMEOUT_SECONDS="3",
    ) as live:
        ledger = TenantLedger(live.cg, live.tenant_id)
        ledger.create_asset("credits", 2)
        ledger.create_customer("c1")
        ledger.grant("c1", "credits", 10**6, kind="purchased", cost_basis="0.01")
        yield live


@pytest.mark.slow
def test_trickling_clients_do_not_starve_valid_requests(served: Any) -> None:
    bad_key = "cg_zzzzzzzz_" + "b" * 43
    tricklers = [
        Trickler(served.base, _raw(path, key), every=0.2)
        for path, key in [
            ("/v1/authorizations", served.key),  # a valid key, on the edge's hot route
            ("/v1/authorizations", served.key.replace("_", "-", 1)),
            ("/v1/customers/c1/grants", served.key),
            ("/v1/customers", bad_key),  # a bad key
            ("/v1/nowhere", bad_key),  # an unknown path
            ("/v1/nowhere/either", served.key),
            ("/v1/authorizations/auth_1/settle", served.key),  # a slot kept for finishing holds
            ("/v1/charges", served.key),
        ]
    ]
    for trickler in tricklers:
        trickler.start()
    time.sleep(0.5)  # every trickler connected and sending
    statuses = []
    headers = {"Authorization": f"Bearer {served.key}"}
    body = {"customer": "c1", "asset": "credits", "amount": 1}
    try:
        with httpx.Client(
            verify=tls_context(), base_url=served.base, headers=headers, timeout=10
        ) as http:
            deadline = time.monotonic() + 2
            n = 0
            while time.monotonic() < deadline:  # all while the tricklers trickle
                n += 1
                keyed = {"Idempotency-Key": f"valid-{n}"}
                statuses.append(
                    http.post("/v1/authorizations", json=body, headers=keyed).status_code
                )
                statuses.append(http.get("/v1/customers/c1/wallet").status_code)
        for trickler in tricklers:
            trickler.join(timeout=15)
    finally:
        for trickler in tricklers:
            trickler.stop.set()
    assert len(statuses) > 10 and set(statuses) == {200, 201}, statuses
    # Each trickler was cut off at the deadline (3 s), long before its 200 bytes (40 s) came.
    assert [t.status for t in tricklers] == [408] * len(tricklers), served.log()[-2000:]
    assert all(t.answered_after is not None and 3 <= t.answered_after < 8 for t in tricklers)
