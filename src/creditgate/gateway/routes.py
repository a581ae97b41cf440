"""The gateway's routes: authorize from the request, forward, pass the answer back, settle.

One call:

1. The caller is the tenant of its API key (`Authorization: Bearer cg_…` as OpenAI's client
   sends it, or `x-api-key: cg_…` as Anthropic's does), on behalf of the customer named by
   `X-Creditgate-Customer`; or a customer, through its gateway key (`cgk_…`, sent the same
   ways), which fixes the tenant and the customer, and may limit the models and the spend
   (`services/gateway_keys.py`). A call the key may not make is refused (403). Either way,
   `X-Creditgate-Member` may name a member of that customer the call is for.
2. The request is read (JSON, with a `model`) and estimated (`domain/gateway.py`): its input
   from its text, its output at its own cap or the gateway's default.
3. The tenant's card prices the estimate and places the hold, as `POST /v1/authorizations`
   does with `action`, `dimensions.model` and `quantities`; under a customer key with a
   spend limit, the hold also counts against the key's period, and for a member against its
   budgets, in the same transaction. A decline (the wallet's, the limit's, a budget's)
   answers 402 in the provider's error shape, and nothing is sent upstream.
4. The request goes upstream with the tenant's provider key. An error answer (4xx, 5xx),
   a failed connection or a timeout voids the hold and is passed back.
5. A whole answer is read for its usage and settled by the hold's card version (the action,
   model and upstream request id on the charge), then passed back. A stream is passed back
   event by event and settled when it ends (see `Relay`).

The hold and the settle are idempotent per gateway request: their keys derive from the
request's id (the caller's `Idempotency-Key`, else a new one; under a customer key, within
that key's own space, so that customers cannot meet each other's keys). A retry with the
same key after the call was served is refused (409) rather than sent upstream again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from creditgate.api import TenantLedger
from creditgate.api.gateway import (
    CUSTOMER_KEY_SCHEME,
    Authorization,
    GatewayKeyPrincipal,
    TenantGateway,
)
from creditgate.domain.budgets import BudgetDecline
from creditgate.domain.errors import CreditgateError, IdempotencyConflict
from creditgate.domain.gateway import (
    ImpossibleUsage,
    Usage,
    anthropic_usage,
    estimate,
    openai_chat_usage,
    openai_responses_usage,
)
from creditgate.domain.spend_limits import SPEND_LIMIT_REACHED, SpendLimit
from creditgate.gateway.errors import error_response, failure
from creditgate.gateway.settings import GatewaySettings
from creditgate.gateway.streams import EventSplitter, StreamMeter
from creditgate.http.auth import KeyCache, authenticate, authenticate_with
from creditgate.http.threads import Threads
from creditgate.storage.database import is_retryable, is_unavailable

if TYPE_CHECKING:
    # Imported at the gateway's first call (`Gateway.client`, `_forward`, `Relay`): about
    # 0.12 s of every server's start otherwise, and most servers never call a provider.
    import aiohttp

log = logging.getLogger("creditgate.gateway")

CUSTOMER_HEADER = "x-creditgate-customer"
MEMBER_HEADER = "x-creditgate-member"
ACTION_HEADER = "x-creditgate-action"
RATE_CARD_HEADER = "x-creditgate-rate-card"
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_GATEWAY_KEY = 200
# A settle after an answer, tried again while the database is unavailable: first wait, cap.
SETTLE_RETRY_FIRST_DELAY = 0.05
SETTLE_RETRY_MAX_DELAY = 2.0
# Request headers passed upstream as they are (anything else stays here, the caller's
# creditgate key first of all).
FORWARDED_REQUEST_HEADERS = ("accept", "anthropic-version", "anthropic-beta", "openai-beta")
ANTHROPIC_VERSION = "2023-06-01"
# Answer headers passed back to the caller.
FORWARDED_ANSWER_HEADERS = ("retry-after", "retry-after-ms", "request-id", "openai-processing-ms")


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    provider: str
    path: str  # below the provider's base
    action: str  # the rate card's action, unless the caller names another
    output: bool  # whether the call produces output tokens
    usage: Callable[[object], Usage]
    stream_kind: str | None


CHAT = Endpoint(
    "openai.chat.completions",
    "openai",
    "/v1/chat/completions",
    "chat.completion",
    True,
    openai_chat_usage,
    "openai_chat",
)
RESPONSES = Endpoint(
    "openai.responses",
    "openai",
    "/v1/responses",
    "chat.completion",
    True,
    openai_responses_usage,
    "openai_responses",
)
EMBEDDINGS = Endpoint(
    "openai.embeddings", "openai", "/v1/embeddings", "embedding", False, openai_chat_usage, None
)
MESSAGES = Endpoint(
    "anthropic.messages",
    "anthropic",
    "/v1/messages",
    "chat.completion",
    True,
    anthropic_usage,
    "anthropic",
)


class UpstreamKeys:
    """The tenants' provider keys, opened, kept for a moment so that a call does not read
    and open the key each time; a key set or cleared through this server is forgotten at
    once. `cached` answers on the event loop; `load` reads the database (on a thread)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def cached(self, tenant_id: str, provider: str) -> str | None:
        entry = self._entries.get((tenant_id, provider))
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        return None

    def load(self, ledger: TenantLedger, provider: str) -> str:
        key = TenantGateway(ledger).open_upstream_key(provider)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[(ledger.tenant_id, provider)] = (key, time.monotonic() + self.ttl)
        return key

    def forget(self, tenant_id: str, provider: str) -> None:
        with self._lock:
            self._entries.pop((tenant_id, provider), None)


