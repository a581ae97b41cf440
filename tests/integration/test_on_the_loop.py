"""The hot routes' blocking database work runs on the event loop (`storage/on_the_loop.py`).

What must hold for that to be safe: every wait for PostgreSQL gives the loop back (the
wire's pipelines and SQLAlchemy's statements alike), so a row lock one request holds is
waited for by another on the same loop without holding up the first one's commit; a call
waiting to share a transaction, or pausing before a retry, gives the loop back too; the
gate's counts stay exact with calls combined on one loop; and a cancelled caller does not
cut its database work short.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    literal,
    select,
)
from sqlalchemy import text as sql_text

from creditgate.api import TenantLedger
from creditgate.http.hot import HotRoutes
from creditgate.server.app import create_app
from creditgate.services.billing.payments import _off_the_loop
from creditgate.storage.database import Database
from creditgate.storage.on_the_loop import (
    LoopConnection,
    OnTheLoop,
    Signal,
    await_here,
    off_the_loop,
    on_the_loop,
    pause,
    run_on_the_loop,
)
from creditgate.storage.prepared import Prepared, pipeline
from tests.databases import database_of
from tests.integration.test_concurrency import balance, fund

_metadata = MetaData()
_counters = Table(
    "loop_counters",
    _metadata,
    Column("id", String, primary_key=True),
    Column("n", BigInteger, nullable=False),
)
_SLEEP = Prepared(select(func.pg_sleep(bindparam("seconds"))))

on_postgres = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


@pytest.fixture
def db(postgres_server: str) -> Iterator[Database]:
    with database_of(postgres_server, "loop", _metadata, pool_size=4) as database:
        with database.engine.begin() as conn:
            conn.execute(_counters.insert().values(id="a", n=0))
        yield database


async def _ticks_while(work: Callable[[], Any]) -> tuple[Any, int]:
    """`work`'s result, and how often a coroutine beside it ran (every 10 ms) meanwhile."""
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await asyncio.sleep(0.01)
            ticks += 1

    beside = asyncio.ensure_future(ticker())
    try:
        result = await work()
    finally:
        done = True
        await beside
    return result, ticks


def _within(seconds: float, main: Callable[[], Any]) -> Any:
    """`asyncio.run(main())` on a thread of its own, failing the test if it has not ended
    in `seconds`: a call blocking its loop would otherwise hang the test, not fail it."""
    answer: list[Any] = []

    def run() -> None:
        try:
            answer.append(asyncio.run(main()))
        except BaseException as exc:
            answer.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert answer, f"the loop did not end in {seconds} s: a call blocked it"
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]


def test_connections_are_the_loop_aware_kind(db: Database) -> None:
    with db.connect() as conn:
        assert isinstance(conn.connection.driver_connection, LoopConnection)


def test_a_wait_for_the_server_gives_the_loop_back(db: Database) -> None:
    """A statement of SQLAlchemy's and one of the wire's each wait 0.3 s in the server; the
    loop serves another coroutine meanwhile. The same work called on the loop directly
    blocks it: the coroutine beside it does not run."""

    def work() -> list[Any]:
        with db.connect() as conn:
            first = conn.execute(select(func.pg_sleep(0.3))).scalar()
            with pipeline(conn):
                second = _SLEEP.submit(conn, {"seconds": 0.3})
            return [first, second.first()]

    async def on_the_loop() -> tuple[Any, int]:
        return await _ticks_while(lambda: run_on_the_loop(work))

    async def blocking() -> tuple[Any, int]:
        async def direct() -> Any:
            return work()

        return await _ticks_while(direct)

    (result, ticks) = asyncio.run(on_the_loop())
    assert len(result) == 2
    assert ticks >= 20  # 0.6 s of waits, a tick every 10 ms
    (_, blocked_ticks) = asyncio.run(blocking())
    assert blocked_ticks <= 2


