"""Server processes for a chaos run: several `creditgate serve` on one database, each
killable with SIGKILL and restartable, all reading their clock from one offset file."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx

from creditgate.adapters.outbound import tls_context
from creditgate.api.clock import CLOCK_FILE_ENV, write_offset
from creditgate.storage.throwaway import listening_port


@dataclass
class ServerProcess:
    url: str
    port: int
    env: dict[str, str]
    log_path: Path
    sweep_seconds: float = 0.5
    pool_size: int = 8  # database connections, and so requests at work at once
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    frozen: bool = False  # stopped by `freeze`, its SIGKILL to come

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        command = [sys.executable, "-m", "creditgate", "serve", "--db", self.url]
        command += ["--port", str(self.port), "--sweep-seconds", str(self.sweep_seconds)]
        command += ["--log-level", "warning", "--max-in-flight", "256"]
        command += ["--pool-size", str(self.pool_size)]
        self.proc = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.frozen = False
        log.close()
        self.starts += 1
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                ready = httpx.get(f"{self.base}/readyz", timeout=1.0, verify=tls_context())
                if ready.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server on port {self.port} not ready in {timeout}s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; whatever was in flight is cut."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.frozen = False

    def freeze(self) -> None:
        """SIGSTOP: the server takes no step, but its listening socket still accepts, so a
        request sent now is received by the kernel and never answered (until a SIGKILL)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Cluster:
    """`size` servers on one database; the clock offset file they share."""

    url: str
    size: int = 2
    sweep_seconds: float = 0.5
    pool_size: int = 8
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="creditgate-chaos-"))
    )
    servers: list[ServerProcess] = field(default_factory=list)
    offset_seconds: Decimal = Decimal(0)
    crashes: int = 0
    last_crash: float = 0.0  # time.monotonic() of the last SIGKILL
    failed_starts: int = 0  # start-ups that met a cut connection and exited (started again)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Crashes come from more than one thread (the fault thread, aimed ones): one at a time,
    # so that a server is never started twice.
    _crash_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.clock_file = self.workdir / "clock-offset"
        write_offset(self.clock_file, 0)
        env = dict(os.environ)
        env[CLOCK_FILE_ENV] = str(self.clock_file)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        for n in range(self.size):
            log_path = self.workdir / f"server-{n}.log"
            self.servers.append(
                ServerProcess(
                    self.url, listening_port(), env, log_path, self.sweep_seconds, self.pool_size
                )
            )

    def start(self) -> None:
        for server in self.servers:
            server.start(wait=False)
        for server in self.servers:
            server.wait_ready()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def bases(self) -> list[str]:
        return [s.base for s in self.servers]

    def set_offset(self, seconds: Decimal) -> None:
        with self._lock:
            self.offset_seconds = seconds
            write_offset(self.clock_file, seconds)

    def crash_one(
        self, rng: random.Random, down_seconds: float = 0.3, base: str | None = None
    ) -> None:
        """SIGKILL a random server (or the one at `base`), leave it down a moment, start it
        again."""
        with self._crash_lock:
            server = rng.choice([s for s in self.servers if s.base == base] or self.servers)
            server.kill()
            self.crashes += 1
            self.last_crash = time.monotonic()
            # A server frozen for an aimed crash still holds what it held when stopped (on
            # SQLite, the database's write lock), and its SIGKILL waits for this lock: were it
            # left, the start below would wait on it for every attempt (once 5 minutes, until
            # the start gave up). It dies now instead, a moment early; its own crash, when it
            # comes, finds it dead and starts it again.
            for other in self.servers:
                if other.frozen:
                    other.kill()
            time.sleep(down_seconds * rng.random())
            self._restart(server)

    def freeze(self, base: str) -> None:
        """Stop the server at `base` in its tracks (see ServerProcess.freeze); the crash that
        follows kills it."""
        with self._crash_lock:
            for server in self.servers:
                if server.base == base and server.alive():
                    server.freeze()

    def _restart(self, server: ServerProcess, attempts: int = 5) -> None:
        # As a supervisor would: a server whose start-up meets a cut connection exits, and is
        # started again.
        for attempt in range(attempts):
            try:
                server.start(wait=True)
                return
            except RuntimeError:
                self.failed_starts += 1
                server.kill()
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)

    def ensure_up(self) -> None:
        for server in self.servers:
            if not server.alive():
                self._restart(server)

    def logs_tail(self, lines: int = 40) -> str:
        out = []
        for server in self.servers:
            text = server.log_path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {server.log_path.name}\n" + "\n".join(text))
        return "\n".join(out)


