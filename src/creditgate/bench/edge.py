"""What the edge costs per request, in one process: the app with its edge against its full stack.

`python -m creditgate.bench.edge [--pairs 200] [--refusals 2000] [--blocks 6]` builds the
app on a temporary SQLite file, funds a customer and sends ASGI
messages straight into it, no server and no sockets: authorize + settle pairs, and
authorizations refused because every in-flight slot is taken (the answer under overload).
Each goes through `app` (the edge first, as `serve` runs it) and through `app.full_stack`
(FastAPI's router and middleware, as with `serve --no-edge`), alternating in blocks; CPU is
the process's (every thread), per pair or per refusal, and per pair less the CPU of the
ledger's calls (`TenantLedger.authorize` and `.settle`, on whichever thread runs them), which
leaves the HTTP side. Medians of the blocks.

A copy of this file run with another tree on PYTHONPATH (`python /tmp/bench_edge.py`: not
from inside the package, whose `http` module would shadow the standard library's) measures
that tree's app; runs alternated compare two versions of the edge.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from creditgate.api import Creditgate, TenantLedger
from creditgate.server.app import Settings, create_app

Message = dict[str, Any]


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("bench", 80),
    }


async def post(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, bytes]:
    """One POST into `app`: its status and body."""
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # a client waiting for its answer
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    length = (b"content-length", str(len(body)).encode())
    await app(_scope(path, [*headers, length]), receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


class LedgerCpu:
    """CPU the ledger's calls of a pair used (`TenantLedger.authorize`, `.settle`), on
    whichever thread ran them."""

    METHODS = ("authorize", "settle")

    def __init__(self) -> None:
        self.seconds = 0.0
        self._methods = {name: getattr(TenantLedger, name) for name in self.METHODS}

    def __enter__(self) -> LedgerCpu:
        for name, method in self._methods.items():
            setattr(TenantLedger, name, self._timed(method))
        return self

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.thread_time() - start

        return timed

    def __exit__(self, *_exc: object) -> None:
        for name, method in self._methods.items():
            setattr(TenantLedger, name, method)


async def measure(pairs: int, refusals: int, blocks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="creditgate-bench-edge-") as folder:
        cg = Creditgate(f"sqlite:///{os.path.join(folder, 'edge.db')}")
        try:
            return await _measure(cg, pairs, refusals, blocks)
        finally:
            cg.close()


async def _measure(cg: Creditgate, pairs: int, refusals: int, blocks: int) -> dict[str, Any]:
    app: Any = create_app(cg, Settings(key_cache_seconds=3600))
    tenant, key = cg.create_tenant_with_key("bench edge")
    assert key.key is not None
    ledger = TenantLedger(cg, tenant.id)
    ledger.create_asset("credits", 2)
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 10**15, kind="purchased", cost_basis="0.01")
    common = [
        (b"authorization", f"Bearer {key.key}".encode()),
        (b"content-type", b"application/json"),
    ]
    hold = json.dumps({"customer": "c1", "asset": "credits", "amount": 1_000}).encode()
    usage = json.dumps({"amount": 800}).encode()
    sent = 0

    def keyed(prefix: bytes) -> list[tuple[bytes, bytes]]:
        nonlocal sent
        sent += 1
        return [*common, (b"idempotency-key", b"%s%d" % (prefix, sent))]

    async def pair(into: Any) -> None:
        status, body = await post(into, "/v1/authorizations", keyed(b"a"), hold)
        assert status == 201, body
        url = f"/v1/authorizations/{json.loads(body)['id']}/settle"
        status, body = await post(into, url, keyed(b"s"), usage)
        assert status == 200, body

    async def refused(into: Any) -> None:
        status, body = await post(into, "/v1/authorizations", keyed(b"r"), hold)
        assert status == 503, body

    ways = {"edge": app, "full stack": app.full_stack}
    figures: dict[str, dict[str, list[float]]] = {
        way: {"pair_us": [], "pair_http_us": [], "refusal_us": []} for way in ways
    }
    in_flight = app.state.in_flight
    with LedgerCpu() as ledger_cpu:
        for into in ways.values():  # warm: statements prepared, key cached, stacks built
            for _ in range(20):
                await pair(into)
        for block in range(blocks):
            for way in list(ways) if block % 2 == 0 else list(ways)[::-1]:
                into, mine = ways[way], figures[way]
                cpu, used = time.process_time(), ledger_cpu.seconds
                for _ in range(pairs):
                    await pair(into)
                spent = time.process_time() - cpu
                mine["pair_us"].append(spent * 1e6 / pairs)
                mine["pair_http_us"].append((spent - ledger_cpu.seconds + used) * 1e6 / pairs)
                in_flight.count = in_flight.limit  # every slot taken: each call is refused
                cpu = time.process_time()
                for _ in range(refusals):
                    await refused(into)
                mine["refusal_us"].append((time.process_time() - cpu) * 1e6 / refusals)
                in_flight.count = 0
    return {
        "benchmark": "edge",
        "pairs": pairs,
        "refusals": refusals,
        "blocks": blocks,
        **{
            way: {name: round(statistics.median(values), 1) for name, values in mine.items()}
            for way, mine in figures.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=200, help="pairs per block and way")
    parser.add_argument("--refusals", type=int, default=2_000, help="refusals per block")
    parser.add_argument("--blocks", type=int, default=6, help="blocks, alternating the ways")
    args = parser.parse_args()
    try:
        import uvloop  # as `serve` runs

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional
        pass
    print(json.dumps(asyncio.run(measure(args.pairs, args.refusals, args.blocks))))


if __name__ == "__main__":
    main()
