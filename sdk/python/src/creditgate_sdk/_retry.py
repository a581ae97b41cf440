"""When to send a request again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

# Statuses worth another try: the request did not take effect, or replays its first answer
# (every write carries the same idempotency key on each try).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# Transport failures worth another try. A read timeout may mean the server did the work;
# the idempotency key makes the retry answer with that first result instead of a second effect.
RETRY_EXCEPTIONS: tuple[type[httpx.TransportError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Retries on connection errors, timeouts, 408, 429 and 5xx.

    The wait grows exponentially from `initial_backoff` (with jitter) up to `max_backoff`;
    a `Retry-After` header is honoured as given, and when it asks for more than
    `max_retry_after` seconds the error is raised instead of waiting.
    """

    max_retries: int = 2
    initial_backoff: float = 0.25
    max_backoff: float = 8.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be zero or more")

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before try `attempt + 1` (0-based), or None to give up."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        backoff = min(self.max_backoff, self.initial_backoff * 2.0**attempt)
        return backoff * random.uniform(0.5, 1.0)


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """The `Retry-After` header in seconds (delta-seconds or an HTTP date), if usable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)