def test_opening_a_connection_from_the_loop_does_not_hold_it_up() -> None:
    """A server that takes the connection and never answers: the open waits for its timeout
    on a thread, the loop serving meanwhile, and fails as psycopg's connect does."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]

    def open_one() -> None:
        LoopConnection.open(f"host=127.0.0.1 port={port} user=cg dbname=cg connect_timeout=1")

    async def opening() -> tuple[Any, int]:
        async def attempt() -> Any:
            with pytest.raises(psycopg.OperationalError):
                await run_on_the_loop(open_one)

        return await _ticks_while(attempt)

    try:
        (_, ticks) = _within(20, opening)
    finally:
        silent.close()
    assert ticks >= 30  # a tick every 10 ms through the second it waited


def test_a_row_lock_held_on_the_same_loop_is_waited_for_without_a_deadlock(
    db: Database,
) -> None:
    """Two calls on one loop update one row. The second waits for the first's lock; the
    first, meanwhile, goes on to its commit. With the second's wait blocking the loop, the
    first could never commit: the second would give up at its lock timeout."""
    order: list[str] = []

    def first(locked: asyncio.Event) -> None:
        with db.connect() as conn:
            conn.execute(_counters.update().values(n=_counters.c.n + 1))
            locked.set()
            pause(0.2)  # the second call now waits for the row
            order.append("first commits")

    def second() -> None:
        with db.connect() as conn:
            conn.execute(sql_text("SET LOCAL lock_timeout = '5s'"))
            conn.execute(_counters.update().values(n=_counters.c.n + 10))
            order.append("second updated")

    async def both() -> None:
        locked = asyncio.Event()
        one = asyncio.ensure_future(run_on_the_loop(first, locked))
        await locked.wait()
        began = time.monotonic()
        await asyncio.gather(one, run_on_the_loop(second))
        assert time.monotonic() - began < 4

    asyncio.run(both())
    assert order == ["first commits", "second updated"]
    with db.engine.connect() as conn:
        assert conn.execute(select(_counters.c.n)).scalar() == 11


def test_a_signal_is_awaited_on_the_loop_and_set_from_anywhere() -> None:
    """A call on the loop waiting for a signal lets the loop run; the signal may come from a
    thread or from another call on the loop, and a thread may wait for one set there."""
    from_thread = Signal()

    def set_later() -> None:
        time.sleep(0.2)
        from_thread.set()

    async def awaited() -> tuple[Any, int]:
        threading.Thread(target=set_later).start()
        return await _ticks_while(lambda: run_on_the_loop(from_thread.wait))

    (_, ticks) = asyncio.run(awaited())
    assert from_thread.is_set() and ticks >= 10

    between_calls = Signal()
    for_a_thread = Signal()
    seen: list[str] = []

    def waiter() -> None:
        between_calls.wait()
        seen.append("call woke")

    def setter() -> None:
        pause(0.05)
        between_calls.set()
        for_a_thread.set()

    def thread_waiter() -> None:
        for_a_thread.wait()
        seen.append("thread woke")

    thread = threading.Thread(target=thread_waiter)
    thread.start()

    async def calls() -> None:
        await asyncio.wait_for(
            asyncio.gather(run_on_the_loop(waiter), run_on_the_loop(setter)), timeout=5
        )

    _within(10, calls)
    thread.join(5)
    assert sorted(seen) == ["call woke", "thread woke"]


def test_a_signal_set_before_the_wait_does_not_wait() -> None:
    signal = Signal()
    signal.set()

    async def call() -> None:
        await asyncio.wait_for(run_on_the_loop(signal.wait), timeout=2)

    asyncio.run(call())
    signal.wait()  # and on a thread


def test_a_pause_on_the_loop_lets_the_loop_run() -> None:
    async def paused() -> tuple[Any, int]:
        return await _ticks_while(lambda: run_on_the_loop(pause, 0.3))

    (_, ticks) = asyncio.run(paused())
    assert ticks >= 10


def test_a_cancelled_caller_does_not_cut_its_work_short(db: Database) -> None:
    """The request is cancelled while its work waits for the server: the work still
    commits, and only then does the caller see the cancellation."""

    def work() -> str:
        with db.connect() as conn:
            conn.execute(_counters.update().values(n=_counters.c.n + 5))
            conn.execute(select(func.pg_sleep(0.3)))
        return "committed"

    async def cancelled() -> float:
        task = asyncio.ensure_future(run_on_the_loop(work))
        await asyncio.sleep(0.05)
        began = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - began

    waited = asyncio.run(cancelled())
    assert waited >= 0.2  # until the work ended
    with db.engine.connect() as conn:
        assert conn.execute(select(_counters.c.n)).scalar() == 5
    with db.connect() as conn:  # and the connection went back to the pool usable
        assert conn.execute(select(func.count()).select_from(_counters)).scalar() == 1


@on_postgres
def test_calls_on_one_wallet_on_the_loop_share_transactions_and_stay_exact(
    ledger: TenantLedger,
) -> None:
    """Sixty authorizations of one wallet, all on one loop (at most ten at once, as the edge
    runs them), for a balance that pays exactly twenty: twenty approved, forty declined,
    and calls that queued behind a transaction shared the next one."""
    fund(ledger, [20 * 100])
    batches = ledger.cg.db.stats["combined_batches"]

    def hold(i: int) -> bool:
        held = ledger.authorize("c1", "credits", 100, idempotency_key=f"loop-{i}")
        return held.approved

    async def all_of_them() -> list[bool]:
        slots = asyncio.Semaphore(10)

        async def one(i: int) -> bool:
            async with slots:
                return await run_on_the_loop(hold, i)

        return await asyncio.gather(*(one(i) for i in range(60)))

    approved = _within(60, all_of_them)
    assert approved.count(True) == 20
    assert ledger.cg.db.stats["combined_batches"] > batches
    posted, held = balance(ledger)[:2]
    assert (posted, held) == (2_000, 2_000)


def test_the_edge_and_the_gateway_run_on_the_loop_on_postgresql_only(cg: Any, backend: str) -> None:
    app = create_app(cg)
    front = app.front  # type: ignore[attr-defined]
    assert isinstance(front, HotRoutes)
    gateway = app.state.gateway
    if backend == "sqlite":
        assert front.on_the_loop is None and gateway.on_the_loop is None
        return
    assert isinstance(front.on_the_loop, OnTheLoop)
    assert gateway.on_the_loop is front.on_the_loop  # one bound on the calls in flight
    assert front.on_the_loop.size == front.threads.size


def test_a_call_to_stripe_from_the_loop_goes_on_a_thread() -> None:
    """A purchase runs on the loop and may ask Stripe for a Checkout Session: Stripe's HTTP
    client makes its request on a thread, the loop serving meanwhile; off the loop the
    request is made in place."""
    threads_used: list[str] = []

    class SlowStripe:
        name = "slow"

        def request(self, method: str, url: str, headers: Any, post_data: Any = None) -> Any:
            threads_used.append(threading.current_thread().name)
            time.sleep(0.3)
            return b"{}", 200, {}

        def close(self) -> None:
            pass

    client = _off_the_loop(SlowStripe())

    async def from_the_loop() -> tuple[Any, int]:
        return await _ticks_while(
            lambda: run_on_the_loop(client.request, "post", "https://stripe.test/v1/x", {})
        )

    (answer, ticks) = _within(10, from_the_loop)
    assert answer == (b"{}", 200, {}) and ticks >= 20
    assert client.request("get", "https://stripe.test/v1/x", {}) == (b"{}", 200, {})
    assert threads_used[0] != threading.main_thread().name
    assert threads_used[1] == threading.main_thread().name
    assert off_the_loop(lambda: "in place") == "in place"


def test_off_the_loop_a_connection_waits_as_psycopg_does(db: Database) -> None:
    """On a thread (SQLite's edge, the sync routes, the worker) the same connection waits as
    psycopg's does."""
    found: list[Any] = []

    def on_a_thread() -> None:
        with db.connect() as conn:
            found.append(conn.execute(select(func.pg_sleep(0.05), literal(7))).one()[1])

    thread = threading.Thread(target=on_a_thread)
    thread.start()
    thread.join(10)
    assert found == [7]


_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def test_calls_reuse_their_greenlets_and_keep_their_own_context_and_errors() -> None:
    """A call sees its caller's context (the request id reaches its log lines) and what it
    sets stays its own; its exception comes out of the await with its traceback; one that
    the loop raises where the call awaited can be caught there; and the next call runs in
    a greenlet already made."""
    import greenlet

    seen: list[Any] = []

    def call() -> str:
        seen.append((_request_id.get(), greenlet.getcurrent()))
        _request_id.set("changed inside")
        return "answer"

    def fails() -> None:
        raise LookupError("the call's own")

    async def failing() -> None:
        raise KeyError("raised by the loop")

    def catches() -> str:
        try:
            await_here(failing())
        except KeyError as exc:
            return f"caught {exc}"
        return "not raised"

    async def main() -> list[Any]:
        _request_id.set("req-1")
        first = await run_on_the_loop(call)
        second = await run_on_the_loop(call)
        with pytest.raises(LookupError, match="the call's own") as raised:
            await run_on_the_loop(fails)
        assert any(entry.name == "fails" for entry in raised.traceback)
        return [first, second, await run_on_the_loop(catches), _request_id.get()]

    assert asyncio.run(main()) == ["answer", "answer", "caught 'raised by the loop'", "req-1"]
    assert [request_id for request_id, _ in seen] == ["req-1", "req-1"]
    assert seen[0][1] is seen[1][1]  # the same greenlet, kept between the calls
    assert not on_the_loop()
    pending = asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await_here(pending)  # off the loop: refused
    pending.close()