Crash = Callable[[random.Random, float, str], None]  # Cluster.crash_one(rng, down, base)
Freeze = Callable[[str], None]  # Cluster.freeze(base)
CRASH_AFTER = (0.0, 0.1)  # seconds after an aimed operation is sent, when its server dies
# A frozen server dies this long after its aimed operation is sent: long enough that the
# request is surely in its socket, unanswered.
FROZEN_FOR = (0.3, 0.5)
FROZEN_SHARE = 0.25  # of the aimed crashes after the first (which always is)
CRASH_EVERY = 8.0  # at most one aimed crash this often, seconds


@dataclass
class CrashTurns:
    """The aimed crashes' schedule, shared by the Crashers of a run: one at most every
    `every` seconds (`CRASH_EVERY` unless the run says otherwise), their turns in rotation
    (so a run crashes its servers as often whoever aims); a turn its owner leaves untaken
    for another `every` goes to whoever asks next."""

    parties: int = 1
    every: float = CRASH_EVERY
    last: float = 0.0
    turn: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, party: int) -> bool:
        with self.lock:
            since = time.monotonic() - self.last
            if since < self.every or (party != self.turn and since < 2 * self.every):
                return False
            self.last = time.monotonic()
            self.turn = (party + 1) % self.parties
            return True


class Crasher:
    """Aims a SIGKILL at the server an operation is sent to, just after it is sent, when its
    turn (`CrashTurns`) comes; the bank's own crash thread goes on beside it (and skips its
    turn when an aimed crash came first). The collection's clients and the organizations'
    member calls have one each, taking turns.

    A kill at a random moment often comes after a quick operation has already answered. So
    the first aimed crash, and a share of the others, first freezes the server (`freeze`):
    the operation is then surely cut in the middle, its outcome unknown to its client, which
    must try it again elsewhere under its key. The others kill a running server at a random
    moment, in or after the operation's commit."""

    def __init__(
        self,
        crash: Crash,
        rng: random.Random,
        turns: CrashTurns | None = None,
        party: int = 0,
        freeze: Freeze | None = None,
    ) -> None:
        self.crash = crash
        self.freeze = freeze
        self.rng = rng
        self.turns = turns or CrashTurns()
        self.party = party
        self.lock = threading.Lock()
        self.aimed = 0
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def aim(
        self, bases: list[str], share: float = 1.0, draw: random.Random | None = None
    ) -> str | None:
        """The server to send the next operation to, killed just after; None: no crash now.

        Until this party's first aimed crash, every operation that may take one asks for it,
        so it comes as soon as the party's turn does (a short run has one from each party);
        after it, `share` of them ask (drawn from the caller's `draw`)."""
        if self.aimed and draw is not None and draw.random() >= share:
            return None
        if not self.turns.take(self.party):
            return None
        with self.lock:
            self.aimed += 1
            rng = random.Random(self.rng.random())
            frozen = self.freeze is not None and (self.aimed == 1 or rng.random() < FROZEN_SHARE)
        freeze = self.freeze if frozen else None
        base = rng.choice(bases)
        if freeze is not None:
            freeze(base)
        after = CRASH_AFTER if freeze is None else FROZEN_FOR
        thread = threading.Thread(target=self._later, args=(rng, base, after), daemon=True)
        thread.start()
        self.threads.append(thread)
        return base

    def _later(self, rng: random.Random, base: str, after: tuple[float, float]) -> None:
        time.sleep(rng.uniform(*after))
        try:
            self.crash(rng, 0.3, base)
        except Exception as exc:  # a failed restart fails the run
            self.errors.append(f"aimed crash: {exc!r}")

    def join(self) -> None:
        for thread in self.threads:
            thread.join(120)
