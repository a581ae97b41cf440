"""Load shedding: at most so many requests served at once per process; past that, 503 at once.

Refusing quickly keeps the latency of accepted requests bounded instead of letting a queue
grow without bound in front of the database. A request takes its in-flight slot only once
it has all its body, is routed, and (for the API) its key is verified: a client trickling a
body, an unknown path or a bad key never holds one, so none of them can starve valid work.
The API takes its slot in the key's dependency (`auth.current_ledger`; the edge's hot routes,
`hot.py`, take it at the same point, by the same rule), the portal and the Stripe webhook in
`in_flight_slot`. While every slot is taken, `Shedding` refuses an API request as it
arrives, before any of that work is done for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from creditgate.domain.errors import Unavailable
from creditgate.http.metrics import IN_FLIGHT, REFUSED
from creditgate.http.problems import from_error, problem_response


class Overloaded(Unavailable):
    """Past the in-flight limit: retry after a moment (503 with Retry-After)."""

    code = "overloaded"

    def __init__(self) -> None:
        super().__init__("the server is at capacity; retry after a moment")


class InFlight:
    """Requests being served by this process, against its limit (one event loop per process,
    so no lock). The last quarter of the slots is kept for requests that finish a hold."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.new_work_limit = limit - limit // 4
        self.count = 0

    def has_room(self, finishes_a_hold: bool) -> bool:
        return self.count < (self.limit if finishes_a_hold else self.new_work_limit)

    def enter(self) -> None:
        self.count += 1
        IN_FLIGHT.inc()

    def leave(self) -> None:
        self.count -= 1
        IN_FLIGHT.dec()

    def refuses(self, method: str, path: str) -> bool:
        """Whether a request for `method` and `path` finds no room now; counted if so."""
        if self.has_room(finishes_a_hold(method, path)):
            return False
        REFUSED.inc()
        return True

    @asynccontextmanager
    async def slot(self, method: str, path: str) -> AsyncIterator[None]:
        """Hold a slot while the block runs; Overloaded when there is none."""
        if self.refuses(method, path):
            raise Overloaded()
        self.enter()
        try:
            yield
        finally:
            self.leave()


async def in_flight_slot(request: Request) -> AsyncIterator[None]:
    """A dependency: the request holds an in-flight slot until its answer is sent."""
    in_flight: InFlight = request.app.state.in_flight
    async with in_flight.slot(request.method, request.scope["path"]):
        yield


# Set in a request's scope once it was let in at its arrival (by the edge's hot routes, which
# leave some requests to the stack): `Shedding` does not refuse it again.
ADMITTED = "creditgate.admitted"


class Shedding:
    """An API request refused at once when its process already serves as many as it may:
    before its body is read, its key verified or its route solved.

    The slot itself is still taken where it was (the key's dependency, `in_flight_slot`),
    and by the same rule (`InFlight.has_room`), so nothing a request can do while it has
    no slot changes: this only spares a request that would be refused the work before its
    refusal, which under overload is most of the server's (BENCHMARKS.md, "Refused at
    once"). It sits just inside the request's id, log line and metric, which a refused
    request keeps; past its limit, any request under the API's prefix is refused, whatever
    its key, body or path."""

    def __init__(self, app: ASGIApp, *, in_flight: InFlight, prefix: str = "/v1/") -> None:
        self.app = app
        self.in_flight = in_flight
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith(self.prefix)
            and not scope.get(ADMITTED)
            and self.in_flight.refuses(scope["method"], scope["path"])
        ):
            await overloaded()(scope, receive, send)
            return
        await self.app(scope, receive, send)


def overloaded() -> Response:
    """The answer past the in-flight limit, as the exception handlers give it for Overloaded."""
    return problem_response(from_error(Overloaded()))


def finishes_a_hold(method: str, path: str) -> bool:
    """Settling or voiding an authorization: work a client started, and whose hold stays
    taken until it expires if the request is refused."""
    return (
        method == "POST"
        and path.startswith("/v1/authorizations/")
        and path.endswith(("/settle", "/void"))
        and path.count("/") == 4
    )
