"""The hot routes' thread set: results, errors and the caller's context reach the caller."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from creditgate.http.threads import Threads

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_calls_run_on_the_threads_with_the_callers_context() -> None:
    threads = Threads(3)

    def where(n: int) -> tuple[int, str, str]:
        seen = var.get()
        var.set(f"changed by call {n}")  # in the call's copy only
        return n, threading.current_thread().name, seen

    async def main() -> tuple[list[tuple[int, str, str]], str]:
        var.set("request-7")
        results = await asyncio.gather(*(threads.run(where, n) for n in range(20)))
        return list(results), var.get()

    try:
        results, after = asyncio.run(main())
    finally:
        threads.close()
    assert [r[0] for r in results] == list(range(20))
    assert {r[1] for r in results} <= {f"creditgate-gate-{n}" for n in range(3)}
    assert {r[2] for r in results} == {"request-7"}  # each call saw the caller's context...
    assert after == "request-7"  # ...as a copy: what a call set stayed in it


def test_an_error_is_raised_in_the_caller_and_the_thread_goes_on() -> None:
    threads = Threads(1)

    def fail() -> None:
        raise KeyError("gone")

    async def main() -> int:
        with pytest.raises(KeyError, match="gone"):
            await threads.run(fail)
        return await threads.run(lambda: 42)

    try:
        assert asyncio.run(main()) == 42
    finally:
        threads.close()


def test_close_ends_every_thread_and_a_later_call_starts_them_again() -> None:
    threads = Threads(2, name="closing")
    asyncio.run(threads.run(lambda: None))
    alive = [t for t in threading.enumerate() if t.name.startswith("closing-")]
    assert len(alive) == 2
    threads.close()
    assert not any(t.is_alive() for t in alive)
    assert asyncio.run(threads.run(lambda: "again")) == "again"
    threads.close()
    with pytest.raises(ValueError):
        Threads(0)


def test_a_cancelled_caller_waits_for_its_call_to_end() -> None:
    threads = Threads(1)
    release = threading.Event()
    ended = threading.Event()

    def slow() -> None:
        release.wait(5)
        ended.set()

    async def main() -> bool:
        task = asyncio.ensure_future(threads.run(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.05)
        still_waiting = not task.done()  # the call is still running: so is the caller
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return still_waiting and ended.is_set()

    try:
        assert asyncio.run(main())
    finally:
        threads.close()
