"""The gateway's routes: authorize from the request, forward, pass the answer back, settle.

One call:

1. The caller is the tenant of its API key (`Authorization: Bearer cg_…` as OpenAI's client
   sends it, or `x-api-key: cg_…` as Anthropic's does), on behalf of the customer named by
   `X-Creditgate-Customer` (and of its member named by `X-Creditgate-Member`, if any).
2. The request is read (JSON, with a `model`) and estimated (`domain/gateway.py`): its input
   from its text, its output at its own cap or the gateway's default.
3. The tenant's card prices the estimate and places the hold, as `POST /v1/authorizations`
   does with `action`, `dimensions.model` and `quantities`. A decline answers 402 in the
   provider's error shape, and nothing is sent upstream.
4. The request goes upstream with the tenant's provider key. An error answer (4xx, 5xx),
   a failed connection or a timeout voids the hold and is passed back.
5. A whole answer is read for its usage and settled by the hold's card version (the action,
   model and upstream request id on the charge), then passed back. A stream is passed back
   event by event and settled when it ends (see `Relay`).

The hold and the settle are idempotent per gateway request: their keys derive from the
request's id (the caller's `Idempotency-Key`, else a new one). A retry with the same key
after the call was served is refused (409) rather than sent upstream again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import httpx
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from creditgate.api import TenantLedger
from creditgate.api.gateway import Authorization, Settlement, TenantGateway
from creditgate.domain.errors import CreditgateError
from creditgate.domain.gateway import (
    ImpossibleUsage,
    Usage,
    anthropic_usage,
    estimate,
    openai_chat_usage,
    openai_responses_usage,
)
from creditgate.gateway.errors import error_response, failure
from creditgate.gateway.settings import GatewaySettings
from creditgate.gateway.streams import EventSplitter, StreamMeter
from creditgate.http.auth import authenticate

log = logging.getLogger("creditgate.gateway")

CUSTOMER_HEADER = "x-creditgate-customer"
MEMBER_HEADER = "x-creditgate-member"
ACTION_HEADER = "x-creditgate-action"
RATE_CARD_HEADER = "x-creditgate-rate-card"
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_GATEWAY_KEY = 200
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
    once."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, ledger: TenantLedger, provider: str) -> str:
        slot = (ledger.tenant_id, provider)
        entry = self._entries.get(slot)
        now = time.monotonic()
        if entry is not None and entry[1] > now:
            return entry[0]
        key = TenantGateway(ledger).open_upstream_key(provider)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[slot] = (key, now + self.ttl)
        return key

    def forget(self, tenant_id: str, provider: str) -> None:
        with self._lock:
            self._entries.pop((tenant_id, provider), None)


class Gateway:
    """The gateway's state in one server process: its settings, the upstream client (one
    connection pool for every call) and the cache of provider keys."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.keys = UpstreamKeys(settings.upstream_key_cache_seconds)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(
                self.settings.timeout_seconds, connect=self.settings.connect_timeout_seconds
            )
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
            self._client = httpx.AsyncClient(timeout=timeout, limits=limits)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


router = APIRouter(prefix="/gateway", include_in_schema=False)


@router.post("/openai/v1/chat/completions")
async def openai_chat_completions(request: Request) -> Response:
    return await serve(request, CHAT)


@router.post("/openai/v1/responses")
async def openai_responses(request: Request) -> Response:
    return await serve(request, RESPONSES)


@router.post("/openai/v1/embeddings")
async def openai_embeddings(request: Request) -> Response:
    return await serve(request, EMBEDDINGS)


@router.post("/anthropic/v1/messages")
async def anthropic_messages(request: Request) -> Response:
    return await serve(request, MESSAGES)


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
    authorization_id: str = ""
    member: str | None = None

    @property
    def provider(self) -> str:
        return self.endpoint.provider

    def metadata(self, **more: Any) -> dict[str, Any]:
        meta = {"gateway_request": self.gateway_id, "endpoint": self.endpoint.name}
        meta["model"] = self.model
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


