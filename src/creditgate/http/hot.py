"""The busiest routes, served at the app's edge in one step, compiled from FastAPI's own routes.

`POST /v1/authorizations` and `POST /v1/authorizations/{id}/settle` (or `/void`) are the
calls a product makes around every model call, and `POST /v1/charges` the one it makes
after a call it did not gate; grants, refunds of charges and marking an invoice paid are the
money movements it makes most often (`HOT_ENDPOINTS`). Through the full stack each spends
more CPU on the way in and out than on its own work: six middleware layers each wrapping
`send`, FastAPI's router trying the path against every included router in turn, its
dependency solver and parameter readers introspecting the route on every request, and its
route handler's own layers (exit stacks, telemetry hooks, anyio's thread hand-over).
BENCHMARKS.md (issue 20) has what serving them in one step pays.

`HotRoutes`, the app's outermost layer, compiles each of these routes when the app is built,
from FastAPI's compiled routes (`app.routes`, in the order the router tries them): its path
pattern and converters, its path and header parameters and its body as the route's own
fields (`ModelField`s, with their validators), its endpoint, and its one dependency, the
API key's (`auth.current_ledger`). A route declared with anything else is refused then.

A POST whose path one of them matches, and that no route the router tries first would take,
is served in one handler that does the duties of every layer on the way to a plain success:

- the request id, echoed as X-Request-Id, the log line and the latency metric
  (`middleware.request_id_of`, `middleware.answered`, as `RequestContext` does);
- the refusal past the in-flight limit (`InFlight.refuses`, as `Shedding` does), and the
  slot, taken where the key's dependency takes it;
- the body's cap and deadline, and a Content-Length that is not one (`middleware.limited_body`,
  `BodyLimit`'s own rule);
- the key, read as the route's bearer scheme reads it (`auth.bearer_key`) and found in the
  app's key cache;
- the inputs, read as FastAPI reads them and validated by the route's own fields; the body
  read as the API reads JSON (`bodies.json_body`), never in pydantic's JSON mode;
- the endpoint, run on the edge's threads (`threads.py`), its Response sent as two messages;
- an error the endpoint raises, answered by the app's own exception handlers (`handled`);
  an unexpected one raised on afterwards, as `ServerErrorMiddleware` does, for the server's log.

Anything that is not a plain success before the endpoint is called (no key, or one not in
the cache yet; an input the route's fields refuse; a body that is not JSON or not sent as
`application/json`; dependency overrides in place) goes, with the
body already read, to FastAPI's full stack, whose answer is the one of record: so nothing
about paths, keys, limits or errors is written here. Such a request keeps the time it
arrived (`middleware.STARTED`, for its latency) and is not refused past the in-flight limit
a second time (`load.ADMITTED`): the stack answers it as it would have on its own.
tests/http/test_edge_parity.py sends each route this serves (`HotRoutes.routes`) the same
requests with the edge on and off.
"""

from __future__ import annotations

import inspect
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import FastAPI, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext, iter_route_contexts
from pydantic import BaseModel
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from creditgate.api import TenantLedger
from creditgate.http import auth, gate, grants, purchases, refunds
from creditgate.http.bodies import ExactJsonRoute, json_body
from creditgate.http.load import ADMITTED, InFlight, overloaded
from creditgate.http.logs import request_id
from creditgate.http.middleware import (
    CLIENT_CLOSED,
    STARTED,
    answered,
    handled,
    limited_body,
    replaying,
    request_id_of,
)
from creditgate.http.threads import Threads
from creditgate.services.catalog.api_keys import display

# The calls made around every model call, and the money movements a busy product makes
# most often: each the endpoint of one POST route of the app (checked when the app is built).
# Only calls that wait on nothing but the database: the edge's threads are the gate's, and a
# call that waits on an outside service (a purchase waits for Stripe's Checkout) would hold
# one for as long as that service takes. Those run through the stack, under a limit of their
# own (`threads.waiting_on_a_provider`).
HOT_ENDPOINTS: tuple[Callable[..., Response], ...] = (
    gate.authorize,
    gate.charge,
    gate.settle,
    gate.void,
    grants.create_grant,
    refunds.refund_charge,
    purchases.mark_paid,
)

METHOD = "POST"
# The bodies the edge reads itself: JSON, declared as exactly as clients send it. FastAPI
# reads more as JSON (any `application/*+json`, other parameters); those go to its stack.
_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})


