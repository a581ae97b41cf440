"""Processes a test started, checked for being gone (a stopped command's servers)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


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
