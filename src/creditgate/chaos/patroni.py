"""A replicated PostgreSQL cluster for a chaos run: three nodes under Patroni, a three-member
etcd, all on loopback ports in one working folder; and the faults that make it fail over.

`synchronous_mode: true`, so a commit is acknowledged only once a standby has it, and only
that standby may be promoted: an acknowledged operation survives the loss of the primary.
`primary_start_timeout: 0`: a crashed primary is failed over at once rather than restarted.
The short `ttl` and `loop_wait` make a lost leader noticed within seconds (a production
cluster keeps Patroni's defaults; see docs/deploy.md).

Debian's packages run it (`patroni`, `etcd-server`, PostgreSQL's server binaries); as root
PostgreSQL and Patroni run as the `postgres` user.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from creditgate.adapters.outbound import tls_context
from creditgate.storage.throwaway import listening_port

SCOPE = "creditgate"
TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 1, 4  # loop_wait + 2 * retry_timeout <= ttl
PACKAGES = "patroni etcd-server"  # Debian's, as `scripts/test` installs them


class PatroniUnavailable(RuntimeError):
    """What a Patroni cluster needs is not installed here."""


def postgres_bin_dir() -> str | None:
    """The folder of PostgreSQL's server binaries (Patroni runs initdb, pg_ctl, pg_rewind...)."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "pg_rewind")):
            return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def missing() -> list[str]:
    """What is not installed of what a Patroni cluster needs (empty: it can run)."""
    lacking = [name for name in ("patroni", "etcd") if shutil.which(name) is None]
    if postgres_bin_dir() is None:
        lacking.append("PostgreSQL server binaries")
    return lacking


