"""A chaos run stopped with SIGTERM (a supervisor's stop, `kill`, a CI job's timeout) stops
the servers it started, which run in sessions of their own that the signal does not reach,
as Ctrl-C does; the Patroni cluster of `--cluster patroni` is stopped the same way, by the
same unwinding."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _servers_on(db: Path) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"creditgate serve --db sqlite:///{db}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(pid) for pid in found.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone but for its parent's wait.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def test_sigterm_stops_the_servers_the_run_started(tmp_path: Path) -> None:
    db = tmp_path / "chaos.db"
    command = [sys.executable, "-m", "creditgate", "chaos", "--minutes", "2"]
    command += ["--backend", "sqlite", "--db", str(db), "--clients", "2", "--crash-every", "0"]
    run = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    servers: list[int] = []
    try:
        assert run.stdout is not None
        seen = []
        for line in run.stdout:
            seen.append(line)
            if "servers up" in line:
                break
        else:
            raise AssertionError("the run ended before its servers were up:\n" + "".join(seen))
        servers = _servers_on(db)
        assert len(servers) == 2, servers
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=90) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in servers if _alive(pid)], "servers left running"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
