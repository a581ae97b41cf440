"""The busiest routes, served at the edge of the app without the rest of the stack.

`POST /v1/authorizations` and `POST /v1/authorizations/{id}/settle` (or `/void`) are the
calls a product makes around every model call, and `POST /v1/charges` the one it makes
after a call it did not gate; grants, refunds of charges and purchases of packs are the
money movements it makes most often (`HOT_ROUTES`). Through FastAPI and its middleware each
spends more CPU on the way in and out (route matching, dependency solving, one ASGI layer
after another, the thread hand-over) than on the HTTP parsing and the response together.

`HotRoutes` is the app's outermost layer: it serves these calls itself, with the same route
functions on the same validated models, answered the same way, and does for them what the
middleware does for every request (a request id, the body's cap and deadline, the in-flight
limit, the latency metric and the log line). Only the well-formed request takes this path: a
body with a Content-Length within the cap (JSON that validates; the body of a route that
takes none may be anything, as FastAPI ignores it), a valid Idempotency-Key (each hot route
requires one, as its FastAPI route says), a key already in the key cache. Anything else goes
on to the full stack, which answers it as it answers every other request, so errors keep one
source. The refusals that come before that choice (a body too slow or longer than it said,
no in-flight slot free) are sent from here: the full stack's answers, built once.

As in the full stack, a request takes an in-flight slot only once its whole body has come
(within the deadline), it is routed and its key is verified (`load.py`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from creditgate.api import TenantLedger
from creditgate.http import gate, grants, purchases, refunds
from creditgate.http.auth import KeyCache
from creditgate.http.bodies import json_body
from creditgate.http.load import InFlight, finishes_a_hold, overloaded
from creditgate.http.logs import request_id
from creditgate.http.metrics import REFUSED
from creditgate.http.middleware import (
    CLIENT_CLOSED,
    answered,
    body_timed_out,
    read_body,
    replaying,
    request_id_of,
    too_large,
)
from creditgate.http.models import (
    ID_PATTERN,
    NewAuthorization,
    NewCharge,
    NewGrant,
    SettlementRequest,
)
from creditgate.http.problems import IDEMPOTENCY_HEADER, template_pattern
from creditgate.http.threads import Threads
from creditgate.services.catalog.api_keys import Principal, display
from creditgate.services.catalog.catalog import MAX_NAME
from creditgate.services.context import MAX_KEY_LENGTH

_ID = re.compile(ID_PATTERN)
_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})


def find_route(routes: list[Any], path: str, endpoint: Callable[..., Any]) -> APIRoute:
    for route in routes:
        if isinstance(route, APIRoute) and route.path == path and route.endpoint is endpoint:
            return route
    raise LookupError(f"no route {path} served by {endpoint.__name__}")


def _requires_idempotency_key(route: APIRoute) -> bool:
    return any(
        field.alias == IDEMPOTENCY_HEADER and field.field_info.is_required()
        for field in route.dependant.header_params
    )


def _an_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def _a_customer(value: str) -> bool:
    return 1 <= len(value) <= MAX_NAME


@dataclass(frozen=True, slots=True)
class HotRoute:
    """One route the edge serves: FastAPI's template and endpoint, and what it takes.

    The endpoint is called as FastAPI calls it: the path parameter (if the template has
    one), the validated body (if it takes one), the tenant's ledger, the idempotency key.
    """

    template: str
    endpoint: Callable[..., Response]
    model: type[BaseModel] | None  # None: no body (whatever is sent is ignored)
    param: Callable[[str], bool] | None = None  # the path parameter's check, as FastAPI's

    @property
    def finishes_a_hold(self) -> bool:
        """May use the in-flight slots kept for finishing holds (as the full stack decides)."""
        return finishes_a_hold("POST", self.template)


# The calls made around every model call, and the money movements a busy product makes
# most often. Each must be a route of its module's router (checked at start-up).
HOT_ROUTES = (
    HotRoute("/v1/authorizations", gate.authorize, NewAuthorization),
    HotRoute("/v1/charges", gate.charge, NewCharge),
    HotRoute("/v1/authorizations/{id}/settle", gate.settle, SettlementRequest, _an_id),
    HotRoute("/v1/authorizations/{id}/void", gate.void, None, _an_id),
    HotRoute("/v1/customers/{customer}/grants", grants.create_grant, NewGrant, _a_customer),
    HotRoute("/v1/charges/{charge}/refunds", refunds.refund_charge, refunds.NewRefund, _an_id),
    HotRoute(
        "/v1/customers/{customer}/purchases",
        purchases.create_purchase,
        purchases.NewPurchase,
        _a_customer,
    ),
    HotRoute("/v1/purchases/{purchase}/mark-paid", purchases.mark_paid, None, _an_id),
)


class HotRoutes:
    """Serve well-formed calls of `HOT_ROUTES` directly; pass everything else on."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyCache[Principal],
        handlers: Mapping[Any, Callable[..., Any]],
        in_flight: InFlight,
        max_body_bytes: int,
        body_timeout: float,
        threads: Threads,
    ) -> None:
        self.app = app  # the full stack: FastAPI with its middleware
        self.keys = keys
        # The app's exception handlers: an unexpected error gets the catch-all's 500 problem
        # and is raised on to the server, as from the full stack.
        self.handlers = handlers
        self.in_flight = in_flight
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.threads = threads
        self.exact: dict[str, HotRoute] = {}
        self.keyed: set[str] = set()  # templates whose route requires an Idempotency-Key
        self.with_param: list[tuple[str, re.Pattern[str], HotRoute]] = []
        routes = [
            *gate.router.routes,
            *grants.router.routes,
            *refunds.router.routes,
            *purchases.router.routes,
        ]
        for hot in HOT_ROUTES:
            if _requires_idempotency_key(find_route(routes, hot.template, hot.endpoint)):
                self.keyed.add(hot.template)
            if hot.param is None:
                self.exact[hot.template] = hot
            else:
                prefix = hot.template[: hot.template.index("{")]
                self.with_param.append((prefix, template_pattern(hot.template), hot))
        # The refusals the edge sends itself, built once, as the full stack builds them.
        self.overloaded = overloaded()
        self.timed_out = body_timed_out(body_timeout)
        self.too_large = too_large(max_body_bytes)

    def _route(self, path: str) -> tuple[HotRoute, str | None] | None:
        """The hot route serving `path`, and its path parameter; None when FastAPI must
        answer (another path, or a parameter FastAPI would refuse)."""
        hot = self.exact.get(path)
        if hot is not None:
            return hot, None
        for prefix, pattern, hot in self.with_param:
            if path.startswith(prefix) and (match := pattern.fullmatch(path)):
                value = match.group(1)
                assert hot.param is not None
                return (hot, value) if hot.param(value) else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        found = self._route(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        hot, param = found
        # The first of each, as Starlette reads them (an empty one included).
        content_type = authorization = idempotency_key = incoming_id = length = None
        framed_by_length = True
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value if content_type is None else content_type
            elif name == b"authorization":
                authorization = value if authorization is None else authorization
            elif name == b"idempotency-key":
                idempotency_key = value if idempotency_key is None else idempotency_key
            elif name == b"content-length":
                length = value if length is None else length
            elif name == b"x-request-id":
                incoming_id = value if incoming_id is None else incoming_id
            elif name == b"transfer-encoding":
                framed_by_length = False
        if (
            not framed_by_length  # chunked: the body cap reads it
            or length is None
            or not length.isdigit()
            or len(length) > 18
            or int(length) > self.max_body_bytes
        ):
            await self.app(scope, receive, send)  # answered as every request is
            return
        request = _Request(scope, hot, param, start, incoming_id)
        # The whole body first, within its deadline; no in-flight slot is held meanwhile.
        try:
            body = await read_body(receive, self.max_body_bytes, self.body_timeout)
        except ClientDisconnect:
            answered(scope, "POST", hot.template, CLIENT_CLOSED, start, request.id())
            return
        except TimeoutError:
            await self._refuse(request, send, self.timed_out)
            return
        if body is None:  # more than its Content-Length said
            await self._refuse(request, send, self.too_large)
            return
        receive = replaying(body, receive)
        args = self._arguments(request, body, content_type, authorization, idempotency_key)
        if args is None:  # FastAPI answers, errors included (and takes a slot if it serves)
            await self.app(scope, receive, send)
            return
        # Authenticated and routed: now the request takes an in-flight slot, if one is free.
        if not self.in_flight.has_room(hot.finishes_a_hold):
            REFUSED.inc()
            await self._refuse(request, send, self.overloaded)
            return
        self.in_flight.enter()
        try:
            await self._serve(request, receive, send, args)
        finally:
            self.in_flight.leave()

    def _arguments(
        self,
        request: _Request,
        body: bytes,
        content_type: bytes | None,
        authorization: bytes | None,
        idempotency_key: bytes | None,
    ) -> list[Any] | None:
        """The endpoint's arguments, as FastAPI would pass them; None when the edge does not
        serve the request (FastAPI then answers it)."""
        hot = request.hot
        ledger = self._ledger(request.scope, authorization)
        if ledger is None:
            return None
        key = _idempotency_key(idempotency_key)
        if key is False or (key is True and hot.template in self.keyed):
            return None  # refused by FastAPI (a missing one: it says what to send)
        args: list[Any] = [] if request.param is None else [request.param]
        if hot.model is not None:
            validated = _validated(body, hot.model, content_type)
            if validated is None:
                return None
            args.append(validated)
        args += [ledger, None if key is True else key]
        return args

    async def _serve(
        self, request: _Request, receive: Receive, send: Send, args: list[Any]
    ) -> None:
        scope = request.scope
        rid = request.id()
        token = request_id.set(rid)
        status = 500
        try:
            unexpected: Exception | None = None
            try:
                response = await self._call(request.hot.endpoint, *args)
            except Exception as exc:
                response, unexpected = await self._handled(exc, scope, receive)
            status = response.status_code
            await _send_answer(send, response, rid)
            if unexpected is not None:
                raise unexpected  # logged by the server, as the full stack's errors are
        finally:
            answered(scope, "POST", request.hot.template, status, request.start, rid)
            request_id.reset(token)

    async def _refuse(self, request: _Request, send: Send, response: Response) -> None:
        """Send one of the answers built once (503, 408, 413), as the full stack sends it."""
        rid = request.id()
        await _send_answer(send, response, rid)
        answered(
            request.scope, "POST", request.hot.template, response.status_code, request.start, rid
        )

    async def _call(self, fn: Callable[..., Response], *args: Any) -> Response:
        return await self.threads.run(fn, *args)

    def _ledger(self, scope: Scope, authorization: bytes | None) -> TenantLedger | None:
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

    async def _handled(
        self, exc: Exception, scope: Scope, receive: Receive
    ) -> tuple[Response, Exception | None]:
        return await handled(self.handlers, exc, scope, receive)


async def handled(
    handlers: Mapping[Any, Callable[..., Any]], exc: Exception, scope: Scope, receive: Receive
) -> tuple[Response, Exception | None]:
    """The response the app's exception handlers give, found as Starlette finds them, and
    the error itself when it was unexpected (the catch-all's)."""
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            response: Response = await handler(Request(scope, receive), exc)
            return response, exc if cls is Exception else None
    raise exc


@dataclass(frozen=True, slots=True)
class _Request:
    """A request the edge has matched to one of its routes."""

    scope: Scope
    hot: HotRoute
    param: str | None
    start: float
    incoming_id: bytes | None  # the client's X-Request-Id

    def id(self) -> str:
        return _request_id(self.incoming_id)


def _request_id(incoming: bytes | None) -> str:
    return request_id_of(incoming.decode("latin-1") if incoming is not None else None)


async def _send_answer(send: Send, response: Response, rid: str) -> None:
    """A whole response, with the request's id, in two messages."""
    headers = [*response.raw_headers, (b"x-request-id", rid.encode())]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def _idempotency_key(value: bytes | None) -> str | bool:
    """The header's value; True when absent; False when FastAPI would refuse it."""
    if value is None:
        return True
    key = value.decode("latin-1")
    return key if 1 <= len(key) <= MAX_KEY_LENGTH else False


def _validated(body: bytes, model: type[BaseModel], content_type: bytes | None) -> BaseModel | None:
    """The body as FastAPI would give it to the route (JSON, then the model), or None."""
    if not body or content_type is None or content_type.lower() not in _JSON_TYPES:
        return None
    try:
        return model.model_validate(json_body(body))
    except Exception:  # invalid JSON or input, too deeply nested...: FastAPI says which
        return None