@dataclass(frozen=True, slots=True)
class Input:
    """A path or header parameter, or the body, of a hot route: the route's own field."""

    name: str  # the endpoint's parameter it fills
    key: Any  # where it is read: the path parameter's name, or the header's (lower-case bytes)
    field: Any  # FastAPI's ModelField: `validate` is the route's own validation

    def read(self, value: Any) -> tuple[bool, Any]:
        """Whether the field takes `value`, and the value it makes of it."""
        found, errors = self.field.validate(value)
        return not errors, found


@dataclass(frozen=True, slots=True)
class HotRoute:
    """A route the edge serves: the app's own, as FastAPI compiled it."""

    route: RouteContext
    # Routes the router tries before this one that may take a path this one matches (the
    # router serves the first that does): such a path is left to the router.
    before: tuple[RouteContext, ...]
    prefix: str  # how every path it matches begins: its template up to the first parameter
    path_params: tuple[Input, ...]
    headers: tuple[Input, ...]
    body: Input | None  # None: the route takes no body (what comes is read and ignored)
    ledger: str  # the endpoint's parameter the key's dependency fills

    @property
    def template(self) -> str:
        return str(self.route.path)

    @property
    def endpoint(self) -> Callable[..., Any]:
        endpoint = self.route.endpoint
        assert endpoint is not None
        return endpoint

    def match(self, scope: Scope) -> dict[str, Any] | None:
        """The path parameters, converted, when this route is the one the router would
        serve the request with; else None."""
        path = scope["path"]
        found = self.route.path_regex.match(path) if path.startswith(self.prefix) else None
        if found is None:
            return None
        if any(route.matches(scope)[0] is Match.FULL for route in self.before):
            return None
        convertors = self.route.param_convertors
        return {name: convertors[name].convert(value) for name, value in found.groupdict().items()}

    def inputs(
        self, path: Mapping[str, Any], headers: Mapping[bytes, bytes], raw: bytes
    ) -> dict[str, Any] | None:
        """The endpoint's arguments but the ledger, when the route's fields take every input
        as FastAPI reads it; None when any is missing or refused (FastAPI says which)."""
        values: dict[str, Any] = {}
        for param in self.path_params:
            ok, values[param.name] = param.read(path[param.key])
            if not ok:
                return None
        for param in self.headers:
            header = headers.get(param.key)
            if header is None:
                return None
            ok, values[param.name] = param.read(header.decode("latin-1"))
            if not ok:
                return None
        if self.body is not None:
            content_type = headers.get(b"content-type")
            if not raw or content_type is None or content_type.lower() not in _JSON_TYPES:
                return None
            try:
                body = json_body(raw)
            except Exception:  # invalid JSON, nested too deep...: FastAPI says which
                return None
            if body is None:
                return None
            ok, values[self.body.name] = self.body.read(body)
            if not ok:
                return None
        return values


def hot_routes(app: FastAPI, endpoints: Iterable[Callable[..., Any]]) -> list[HotRoute]:
    """The app's POST routes of `endpoints`, compiled, in the order the router tries them."""
    wanted = set(endpoints)
    found: list[HotRoute] = []
    seen: list[RouteContext] = []
    for route in iter_route_contexts(app.routes):
        endpoint = route.endpoint
        if endpoint in wanted and METHOD in (route.methods or ()):
            assert endpoint is not None
            before = tuple(earlier for earlier in seen if _may_take(earlier, route))
            found.append(compiled(route, endpoint, before))
            wanted.discard(endpoint)
        seen.append(route)
    if wanted:
        names = ", ".join(sorted(fn.__name__ for fn in wanted))
        raise LookupError(f"no POST route of the app is served by {names}")
    return found


