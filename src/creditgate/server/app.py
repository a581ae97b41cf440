"""The FastAPI application: `create_app(cg)` in-process, `app_from_env()` for server workers."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from sqlalchemy.pool import QueuePool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from creditgate.api import Creditgate
from creditgate.api.clock import clock_from_env
from creditgate.api.gateway import authenticate_customer_key
from creditgate.domain.amounts import MAX_AMOUNT, MAX_BALANCE
from creditgate.gateway import customer_keys
from creditgate.gateway import keys as gateway_keys
from creditgate.gateway import routes as gateway_routes
from creditgate.gateway.edge import BodyLimits, GatewayEdge
from creditgate.gateway.settings import GatewaySettings
from creditgate.http import (
    DEFAULT_BODY_TIMEOUT_SECONDS,
    DEFAULT_MAX_IN_FLIGHT,
    campaigns,
    catalog,
    collection,
    docs,
    gate,
    grants,
    keys,
    members,
    plans,
    pricing,
    problems,
    purchases,
    reference,
    refunds,
    wallets,
    webhooks,
)
from creditgate.http.auth import DEFAULT_AUTH_FAILURES_PER_MINUTE, AuthFailureLimiter, KeyCache
from creditgate.http.hot import HotRoutes
from creditgate.http.load import InFlight, Shedding
from creditgate.http.metrics import metrics
from creditgate.http.middleware import RequestContext
from creditgate.http.models import Health
from creditgate.http.problems import problem, problem_response
from creditgate.http.threads import Threads
from creditgate.portal.routes import install as install_portal
from creditgate.settings import Settings as EnvSettings
from creditgate.settings import default
from creditgate.storage.database import default_url

DESCRIPTION = """\
Credit wallets, stacked grants and a pre-call authorization gate.

Authenticate with `Authorization: Bearer cg_…`. Amounts are integers in the asset's minor
unit. Every POST takes an `Idempotency-Key` header, and every request that moves money or
creates a billable object requires one. Errors are RFC 9457 problem details.
"""


DEFAULT_MAX_BODY_BYTES: int = default("max_body_bytes")
DEFAULT_KEY_CACHE_SECONDS: float = default("key_cache_seconds")
DEFAULT_THREADS = 40  # anyio's own default


@dataclass(frozen=True, slots=True)
class Settings:
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # requests served at once; more get 503
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # How long a request's body may take to arrive before it is refused (408).
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    # How long a key revoked through another server may still work here.
    key_cache_seconds: float = DEFAULT_KEY_CACHE_SECONDS
    # Failed authentications per client address per minute before 429 (0: no limit).
    auth_failures_per_minute: int = DEFAULT_AUTH_FAILURES_PER_MINUTE
    # The LLM gateway's upstreams, caps and limits (creditgate/gateway/settings.py).
    gateway: GatewaySettings = field(default_factory=GatewaySettings)

    @classmethod
    def from_env(cls) -> Settings:
        """The limits of `creditgate.settings.Settings` (the `CREDITGATE_*` variables)."""
        env = EnvSettings()
        return cls(
            max_in_flight=env.max_in_flight,
            max_body_bytes=env.max_body_bytes,
            body_timeout_seconds=env.body_timeout_seconds,
            key_cache_seconds=env.key_cache_seconds,
            auth_failures_per_minute=env.auth_failures_per_minute,
            gateway=GatewaySettings.from_env(env),
        )


def _version() -> str:
    try:
        return version("creditgate")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def create_app(
    cg: Creditgate,
    settings: Settings | None = None,
    *,
    close_on_shutdown: bool = False,
    edge: bool = True,
) -> FastAPI:
    """The app; `edge=False` serves every request through FastAPI's router, the hot routes
    included (`serve --no-edge`: to measure the edge, and to compare with it in tests)."""
    settings = settings or Settings()

    # The hot routes run their database work on these threads, every other sync route on
    # anyio's pool, limited to as many.
    threads = Threads(sync_threads(cg, settings, DEFAULT_THREADS))
    gateway = gateway_routes.Gateway(settings.gateway, threads)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads.size
        try:
            yield
        finally:
            await gateway.close()
            threads.close()
            if close_on_shutdown:
                cg.close()

    app = App(
        title="creditgate",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # done by the 404 handler, with a relative Location
    )
    app.state.cg = cg
    app.state.keys = KeyCache(
        cg,
        ttl=settings.key_cache_seconds,
        limiter=AuthFailureLimiter(settings.auth_failures_per_minute),
    )
    # The customers' gateway keys: verified and cached as the API keys are, their failures
    # counted with theirs.
    gateway.customer_keys = KeyCache(
        cg,
        ttl=settings.key_cache_seconds,
        limiter=app.state.keys.limiter,
        load=lambda key: authenticate_customer_key(cg, key),
    )
    app.state.settings = settings
    app.state.gateway = gateway
    problems.install(app)
    for module in (catalog, members, wallets, grants, gate, keys, pricing, webhooks, refunds):
        app.include_router(module.router)
    for module in (plans, purchases, campaigns, collection):  # billing
        app.include_router(module.router)
    app.include_router(gateway_keys.router)  # the LLM gateway's tenant settings
    app.include_router(customer_keys.router)  # and its customers' keys
    app.include_router(gateway_routes.router)  # /gateway/openai/v1/…, /gateway/anthropic/v1/…
    app.include_router(docs.router)  # /docs and /redoc, from files in the package
    install_portal(app)  # /v1/portal/sessions, the customer portal and the dashboard

    @app.get("/healthz", response_model=Health, include_in_schema=False)
    async def healthz() -> Health:
        return Health(status="ok")

    # Calls that may wait for a payment provider (Stripe) run under a limit of their own,
    # off the edge's threads and anyio's default tokens (http/threads.py).
    app.state.provider_calls = anyio.CapacityLimiter(threads.size)
    # Probes answer while the API sheds load: they do not queue behind its requests.
    probes = anyio.CapacityLimiter(2)

    @app.get("/readyz", response_model=Health, include_in_schema=False)
    async def readyz(request: Request) -> Any:
        try:
            await anyio.to_thread.run_sync(_ping, request.app.state.cg, limiter=probes)
        except Exception:
            return problem_response(
                problem(503, "database_unavailable", "the database does not answer")
            )
        return Health(status="ready")

    app.add_route("/metrics", metrics, include_in_schema=False)
    # Taken by a request once its body is read, it is routed and its key verified (load.py).
    app.state.in_flight = InFlight(settings.max_in_flight)
    # Added innermost first. The hot routes' edge (`creditgate.http.hot`) does these layers'
    # duties itself for a plain success, and leaves everything else to them.
    app.add_middleware(
        BodyLimits,
        limit=settings.max_body_bytes,
        timeout=settings.body_timeout_seconds,
        gateway_limit=settings.gateway.max_body_bytes,
    )
    app.add_middleware(Shedding, in_flight=app.state.in_flight)
    app.add_middleware(RequestContext)
    # Outermost first: the hot routes, then the gateway's routes, then the full stack.
    gateway_edge = GatewayEdge(
        app.full_stack,
        owner=app,
        handlers=app.exception_handlers,
        limit=settings.max_body_bytes,
        timeout=settings.body_timeout_seconds,
        gateway_limit=settings.gateway.max_body_bytes,
    )
    app.front = HotRoutes(gateway_edge, owner=app, threads=threads) if edge else gateway_edge
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


class App(FastAPI):
    """FastAPI with its edge in front: the hot routes (`creditgate.http.hot`), then the
    gateway's (`creditgate.gateway.edge`)."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None:
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def full_stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)

    def setup(self) -> None:
        """FastAPI's routes of the API reference, with `GET /openapi.json` served by
        `openapi_json` instead of FastAPI's own."""
        url, self.openapi_url = self.openapi_url, None
        try:
            super().setup()
        finally:
            self.openapi_url = url
        self._openapi_bodies: dict[str, bytes] = {}
        if url:
            self.add_route(url, self.openapi_json, include_in_schema=False)

    async def openapi_json(self, request: Request) -> Response:
        """The reference as FastAPI answers it, but built and encoded on a thread, once: on
        the event loop, building it held up every other request of the worker for 0.3-1.9 s
        on a busy 2-core machine."""
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        body = self._openapi_bodies.get(root_path)
        if body is None:
            body = await anyio.to_thread.run_sync(self._encode_openapi, root_path)
        return Response(body, media_type="application/json")

    def _encode_openapi(self, root_path: str) -> bytes:
        schema = self.openapi()
        if root_path and self.root_path_in_servers:
            servers = schema.get("servers", [])
            if root_path not in {server.get("url") for server in servers}:
                schema = {**schema, "servers": [{"url": root_path}, *servers]}
        body = bytes(JSONResponse(schema).body)
        self._openapi_bodies[root_path] = body
        return body