@dataclass
class Member:
    """One node: its Patroni process, the PostgreSQL it manages, their ports."""

    name: str
    pg_port: int
    api_port: int
    home: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def data(self) -> Path:
        return self.home / "data"

    def postmaster_pid(self) -> int | None:
        """The running postmaster of this node's data folder (a stale pid file: None)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(self.data).encode() in command else None


@dataclass
class Failover:
    """One fault the cluster was made to fail over from, and when."""

    kind: str  # primary_killed | patroni_killed | switchover
    old_leader: str
    new_leader: str = ""
    started_at: float = 0.0  # time.monotonic() when the fault was injected
    settled_at: float = 0.0  # when the cluster had a primary and its standbys again


@dataclass
class PatroniCluster:
    """`nodes` PostgreSQL nodes under Patroni and an etcd of as many members."""

    nodes: int = 3
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="creditgate-patroni-"))
    )
    members: list[Member] = field(default_factory=list)
    etcd: list[subprocess.Popen[bytes]] = field(default_factory=list)
    failovers: list[Failover] = field(default_factory=list)

    def __post_init__(self) -> None:
        lacking = missing()
        if lacking:
            raise PatroniUnavailable(
                f"{', '.join(lacking)} not found (apt-get install {PACKAGES} postgresql)"
            )
        self.bin_dir = postgres_bin_dir()
        self.patroni_bin, self.etcd_bin = shutil.which("patroni"), shutil.which("etcd")
        self.as_root = os.geteuid() == 0
        self.etcd_ports = [(listening_port(), listening_port()) for _ in range(self.nodes)]
        for n in range(self.nodes):
            home = self.workdir / f"pg{n}"
            self.members.append(Member(f"pg{n}", listening_port(), listening_port(), home))

    # Start and stop

    def start(self, timeout: float = 120.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Its processes run in sessions of their own: an interrupted run must not leave them.
        atexit.register(self.stop)
        if self.as_root:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._start_etcd()
        for member in self.members:
            member.home.mkdir(exist_ok=True)
            (member.home / "patroni.yml").write_text(json.dumps(self._config(member), indent=1))
            if self.as_root:
                for path in (member.home, member.home / "patroni.yml"):
                    shutil.chown(path, "postgres", "postgres")
            self.start_patroni(member)
        self.wait_healthy(timeout)

    def _start_etcd(self) -> None:
        peers = ",".join(
            f"e{n}=http://127.0.0.1:{peer}" for n, (_, peer) in enumerate(self.etcd_ports)
        )
        for n, (client, peer) in enumerate(self.etcd_ports):
            command = [
                str(self.etcd_bin),
                f"--name=e{n}",
                f"--data-dir={self.workdir / f'etcd{n}'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster={peers}",
                "--initial-cluster-state=new",
                f"--initial-cluster-token={SCOPE}-{os.getpid()}",
                "--heartbeat-interval=100",
                "--election-timeout=1000",
            ]
            log = open(self.workdir / f"etcd{n}.log", "ab")  # noqa: SIM115 - the child owns it
            etcd = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            self.etcd.append(etcd)
            log.close()

    def _config(self, member: Member) -> dict[str, Any]:
        # JSON is YAML: Patroni reads this file as its configuration.
        return {
            "scope": SCOPE,
            "namespace": "/creditgate/",
            "name": member.name,
            "log": {"level": "INFO", "dir": str(member.home), "file_num": 2},
            "restapi": {
                "listen": f"127.0.0.1:{member.api_port}",
                "connect_address": f"127.0.0.1:{member.api_port}",
            },
            "etcd3": {"hosts": [f"127.0.0.1:{client}" for client, _ in self.etcd_ports]},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL,
                    "loop_wait": LOOP_WAIT,
                    "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 16 * 1024 * 1024,
                    "synchronous_mode": True,
                    "primary_start_timeout": 0,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "max_connections": 200,
                            "wal_log_hints": "on",
                            "wal_keep_size": "128MB",
                            "shared_buffers": "64MB",
                            "synchronous_commit": "on",
                            "fsync": "on",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{member.pg_port}",
                "connect_address": f"127.0.0.1:{member.pg_port}",
                "data_dir": str(member.data),
                "bin_dir": self.bin_dir,
                "pgpass": str(member.home / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "replication": {"username": "replicator", "password": "replicator"},
                    "rewind": {"username": "postgres", "password": "postgres"},
                },
                "parameters": {"unix_socket_directories": str(member.home)},
                "remove_data_directory_on_rewind_failure": True,
                "remove_data_directory_on_diverged_timelines": True,
            },
        }

    def start_patroni(self, member: Member) -> None:
        log = open(member.home / "patroni.out", "ab")  # noqa: SIM115 - the child owns it
        env = {**os.environ, "HOME": str(member.home), "PATH": os.environ.get("PATH", "")}
        user = "postgres" if self.as_root else None
        member.proc = subprocess.Popen(
            [str(self.patroni_bin), str(member.home / "patroni.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=member.home,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
        log.close()

    def stop(self) -> None:
        """Stopped at once: the cluster is thrown away, nothing in it needs a clean stop
        (PostgreSQL's immediate stop still frees its shared memory)."""
        for member in self.members:
            if member.proc is not None and member.proc.poll() is None:
                member.proc.kill()
                member.proc.wait()
            if member.postmaster_pid() is not None:
                user = "postgres" if self.as_root else None
                pg_ctl = os.path.join(str(self.bin_dir), "pg_ctl")
                subprocess.run(
                    [pg_ctl, "-D", str(member.data), "-m", "immediate", "-w", "stop"],
                    capture_output=True,
                    check=False,
                    timeout=60,
                    user=user,
                    group=user,
                    extra_groups=[] if user else None,
                )
            self._kill_postgres(member)
        for proc in self.etcd:
            proc.kill()
            proc.wait()

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PatroniCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        atexit.unregister(self.stop)
        if exc[0] is None:
            self.remove()

    # What the cluster looks like

    def url(self, database: str = "postgres") -> str:
        """All the nodes, the one taking writes found at connect time (docs/deploy.md)."""
        hosts = ",".join(f"127.0.0.1:{m.pg_port}" for m in self.members)
        return (
            f"postgresql+psycopg://postgres@{hosts}/{database}"
            "?target_session_attrs=read-write&connect_timeout=3"
        )

    def state(self) -> dict[str, dict[str, Any]]:
        """Member name -> Patroni's view of it (role, state, lag), asked of any live node."""
        for member in self.members:
            try:
                response = httpx.get(f"{member.api}/cluster", timeout=2.0, verify=tls_context())
                if response.status_code == 200:
                    return {m["name"]: m for m in response.json().get("members", [])}
            except httpx.HTTPError:
                continue
        return {}

    def leader(self) -> str | None:
        for name, info in self.state().items():
            if info.get("role") == "leader" and info.get("state") == "running":
                return name
        return None

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def healthy(self) -> bool:
        """A running primary and running standbys, one of them synchronous (Patroni names
        one so only once it streams from the primary)."""
        state = self.state()
        if len(state) != self.nodes:
            return False
        roles = [info.get("role") for info in state.values()]
        running = all(info.get("state") in ("running", "streaming") for info in state.values())
        return running and roles.count("leader") == 1 and "sync_standby" in roles

    def wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            for member in self.members:
                if member.proc is not None and member.proc.poll() is not None:
                    raise RuntimeError(f"patroni {member.name} exited; see {member.home}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster is not healthy after {timeout}s: {self.state()}")
            time.sleep(0.2)

    def create_database(self, name: str) -> str:
        import psycopg

        leader = self.member(self.leader() or "")
        dsn = f"host=127.0.0.1 port={leader.pg_port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    # Faults

    def kill_primary_postgres(self) -> Failover:
        """SIGKILL the primary's postmaster and every backend of it: PostgreSQL crashed (OOM
        killer, a segfault). Patroni fails over to the synchronous standby."""
        return self._fail_over("primary_killed", self._kill_postgres)

    def kill_patroni_leader(self) -> Failover:
        """SIGKILL the leader's Patroni: its PostgreSQL runs on, unmanaged, until the leader
        key expires and the synchronous standby is promoted; then Patroni is started again (as
        its supervisor would) and demotes the old primary to a standby of the new one."""

        def kill(member: Member) -> None:
            if member.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    member.proc.send_signal(signal.SIGKILL)
                member.proc.wait()

        failover = self._fail_over("patroni_killed", kill, restart=True)
        return failover

    def switchover(self) -> Failover:
        """A planned switchover to the synchronous standby, through Patroni's REST API."""
        old = self.leader()
        if old is None:
            raise RuntimeError("no leader to switch over from")
        state = self.state()
        candidate = next(n for n, i in state.items() if i.get("role") == "sync_standby")
        failover = Failover("switchover", old, started_at=time.monotonic())
        response = httpx.post(
            f"{self.member(old).api}/switchover",
            json={"leader": old, "candidate": candidate},
            timeout=60.0,
            verify=tls_context(),
        )
        if response.status_code != 200:
            raise RuntimeError(f"switchover refused: {response.status_code} {response.text}")
        return self._settled(failover)

    def _fail_over(self, kind: str, fault: Any, *, restart: bool = False) -> Failover:
        old = self.leader()
        if old is None:
            raise RuntimeError("no leader to fail over from")
        member = self.member(old)
        failover = Failover(kind, old, started_at=time.monotonic())
        fault(member)
        if restart:
            self._wait_new_leader(old)
            self.start_patroni(member)
        return self._settled(failover)

    def _wait_new_leader(self, old: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader != old:
                return leader
            time.sleep(0.1)
        raise RuntimeError(f"no new leader {timeout}s after losing {old}: {self.state()}")

    def _settled(self, failover: Failover) -> Failover:
        failover.new_leader = self._wait_new_leader(failover.old_leader)
        self.wait_healthy()
        failover.settled_at = time.monotonic()
        self.failovers.append(failover)
        return failover

    def _kill_postgres(self, member: Member) -> None:
        postmaster = member.postmaster_pid()
        if postmaster is None:
            return
        # The backends first (found by their parent), then the postmaster: no orphans left
        # holding the shared memory the restarted node needs.
        for pid in [*_children(postmaster), postmaster]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The parent's pid is the second field after the command, which is in parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return found


def main() -> None:
    """`python -m creditgate.chaos.patroni [database]`: a cluster to point benchmarks at.

    Prints the database's URL and runs until interrupted; the cluster is thrown away then.
    """
    import sys

    name = sys.argv[1] if len(sys.argv) > 1 else "creditgate"
    with PatroniCluster() as cluster:
        print(cluster.create_database(name), flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})


if __name__ == "__main__":
    main()
