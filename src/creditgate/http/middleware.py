"""Every request's edge, as plain ASGI: request ids, logs, latency, the body's cap and deadline."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditgate.http.logs import request_id
from creditgate.http.metrics import REQUEST_SECONDS
from creditgate.http.problems import problem, problem_response

log = logging.getLogger("creditgate.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# An API key a client put where it does not belong (a path, a request id): never logged whole.
_KEY_SHAPED = re.compile(r"cg_([a-z0-9]{8})_[A-Za-z0-9_-]{8,}")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# Probes and the metrics scrape, named by their path in the metrics.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# The status logged and counted for a request whose client went away before it could be
# answered (as nginx names it): not a server error.
CLIENT_CLOSED = 499
# Set in a request's scope by the edge's hot routes when they leave a request to the stack:
# when it arrived, which its latency counts from.
STARTED = "creditgate.started"


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
        start: float = scope.get(STARTED) or time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-Id", rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            status = CLIENT_CLOSED  # gone before its body was all read: nothing to answer
        finally:
            route = getattr(scope.get("route"), "path", None) or (
                scope["path"] if scope["path"] in PROBE_PATHS else "unmatched"
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


class BodyLimit:
    """Read the whole body up front: refused (413) past `limit` bytes, and (408) when it has not
    all come within `timeout` seconds of the request, so that a slow client holds nothing
    but its own connection (and never an in-flight slot: see `load.py`)."""

    def __init__(self, app: ASGIApp, *, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        body = await limited_body(declared, receive, self.limit, self.timeout)
        if isinstance(body, Response):
            await body(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)


async def limited_body(
    declared: str | None, receive: Receive, limit: int, timeout: float
) -> bytes | Response:
    """The whole body, or the answer refusing it: a `declared` Content-Length that is not one
    (400), a body past `limit` bytes (413, before reading it when its length says so), or one
    not all come within `timeout` seconds (408). ClientDisconnect when the client goes away
    first. (`BodyLimit`'s rule; the edge's hot routes read their bodies by it too.)"""
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()) or len(declared) > 18:
            return problem_response(
                problem(400, "malformed_request", "Content-Length is not a valid length")
            )
        if int(declared) > limit:
            return too_large(limit)
    try:
        body = await read_body(receive, limit, timeout)
    except TimeoutError:
        return body_timed_out(timeout)
    return too_large(limit) if body is None else body


async def read_body(receive: Receive, limit: int, timeout: float) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes (reading stops there).

    ClientDisconnect when the client goes away first; TimeoutError when the body has not all
    come within `timeout` seconds.
    """
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout):
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive`, giving the body already read first."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def too_large(limit: int) -> Response:
    detail = f"the request body is larger than {limit} bytes"
    return problem_response(problem(413, "body_too_large", detail))


def body_timed_out(timeout: float) -> Response:
    """408, and the connection closed: the rest of the body may still be on its way."""
    detail = f"the request body did not all arrive within {timeout:g} seconds"
    return problem_response(problem(408, "body_timeout", detail), {"Connection": "close"})


async def handled(
    handlers: Mapping[Any, Callable[..., Any]], exc: Exception, scope: Scope, receive: Receive
) -> tuple[Response, Exception | None]:
    """The response the app's exception handlers give, found as Starlette finds them, and
    the error itself when it was unexpected (the catch-all's)."""
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            request = Request(scope, receive)
            response: Response
            if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
                type(handler).__call__
            ):
                response = await handler(request, exc)
            else:  # as Starlette calls a plain function: on a thread
                response = await run_in_threadpool(handler, request, exc)
            return response, exc if cls is Exception else None
    raise exc
