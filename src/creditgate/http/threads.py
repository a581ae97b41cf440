"""A fixed set of threads for the hot routes' blocking database work, and a limit of its own
for the calls that wait on a payment provider.

The gate's calls are blocking (the database drivers are), so each runs on a thread while the
event loop serves other requests. anyio's `to_thread.run_sync` costs more CPU per call than
the HTTP parsing of the request: it looks up the running backend and its limiter, takes a
capacity token and manages a growing pool of idle threads. Here a call is put on a
`queue.SimpleQueue` that a fixed number of threads take from, and its result comes back to
the loop with one `call_soon_threadsafe`. The threads run each call in a copy of the
caller's context, so the request id reaches the logs written on the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from starlette.requests import Request

T = TypeVar("T")
P = ParamSpec("P")

_Call = tuple[
    Callable[..., Any], tuple[Any, ...], contextvars.Context, asyncio.AbstractEventLoop, Any
]


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Threads:
    """`size` threads, started on first use; `await threads.run(fn, *args)` runs `fn` on one."""

    def __init__(self, size: int, name: str = "creditgate-gate") -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if not self._threads:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((fn, args, contextvars.copy_context(), loop, future))
        # A cancelled caller still waits for its call to end, as with anyio's threads: the
        # request's in-flight slot must not be given back while its database work runs.
        cancelled = False
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    break
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        return future.result()

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            fn, args, context, loop, future = call
            result: Any = None
            error: BaseException | None = None
            try:
                result = context.run(fn, *args)
            except BaseException as exc:  # handed to the awaiting request, which re-raises it
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, future, result, error)
            del call, fn, args, context, loop, future, result, error

    def close(self, timeout: float = 5.0) -> None:
        """Let the threads finish the calls they have, then end them (waiting `timeout`
        seconds in all)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._calls.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


async def waiting_on_a_provider(
    request: Request, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run `fn(*args, **kwargs)`, a call that may wait for a payment provider (Stripe), on a thread
    under the app's own limit for such calls (`app.state.provider_calls`): buying a pack or
    a top-up (the API's and the portal's), refunding a purchase, creating a plan (its Stripe
    price is looked up), subscribing (a Stripe subscription) and advancing a test clock
    (Stripe's, and the billing round's collection).

    Neither the edge's threads, which are the gate's, nor anyio's default tokens, which
    every other blocking route and a key not yet cached need: Stripe's client waits up to 80
    seconds per attempt, and calls held up that long must not take the threads the rest of
    the API is served on."""
    limiter: anyio.CapacityLimiter = request.app.state.provider_calls
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=limiter)
