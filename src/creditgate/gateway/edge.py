"""The gateway at the app's edge: its routes served directly, and its body limit.

`GatewayEdge` serves the gateway's routes (`routes.ENDPOINTS`) without FastAPI's routing
and middleware stack, whose route matching and layers cost a gateway call more CPU than
its own HTTP parsing, CPU the caller waits for. It still does what the stack does for
every request: a request id, the latency metric and log line (`RequestContext`), the
body's cap and deadline (`BodyLimits`), the app's handler for an unexpected error. Any
other request (another method, another path) goes on to the app as before.

The JSON API reads bodies up to `CREDITGATE_MAX_BODY_BYTES` and refuses larger ones as a
problem document; a gateway request may be larger (a long conversation) and is refused in
its provider's error shape past `CREDITGATE_GATEWAY_MAX_BODY_BYTES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from creditgate.gateway.errors import error_response, provider_of
from creditgate.gateway.routes import ENDPOINTS, router, serve
from creditgate.http.middleware import BodyLimit, RequestContext, handled, read_body, replaying

PREFIX = "/gateway/"


class GatewayEdge:
    """Serve well-formed gateway calls directly (`POST` to one of `ENDPOINTS`); pass
    everything else on to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        owner: Any,
        handlers: Mapping[Any, Callable[..., Any]],
        limit: int,
        timeout: float,
        gateway_limit: int,
    ) -> None:
        self.app = app
        self.owner = owner  # the application, as `request.app`
        self.handlers = handlers
        self.routes = {route.path: route for route in router.routes if isinstance(route, APIRoute)}
        limited = BodyLimits(self._serve, limit=limit, timeout=timeout, gateway_limit=gateway_limit)
        self.direct = RequestContext(limited)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in ENDPOINTS
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        await self.direct(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.owner
        scope["route"] = self.routes[scope["path"]]  # the route the metric and log name
        try:
            response = await serve(Request(scope, receive), ENDPOINTS[scope["path"]])
        except Exception as exc:  # the app's handler answers, as through the stack
            response, unexpected = await handled(self.handlers, exc, scope, receive)
            await response(scope, receive, send)
            if unexpected is not None:
                raise  # logged by the server, as the stack's errors are
            return
        await response(scope, receive, send)


class BodyLimits:
    """`BodyLimit` for the JSON API; the gateway's own limit, in its shapes, for its paths."""

    def __init__(self, app: ASGIApp, *, limit: int, timeout: float, gateway_limit: int) -> None:
        self.app = app
        self.api = BodyLimit(app, limit=limit, timeout=timeout)
        self.timeout = timeout
        self.gateway_limit = gateway_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.api(scope, receive, send)
            return
        provider = provider_of(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or len(declared) > 18:
                await error_response(
                    provider, 400, "malformed_request", "Content-Length is not a valid length"
                )(scope, receive, send)
                return
            if int(declared) > self.gateway_limit:
                await self._too_large(provider)(scope, receive, send)
                return
        try:
            body = await read_body(receive, self.gateway_limit, self.timeout)
        except TimeoutError:
            message = f"the request body did not all arrive within {self.timeout:g} seconds"
            response = error_response(
                provider, 408, "body_timeout", message, {"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        if body is None:
            await self._too_large(provider)(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)

    def _too_large(self, provider: str) -> ASGIApp:
        message = f"the request body is larger than {self.gateway_limit} bytes"
        return error_response(provider, 413, "body_too_large", message)
