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
from pathlib import Path

from tests.processes import left_running


def _servers_on(db: Path) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"creditgate serve --db sqlite:///{db}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(pid) for pid in found.stdout.split()]


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
        left = left_running(servers)
        assert not left, f"servers left running: {left}"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
