"""`python -m creditgate.bench.statements`: what each gate call sends to the database, in order.

For BENCHMARKS.md's statement-by-statement account of the hot path. A fresh database, one
tenant and a funded customer; each gate call is made once after a warm-up (caches filled,
statements compiled), alone, with an idempotency key: an approved hold, its settle, a hold
and its void, a charge, a hold the wallet cannot pay, and a replay. On PostgreSQL the calls
go through `bench.pgwire`'s relay, which logs every statement and every Sync (a round trip
of the pipeline); on SQLite the driver's trace callback logs every statement (the database
is in the process: no round trips).

    python -m creditgate.bench.statements --backend postgres|sqlite [--db URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url

from creditgate.api import Creditgate, TenantLedger
from creditgate.bench.pgwire import SYNC, StatementCounter, normalize
from creditgate.bench.target import bench_database

GRANT = 10**12
CUSTOMER = "statements"


class _SqliteLog:
    """Every statement the process's SQLite connections run, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.logging = False
        self._lock = threading.Lock()

    def attach(self, cg: Creditgate) -> None:
        @event.listens_for(cg.db.engine, "connect")
        def _trace(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.set_trace_callback(self._add)

        cg.db.engine.dispose()  # the connections opened before are traced too, reopened

    def _add(self, text: str) -> None:
        if self.logging:
            with self._lock:
                self.log.append(normalize(text))

    def reset(self) -> None:
        with self._lock:
            self.log.clear()


def _calls(t: TenantLedger) -> Iterator[tuple[str, Callable[[], Any]]]:
    """(name, call) for each gate call, in an order where each finds what it needs."""
    held: dict[str, str] = {}

    def authorize(key: str, amount: int) -> Callable[[], Any]:
        def call() -> Any:
            auth = t.authorize(CUSTOMER, "credits", amount, idempotency_key=key)
            held[key] = auth.id
            return auth

        return call

    yield "authorize", authorize("a", 1_000)
    yield "settle", lambda: t.settle(held["a"], 800, idempotency_key="s")
    yield "authorize (to void)", authorize("b", 500)
    yield "void", lambda: t.void(held["b"], idempotency_key="v")
    yield "charge", lambda: t.charge(CUSTOMER, "credits", 300, idempotency_key="c")
    yield "authorize, declined", authorize("d", GRANT * 10)
    yield "authorize, replayed", authorize("a", 1_000)


def _warm_up(t: TenantLedger) -> None:
    for i in range(3):
        auth = t.authorize(CUSTOMER, "credits", 10, idempotency_key=f"wa{i}")
        t.settle(auth.id, 5, idempotency_key=f"ws{i}")
        other = t.authorize(CUSTOMER, "credits", 10, idempotency_key=f"wb{i}")
        t.void(other.id, idempotency_key=f"wv{i}")
        t.charge(CUSTOMER, "credits", 5, idempotency_key=f"wc{i}")
        t.authorize(CUSTOMER, "credits", GRANT * 10, idempotency_key=f"wd{i}")


@contextmanager
def _relayed(url: str) -> Iterator[tuple[str, StatementCounter]]:
    parsed = make_url(url)
    relay = StatementCounter(parsed.host or "127.0.0.1", parsed.port or 5432)
    try:
        through = (
            parsed.set(host="127.0.0.1", port=relay.port)
            .update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
            .render_as_string(hide_password=False)
        )
        yield through, relay
    finally:
        relay.close()


def _steps(log: list[str]) -> list[list[str]]:
    """The log cut into round trips at each Sync (SQLite's, having none, is one step)."""
    steps: list[list[str]] = [[]]
    for entry in log:
        if entry == SYNC:
            if steps[-1]:
                steps.append([])
        else:
            steps[-1].append(entry)
    return [s for s in steps if s]


def run_statements(url: str) -> dict[str, Any]:
    postgres = url.startswith("postgresql")
    with _relayed(url) if postgres else _no_relay(url) as (served, relay):
        cg = Creditgate(served)
        sqlite_log = None
        if relay is None:
            sqlite_log = _SqliteLog()
            sqlite_log.attach(cg)
        try:
            tenant = cg.create_tenant("statements")
            t = cg.tenant(tenant.id)
            t.create_asset("credits", 2)
            t.create_customer(CUSTOMER)
            t.grant(CUSTOMER, "credits", GRANT, kind="purchased", cost_basis="0.01")
            _warm_up(t)
            logger: Any = relay if relay is not None else sqlite_log
            calls = []
            for name, call in _calls(t):
                reruns = cg.db.stats["careful_reruns"]
                logger.reset()
                logger.logging = True
                call()
                logger.logging = False
                log = list(logger.log)
                steps = _steps(log)
                calls.append(
                    {
                        "call": name,
                        "statements": sum(len(s) for s in steps),
                        "round_trips": log.count(SYNC) if postgres else None,
                        "careful_reruns": cg.db.stats["careful_reruns"] - reruns,
                        "steps": steps,
                    }
                )
        finally:
            cg.close()
    return {
        "benchmark": "statements",
        "backend": "postgres" if postgres else "sqlite",
        "calls": calls,
    }


@contextmanager
def _no_relay(url: str) -> Iterator[tuple[str, None]]:
    yield url, None


def _short(text: str, width: int = 150) -> str:
    text = re.sub(r"'[^']*'", "'…'", text)  # SQLite's trace shows the values bound
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--db", default=None, help="a SQLite path or a postgresql:// URL")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with bench_database(args.backend, args.db) as url:
        result = run_statements(url)
    if args.json:
        print(json.dumps(result))
        return
    for call in result["calls"]:
        trips = "" if call["round_trips"] is None else f", {call['round_trips']} round trips"
        print(
            f"{call['call']}: {call['statements']} statements{trips}, "
            f"{call['careful_reruns']} careful reruns"
        )
        for n, step in enumerate(call["steps"], 1):
            for text in step:
                print(f"  {n:>2} {_short(text)}")


if __name__ == "__main__":
    main()
