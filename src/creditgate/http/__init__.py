"""The HTTP API."""

from creditgate.settings import default

# Requests a server process serves at once; past it, 503 with Retry-After at once. A few
# times the database threads: enough to keep them busy, few enough that a request let in
# waits at most a few service times at full load instead of queueing behind hundreds.
DEFAULT_MAX_IN_FLIGHT: int = default("max_in_flight")
DEFAULT_BODY_TIMEOUT_SECONDS: float = default("body_timeout_seconds")  # then 408
