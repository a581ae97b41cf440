"""The body limit at the edge, in the gateway's terms for gateway paths.

The JSON API reads bodies up to `CREDITGATE_MAX_BODY_BYTES` and refuses larger ones as a
problem document; a gateway request may be larger (a long conversation) and is refused in
its provider's error shape past `CREDITGATE_GATEWAY_MAX_BODY_BYTES`.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from creditgate.gateway.errors import error_response, provider_of
from creditgate.http.middleware import BodyLimit, read_body, replaying

PREFIX = "/gateway/"


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
