"""The busiest routes, served at the app's edge from FastAPI's own routes, without its router.

`POST /v1/authorizations` and `POST /v1/authorizations/{id}/settle` (or `/void`) are the
calls a product makes around every model call, and `POST /v1/charges` the one it makes
after a call it did not gate; grants, refunds of charges and purchases of packs are the
money movements it makes most often (`HOT_ENDPOINTS`). Through the full stack each spends
more CPU on the way in and out than on its own work: FastAPI's router tries the path
against every included router in turn, its generic dependency solver costs several times
what the dependencies do, and its route handler adds layers of its own (exit stacks,
telemetry hooks, anyio's thread hand-over). BENCHMARKS.md (issue 20) has what skipping them
pays.

`HotRoutes`, the app's outermost layer, takes these routes from FastAPI's compiled routes
(`app.routes`, in the order the router tries them): each route's path pattern and
converters, its dependant and its endpoint. A POST whose path one of them matches, and that
no route the router tries first would take, is served by that route, through the app's own
middleware stack (the same layers, built over the edge instead of over the router: request
id, log line and metric, the body's cap and deadline, the exception handlers):

- its dependencies are the dependant's own callables, called in FastAPI's order with the
  request and each other's values (the key's `auth.current_ledger`, which verifies the key,
  counts failures and takes the in-flight slot, and the bearer scheme it reads the key
  with); its path, header and body inputs are validated by the route's own fields with
  FastAPI's `request_params_to_args` and `request_body_to_args`, their errors collected as
  FastAPI collects them. With dependency overrides in place, FastAPI's `solve_dependencies`
  does it all. A route whose dependencies take more than that is refused when the app is
  built (`dependencies_of`);
- its endpoint runs on the edge's threads (`threads.py`);
- every failure is raised as FastAPI raises it and answered by the app's handlers;
- a body the edge does not read itself (one not sent as `application/json`, or not JSON)
  goes to the route's own FastAPI handler, which answers it as through the router.

So nothing about paths, keys, limits or errors is written here. tests/http/test_edge_parity.py
sends each route this serves (`HotRoutes.routes`) the same requests with the edge on and off.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import (
    request_body_to_args,
    request_params_to_args,
    solve_dependencies,
)
from fastapi.exceptions import RequestValidationError
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from creditgate.http import gate, grants, purchases, refunds
from creditgate.http.bodies import ExactJsonRequest, ExactJsonRoute
from creditgate.http.middleware import replaying
from creditgate.http.threads import Threads

# The calls made around every model call, and the money movements a busy product makes
# most often: each the endpoint of one POST route of the app (checked when the app is built).
HOT_ENDPOINTS: tuple[Callable[..., Response], ...] = (
    gate.authorize,
    gate.charge,
    gate.settle,
    gate.void,
    grants.create_grant,
    refunds.refund_charge,
    purchases.create_purchase,
    purchases.mark_paid,
)

METHOD = "POST"
# The bodies the edge reads itself: JSON, declared as exactly as clients send it. FastAPI
# reads more as JSON (any `application/*+json`, other parameters); those go to its handler.
_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})
_SERVING = "creditgate.hot_route"  # the scope's key for the route being served
_UNREAD = object()  # a body the edge leaves to the route's FastAPI handler


@dataclass(frozen=True, slots=True)
class Dependency:
    """A dependency of a hot route, as its dependant declares it, called as FastAPI calls it:
    with the request and the values of its own dependencies, an async generator entered on
    the request's exit stack (or the endpoint's, for `scope="function"`)."""

    name: str | None  # the parameter it fills (None: one declared for its effect only)
    call: Callable[..., Any]
    enter: Callable[..., AbstractAsyncContextManager[Any]] | None  # for an async generator
    function_scope: bool
    request_params: tuple[str, ...]  # its parameters that take the request (or connection)
    needs: tuple[Dependency, ...]
    use_cache: bool


def dependencies_of(dependant: Dependant, route: str) -> tuple[Dependency, ...]:
    """The dependencies of `dependant`, which the edge solves itself: async callables and
    async generators taking only the request and their own dependencies (the key's
    `auth.current_ledger` and the bearer scheme it uses). Anything else is refused here,
    when the app is built: such a route is left off `HOT_ENDPOINTS`."""
    found = []
    for sub in dependant.dependencies:
        call = sub.call
        generator = inspect.isasyncgenfunction(call)
        takes_more = (
            sub.path_params
            or sub.query_params
            or sub.header_params
            or sub.cookie_params
            or sub.body_params
            or sub.websocket_param_name
            or sub.response_param_name
            or sub.background_tasks_param_name
            or sub.security_scopes_param_name
            or sub.concurrency is not None
        )
        if call is None or takes_more or not (generator or _is_async(call)):
            raise TypeError(f"{route}: the edge does not solve the dependency {call!r}")
        found.append(
            Dependency(
                sub.name,
                call,
                asynccontextmanager(call) if generator else None,
                sub.scope == "function",
                tuple(
                    name
                    for name in (sub.http_connection_param_name, sub.request_param_name)
                    if name is not None
                ),
                dependencies_of(sub, route),
                sub.use_cache,
            )
        )
    return tuple(found)


def _is_async(call: Callable[..., Any]) -> bool:
    """An async function, or an instance whose `__call__` is one (a security scheme's)."""
    return inspect.iscoroutinefunction(call) or (
        not inspect.isroutine(call) and inspect.iscoroutinefunction(type(call).__call__)
    )


@dataclass(frozen=True, slots=True)
class HotRoute:
    """A route the edge serves: the app's own, as FastAPI compiled it."""

    route: RouteContext
    # Routes the router tries before this one that may take a path this one matches (the
    # router serves the first that does): such a path is left to the router.
    before: tuple[RouteContext, ...]
    prefix: str  # how every path it matches begins: its template up to the first parameter
    dependencies: tuple[Dependency, ...]  # its dependant's, in the order FastAPI solves them

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


def hot_routes(app: FastAPI, endpoints: Iterable[Callable[..., Any]]) -> list[HotRoute]:
    """The app's POST routes of `endpoints`, in the order the router tries them."""
    wanted = set(endpoints)
    found: list[HotRoute] = []
    seen: list[RouteContext] = []
    for route in iter_route_contexts(app.routes):
        endpoint = route.endpoint
        if endpoint in wanted and METHOD in (route.methods or ()):
            assert endpoint is not None
            _check(route, endpoint)
            before = tuple(earlier for earlier in seen if _may_take(earlier, route))
            template = str(route.path_format)
            needs = dependencies_of(route.dependant, endpoint.__name__)
            found.append(HotRoute(route, before, template.split("{", 1)[0], needs))
            wanted.discard(endpoint)
        seen.append(route)
    if wanted:
        names = ", ".join(sorted(fn.__name__ for fn in wanted))
        raise LookupError(f"no POST route of the app is served by {names}")
    return found


def _check(route: RouteContext, endpoint: Callable[..., Any]) -> None:
    """What the edge relies on: the route reads JSON as `ExactJsonRoute` does (with the
    request class the edge uses too), its endpoint answers with a Response (sent as it is,
    as FastAPI sends one), and takes nothing the edge does not give it."""
    name = endpoint.__name__
    if not isinstance(route.original_route, ExactJsonRoute):
        raise TypeError(f"{name}: a hot route must be an ExactJsonRoute")
    if typing.get_type_hints(endpoint).get("return") is not Response:
        raise TypeError(f"{name}: a hot route must answer with a Response")
    dependant: Dependant = route.dependant
    if (
        dependant.websocket_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    ):
        raise TypeError(f"{name}: the edge gives a route only its request, dependencies and inputs")


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
    """Serve POSTs to the routes of `HOT_ENDPOINTS` without the router; pass everything else
    on to `app`."""

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
        self.routes = hot_routes(owner, endpoints)
        # A path equal to a route's template is that route's (no other is tried first:
        # checked here); any other is matched against each route's pattern.
        self.exact = {
            hot.template: hot
            for hot in self.routes
            if not hot.route.param_convertors and hot.match(_probe(hot.template)) is not None
        }
        self._stack: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != METHOD or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        found = self._route(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        hot, params = found
        # What the application and its router put in the scope of a routed request.
        scope["app"] = self.owner
        scope["router"] = self.owner.router
        scope["path_params"] = params
        scope["endpoint"] = hot.endpoint
        scope["route"] = hot.route.original_route  # what the log line and the metric name
        scope[_SERVING] = hot
        if self._stack is None:  # built on first use, as the application builds its own
            self._stack = middleware_over(self.owner, self._serve)
        await self._stack(scope, receive, send)

    def _route(self, scope: Scope) -> tuple[HotRoute, dict[str, Any]] | None:
        hot = self.exact.get(scope["path"])
        if hot is not None:
            return hot, {}
        for hot in self.routes:
            params = hot.match(scope)
            if params is not None:
                return hot, params
        return None

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The route's request, as FastAPI's route handler serves it: the body, the
        dependencies and parameters, the endpoint, its answer."""
        hot: HotRoute = scope.pop(_SERVING)
        route = hot.route
        request = ExactJsonRequest(scope, receive)
        body: Any = None
        if route.body_field is not None:
            raw = await request.body()
            body = await _json(request, raw)
            if body is _UNREAD:  # FastAPI's handler reads it, and says what is wrong with it
                await route.app(scope, replaying(raw, receive), send)
                return
        async with AsyncExitStack() as request_stack:
            scope["fastapi_inner_astack"] = request_stack
            async with AsyncExitStack() as function_stack:
                scope["fastapi_function_astack"] = function_stack
                values, errors = await _solve(hot, request, body)
                if errors:
                    raise RequestValidationError(errors, body=body)
                response: Response = await self._call(hot.endpoint, values)
            await response(scope, receive, send)

    async def _call(self, endpoint: Callable[..., Any], values: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(endpoint):
            return await endpoint(**values)
        return await self.threads.run(lambda: endpoint(**values))


async def _solve(
    hot: HotRoute, request: ExactJsonRequest, body: Any
) -> tuple[dict[str, Any], list[Any]]:
    """The endpoint's arguments and the inputs' errors, as FastAPI's `solve_dependencies`
    finds them for the route: its dependencies first (their exceptions raised as they come),
    then its path, query, header and cookie parameters and its body, validated by the
    route's own fields with FastAPI's functions. With dependency overrides in place, FastAPI's
    own solver does it all."""
    route = hot.route
    dependant: Dependant = route.dependant
    provider = route.dependency_overrides_provider
    if provider is not None and getattr(provider, "dependency_overrides", None):
        solved = await solve_dependencies(
            request=request,
            dependant=dependant,
            body=body,
            dependency_overrides_provider=provider,
            async_exit_stack=request.scope["fastapi_inner_astack"],
            embed_body_fields=route._embed_body_fields,
        )
        return solved.values, solved.errors
    values = await _solve_dependencies(hot.dependencies, request, {})
    errors: list[Any] = []
    for fields, received in (
        (dependant.path_params, lambda: request.path_params),
        (dependant.query_params, lambda: request.query_params),
        (dependant.header_params, lambda: request.headers),
        (dependant.cookie_params, lambda: request.cookies),
    ):
        if fields:
            found, wrong = request_params_to_args(fields, received())
            values.update(found)
            errors += wrong
    if dependant.body_params:
        found, wrong = await request_body_to_args(
            body_fields=dependant.body_params,
            received_body=body,
            embed_body_fields=route._embed_body_fields,
        )
        values.update(found)
        errors += wrong
    for name in (dependant.http_connection_param_name, dependant.request_param_name):
        if name is not None:
            values[name] = request
    return values, errors


async def _solve_dependencies(
    dependencies: tuple[Dependency, ...], request: ExactJsonRequest, solved: dict[Any, Any]
) -> dict[str, Any]:
    """The values of `dependencies`, each called once per request (`solved`: by call) unless
    it asks not to be cached, as FastAPI does."""
    values: dict[str, Any] = {}
    for dependency in dependencies:
        call = dependency.call
        if dependency.use_cache and call in solved:
            value = solved[call]
        else:
            args = await _solve_dependencies(dependency.needs, request, solved)
            for name in dependency.request_params:
                args[name] = request
            if dependency.enter is not None:
                key = (
                    "fastapi_function_astack"
                    if dependency.function_scope
                    else "fastapi_inner_astack"
                )
                stack: AsyncExitStack = request.scope[key]
                value = await stack.enter_async_context(dependency.enter(**args))
            else:
                value = await call(**args)
            solved.setdefault(call, value)
        if dependency.name is not None:
            values[dependency.name] = value
    return values


async def _json(request: ExactJsonRequest, raw: bytes) -> Any:
    """The body as the route reads JSON, when it is declared as JSON and parses; else
    `_UNREAD`."""
    if not raw:
        return _UNREAD
    for name, value in request.scope["headers"]:
        if name == b"content-type":  # the first, as Starlette reads it
            if value.lower() not in _JSON_TYPES:
                return _UNREAD
            break
    else:
        return _UNREAD
    try:
        return await request.json()
    except Exception:  # invalid JSON, nested too deep...: FastAPI's handler says which
        return _UNREAD


def _probe(path: str) -> Scope:
    return {"type": "http", "method": METHOD, "path": path, "root_path": ""}


def middleware_over(app: FastAPI, bottom: ASGIApp) -> ASGIApp:
    """The application's own middleware stack (FastAPI's layers and the app's, as
    `build_middleware_stack` assembles them) over `bottom` instead of over its router."""
    router = app.router
    app.router = bottom  # type: ignore[assignment]  # the stack's innermost app
    try:
        return app.build_middleware_stack()
    finally:
        app.router = router
