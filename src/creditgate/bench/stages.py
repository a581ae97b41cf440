"""CPU per authorize + settle pair, stage by stage, in one process, against the floor's.

`creditgate bench http --floor` measures whole servers; on a shared machine its CPU per pair
moves by 10-20% between runs, and it cannot say which part of a server the figure is. Here
each stage runs in this process with nothing else in it, one pair after another (or in a
few concurrent lanes), and its CPU is this process's (`time.process_time`, every thread):

- `db`: the database side alone. creditgate: `TenantLedger.authorize` and `.settle`; the
  floor: `Floor.authorize` and `.settle` (`bench/floor.py`), the same effects in raw psycopg.
- `app`: the same pair through the ASGI application, called in-process with a request as
  uvicorn hands it over (no sockets, no HTTP parsing): creditgate's `create_app`, the
  floor's raw ASGI `app`. `app - db` is what the application layers add per pair.
- `app, N lanes`: N pairs at a time through the application, which is what a served worker
  does: the database work on threads, the event loop between them.
- `app, ledger answered from memory` (creditgate only): the application with the ledger's
  two calls answering a recorded result at once, so the HTTP layers alone;
- `app, endpoints on the event loop` (creditgate only): the application with the hot routes'
  endpoints called on the event loop's thread instead of handed to the edge's threads, so
  what that hand-over costs (a measurement only: served so, one request's database work
  would hold up every other);
- `ledger behind the floor's ASGI` (creditgate only): creditgate's `TenantLedger` and its
  answers' JSON behind the floor's raw ASGI handling (`bench/lean.py`), the call handed to
  threads as the floor hands its own: what a lighter HTTP stack could buy at most.

What a served worker adds on top (uvicorn's parsing, sockets, waking up) is the difference
between these and `bench http --floor`'s server CPU per pair; the floor pays it too.

Stages alternate within each round and every figure is the median of the rounds.

    python -m creditgate.bench.stages [--pairs 400] [--rounds 5] [--lanes 4] [--db URL] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from creditgate.api import Creditgate, TenantLedger
from creditgate.bench import floor
from creditgate.bench.edge import post
from creditgate.bench.http import setup_creditgate
from creditgate.bench.lean import LedgerFloor
from creditgate.bench.target import bench_server
from creditgate.http.hot import HotRoutes
from creditgate.storage.throwaway import create_database, drop_database, libpq_dsn

GRANT = 10**15  # the floor's customers' balance, as `bench http` grants creditgate's
HOLD, ACTUAL = 500, 300

Pair = Callable[[int], Awaitable[None]]
FROM_MEMORY = "creditgate: app, ledger answered from memory"
ON_THE_LOOP = "creditgate: app, endpoints on the event loop"
LEAN = "creditgate: ledger behind the floor's ASGI"


async def call(app: Any, path: str, key: str, body: dict[str, Any]) -> tuple[int, bytes]:
    """One POST through `app` as uvicorn would hand it over, under a new idempotency key."""
    headers = [
        (b"host", b"bench"),
        (b"authorization", b"Bearer " + key.encode()),
        (b"content-type", b"application/json"),
        (b"idempotency-key", uuid.uuid4().hex.encode()),
    ]
    return await post(app, path, headers, json.dumps(body).encode())


def _expect(status: int, body: bytes, wanted: int) -> dict[str, Any]:
    if status != wanted:
        raise RuntimeError(f"expected {wanted}, got {status}: {body[:300]!r}")
    found: dict[str, Any] = json.loads(body)
    return found


def app_pair(app: Any, key: str, customers: list[str]) -> Pair:
    """A pair through an application answering as creditgate's API does (the floor's too)."""

    async def pair(i: int) -> None:
        status, body = await call(
            app,
            "/v1/authorizations",
            key,
            {"customer": customers[i % len(customers)], "asset": "credits", "amount": HOLD},
        )
        hold = _expect(status, body, 201)["id"]
        status, body = await call(app, f"/v1/authorizations/{hold}/settle", key, {"amount": ACTUAL})
        _expect(status, body, 200)

    return pair


def ledger_pair(t: TenantLedger, customers: list[str]) -> Pair:
    async def pair(i: int) -> None:
        customer = customers[i % len(customers)]
        held = t.authorize(customer, "credits", HOLD, idempotency_key=uuid.uuid4().hex)
        t.settle(held.id, ACTUAL, idempotency_key=uuid.uuid4().hex)

    return pair


def floor_db_pair(f: floor.Floor, customers: list[str]) -> Pair:
    async def pair(i: int) -> None:
        status, body = f.authorize(uuid.uuid4().hex, customers[i % len(customers)], HOLD)
        hold = _expect(status, body, 201)["id"]
        status, body = f.settle(uuid.uuid4().hex, hold, ACTUAL)
        _expect(status, body, 200)

    return pair


async def cpu_per_pair(pair: Pair, pairs: int, lanes: int) -> float:
    """CPU ms of this process per pair, `pairs` pairs made `lanes` at a time."""

    async def lane(start: int) -> None:
        for i in range(start, pairs, lanes):
            await pair(i)

    began = time.process_time()
    await asyncio.gather(*(lane(n) for n in range(lanes)))
    return (time.process_time() - began) * 1000 / pairs


@contextmanager
def ledger_from_memory(t: TenantLedger, customer: str) -> Iterator[None]:
    """Every TenantLedger's authorize and settle answer one recorded result at once."""
    held = t.authorize(customer, "credits", HOLD, idempotency_key=uuid.uuid4().hex)
    settled = t.settle(held.id, ACTUAL, idempotency_key=uuid.uuid4().hex)
    saved = TenantLedger.authorize, TenantLedger.settle
    TenantLedger.authorize = lambda self, *a, **k: held  # type: ignore[method-assign]
    TenantLedger.settle = lambda self, *a, **k: settled  # type: ignore[method-assign]
    try:
        yield
    finally:
        TenantLedger.authorize, TenantLedger.settle = saved  # type: ignore[method-assign]


