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
        return n, threading.current_thread().name, var.get()

    async def main() -> list[tuple[int, str, str]]:
        var.set("request-7")
        return list(await asyncio.gather(*(threads.run(where, n) for n in range(20))))

    try:
        results = asyncio.run(main())
    finally:
        threads.close()
    assert [r[0] for r in results] == list(range(20))
    assert {r[1] for r in results} <= {f"creditgate-gate-{n}" for n in range(3)}
    assert {r[2] for r in results} == {"request-7"}
    assert var.get() == "unset"  # the call's context was a copy


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
