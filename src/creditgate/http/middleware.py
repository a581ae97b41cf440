"""Every request's edge, as plain ASGI: request ids, logs, latency, load shedding, body cap."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditgate.http.logs import request_id
from creditgate.http.metrics import IN_FLIGHT, REFUSED, REQUEST_SECONDS
from creditgate.http.problems import problem, problem_response

log = logging.getLogger("creditgate.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# An API key a client put where it does not belong (a path, a request id): never logged whole.
_KEY_SHAPED = re.compile(r"cg_([a-z0-9]{8})_[A-Za-z0-9_-]{8,}")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# Probes and scrapes must answer while the API sheds load.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestContext:
    """Give each request an id (echoed as X-Request-Id), time it, and log one line for it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(_header(scope, b"x-request-id"))
        token = request_id.set(rid)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-Id", rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None) or (
                scope["path"] if scope["path"] in UNLIMITED_PATHS else "unmatched"
            )
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            answered(scope, method, route, status, start, rid)
            request_id.reset(token)


def request_id_of(incoming: str | None) -> str:
    """The client's X-Request-Id when it is a fit one, else a new id."""
    valid = incoming and _REQUEST_ID.match(incoming) and not _KEY_SHAPED.search(incoming)
    return incoming if incoming and valid else uuid.uuid4().hex


# The latency histogram's child per (method, route, status): `labels()` takes a lock and
# builds its key on every call. Routes are templates, so the set stays small.
_timers: dict[tuple[str, str, int], Any] = {}


def answered(scope: Scope, method: str, route: str, status: int, start: float, rid: str) -> None:
    """Measure and log one answered request (every request, the hot routes' included)."""
    elapsed = time.perf_counter() - start
    timer = _timers.get((method, route, status))
    if timer is None:
        timer = _timers[(method, route, status)] = REQUEST_SECONDS.labels(
            method, route, str(status)
        )
    timer.observe(elapsed)
    if not log.isEnabledFor(logging.INFO):
        return
    state = scope.get("state") or {}
    log.info(
        "request",
        extra={
            "request_id": rid,
            "method": method,
            "path": _KEY_SHAPED.sub(r"cg_\1_…", scope["path"][:200]),
            "route": route,
            "status": status,
            "ms": round(elapsed * 1000, 3),
            "tenant": state.get("tenant_id"),
            "key": state.get("key"),
        },
    )


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


class Backpressure:
    """At most `in_flight.limit` requests in flight; past that, answer 503 with Retry-After at once.

    Refusing quickly keeps the latency of accepted requests bounded instead of letting a
    queue grow without bound in front of the database. The hot routes count against the
    same `InFlight`.
    """

    def __init__(self, app: ASGIApp, *, in_flight: InFlight) -> None:
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if scope["type"] != "http" or path in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        if not self.in_flight.has_room(finishes_a_hold(scope["method"], path)):
            REFUSED.inc()
            await overloaded()(scope, receive, send)
            return
        self.in_flight.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight.leave()


def overloaded() -> Response:
    """The answer past the in-flight limit: 503 with Retry-After."""
    return problem_response(
        problem(503, "overloaded", "the server is at capacity; retry after a moment")
    )


def finishes_a_hold(method: str, path: str) -> bool:
    """Settling or voiding an authorization: work a client started, and whose hold stays
    taken until it expires if the request is refused."""
    return (
        method == "POST"
        and path.startswith("/v1/authorizations/")
        and path.endswith(("/settle", "/void"))
        and path.count("/") == 4
    )


class BodyLimit:
    """Read the whole body up front, refusing (413) one larger than `limit` bytes."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit() or len(declared) > 18:
                await problem_response(
                    problem(400, "malformed_request", "Content-Length is not a valid length")
                )(scope, receive, send)
                return
            if int(declared) > self.limit:
                await self._too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.limit} bytes"
        await problem_response(problem(413, "body_too_large", detail))(scope, receive, send)