def sync_threads(cg: Creditgate, settings: Settings, default: int) -> int:
    """How many requests run their (blocking) database work at once, per process.

    On PostgreSQL one per pooled connection: a request past that would open a connection of
    its own and close it again (the pool keeps only `pool_size`), and under load that churn
    of server processes costs more than the queries. Requests let in beyond it wait for a
    thread; the in-flight limit bounds that wait. SQLite has one writer at a time anyway.
    """
    pool = cg.db.engine.pool
    if not cg.db.is_sqlite and isinstance(pool, QueuePool):
        return pool.size()
    return max(default, settings.max_in_flight + 8)


def _ping(cg: Creditgate) -> None:
    cg.db.run(lambda conn: conn.exec_driver_sql("SELECT 1").scalar(), read_only=True)


def app_from_env() -> FastAPI:
    """The app a server worker process builds: database and limits from the environment."""
    return _app_from_env(edge=True)


def app_without_edge_from_env() -> FastAPI:
    """`app_from_env` serving every request through FastAPI's router (`serve --no-edge`)."""
    return _app_from_env(edge=False)


def _app_from_env(*, edge: bool) -> FastAPI:
    cg = Creditgate(
        default_url(),
        migrate=False,
        pool_size=EnvSettings().pool_size,
        clock=clock_from_env(),
    )
    app = create_app(cg, Settings.from_env(), close_on_shutdown=True, edge=edge)
    freeze_heap()
    return app


def freeze_heap() -> None:
    """Leave what a server process has built so far out of the garbage collector's rounds.

    A worker holds some 170,000 tracked objects once its app is built (modules, routes,
    models, the schema). They live as long as it does, yet each full collection walks them
    all: 90-130 ms in which the worker answers nothing, now and then under load. Frozen, a
    full collection walks only what came after. Called once, when a served process has
    built its app (`serve`), never by `create_app`: a process building many apps (the
    tests) would keep each one's garbage."""
    gc.collect()
    gc.freeze()


_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
# FastAPI's OpenAPI model holds bounds as floats; 2**63 - 1 does not survive that.
_EXACT_BOUNDS = {float(bound): bound for bound in (MAX_AMOUNT, MAX_BALANCE)}


def _exact_bounds(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _BOUNDS and isinstance(value, float) and value.is_integer():
                node[key] = _EXACT_BOUNDS.get(value, int(value))
            else:
                _exact_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _exact_bounds(item)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The API reference (`creditgate.http.reference`), built once."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = reference.document(app)
    _exact_bounds(doc)
    app.openapi_schema = doc
    return doc
