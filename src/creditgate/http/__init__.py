"""The HTTP API."""

# Requests a server process serves at once; past it, 503 with Retry-After at once. A few
# times the database threads: enough to keep them busy, few enough that a request let in
# waits at most a few service times at full load instead of queueing behind hundreds.
DEFAULT_MAX_IN_FLIGHT = 32
DEFAULT_BODY_TIMEOUT_SECONDS = 10.0  # a body not all come by then is refused (408)
