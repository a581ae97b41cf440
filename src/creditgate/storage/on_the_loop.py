"""Blocking database work run on the event loop's own thread, its waits awaited.

The gate's calls are written as blocking code (the services and storage read and write as
they go), and a served worker used to hand each to a thread (`http/threads.py`). On this
kind of machine the hand-over costs more than the call's own Python: a wake-up of the
thread, one of the loop when it answers, and the two taking the GIL from each other at
every database round trip in between. `run_on_the_loop` runs the call in a greenlet on the
loop's thread instead (as SQLAlchemy's asyncio extension runs blocking code): wherever the
call would block on PostgreSQL, the greenlet gives the loop back until the socket is ready,
and other requests are served meanwhile. Greenlets are kept and reused, one call after
another: a new one costs a fresh frame stack from the system (`mmap`) and its first page
faults, a third of what running a call so costs (BENCHMARKS.md).

What makes a blocking call safe to run so:

- every wait for the server goes through the psycopg connection's `wait`, which
  `LoopConnection` awaits (`psycopg.waiting.wait_async`) when it runs in such a greenlet:
  the wire's pipelines (`storage.wire`), SQLAlchemy's statements, BEGIN, COMMIT and
  ROLLBACK alike. A row lock another request holds is then waited for without holding up
  that request's commit;
- a unit of work waiting to share another's transaction (`Database.run_combined`) waits
  on a `Signal`, awaited in such a greenlet, and the pause before a retry is awaited
  (`pause`);
- no lock of the process is held across a database round trip on the gate's path (the
  caches take theirs around the dictionary only);
- the caller keeps fewer calls in flight than the pool holds connections, so taking one
  never blocks (`OnTheLoop`: as many as the edge's threads, the pool's size; the pool
  allows as many again beyond it);
- a call to a remote service from such a call (Stripe's API, from a purchase) goes on a
  thread (`off_the_loop`).

- a connection opened from such a call is opened on a thread (`LoopConnection.open`):
  psycopg's connect waits in place, and after the server was lost (a failover, a cut) a
  connect can wait as long as its timeout.

SQLite's calls are not run so: its waits are for a file lock, in C.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet
import psycopg
from psycopg import waiting

T = TypeVar("T")

# psycopg's own interval between checks of a wait (`psycopg.connection._WAIT_INTERVAL`).
_INTERVAL = 0.1
# Greenlets kept for the next calls, per thread, beyond those running.
_KEPT = 64


class _Runner(greenlet.greenlet):  # type: ignore[misc]  # (greenlet is untyped)
    """A greenlet on the loop's thread that runs calls one after another."""


class _Await:
    """What a runner's call asks the loop to await for it."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable


class _Done:
    """A runner's call ended: its result, or what it raised."""

    __slots__ = ("error", "result")

    def __init__(self, result: Any, error: BaseException | None) -> None:
        self.result = result
        self.error = error


def _serve(fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """A runner's life: each call's end handed to the loop, which hands over the next call."""
    while True:
        try:
            done = _Done(fn(*args), None)
        except greenlet.GreenletExit:
            raise  # the runner is being collected, mid-call: it ends
        except BaseException as exc:  # handed to the awaiting caller, which raises it
            done = _Done(None, exc)
        del fn, args
        fn, args = greenlet.getcurrent().parent.switch(done)


_idle = threading.local()


def _runner() -> _Runner:
    kept: list[_Runner] | None = getattr(_idle, "runners", None)
    if kept:
        return kept.pop()
    return _Runner(_serve)


def _keep(runner: _Runner) -> None:
    kept: list[_Runner] | None = getattr(_idle, "runners", None)
    if kept is None:
        kept = _idle.runners = []
    if len(kept) < _KEPT:
        kept.append(runner)


def on_the_loop() -> bool:
    """Whether this code runs in a call of `run_on_the_loop`, on the event loop's thread."""
    return isinstance(greenlet.getcurrent(), _Runner)


def await_here(awaitable: Awaitable[T]) -> T:
    """From a call of `run_on_the_loop`: the loop awaits `awaitable` for it (serving other
    requests meanwhile), and the call goes on with its result or its exception."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Runner):
        raise RuntimeError("await_here is for calls of run_on_the_loop")
    return current.parent.switch(_Await(awaitable))  # type: ignore[no-any-return]


async def _drive(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """Run `fn(*args)` in a runner, awaiting what it asks for, until it ends."""
    runner = _runner()
    here = greenlet.getcurrent()
    runner.parent = here
    runner.gr_context = here.gr_context  # the task's context, as on a thread
    asked = runner.switch(fn, args)
    while isinstance(asked, _Await):
        try:
            value = await asked.awaitable
        except BaseException as exc:  # raised in the call, where it awaited
            asked = runner.throw(exc)
        else:
            asked = runner.switch(value)
    runner.gr_context = None
    _keep(runner)
    if asked.error is not None:
        raise asked.error
    return asked.result  # type: ignore[no-any-return]


async def run_on_the_loop(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on this thread, giving the loop back wherever it waits for PostgreSQL.

    It runs in a task of its own, in a copy of the caller's context (as on a thread). A
    cancelled caller still waits for it to end, as a caller of the edge's threads does:
    the request's in-flight slot must not be given back while its database work runs, and
    a wait cut short would leave its connection half way through a statement."""
    task = asyncio.ensure_future(_drive(fn, args))
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and not task.cancelled():
                break
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()


class OnTheLoop:
    """Runs calls with `run_on_the_loop`, at most `size` at once on each loop (the others
    wait their turn): fewer than the pool's connections, so that taking one never blocks."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.size)
        async with slots:
            return await run_on_the_loop(fn, *args)


def off_the_loop(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`, a blocking call that is not the database's (a payment provider's API):
    from a call on the loop, on a thread, the loop serving meanwhile; elsewhere, in place."""
    if on_the_loop():
        return await_here(asyncio.to_thread(fn, *args))
    return fn(*args)


def pause(seconds: float) -> None:
    """Sleep: on the loop, by awaiting, so other requests go on meanwhile."""
    if on_the_loop():
        await_here(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)


class Signal:
    """A `threading.Event` that a `run_on_the_loop` greenlet awaits instead of blocking its
    loop (and every request on it) on; `set` may come from any thread or greenlet."""

    __slots__ = ("_event", "_lock", "_waiters")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        with self._lock:
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits there
                loop.call_soon_threadsafe(_wake, future)

    def wait(self) -> None:
        if not on_the_loop():
            self._event.wait()
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                return
            self._waiters.append((loop, future))
        await_here(future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class LoopConnection(psycopg.Connection[Any]):
    """A psycopg connection whose waits for the server are awaited when it is used in a
    `run_on_the_loop` greenlet; on any other thread it waits as psycopg's does."""

    @classmethod
    def open(cls, *args: Any, **kwargs: Any) -> LoopConnection:
        """`connect`; from a call on the loop, on a thread (psycopg's connect waits for the
        server in place, and a server slow to answer, or gone, would hold up the loop for
        as long as it takes, up to the connect timeout)."""
        if on_the_loop():
            return await_here(asyncio.to_thread(cls.connect, *args, **kwargs))
        return cls.connect(*args, **kwargs)

    def wait(self, gen: Any, interval: float = _INTERVAL, timeout: float | None = None) -> Any:
        if on_the_loop():
            return await_here(
                waiting.wait_async(gen, self.pgconn.socket, interval=interval, timeout=timeout)
            )
        return super().wait(gen, interval, timeout)
