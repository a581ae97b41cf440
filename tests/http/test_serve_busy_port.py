"""`creditgate serve` on a port already taken fails at once: one line on stderr, exit 1, and
nothing printed on stdout (no listen address, no demo key) or created in the database."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from creditgate.server.serve import CannotListen, check_port

pytestmark = pytest.mark.slow


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "creditgate", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_second_demo_on_a_busy_port_fails_before_printing_or_creating_anything(
    tmp_path: Path,
) -> None:
    db = tmp_path / "demo.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = _serve("--demo", "--db", f"sqlite:///{db}", "--port", str(port))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert f"port {port} on 127.0.0.1 is already in use" in line, line
    assert "Traceback" not in done.stderr
    assert not db.exists()  # no schema, no demo tenant, no API key


def test_check_port_tells_a_free_port_from_a_taken_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        taken.listen(1)
        with pytest.raises(CannotListen, match="already in use"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # closed: free again


def test_an_address_that_cannot_be_listened_on_is_one_clear_error() -> None:
    with pytest.raises(CannotListen, match=r"cannot listen on 192\.0\.2\.1"):
        check_port("192.0.2.1", 8000)  # not this machine's address