async def serve(request: Request, endpoint: Endpoint) -> Response:
    gateway: Gateway = request.app.state.gateway
    provider = endpoint.provider
    try:
        principal = await authenticate(request, _api_key(request))
        request.state.tenant_id = principal.tenant_id
        customer = request.headers.get(CUSTOMER_HEADER, "").strip()
        if not customer:
            raise BadRequest(
                "name the customer in the X-Creditgate-Customer header", field="customer"
            )
        doc = _read(await request.body())
        settings = gateway.settings
        held = estimate(doc, default_cap=settings.default_max_output_tokens, output=endpoint.output)
        given_id = request.headers.get(IDEMPOTENCY_HEADER)
        if given_id is not None and not 1 <= len(given_id) <= MAX_GATEWAY_KEY:
            raise BadRequest(f"Idempotency-Key must be 1-{MAX_GATEWAY_KEY} characters")
        call = Call(
            endpoint=endpoint,
            ledger=TenantLedger(request.app.state.cg, principal.tenant_id),
            gateway_id=given_id or f"gw_{uuid.uuid4().hex}",
            customer=customer,
            model=doc["model"],
            action=request.headers.get(ACTION_HEADER) or endpoint.action,
            estimate=held,
            member=request.headers.get(MEMBER_HEADER, "").strip() or None,
        )
        upstream_key = await anyio.to_thread.run_sync(gateway.keys.get, call.ledger, provider)
        auth = await anyio.to_thread.run_sync(lambda: _authorize(call, request, settings))
        if given_id is not None and auth.approved:
            # The caller's key may be a retry of a call already served: a replay answers
            # the hold as it was, so its state now is read.
            auth = await anyio.to_thread.run_sync(call.ledger.authorization, auth.id)
    except CreditgateError as exc:
        return failure(provider, exc)
    if not auth.approved:
        message = (
            f"declined ({auth.decline_reason}): the call is estimated at {auth.requested} "
            f"and the customer has {auth.available} available ({auth.asset}, in minor units)"
        )
        return error_response(provider, 402, auth.decline_reason or "declined", message)
    if auth.status != "pending":
        return error_response(
            provider,
            409,
            "request_already_served",
            f"the request {call.gateway_id} was already served (its authorization is "
            f"{auth.status}); send a new Idempotency-Key to call again",
        )
    call.authorization_id = auth.id
    return await _forward(request, gateway, call, doc, upstream_key)