@contextmanager
def endpoints_on_the_loop() -> Iterator[None]:
    """The hot routes' endpoints run on the event loop's own thread, blocking it, instead of
    on the edge's threads: what the hand-over to a thread costs (not how creditgate serves:
    one request's database work would stop every other request)."""

    async def inline(_self: HotRoutes, endpoint: Callable[..., Any], values: dict[str, Any]) -> Any:
        return endpoint(**values)

    saved = HotRoutes._call
    HotRoutes._call = inline  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        HotRoutes._call = saved  # type: ignore[method-assign]


@contextmanager
def behind_the_floor(lean: LedgerFloor) -> Iterator[None]:
    """The floor's ASGI application serves with `lean` (creditgate's ledger) in its place."""
    saved = floor._floor
    floor._floor = lean  # type: ignore[assignment]
    try:
        yield
    finally:
        floor._floor = saved


@contextmanager
def _databases(server: str) -> Iterator[tuple[str, str]]:
    names = [f"creditgate_stages_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    urls = [create_database(server, name) for name in names]
    try:
        yield urls[0], urls[1]
    finally:
        for name in names:
            drop_database(server, name)


async def _run(
    cg_url: str, floor_url: str, pairs: int, rounds: int, lanes: int, warm: int
) -> dict[str, Any]:
    from creditgate.server.app import create_app

    # The tenant, key and funded customers of `bench http`, and the floor's same customers.
    key, customers, _, _ = setup_creditgate(cg_url)
    cg = Creditgate(cg_url)
    t = TenantLedger(cg, cg.authenticate(key).tenant_id)
    dsn = libpq_dsn(floor_url)
    floor_key = floor.prepare(dsn, customers, GRANT)
    the_floor = floor.Floor(dsn, 10)
    floor._floor = the_floor  # what the floor's lifespan sets in a served worker
    app = create_app(cg)
    served = app_pair(app, key, customers)
    lean = LedgerFloor(cg_url, key, 10)
    stages: list[tuple[str, Pair, int, Callable[[], AbstractContextManager[None]]]] = [
        ("floor: db", floor_db_pair(the_floor, customers), 1, nullcontext),
        ("floor: app", app_pair(floor.app, floor_key, customers), 1, nullcontext),
        (
            f"floor: app, {lanes} lanes",
            app_pair(floor.app, floor_key, customers),
            lanes,
            nullcontext,
        ),
        ("creditgate: db", ledger_pair(t, customers), 1, nullcontext),
        ("creditgate: app", served, 1, nullcontext),
        (f"creditgate: app, {lanes} lanes", served, lanes, nullcontext),
        (FROM_MEMORY, served, 1, lambda: ledger_from_memory(t, customers[0])),
        (ON_THE_LOOP, served, 1, endpoints_on_the_loop),
        (LEAN, app_pair(floor.app, key, customers), 1, lambda: behind_the_floor(lean)),
    ]
    figures: dict[str, list[float]] = {name: [] for name, *_ in stages}
    try:
        async with app.router.lifespan_context(app):
            for _name, pair, n, within in stages:  # warm-up: statements prepared, caches
                with within():
                    await cpu_per_pair(pair, warm, n)
            for _ in range(rounds):
                for name, pair, n, within in stages:
                    with within():
                        figures[name].append(await cpu_per_pair(pair, pairs, n))
    finally:
        the_floor.executor.shutdown()
        floor._floor = None
        lean.close()
        cg.close()
    medians = {name: round(statistics.median(v), 3) for name, v in figures.items()}
    lanes_name = f"app, {lanes} lanes"
    return {
        "pairs": pairs,
        "rounds": rounds,
        "lanes": lanes,
        "cpu_ms_per_pair": medians,
        "rounds_ms_per_pair": {name: [round(x, 3) for x in v] for name, v in figures.items()},
        "ratio_to_floor": {
            stage: round(medians[f"creditgate: {stage}"] / medians[f"floor: {stage}"], 2)
            for stage in ("db", "app", lanes_name)
        },
        "app_layers_ms_per_pair": {
            who: round(medians[f"{who}: app"] - medians[f"{who}: db"], 3)
            for who in ("floor", "creditgate")
        },
    }


def run_stages(
    server: str | None, *, pairs: int = 400, rounds: int = 5, lanes: int = 4, warm: int = 100
) -> dict[str, Any]:
    """The stages on fresh databases of the PostgreSQL server at `server` (else the one in
    the environment, else a throwaway cluster)."""
    with bench_server(server) as found, _databases(found) as (cg_url, floor_url):
        return asyncio.run(_run(cg_url, floor_url, pairs, rounds, lanes, warm))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=400, help="pairs per stage and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lanes", type=int, default=4, help="pairs at a time in the lanes stage")
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL to make databases on")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run_stages(args.db, pairs=args.pairs, rounds=args.rounds, lanes=args.lanes)
    if args.json:
        print(json.dumps(result))
        return
    for name, value in result["cpu_ms_per_pair"].items():
        print(f"{name:48s} {value:7.3f} ms/pair  {result['rounds_ms_per_pair'][name]}")
    print("creditgate / floor:", result["ratio_to_floor"])
    print("app layers (app - db):", result["app_layers_ms_per_pair"])


if __name__ == "__main__":
    main()
