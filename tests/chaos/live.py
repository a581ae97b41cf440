"""A `creditgate serve` process of the test's own, on a database of its own, for the hostile
input and security tests: a running server sweeps every tenant of its database, so it never
shares one. Its JSON log lines go to a file the test can read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate
from creditgate.storage.throwaway import listening_port
from tests.databases import create_database, drop_database


@dataclass
class Live:
    base: str
    url: str  # the database
    cg: Creditgate  # the same database, in-process
    tenant_id: str
    key: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def live_server(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, **env: str
) -> Iterator[Live]:
    """A served creditgate (one worker, sweeps idle) with one tenant and its key."""
    database = None
    postgres_server = ""
    if backend == "postgres":
        postgres_server = str(request.getfixturevalue("postgres_server"))
        database = f"creditgate_live_{uuid.uuid4().hex[:8]}"
        url = create_database(postgres_server, database)
    else:
        url = f"sqlite:///{tmp_path / 'live.db'}"
    cg = Creditgate(url)  # migrates
    try:
        tenant, key = cg.create_tenant_with_key("live test")
        assert key.key is not None
        port = listening_port()
        log_path = tmp_path / "server.log"
        command = [sys.executable, "-m", "creditgate", "serve", "--db", url, "--port", str(port)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*command, "--sweep-seconds", "3600"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )
        live = Live(f"http://127.0.0.1:{port}", url, cg, tenant.id, key.key, log_path, process)
        try:
            _wait_ready(live)
            yield live
        finally:
            _stop(process)
    finally:
        cg.close()
        if database is not None:
            drop_database(postgres_server, database)


def _wait_ready(live: Live) -> None:
    deadline = time.monotonic() + 60
    while True:
        if live.process.poll() is not None:
            pytest.fail(f"creditgate serve exited:\n{live.log()[-3000:]}")
        try:
            if httpx.get(f"{live.base}/readyz", timeout=1, verify=tls_context()).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"creditgate serve did not start:\n{live.log()[-3000:]}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