def _authorize(call: Call, request: Request, settings: GatewaySettings) -> Authorization:
    return call.ledger.authorize(
        call.customer,
        action=call.action,
        dimensions={"model": call.model},
        quantities=call.estimate.as_quantities(),
        rate_card=request.headers.get(RATE_CARD_HEADER) or "default",
        ttl_seconds=settings.hold_ttl_seconds,
        metadata=call.metadata(),
        idempotency_key=f"gateway:{call.gateway_id}",
        member=call.member,
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


def _answer_headers(upstream: httpx.Response, call: Call) -> dict[str, str]:
    headers = {
        name: upstream.headers[name]
        for name in FORWARDED_ANSWER_HEADERS
        if name in upstream.headers
    }
    if "x-request-id" in upstream.headers:
        headers["x-upstream-request-id"] = upstream.headers["x-request-id"]
    headers["x-creditgate-authorization"] = call.authorization_id
    return headers


def _upstream_request_id(upstream: httpx.Response) -> str | None:
    found = upstream.headers.get("x-request-id") or upstream.headers.get("request-id")
    return str(found) if found else None


async def _void(call: Call) -> None:
    try:
        await anyio.to_thread.run_sync(
            lambda: call.ledger.void(
                call.authorization_id, idempotency_key=f"gateway:{call.gateway_id}:void"
            )
        )
    except Exception:  # the hold expires on its own: logged, never raised over the answer
        log.exception("gateway void failed", extra={"authorization": call.authorization_id})


async def _settle(call: Call, usage: Usage, **metadata: Any) -> str | None:
    """Settle the call; the charge's id, or None when it could not be settled now (the
    hold then expires with its TTL: the customer is not charged twice, nor at all)."""
    try:
        settlement: Settlement = await anyio.to_thread.run_sync(
            lambda: call.ledger.settle(
                call.authorization_id,
                quantities=usage.as_quantities(),
                metadata=call.metadata(**metadata),
                idempotency_key=f"gateway:{call.gateway_id}:settle",
            )
        )
    except Exception:
        log.exception("gateway settle failed", extra={"authorization": call.authorization_id})
        return None
    return settlement.charge.id


async def _forward(
    request: Request,
    gateway: Gateway,
    call: Call,
    doc: dict[str, Any],
    upstream_key: str,
) -> Response:
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
    outgoing = gateway.client.build_request(
        "POST", url, content=body, headers=_upstream_headers(request, call.provider, upstream_key)
    )
    try:
        upstream = await gateway.client.send(outgoing, stream=True)
    except httpx.TimeoutException:
        await _void(call)
        return error_response(call.provider, 504, "upstream_timeout", "the provider timed out")
    except httpx.HTTPError as exc:
        await _void(call)
        message = f"the provider could not be reached ({type(exc).__name__})"
        return error_response(call.provider, 502, "upstream_unreachable", message)
    headers = _answer_headers(upstream, call)
    media_type = upstream.headers.get("content-type", "application/json")
    if upstream.status_code >= 400:
        # Passed back as the provider sent it; the call did not happen.
        try:
            content = await upstream.aread()
        except httpx.HTTPError:
            content = b""
        finally:
            await upstream.aclose()
        await _void(call)
        return Response(content, upstream.status_code, headers=headers, media_type=media_type)
    if streaming and media_type.startswith("text/event-stream"):
        assert endpoint.stream_kind is not None
        meter = StreamMeter(endpoint.stream_kind, strip_usage=strip_usage)
        return Relay(upstream, call, meter, headers, media_type)
    try:
        content = await upstream.aread()
    except httpx.HTTPError as exc:
        await _void(call)
        return error_response(
            call.provider, 502, "upstream_failed", f"the provider's answer broke off ({exc!r})"
        )
    finally:
        await upstream.aclose()
    usage, upstream_id = _whole_usage(call, content)
    charge = await _settle(
        call,
        usage,
        upstream_request_id=_upstream_request_id(upstream),
        upstream_id=upstream_id,
    )
    if charge is not None:
        headers["x-creditgate-charge"] = charge
    return Response(content, upstream.status_code, headers=headers, media_type=media_type)


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
        upstream: httpx.Response,
        call: Call,
        meter: StreamMeter,
        headers: dict[str, str],
        media_type: str,
    ) -> None:
        # As a StreamingResponse: no body, so no Content-Length.
        self.status_code = upstream.status_code
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self.upstream = upstream
        self.call = call
        self.meter = meter

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
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
                await self._finish(outcome)

    async def _stream(self, send: Send) -> str:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        splitter = EventSplitter()
        try:
            async for data in self.upstream.aiter_raw():
                for event in splitter.feed(data):
                    if self.meter.observe(event):
                        await send({"type": "http.response.body", "body": event, "more_body": True})
            rest = splitter.rest()
            if rest:
                await send({"type": "http.response.body", "body": rest, "more_body": True})
        except httpx.HTTPError:
            self.meter.failed = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return "failed" if self.meter.failed else "done"

    async def _finish(self, outcome: str) -> None:
        call, meter = self.call, self.meter
        if outcome == "failed":
            await _void(call)
            return
        usage = meter.usage(call.estimate, complete=outcome == "done")
        await _settle(
            call,
            usage,
            upstream_request_id=_upstream_request_id(self.upstream),
            upstream_id=meter.upstream_id,
            stream="complete" if outcome == "done" else "client_disconnected",
        )
