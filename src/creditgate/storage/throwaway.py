"""A throwaway PostgreSQL cluster made with the machine's initdb/pg_ctl, for tests and benchmarks,
and the ports such local servers listen on.

`initdb` refuses to run as root, so as root the cluster runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from creditgate.storage.database import normalize_url

ENV_URL = "CREDITGATE_TEST_POSTGRES_URL"


class PostgresUnavailable(RuntimeError):
    pass


def _find(binary: str) -> str | None:
    found = shutil.which(binary)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{binary}"), reverse=True)
    return candidates[0] if candidates else None


# Where listening ports are chosen: from this port up to the kernel's ephemeral range.
LISTEN_PORTS_FROM = 20_000


def _ephemeral_ports() -> tuple[int, int]:
    """The ports the kernel gives the local end of outgoing connections (Linux's default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(part) for part in f.read().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def listening_port(host: str = "127.0.0.1") -> int:
    """A free port for a local server (a test's, a benchmark's, a chaos run's) to listen on.

    Chosen below the kernel's ephemeral range: a port the kernel handed out (`bind` to 0) is
    one it may give again, meanwhile, as the local end of any outgoing connection on the
    machine, and a server started on it a few seconds later then fails to listen (seen: a
    Patroni node's REST API, while the rest of the suite made its thousands of connections).
    Picked at random (not from a seeded `random`, which a chaos run seeds), and checked free."""
    low, _ = _ephemeral_ports()
    if low - LISTEN_PORTS_FROM >= 1_000:
        for _ in range(200):
            port = LISTEN_PORTS_FROM + secrets.randbelow(low - LISTEN_PORTS_FROM)
            with socket.socket() as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket() as probe:  # no room below the ephemeral range: the kernel's choice
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ThrowawayCluster:
    def __init__(self) -> None:
        initdb, pg_ctl = _find("initdb"), _find("pg_ctl")
        if not initdb or not pg_ctl:
            raise PostgresUnavailable(
                "initdb/pg_ctl not found; install PostgreSQL or set " + ENV_URL
            )
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresUnavailable("running as root needs runuser to start PostgreSQL")
            self.as_user = [runuser, "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="creditgate-pg-"))
        self.port = listening_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.started = False

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            raise PostgresUnavailable(f"{args[0]} failed: {result.stdout}\n{result.stderr}")

    def start(self) -> str:
        data = self.dir / "data"
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(self.initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=128MB"
        )
        self._run(
            self.pg_ctl, "-D", str(data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start"
        )
        self.started = True
        return self.url

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                [
                    *self.as_user,
                    self.pg_ctl,
                    "-D",
                    str(self.dir / "data"),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                check=False,
                timeout=60,
            )
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy URL as the plain libpq connection string psycopg takes (several hosts
    included: `host=a,b port=1,2`, as libpq pairs them)."""
    from psycopg.conninfo import make_conninfo
    from sqlalchemy import create_engine

    engine = create_engine(normalize_url(url))  # connects to nothing: its dialect reads the URL
    _, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs.pop("context", None)
    return make_conninfo(**{key: value for key, value in kwargs.items() if value is not None})


def wait_for(url: str, timeout: float = 30.0) -> None:
    import psycopg

    dsn = libpq_dsn(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def create_database(server_url: str, name: str) -> str:
    """Create a fresh database on the server and return its URL."""
    import psycopg

    dsn = libpq_dsn(server_url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    import psycopg

    dsn = libpq_dsn(server_url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