def compiled(
    route: RouteContext, endpoint: Callable[..., Any], before: tuple[RouteContext, ...]
) -> HotRoute:
    """`route` as the edge serves it. What the edge relies on is checked here: the route
    reads JSON as `ExactJsonRoute` does, its endpoint answers with a Response (sent as it
    is, as FastAPI sends one) and takes its path and header parameters, at most one body
    and the key's tenant ledger (`auth.current_ledger`), nothing else."""
    name = endpoint.__name__
    if not isinstance(route.original_route, ExactJsonRoute):
        raise TypeError(f"{name}: a hot route must be an ExactJsonRoute")
    if typing.get_type_hints(endpoint).get("return") is not Response:
        raise TypeError(f"{name}: a hot route must answer with a Response")
    dependant: Dependant = route.dependant
    if (
        dependant.query_params
        or dependant.cookie_params
        or dependant.http_connection_param_name
        or dependant.request_param_name
        or dependant.websocket_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or len(dependant.body_params) > 1
        or route._embed_body_fields
    ):
        raise TypeError(f"{name}: the edge gives a route only its path, headers, body and key")
    needs = dependant.dependencies
    if len(needs) != 1 or needs[0].call is not auth.current_ledger or needs[0].name is None:
        raise TypeError(f"{name}: the edge solves only the key's dependency (current_ledger)")
    if getattr(route.original_route, "max_body_size", None) is not None:
        raise TypeError(f"{name}: the edge caps bodies by the app's settings only")
    body = None
    if dependant.body_params:
        field = dependant.body_params[0]
        if not isinstance(field.field_info, params.Body) or isinstance(
            field.field_info, params.Form
        ):
            raise TypeError(f"{name}: the edge reads a JSON body only")
        body = Input(field.name, None, field)
    return HotRoute(
        route,
        before,
        str(route.path_format).split("{", 1)[0],
        tuple(Input(f.name, _alias(f, name), f) for f in dependant.path_params),
        tuple(Input(f.name, _header_name(f, name), f) for f in dependant.header_params),
        body,
        needs[0].name,
    )


def _alias(field: Any, route: str) -> str:
    """The name a parameter is read by, as FastAPI reads it: its alias, or its validation
    alias when that is one name (a choice of names or a path into a value is refused)."""
    alias = field.field_info.validation_alias
    if alias is None:
        return str(field.alias)
    if not isinstance(alias, str):
        raise TypeError(f"{route}: the edge reads a parameter by one name ({field.name})")
    return alias


def _header_name(field: Any, route: str) -> bytes:
    """The header a header parameter is read from, as the scope names it (lower-case): the
    name it declares as its alias (one named after its parameter is refused, rather than
    restating how FastAPI turns a parameter's name into a header's)."""
    info = field.field_info
    annotation = info.annotation
    if not isinstance(info, params.Header):
        raise TypeError(f"{route}: {field.name} is not a header parameter")
    if typing.get_origin(annotation) in (list, set, tuple, frozenset) or (
        isinstance(annotation, type) and issubclass(annotation, BaseModel)
    ):
        raise TypeError(f"{route}: the edge reads one value of a header ({field.name})")
    alias = _alias(field, route)
    if info.alias is None or alias == field.name:
        raise TypeError(f"{route}: declare the header of {field.name} as its alias")
    return alias.lower().encode("latin-1")


def _may_take(earlier: RouteContext, route: RouteContext) -> bool:
    """Whether `earlier` may match a POST to a path `route` matches (when unsure, yes: the
    request then asks `earlier` itself)."""
    methods = getattr(earlier, "methods", None)
    if methods is not None and METHOD not in methods:
        return False
    template = getattr(earlier, "path_format", None)
    convertors = getattr(earlier, "param_convertors", None)
    if not isinstance(template, str) or not isinstance(convertors, dict):
        return True  # a mount, a group of pages...
    if any(convertor.regex != "[^/]+" for convertor in convertors.values()):
        return True  # a parameter that may span segments, or take only some values
    ours, theirs = str(route.path_format).split("/"), template.split("/")
    return len(ours) == len(theirs) and all(
        a == b or "{" in a or "{" in b for a, b in zip(ours, theirs, strict=True)
    )


