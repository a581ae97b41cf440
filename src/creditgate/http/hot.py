"""The gate's hot routes without FastAPI's routing and dependency solving.

`POST /v1/authorizations` and `POST /v1/authorizations/{id}/settle` are the calls a product
makes around every model call, and `POST /v1/charges` the one it makes after a call it did
not gate. Through FastAPI each spends more CPU in route matching and
dependency solving than the HTTP parsing and the response together; here the same route
functions run on the same validated models, answered the same way. Only the well-formed
request takes this path: a JSON body that validates, a valid Idempotency-Key if any, and a
key already in the key cache. Anything else (no key or an unknown one, a body or header that
fails validation, another content type) goes on to FastAPI, which answers it as it answers
every other request, so errors keep one source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from anyio.to_thread import run_sync
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditgate.api import TenantLedger
from creditgate.http import gate
from creditgate.http.auth import KeyCache
from creditgate.http.models import ID_PATTERN, NewAuthorization, NewCharge, SettlementRequest
from creditgate.services.api_keys import display
from creditgate.services.context import MAX_KEY_LENGTH

_SETTLE = re.compile(r"/v1/authorizations/([^/]+)/settle")
_ID = re.compile(ID_PATTERN)
_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})


def find_route(routes: list[Any], path: str, endpoint: Callable[..., Any]) -> APIRoute:
    for route in routes:
        if isinstance(route, APIRoute) and route.path == path and route.endpoint is endpoint:
            return route
    raise LookupError(f"no route {path} served by {endpoint.__name__}")


class HotRoutes:
    """Serve well-formed authorize, settle and charge calls directly; pass everything else on."""

    def __init__(
        self, app: ASGIApp, *, keys: KeyCache, handlers: Mapping[Any, Callable[..., Any]]
    ) -> None:
        self.app = app
        self.keys = keys
        # The app's exception handlers, but for the catch-all one: an unexpected error goes
        # on to the server error middleware, as it does from a route.
        self.handlers = handlers
        # Set as the request's route, as FastAPI does: the latency metric is labelled by it.
        self.authorize_route = find_route(gate.router.routes, "/v1/authorizations", gate.authorize)
        self.settle_route = find_route(
            gate.router.routes, "/v1/authorizations/{id}/settle", gate.settle
        )
        self.charge_route = find_route(gate.router.routes, "/v1/charges", gate.charge)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        model: type[BaseModel] = SettlementRequest
        if path == "/v1/authorizations" or path == "/v1/charges":
            object_id = None
            model = NewAuthorization if path == "/v1/authorizations" else NewCharge
        elif path.startswith("/v1/authorizations/") and (match := _SETTLE.fullmatch(path)):
            object_id = match.group(1)
            if not _ID.fullmatch(object_id):
                await self.app(scope, receive, send)
                return
        else:
            await self.app(scope, receive, send)
            return
        content_type = authorization = idempotency_key = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = content_type or value
            elif name == b"authorization":
                authorization = authorization or value
            elif name == b"idempotency-key":
                idempotency_key = idempotency_key or value
        body: bytes | None = await _read_body(receive)
        if body is None:
            return  # the client went away

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()
            message: Message = {"type": "http.request", "body": body, "more_body": False}
            body = None
            return message

        ledger = self._ledger(scope, content_type, authorization)
        key = _idempotency_key(idempotency_key)
        request = _validated(body or b"", model)
        if ledger is None or key is False or request is None:
            await self.app(scope, replay, send)  # FastAPI answers, errors included
            return
        idem = None if key is True else key
        try:
            if isinstance(request, NewAuthorization):
                scope["route"] = self.authorize_route
                response = await run_sync(gate.authorize, request, ledger, idem)
            elif isinstance(request, NewCharge):
                scope["route"] = self.charge_route
                response = await run_sync(gate.charge, request, ledger, idem)
            else:
                assert isinstance(request, SettlementRequest) and object_id is not None
                scope["route"] = self.settle_route
                response = await run_sync(gate.settle, object_id, request, ledger, idem)
        except Exception as exc:
            response = await self._handled(exc, scope, replay)
        await response(scope, replay, send)

    def _ledger(
        self, scope: Scope, content_type: bytes | None, authorization: bytes | None
    ) -> TenantLedger | None:
        if content_type is None or content_type.lower() not in _JSON_TYPES:
            return None
        if authorization is None:
            return None
        scheme, credentials = get_authorization_scheme_param(authorization.decode("latin-1"))
        if not credentials or scheme.lower() != "bearer":
            return None
        principal = self.keys.cached(credentials)
        if principal is None:
            return None  # FastAPI's path loads (and caches) it, or answers 401
        state = scope.setdefault("state", {})
        state["tenant_id"] = principal.tenant_id
        state["key"] = display(principal.prefix)
        return TenantLedger(self.keys.cg, principal.tenant_id)

    async def _handled(self, exc: Exception, scope: Scope, receive: Receive) -> Response:
        """The response the app's exception handlers give, found as Starlette finds them."""
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None and cls is not Exception:
                response: Response = await handler(Request(scope, receive), exc)
                return response
        raise exc


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None if the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _idempotency_key(value: bytes | None) -> str | bool:
    """The header's value; True when absent; False when FastAPI would refuse it."""
    if value is None:
        return True
    key = value.decode("latin-1")
    return key if 1 <= len(key) <= MAX_KEY_LENGTH else False


def _validated(body: bytes, model: type[BaseModel]) -> BaseModel | None:
    """The body as FastAPI would give it to the route (JSON, then the model), or None."""
    if not body:
        return None
    try:
        return model.model_validate(json.loads(body))
    except Exception:  # invalid JSON or input, too deeply nested...: FastAPI says which
        return None
