"""A bench stopped with SIGTERM (`kill`, a supervisor, a job's timeout) stops the processes it
started (the server under test, the stand-in provider) instead of leaving them running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.processes import left_running


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(child) for child in found.stdout.split()]


def test_sigterm_stops_the_server_and_the_standin_a_bench_started(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "creditgate", "bench", "gateway", "--backend", "sqlite"]
    command += ["--rates", "50", "--seconds", "60", "--db", str(tmp_path / "bench.db")]
    bench = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started: list[int] = []
    try:
        # The stand-in, then the server: both up once the bench has two children.
        deadline = time.monotonic() + 90
        while len(started) < 2:
            assert bench.poll() is None, "the bench ended before its processes were up"
            assert time.monotonic() < deadline, "the bench's processes did not start"
            time.sleep(0.2)
            started = _children(bench.pid)
        time.sleep(1.0)  # under way
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=90) == 128 + signal.SIGTERM
        left = left_running(started)
        assert not left, f"processes left running: {left}"
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