class HotRoutes:
    """Serve POSTs to the routes of `HOT_ENDPOINTS` in one step; pass everything else, and
    whatever is not a plain success, on to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        owner: FastAPI,
        threads: Threads,
        endpoints: Iterable[Callable[..., Any]] = HOT_ENDPOINTS,
    ) -> None:
        self.app = app  # every other request: the gateway's edge, then the full stack
        self.owner = owner  # the FastAPI application whose routes these are
        self.threads = threads
        if getattr(owner, "max_body_size", None) is not None:
            raise TypeError("the edge caps bodies by the app's settings only")
        self.routes = hot_routes(owner, endpoints)
        # A path equal to a route's template is that route's (no other is tried first:
        # checked here); any other is matched against each route's pattern.
        self.exact = {
            hot.template: hot
            for hot in self.routes
            if not hot.route.param_convertors and hot.match(_probe(hot.template)) is not None
        }
        settings = owner.state.settings  # the body's cap and deadline, as the app's own
        self.limit: int = settings.max_body_bytes
        self.timeout: float = settings.body_timeout_seconds
        # The refusal past the in-flight limit is the same for every request, so it is built
        # once; `_send` adds the request's id to a copy of its headers.
        self.refused: Response = overloaded()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != METHOD
            or scope.get("root_path")
            or self.owner.dependency_overrides  # FastAPI's solver honours them
        ):
            await self.app(scope, receive, send)
            return
        found = self._route(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        hot, path = found
        start = scope[STARTED] = time.perf_counter()  # a request left to the stack keeps it
        headers: dict[bytes, bytes] = dict(reversed(scope["headers"]))  # the first of each
        incoming = headers.get(b"x-request-id")
        rid = request_id_of(incoming.decode("latin-1") if incoming is not None else None)
        token = request_id.set(rid)
        status = 500
        left = b""
        try:
            served = await self._serve(hot, path, headers, scope, receive, send, rid)
            if isinstance(served, int):
                status = served
            else:
                status, left = 0, served
        except ClientDisconnect:
            status = CLIENT_CLOSED  # gone before its body was all read: nothing to answer
        finally:
            if status:  # 0: left to the full stack, which logs and measures it itself
                answered(scope, METHOD, hot.template, status, start, rid)
            request_id.reset(token)
        if not status:
            await self.app(scope, replaying(left, receive), send)

    def _route(self, scope: Scope) -> tuple[HotRoute, dict[str, Any]] | None:
        hot = self.exact.get(scope["path"])
        if hot is not None:
            return hot, {}
        for hot in self.routes:
            path = hot.match(scope)
            if path is not None:
                return hot, path
        return None

    async def _serve(
        self,
        hot: HotRoute,
        path: dict[str, Any],
        headers: dict[bytes, bytes],
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: str,
    ) -> int | bytes:
        """The status answered; or, for the full stack to answer, the body read."""
        state = self.owner.state
        in_flight: InFlight = state.in_flight
        if in_flight.refuses(METHOD, scope["path"]):  # as `Shedding`, before anything else
            return await _send(self.refused, send, rid)
        scope[ADMITTED] = True  # a request left to the stack is not refused there again
        declared = headers.get(b"content-length")
        length = declared.decode("latin-1") if declared is not None else None
        raw = await limited_body(length, receive, self.limit, self.timeout)
        if isinstance(raw, Response):  # refused as `BodyLimit` refuses it
            return await _send(raw, send, rid)
        keys: auth.KeyCache[Any] = state.keys
        try:
            values = hot.inputs(path, headers, raw)
            authorization = headers.get(b"authorization")
            key = auth.bearer_key(authorization.decode("latin-1") if authorization else None)
            principal = keys.cached(key) if key is not None and values is not None else None
            if values is None or principal is None:
                return raw
            # From here as the key's dependency: its tenant, then the slot until the answer
            # is sent.
            scope.setdefault("state", {}).update(
                tenant_id=principal.tenant_id, key=display(principal.prefix)
            )
            values[hot.ledger] = TenantLedger(keys.cg, principal.tenant_id)
        except Exception:  # anything unforeseen on the way: the stack answers as it would
            return raw
        if in_flight.refuses(METHOD, scope["path"]):
            return await _send(self.refused, send, rid)
        in_flight.enter()
        holding = True
        try:
            try:
                response: Response = await self._call(hot.endpoint, values)
            except Exception as exc:  # the app's handlers answer, as through the stack
                holding = False  # as the key's dependency ends before the error is answered
                in_flight.leave()
                scope["app"] = self.owner  # what a handler reads as `request.app`
                handlers = self.owner.exception_handlers
                response, unexpected = await handled(handlers, exc, scope, receive)
                if unexpected is None:
                    return await _send(response, send, rid)
                # Answered as `ServerErrorMiddleware`, outside the request's id, answers it,
                # then raised for the server's log.
                await _send(response, send, None)
                raise
            return await _send(response, send, rid)
        finally:
            if holding:  # also when the request is cancelled
                in_flight.leave()

    async def _call(self, endpoint: Callable[..., Any], values: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(endpoint):
            return await endpoint(**values)
        return await self.threads.run(partial(endpoint, **values))


async def _send(response: Response, send: Send, rid: str | None) -> int:
    """Send `response` with the request's id (None: without), as `RequestContext` adds it;
    its status."""
    headers = [*response.raw_headers]  # a copy: a response may be sent again (`refused`)
    if rid is not None:
        headers.append((b"x-request-id", rid.encode()))
    status = response.status_code
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": bytes(response.body)})
    if response.background is not None:
        await response.background()
    return status


def _probe(path: str) -> Scope:
    return {"type": "http", "method": METHOD, "path": path, "root_path": ""}
