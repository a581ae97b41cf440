"""Clocks: the system clock, and a skewed one for fault-injection runs.

`creditgate serve` reads the time from the system clock. When `CREDITGATE_CLOCK_FILE` names a
file, it adds the offset that file holds (seconds, a decimal number, possibly negative) to the
system clock, re-reading the file whenever it changes. The chaos suite uses this to move a
running server's clock forward and back between operations, as clock faults and as a way to
make holds and lots expire. Production servers never set it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from creditgate.settings import Settings

Clock = Callable[[], datetime]

CLOCK_FILE_ENV = "CREDITGATE_CLOCK_FILE"
MAX_OFFSET = timedelta(days=3650)

log = logging.getLogger("creditgate.api.clock")


def system_clock() -> datetime:
    return datetime.now(UTC)


class FileOffsetClock:
    """The system clock plus the offset written in a file, re-read when the file changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._offset = timedelta(0)

    def offset(self) -> timedelta:
        try:
            st = os.stat(self.path)
        except OSError:
            return self._offset  # a file being replaced: keep the last offset
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                seconds = Decimal(self.path.read_text().strip() or "0")
                offset = timedelta(microseconds=int(seconds * 1_000_000))
            except (OSError, InvalidOperation, ValueError, OverflowError):
                return self._offset
            if abs(offset) <= MAX_OFFSET:
                self._offset = offset
        return self._offset

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset()


def write_offset(path: str | Path, seconds: Decimal | int) -> None:
    """Set a FileOffsetClock's offset atomically (readers never see a half-written file)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{Decimal(seconds)}\n")
    os.replace(tmp, target)


def clock_from_env() -> Clock:
    path = Settings().clock_file
    if not path:
        return system_clock
    log.warning("clock offset from a file (fault injection)", extra={"file": path})
    return FileOffsetClock(path)
