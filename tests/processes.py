"""Processes a test starts: worker processes started from a fork server, a fresh Python that
answers in JSON, and processes checked for being gone (a stopped command's servers)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

# What the fork server imports once, before it forks each worker process: the modules of the
# functions the tests run in their workers, with what those import (creditgate, the openai
# client, the tests' conftest).
PRELOAD = [
    "tests.conftest",
    "tests.integration.test_concurrency",
    "tests.integration.test_organization_concurrency",
    "tests.gateway.calling_process",
    "openai",
]


def worker_context() -> BaseContext:
    """The context to start a test's worker processes in: each forks from a fork server that
    imported `PRELOAD` once per xdist worker, instead of importing them again (a second or
    two of CPU per process, spawned). Never a fork of the test process itself, whose threads
    (servers, clients, pools) a fork would copy in the middle of their locks."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def fresh_python(code: str) -> Any:
    """What `code`, run by a new Python process (nothing imported yet), prints as JSON: for
    what a process loads, which only a process that loaded nothing else can tell."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout)


def alive(pid: int) -> bool:
    """Running, or stopped: not gone, and not a zombie (gone but for its parent's wait)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def command_of(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return str(pid)


def left_running(pids: list[int], wait: float = 10.0) -> list[str]:
    """The command lines of those of `pids` still running after up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [command_of(pid) for pid in pids if alive(pid)]