class Gateway:
    """The gateway's state in one server process: its settings, the threads its database
    work runs on (the hot routes' own), the upstream client (one connection pool for every
    call), the cache of provider keys and that of the customer keys verified
    (`customer_keys`, set by the app)."""

    def __init__(
        self,
        settings: GatewaySettings,
        threads: Threads,
        customer_keys: KeyCache[GatewayKeyPrincipal] | None = None,
    ) -> None:
        self.settings = settings
        self.threads = threads
        self.keys = UpstreamKeys(settings.upstream_key_cache_seconds)
        self.customer_keys = customer_keys
        self._client: aiohttp.ClientSession | None = None
        self._proxies: dict[str, str | None] = {}

    @property
    def client(self) -> aiohttp.ClientSession:
        """The upstream client, made on the server's event loop at its first call.

        aiohttp rather than httpx: on this path a call to the provider costs about a quarter
        of httpx's CPU (0.25 against 1.0 ms measured on the development machine), and the
        gateway's CPU is the caller's wait.
        """
        if self._client is None:
            import aiohttp

            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self.settings.connect_timeout_seconds,
                sock_read=self.settings.timeout_seconds,  # between bytes, as httpx's read
            )
            connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0)
            # No cookie jar: every tenant's calls share this session, so a cookie a provider
            # set on one tenant's call would go with the next tenant's.
            self._client = aiohttp.ClientSession(
                timeout=timeout, connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._client

    def proxy(self, provider: str) -> str | None:
        """The proxy the environment names for the provider's base (`HTTPS_PROXY`,
        `HTTP_PROXY`, `NO_PROXY`), read once: aiohttp's `trust_env` would read it on a
        thread for every call."""
        if provider not in self._proxies:
            base = urllib.parse.urlsplit(self.settings.base(provider))
            bypass = base.hostname is None or urllib.request.proxy_bypass(base.hostname)
            self._proxies[provider] = (
                None if bypass else urllib.request.getproxies().get(base.scheme)
            )
        return self._proxies[provider]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def upstream_key(self, ledger: TenantLedger, provider: str) -> str:
        cached = self.keys.cached(ledger.tenant_id, provider)
        return (
            cached
            if cached is not None
            else await self.threads.run(self.keys.load, ledger, provider)
        )

    async def void(self, call: Call) -> None:
        try:
            await self.threads.run(
                lambda: call.ledger.void(
                    call.authorization_id, idempotency_key=call.idempotency_key(":void")
                )
            )
        except Exception:  # the hold expires on its own: logged, never raised over the answer
            log.exception("gateway void failed", extra={"authorization": call.authorization_id})

    async def settle(self, call: Call, usage: Usage, **metadata: Any) -> None:
        """Settle the call. The answer has gone to the caller, so while the database is
        unavailable (cut, failing over, every connection busy) the settle is tried again,
        under its idempotency key, for up to `settle_retry_seconds`; past that, or on any
        other error, the hold expires with its TTL (the customer is not charged twice, nor
        at all) and the failure is logged."""
        deadline = time.monotonic() + self.settings.settle_retry_seconds
        delay = SETTLE_RETRY_FIRST_DELAY
        while True:
            try:
                await self.threads.run(
                    lambda: call.ledger.settle(
                        call.authorization_id,
                        quantities=usage.as_quantities(),
                        metadata=call.metadata(**metadata),
                        idempotency_key=call.idempotency_key(":settle"),
                    )
                )
                return
            except Exception as exc:
                transient = is_unavailable(exc) or is_retryable(exc)
                if not transient or time.monotonic() + delay > deadline:
                    log.exception(
                        "gateway settle failed", extra={"authorization": call.authorization_id}
                    )
                    return
                log.warning(
                    "gateway settle: database unavailable, trying again",
                    extra={"authorization": call.authorization_id},
                )
            await anyio.sleep(delay)
            delay = min(delay * 2, SETTLE_RETRY_MAX_DELAY)


PREFIX = "/gateway"
# The gateway's routes, by their full path: FastAPI's below, and the app's edge
# (`gateway/edge.py`), which serves the same paths without the rest of the app's stack.
ENDPOINTS = {
    f"{PREFIX}/openai/v1/chat/completions": CHAT,
    f"{PREFIX}/openai/v1/responses": RESPONSES,
    f"{PREFIX}/openai/v1/embeddings": EMBEDDINGS,
    f"{PREFIX}/anthropic/v1/messages": MESSAGES,
}

router = APIRouter(include_in_schema=False)


def _route(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def route(request: Request) -> Response:
        return await serve(request, endpoint)

    route.__name__ = endpoint.name.replace(".", "_")
    return route


for _path, _endpoint in ENDPOINTS.items():
    router.add_api_route(_path, _route(_endpoint), methods=["POST"])


def _api_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


class BadRequest(CreditgateError):
    """A gateway request that is not one: not JSON, not an object, no model, no customer
    (a 400, as the providers answer a malformed request)."""

    code = "invalid_request"


@dataclass(slots=True)
class Call:
    """One gateway call on its way through."""

    endpoint: Endpoint
    ledger: TenantLedger
    gateway_id: str
    customer: str
    model: str
    action: str
    estimate: Usage
    key: GatewayKeyPrincipal | None = None  # the customer key the call came with, if any
    # With the caller's Idempotency-Key: this request's own id, in the hold's metadata.
    attempt: str | None = None
    authorization_id: str = ""
    member: str | None = None

    @property
    def provider(self) -> str:
        return self.endpoint.provider

    @property
    def spend_limit(self) -> SpendLimit | None:
        return None if self.key is None else self.key.spend_limit

    def idempotency_key(self, step: str = "") -> str:
        """The ledger's key for a step of this call: in the customer key's own space under
        one (two customers' calls never share a key), else in the tenant's."""
        scope = "" if self.key is None else f"{self.key.key_id}:"
        return f"gateway:{scope}{self.gateway_id}{step}"

    def metadata(self, **more: Any) -> dict[str, Any]:
        meta = {"gateway_request": self.gateway_id, "endpoint": self.endpoint.name}
        meta["model"] = self.model
        if self.key is not None:
            meta["gateway_key"] = self.key.key_id
        if self.attempt is not None:
            meta["attempt"] = self.attempt
        meta.update({k: v for k, v in more.items() if v is not None})
        return meta


def _read(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadRequest("the request body must be a JSON object")
    model = doc.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model is required", field="model")
    return doc


async def _caller(
    request: Request, gateway: Gateway
) -> tuple[str, str, GatewayKeyPrincipal | None]:
    """The tenant, the customer and (for a customer key) the key a call comes with."""
    key = _api_key(request)
    named = request.headers.get(CUSTOMER_HEADER, "").strip()
    if key is not None and key.startswith(f"{CUSTOMER_KEY_SCHEME}_"):
        assert gateway.customer_keys is not None
        holder = await authenticate_with(gateway.customer_keys, request, key)
        request.state.tenant_id = holder.tenant_id
        request.state.key = holder.shown
        holder.check_customer(named)
        return holder.tenant_id, holder.customer, holder
    principal = await authenticate(request, key)
    request.state.tenant_id = principal.tenant_id
    if not named:
        raise BadRequest("name the customer in the X-Creditgate-Customer header", field="customer")
    return principal.tenant_id, named, None


async def serve(request: Request, endpoint: Endpoint) -> Response:
    gateway: Gateway = request.app.state.gateway
    provider = endpoint.provider
    try:
        tenant_id, customer, key = await _caller(request, gateway)
        doc = _read(await request.body())
        if key is not None:
            key.check_model(doc["model"])
        settings = gateway.settings
        held = estimate(doc, default_cap=settings.default_max_output_tokens, output=endpoint.output)
        given_id = request.headers.get(IDEMPOTENCY_HEADER)
        if given_id is not None and not 1 <= len(given_id) <= MAX_GATEWAY_KEY:
            raise BadRequest(f"Idempotency-Key must be 1-{MAX_GATEWAY_KEY} characters")
        call = Call(
            endpoint=endpoint,
            ledger=TenantLedger(request.app.state.cg, tenant_id),
            gateway_id=given_id or f"gw_{uuid.uuid4().hex}",
            customer=customer,
            model=doc["model"],
            action=request.headers.get(ACTION_HEADER) or endpoint.action,
            estimate=held,
            key=key,
            attempt=None if given_id is None else uuid.uuid4().hex,
            member=request.headers.get(MEMBER_HEADER, "").strip() or None,
        )
        upstream_key = await gateway.upstream_key(call.ledger, provider)
        auth = await gateway.threads.run(_authorize, call, request, settings)
    except IdempotencyConflict:
        # Each attempt's hold carries its own id, so a second request under the caller's
        # key conflicts with the first, served or still in flight: nothing goes upstream.
        return error_response(
            provider,
            409,
            "request_already_served",
            f"the request {call.gateway_id} was already sent (its Idempotency-Key served an "
            "earlier request, which may still be running); send a new Idempotency-Key to "
            "call again",
        )
    except CreditgateError as exc:
        return failure(provider, exc)
    if not auth.approved:
        message = _declined(auth, call)
        return error_response(provider, 402, auth.decline_reason or "declined", message)
    call.authorization_id = auth.id
    return await _forward(request, gateway, call, doc, upstream_key)


def _declined(auth: Authorization, call: Call) -> str:
    """The 402's message: what declined the call, as the caller can act on it."""
    reason = auth.decline_reason
    if reason == SPEND_LIMIT_REACHED and call.key is not None:
        return f"declined ({reason}) for the gateway key {call.key.shown}: " + "; ".join(
            auth.warnings
        )
    if reason == BudgetDecline.BUDGET_EXCEEDED and auth.warnings:
        # Whose budget, its period and what it has left (`services.ledger.budgets.refusal`).
        return f"declined ({reason}): " + "; ".join(auth.warnings)
    if reason == BudgetDecline.MEMBER_INACTIVE:
        return f"declined ({reason}): member {call.member} of {auth.customer} is inactive"
    if reason == BudgetDecline.MEMBER_REMOVED:
        return f"declined ({reason}): member {call.member} of {auth.customer} was removed"
    return (
        f"declined ({reason}): the call is estimated at {auth.requested} and the customer has "
        f"{auth.available} available ({auth.asset}, in minor units)"
    )


def _authorize(call: Call, request: Request, settings: GatewaySettings) -> Authorization:
    return call.ledger.authorize(
        call.customer,
        action=call.action,
        dimensions={"model": call.model},
        quantities=call.estimate.as_quantities(),
        rate_card=request.headers.get(RATE_CARD_HEADER) or "default",
        ttl_seconds=settings.hold_ttl_seconds,
        metadata=call.metadata(),
        idempotency_key=call.idempotency_key(),
        member=call.member,
        spend_limit=call.spend_limit,
    )


def _upstream_headers(request: Request, provider: str, key: str) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    for name in FORWARDED_REQUEST_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    if provider == "anthropic":
        headers["x-api-key"] = key
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    else:
        headers["authorization"] = f"Bearer {key}"
    return headers


def _answer_headers(upstream: aiohttp.ClientResponse, call: Call) -> dict[str, str]:
    headers = {
        name: upstream.headers[name]
        for name in FORWARDED_ANSWER_HEADERS
        if name in upstream.headers
    }
    if "x-request-id" in upstream.headers:
        headers["x-upstream-request-id"] = upstream.headers["x-request-id"]
    headers["x-creditgate-authorization"] = call.authorization_id
    return headers


def _upstream_request_id(upstream: aiohttp.ClientResponse) -> str | None:
    found = upstream.headers.get("x-request-id") or upstream.headers.get("request-id")
    return str(found) if found else None


async def _forward(
    request: Request,
    gateway: Gateway,
    call: Call,
    doc: dict[str, Any],
    upstream_key: str,
) -> Response:
    import aiohttp  # loaded by now: `gateway.client` imported it

    endpoint = call.endpoint
    body = await request.body()
    streaming = endpoint.stream_kind is not None and doc.get("stream") is True
    strip_usage = False
    if streaming and endpoint.stream_kind == "openai_chat":
        # Ask for the usage chunk; drop it again for a client that did not ask for it.
        options = doc.get("stream_options")
        options = dict(options) if isinstance(options, dict) else {}
        strip_usage = options.get("include_usage") is not True
        options["include_usage"] = True
        body = json.dumps({**doc, "stream_options": options}).encode()
    url = gateway.settings.base(call.provider) + endpoint.path
    try:
        # Returns once the answer's head has come; its body is read below.
        upstream = await gateway.client.post(
            url,
            data=body,
            headers=_upstream_headers(request, call.provider, upstream_key),
            proxy=gateway.proxy(call.provider),
        )
    except TimeoutError:
        await gateway.void(call)
        return error_response(call.provider, 504, "upstream_timeout", "the provider timed out")
    except aiohttp.ClientError as exc:
        await gateway.void(call)
        message = f"the provider could not be reached ({type(exc).__name__})"
        return error_response(call.provider, 502, "upstream_unreachable", message)
    headers = _answer_headers(upstream, call)
    media_type = upstream.headers.get("content-type", "application/json")
    if upstream.status >= 400:
        # Passed back as the provider sent it; the call did not happen.
        try:
            content = await upstream.read()
        except (aiohttp.ClientError, TimeoutError):
            content = b""
        finally:
            upstream.release()
        await gateway.void(call)
        return Response(content, upstream.status, headers=headers, media_type=media_type)
    if streaming and media_type.startswith("text/event-stream"):
        assert endpoint.stream_kind is not None
        meter = StreamMeter(endpoint.stream_kind, strip_usage=strip_usage)
        return Relay(gateway, upstream, call, meter, headers, media_type)
    try:
        content = await upstream.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        await gateway.void(call)
        return error_response(
            call.provider, 502, "upstream_failed", f"the provider's answer broke off ({exc!r})"
        )
    finally:
        upstream.release()
    usage, upstream_id = _whole_usage(call, content)
    upstream_request_id = _upstream_request_id(upstream)

    async def settle() -> None:
        await gateway.settle(
            call, usage, upstream_request_id=upstream_request_id, upstream_id=upstream_id
        )

    return SettledAfter(content, upstream.status, headers, media_type, settle)


def _whole_usage(call: Call, content: bytes) -> tuple[Usage, str | None]:
    """The usage a whole answer reports, or (when it reports none that a real call could)
    the request's estimate, which the hold was sized for."""
    try:
        answer = json.loads(content)
    except ValueError:
        return call.estimate, None
    if not isinstance(answer, dict):
        return call.estimate, None
    upstream_id = answer.get("id") if isinstance(answer.get("id"), str) else None
    raw = answer.get("usage")
    if not isinstance(raw, dict):
        return call.estimate, upstream_id
    try:
        return call.endpoint.usage(raw), upstream_id
    except ImpossibleUsage:
        log.warning("impossible usage from the provider; settled at the estimate")
        return call.estimate, upstream_id


class SettledAfter(Response):
    """A whole answer, settled once it is sent: the settle's transaction is not part of the
    caller's wait (a stream's is not either). The answer names the hold
    (`X-Creditgate-Authorization`); its charge follows within the settle's time."""

    def __init__(
        self,
        content: bytes,
        status_code: int,
        headers: dict[str, str],
        media_type: str,
        settle: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(content, status_code, headers=headers, media_type=media_type)
        self.settle = settle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.settle()


class Relay(Response):
    """A stream passed back event by event, and settled when it ends.

    - It ends as the provider ends it: settled for the usage the stream reported (without a
      report, the estimated input and the streamed text's estimate of output).
    - The client goes away first: the upstream request is closed at once (the provider
      stops generating), and the call is settled for what was generated: the reported
      counts so far, with output at least the streamed text's estimate (characters/4,
      rounded up); with no report, the estimated input and that output estimate.
    - The provider fails mid-stream (an `error` event, a broken connection, a timeout):
      the hold is voided.
    """

    def __init__(
        self,
        gateway: Gateway,
        upstream: aiohttp.ClientResponse,
        call: Call,
        meter: StreamMeter,
        headers: dict[str, str],
        media_type: str,
    ) -> None:
        # As a StreamingResponse: no body, so no Content-Length.
        self.gateway = gateway
        self.status_code = upstream.status
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self.upstream = upstream
        self.call = call
        self.meter = meter
        # Every event the provider sent was handed on: a client that leaves after that
        # (before the closing empty chunk) left a complete stream.
        self.relayed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = "disconnected"
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                try:
                    outcome = await self._stream(send)
                finally:
                    group.cancel_scope.cancel()
        except OSError:
            outcome = "disconnected"
        finally:
            if outcome == "disconnected" and self.relayed:
                outcome = "done"
            # A stream that ended goes back to the pool; one cut short is closed, so that
            # the provider stops generating.
            if outcome == "done":
                self.upstream.release()
            else:
                self.upstream.close()
            with anyio.CancelScope(shield=True):
                await self._finish(outcome)

    async def _stream(self, send: Send) -> str:
        import aiohttp  # loaded by now: `gateway.client` imported it

        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        splitter = EventSplitter()
        try:
            async for data in self.upstream.content.iter_any():
                for event in splitter.feed(data):
                    if self.meter.observe(event):
                        await send({"type": "http.response.body", "body": event, "more_body": True})
            rest = splitter.rest()
            if rest:
                await send({"type": "http.response.body", "body": rest, "more_body": True})
            self.relayed = not self.meter.failed
        except (aiohttp.ClientError, TimeoutError):
            self.meter.failed = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return "failed" if self.meter.failed else "done"

    async def _finish(self, outcome: str) -> None:
        call, meter = self.call, self.meter
        if outcome == "failed":
            await self.gateway.void(call)
            return
        usage = meter.usage(call.estimate, complete=outcome == "done")
        await self.gateway.settle(
            call,
            usage,
            upstream_request_id=_upstream_request_id(self.upstream),
            upstream_id=meter.upstream_id,
            stream="complete" if outcome == "done" else "client_disconnected",
        )
