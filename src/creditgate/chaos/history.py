"""The record of a chaos run: every operation a client sent, and what became of it."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# What an operation ended as, from the client's side.
OK = "ok"  # a 2xx answer: acknowledged
REJECTED = "rejected"  # a 4xx answer: definitely not applied (or a decline)
UNRESOLVED = "unresolved"  # never a definite answer, however often retried


@dataclass
class Op:
    kind: str  # grant | authorize | settle | void | charge | refund | purchase | pay | member
    key: str  # the idempotency key every attempt carried
    wallet: str  # the customer's external id
    path: str
    body: dict[str, Any]
    outcome: str = UNRESOLVED
    status: int | None = None
    answer: dict[str, Any] | None = None
    attempts: int = 0
    indefinite: bool = False  # an attempt ended with no answer (cut, crash, 503)
    committed_before_retry: bool | None = None  # for indefinite ops: found applied on retry
    seq: int = -1  # completion order
    started_at: float = 0.0  # time.monotonic() when its first attempt was sent
    finished_at: float = 0.0  # time.monotonic() when the client had its last answer


@dataclass
class Counters:
    server_errors: int = 0  # 5xx other than 503
    unavailable: int = 0  # 503 (overload, database cut): safe to retry
    transport_errors: int = 0  # refused, reset, timed out
    failures: list[str] = field(default_factory=list)


def ended_as(op: Op) -> str:
    """How a report counts an operation: its kind if acknowledged, else `<kind>_rejected` or
    `<kind>_unresolved`. Add `_indefinite` for one an attempt of which a crash or a cut left
    without an answer, however it ended."""
    if op.outcome == OK:
        return op.kind
    return f"{op.kind}_{UNRESOLVED if op.outcome == UNRESOLVED else REJECTED}"


class History:
    """Thread-safe append-only list of finished operations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self.ops: list[Op] = []
        self.counters = Counters()

    def finish(self, op: Op) -> None:
        with self._lock:
            op.seq = next(self._seq)
            op.finished_at = time.monotonic()
            self.ops.append(op)

    def server_error(self, description: str) -> None:
        with self._lock:
            self.counters.server_errors += 1
            if len(self.counters.failures) < 20:
                self.counters.failures.append(description)

    def unavailable(self) -> None:
        with self._lock:
            self.counters.unavailable += 1

    def transport_error(self) -> None:
        with self._lock:
            self.counters.transport_errors += 1

    def acknowledged(self) -> list[Op]:
        return [op for op in self.ops if op.outcome != UNRESOLVED]
