"""creditgate's LiteLLM plugin: a `CustomLogger` that holds credit before each LiteLLM call,
charges the usage after it, and releases the hold when the call fails.

    import litellm
    from creditgate_sdk.integrations.litellm import CreditgateLogger

    litellm.callbacks = [CreditgateLogger()]  # $CREDITGATE_BASE_URL, $CREDITGATE_API_KEY
    reply = await litellm.acompletion(
        model="gpt-4.1", messages=[...], max_tokens=200,
        metadata={"creditgate_customer": "cust_42"},
    )

**Before the call** the hold is authorized at the rate card's price of the request's estimate
(`creditgate_sdk.estimates`: the gateway's rule, input counted from the text, output at
the request's cap or `default_max_tokens`), as action `chat.completion` (`embedding` for
embeddings) with the dimension `model`. A decline raises `CreditDeclined` (LiteLLM's
`PaymentRequiredError`, HTTP 402 in the proxy) and the provider is never called. In the
LiteLLM SDK and its Router this happens in `async_pre_call_deployment_hook`, which LiteLLM
runs in every async call (`acompletion`, `aembedding`, `aresponses`, …) before it reaches the
provider; in the proxy `async_pre_call_hook` runs first, and the second hook finds the hold of
the same call and does nothing.

**After the call** the success event settles the hold with the usage LiteLLM reports (for a
stream, the assembled response's, which LiteLLM counts itself when the provider reported
none), priced by the same card version as the hold; the failure event voids it. Usage maps
onto creditgate's disjoint counts as `creditgate_sdk.usage` reads an OpenAI chat completion
(LiteLLM reports every provider in that shape, cache writes in
`prompt_tokens_details.cache_write_tokens`); an answer without usage is charged at the
estimate.

Sync calls (`litellm.completion`) run no hook that can stop them, so they are not gated:
the success event charges them after they ran (one charge, idempotent per call), and a
warning says so once.

**The customer** is, in this order: the proxy key's own `metadata["creditgate_customer"]`
(a key bound to one customer: nothing in the request overrides it), the request's
`metadata["creditgate_customer"]`, the request's `user`, the proxy's end user. With none,
the call is refused (`CallNotGated`, 400) unless `require_customer=False`, which lets it
through unbilled.

**Idempotency**: per LiteLLM call id (`litellm_call_id`): the hold is keyed `litellm:<id>`,
its settle and void `litellm:<id>:settle` and `litellm:<id>:void`, so a retried request to
creditgate never holds or charges twice. A new attempt of the same call after its hold was
resolved (a Router retry, a fallback to another model) holds under `litellm:<id>:<n>`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import litellm
from litellm.integrations.custom_logger import CustomLogger

from creditgate_sdk.client import DEFAULT_TIMEOUT, AsyncClient, Client
from creditgate_sdk.errors import CreditgateError, HoldNotPending, IdempotencyConflict
from creditgate_sdk.estimates import DEFAULT_MAX_TOKENS, estimate
from creditgate_sdk.models import Authorization, Charge
from creditgate_sdk.usage import ImpossibleUsage, Usage, UsageNotFound, usage_from, usage_of

__all__ = [
    "CUSTOMER_KEY",
    "CallNotGated",
    "CreditDeclined",
    "CreditgateLogger",
    "customer_of",
    "handler",
]

log = logging.getLogger("creditgate_sdk")

CUSTOMER_KEY = "creditgate_customer"
# LiteLLM's call types the plugin gates, by their names without the async "a".
_CHAT_CALLS = frozenset({"completion", "text_completion", "responses", "anthropic_messages"})
_EMBEDDING_CALLS = frozenset({"embedding"})
_GATED_CALLS = _CHAT_CALLS | _EMBEDDING_CALLS
# Holds of calls still running, at most; past it the oldest is forgotten (its hold expires
# after its TTL) rather than letting a process that never hears back grow without bound.
MAX_OPEN_HOLDS = 10_000
# Attempts of one call id that may each hold anew (retries, fallbacks).
_MAX_ATTEMPTS = 16


def _not_the_deployments_fault(error: BaseException) -> None:
    """Tell LiteLLM's Router that the failure is not the deployment's: the Router cools a
    deployment down after a 402, and one customer's decline must not take a model away from
    the others."""
    try:
        from litellm.router_utils.cooldown_handlers import mark_deployment_selection_failure
    except ImportError:  # a LiteLLM without the marker
        return
    mark_deployment_selection_failure(error)


class CreditDeclined(litellm.PaymentRequiredError):  # type: ignore[misc]
    """creditgate declined the call's hold: the customer cannot pay its estimate, and nothing
    was sent to the provider. `authorization` is the declined authorization (its
    `decline_reason`, `requested` and `available`, in the asset's minor units). LiteLLM's proxy
    answers it with HTTP 402, `{"error": {"type": "insufficient_credits", "code": "402",
    "provider_specific_fields": {"creditgate": {"decline_reason": …, …}}}}`.
    """

    def __init__(self, authorization: Authorization, *, model: str, provider: str) -> None:
        reason = authorization.decline_reason or "declined"
        message = (
            f"creditgate declined the call for customer {authorization.customer}: {reason}"
            f" (held at {authorization.requested}, available {authorization.available},"
            f" in minor units of {authorization.asset})"
        )
        super().__init__(message=message, model=model, llm_provider=provider)
        self.message = message
        self.authorization = authorization
        self.type = "insufficient_credits"
        self.code = reason
        # what LiteLLM's proxy adds to its error answer
        self.provider_specific_fields = {
            "creditgate": {
                "decline_reason": reason,
                "authorization": authorization.id,
                "customer": authorization.customer,
                "asset": authorization.asset,
                "requested": authorization.requested,
                "available": authorization.available,
            }
        }
        _not_the_deployments_fault(self)


class CallNotGated(litellm.BadRequestError):  # type: ignore[misc]
    """creditgate could not hold credit for the call, so it was not sent: no customer was
    named, the request's cap is not a whole number of 1 or more, or creditgate refused the
    authorization (an unknown customer, a model the rate card does not price: `code` is
    creditgate's, the error its `__cause__`) or could not be reached. `status_code` is 400,
    creditgate's 4xx, or 503 when creditgate did not answer."""

    def __init__(
        self,
        message: str,
        *,
        model: str,
        provider: str,
        code: str,
        status_code: int = 400,
    ) -> None:
        super().__init__(message=message, model=model, llm_provider=provider)
        self.message = message
        self.status_code = status_code
        self.type = "invalid_request_error" if status_code < 500 else "api_error"
        self.code = code
        _not_the_deployments_fault(self)


@dataclass(slots=True)
class _Hold:
    authorization: str
    attempt: int  # the how-manieth hold of its call id
    key: str  # its idempotency key; the settle and void add ":settle" / ":void"
    customer: str
    action: str
    model: str
    rate_card: str | None
    estimate: Usage
    resolving: bool = False


@dataclass(frozen=True, slots=True)
class _Terms:
    """What a settle or a charge sends, read off LiteLLM's success event."""

    quantities: dict[str, int]
    metadata: dict[str, Any]


def _text(mapping: Any, key: str) -> str | None:
    value = mapping.get(key) if isinstance(mapping, Mapping) else None
    return value if isinstance(value, str) and value else None


def customer_of(request: Mapping[str, Any], key: Any = None) -> str | None:
    """The customer a call is for: the proxy key's `metadata["creditgate_customer"]` (`key`
    is the proxy's `UserAPIKeyAuth`), else the request's `metadata["creditgate_customer"]`
    (or `litellm_metadata`'s), else its `user`, else the proxy key's end user."""
    bound = _text(getattr(key, "metadata", None), CUSTOMER_KEY)
    if bound:
        return bound
    for name in ("metadata", "litellm_metadata"):
        named = _text(request.get(name), CUSTOMER_KEY)
        if named:
            return named
    user = _text(request, "user")
    if user:
        return user
    end_user = getattr(key, "end_user_id", None)
    return end_user if isinstance(end_user, str) and end_user else None


def _model_of(request: Mapping[str, Any]) -> str:
    """The model as the caller named it: the Router's model group, else the request's model."""
    for name in ("metadata", "litellm_metadata"):
        group = _text(request.get(name), "model_group")
        if group:
            return group
    model = request.get("model")
    return model if isinstance(model, str) else ""


def _provider_of(request: Mapping[str, Any]) -> str:
    provider = request.get("custom_llm_provider")
    return provider if isinstance(provider, str) else "creditgate"


def _call_kind(call_type: Any) -> str | None:
    """ "chat" or "embedding" for the call types the plugin gates, else None."""
    name = getattr(call_type, "value", call_type)
    if not isinstance(name, str):
        return None
    for candidate in (name, name[1:]):
        if candidate in _CHAT_CALLS:
            return "chat"
        if candidate in _EMBEDDING_CALLS:
            return "embedding"
    return None


def _is_async(kwargs: Mapping[str, Any]) -> bool:
    """Whether a logged call was an async one (its events are the async ones)."""
    params = kwargs.get("litellm_params")
    if isinstance(params, Mapping) and (params.get("acompletion") or params.get("async_call")):
        return True
    name = getattr(kwargs.get("call_type"), "value", kwargs.get("call_type"))
    if not isinstance(name, str):
        return False
    # `a` + a gated call type; LiteLLM's Anthropic messages route is async only
    return name == "anthropic_messages" or (name[:1] == "a" and name[1:] in _GATED_CALLS)


def _call_id(record: Mapping[str, Any]) -> str | None:
    call_id = record.get("litellm_call_id")
    return call_id if isinstance(call_id, str) and call_id else None


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _measured(kwargs: Mapping[str, Any], response: Any) -> Usage | None:
    """The call's usage: the response's (for a stream, the assembled one), else the counts of
    LiteLLM's standard logging payload; None when neither has any."""
    try:
        return usage_from(response)
    except (UsageNotFound, ImpossibleUsage):
        pass
    payload = kwargs.get("standard_logging_object")
    if isinstance(payload, Mapping) and payload.get("prompt_tokens") is not None:
        try:
            return usage_of(
                {
                    "prompt_tokens": payload.get("prompt_tokens"),
                    "completion_tokens": payload.get("completion_tokens"),
                }
            )
        except ImpossibleUsage:
            return None
    return None


def _terms(kwargs: Mapping[str, Any], response: Any, fallback: Usage) -> _Terms:
    usage = _measured(kwargs, response)
    metadata: dict[str, Any] = {"litellm_call_id": _call_id(kwargs)}
    upstream_id = _field(response, "id")
    if isinstance(upstream_id, str):
        metadata["upstream_id"] = upstream_id
    if usage is None:
        usage = fallback
        metadata["usage"] = "estimated"
    return _Terms(usage.as_quantities(), metadata)


class CreditgateLogger(CustomLogger):  # type: ignore[misc]
    """The LiteLLM callback that gates calls with creditgate; see the module's docstring.

    `base_url` and `api_key` default to $CREDITGATE_BASE_URL and $CREDITGATE_API_KEY, read
    when the first call is gated (so a module-level instance can be made before they are
    set). `action` and `embedding_action` are the rate card's actions, `rate_card` the card's
    name (default: the tenant's default card), `ttl_seconds` the hold's lifetime (default:
    the server's). `client` / `sync_client` replace the clients the handler makes (one
    `AsyncClient` per event loop, one `Client` for sync calls).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        action: str = "chat.completion",
        embedding_action: str = "embedding",
        rate_card: str | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        ttl_seconds: int | None = None,
        require_customer: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        client: AsyncClient | None = None,
        sync_client: Client | None = None,
    ) -> None:
        super().__init__()
        if isinstance(default_max_tokens, bool) or default_max_tokens < 1:
            raise ValueError(f"default_max_tokens must be 1 or more, got {default_max_tokens!r}")
        self.base_url = base_url
        self.api_key = api_key
        self.action = action
        self.embedding_action = embedding_action
        self.rate_card = rate_card
        self.default_max_tokens = default_max_tokens
        self.ttl_seconds = ttl_seconds
        self.require_customer = require_customer
        self.timeout = timeout
        self._client = client
        self._sync_client = sync_client
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, AsyncClient]] = {}
        self._holds: dict[str, _Hold] = {}
        # Call ids whose hold was released after a failure, with the attempts they used: a
        # retry of the call holds under the next key, since creditgate would answer the
        # first key with the first (since released) hold.
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._warned_sync = False

    def __repr__(self) -> str:
        return f"CreditgateLogger(action={self.action!r}, rate_card={self.rate_card!r})"

    # The clients

    def _async_client(self) -> AsyncClient:
        """The given client, else one per event loop: an httpx.AsyncClient's connections
        belong to the loop that opened them, and a script may run several loops in turn."""
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        with self._lock:
            for ident in [i for i, (old, _) in self._clients.items() if old.is_closed()]:
                del self._clients[ident]
            entry = self._clients.get(id(loop))
            if entry is None or entry[0] is not loop:
                made = AsyncClient(self.base_url, self.api_key, timeout=self.timeout)
                entry = self._clients[id(loop)] = (loop, made)
            return entry[1]

    def _client_sync(self) -> Client:
        with self._lock:
            if self._sync_client is None:
                self._sync_client = Client(self.base_url, self.api_key, timeout=self.timeout)
            return self._sync_client

    # The holds of calls in flight, by LiteLLM call id

    def _open(self, call_id: str, hold: _Hold) -> None:
        with self._lock:
            if len(self._holds) >= MAX_OPEN_HOLDS:
                oldest = next(iter(self._holds))
                forgotten = self._holds.pop(oldest)
                log.warning(
                    "creditgate: %d LiteLLM calls hold credit at once; the oldest, call %s"
                    " (authorization %s), is forgotten and its hold expires after its TTL",
                    MAX_OPEN_HOLDS,
                    oldest,
                    forgotten.authorization,
                )
            self._holds[call_id] = hold

    def _claim(self, call_id: str | None) -> _Hold | None:
        """The call's hold, for the one event that resolves it; None for any other."""
        if call_id is None:
            return None
        with self._lock:
            hold = self._holds.get(call_id)
            if hold is None or hold.resolving:
                return None
            hold.resolving = True
            return hold

    def _close(self, call_id: str, hold: _Hold, *, retryable: bool = False) -> None:
        with self._lock:
            if self._holds.get(call_id) is hold:
                del self._holds[call_id]
            self._attempts.pop(call_id, None)
            if retryable:
                if len(self._attempts) >= MAX_OPEN_HOLDS:
                    del self._attempts[next(iter(self._attempts))]
                self._attempts[call_id] = hold.attempt

    @property
    def open_holds(self) -> int:
        """Holds placed for calls whose success or failure has not been logged yet."""
        with self._lock:
            return len(self._holds)

    async def flush(self, timeout: float = 30.0) -> int:
        """Wait until every hold this handler placed is settled or voided, or `timeout`
        seconds; answers the holds still open. LiteLLM logs a call's success after it has
        returned the answer, so a script that leaves its event loop at once calls this first,
        or its last holds stay open until their TTL."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (still := self.open_holds) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return still

    # Before the call

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> None:
        """The proxy's hook: hold for the call, or raise so that the proxy refuses it."""
        await self._gate(data, call_type, key=user_api_key_dict)

    async def async_pre_call_deployment_hook(self, kwargs: dict[str, Any], call_type: Any) -> None:
        """LiteLLM's hook before an async call reaches its deployment (SDK, Router, proxy)."""
        await self._gate(kwargs, call_type)

    async def _gate(self, request: Mapping[str, Any], call_type: Any, key: Any = None) -> None:
        kind = _call_kind(call_type)
        call_id = _call_id(request)
        if kind is None or call_id is None:
            return
        with self._lock:
            if call_id in self._holds:
                return  # the proxy's hook held for this call already
        model, provider = _model_of(request), _provider_of(request)
        customer = customer_of(request, key)
        if customer is None:
            if not self.require_customer:
                return
            raise CallNotGated(
                "creditgate: no customer for this call: pass"
                f" metadata={{{CUSTOMER_KEY!r}: ...}} or user=..., or bind the proxy key to"
                f" one with metadata {{{CUSTOMER_KEY!r}: ...}}",
                model=model,
                provider=provider,
                code="customer_required",
            )
        try:
            held = estimate(
                request, default_max_tokens=self.default_max_tokens, output=kind == "chat"
            )
        except ValueError as error:
            raise CallNotGated(
                f"creditgate: {error}", model=model, provider=provider, code="invalid_input"
            ) from error
        action = self.action if kind == "chat" else self.embedding_action
        await self._hold(call_id, customer, action, model, provider, held)

    async def _hold(
        self, call_id: str, customer: str, action: str, model: str, provider: str, held: Usage
    ) -> None:
        client = self._async_client()
        base = f"litellm:{call_id}"
        with self._lock:
            first = self._attempts.get(call_id, 0) + 1
        for attempt in range(first, first + _MAX_ATTEMPTS):
            key = base if attempt == 1 else f"{base}:{attempt}"
            try:
                authorization = await client.authorize(
                    customer,
                    action=action,
                    dimensions={"model": model},
                    quantities=held.as_quantities(),
                    rate_card=self.rate_card,
                    ttl_seconds=self.ttl_seconds,
                    metadata={"litellm_call_id": call_id, "estimate": held.as_dict()},
                    idempotency_key=key,
                )
            except IdempotencyConflict:
                continue  # an earlier attempt of this call asked for another model
            except CreditgateError as error:
                status = error.status if error.status and 400 <= error.status < 500 else 503
                raise CallNotGated(
                    f"creditgate could not hold credit for the call: {error}",
                    model=model,
                    provider=provider,
                    code=error.code,
                    status_code=status,
                ) from error
            if not authorization.approved:
                raise CreditDeclined(authorization, model=model, provider=provider)
            if authorization.status == "pending":
                hold = _Hold(
                    authorization.id,
                    attempt,
                    key,
                    customer,
                    action,
                    model,
                    self.rate_card,
                    held,
                )
                self._open(call_id, hold)
                return
            # an earlier attempt of this call, resolved since: this one holds anew
        raise CallNotGated(
            f"creditgate: call {call_id} was attempted more than {_MAX_ATTEMPTS} times",
            model=model,
            provider=provider,
            code="too_many_attempts",
        )

    # After the call

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        call_id = _call_id(kwargs)
        hold = self._claim(call_id)
        if call_id is None or hold is None:
            return
        client = self._async_client()
        terms = _terms(kwargs, response_obj, hold.estimate)
        try:
            try:
                settlement = await client.settle(
                    hold.authorization,
                    quantities=terms.quantities,
                    action=hold.action,
                    metadata=terms.metadata,
                    idempotency_key=f"{hold.key}:settle",
                )
            except HoldNotPending:
                # The hold was resolved before the call ended: it expired during a long call,
                # or another process resolved an earlier attempt under the same call id. The
                # call ran, so it is charged in one step instead.
                charge = await client.charge(
                    hold.customer,
                    action=hold.action,
                    dimensions={"model": hold.model},
                    quantities=terms.quantities,
                    rate_card=hold.rate_card,
                    metadata={**terms.metadata, "released_hold": hold.authorization},
                    idempotency_key=f"{hold.key}:charge",
                )
                _check_charge(call_id, charge)
            else:
                _check_charge(call_id, settlement.charge)
        except CreditgateError as error:
            log.warning(
                "creditgate: could not settle authorization %s of LiteLLM call %s (%s): the"
                " call went unbilled and the hold expires after its TTL",
                hold.authorization,
                call_id,
                error,
            )
        finally:
            self._close(call_id, hold)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await self._release(_call_id(kwargs))

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> None:
        """The proxy refused the call after its hold was placed (another hook, a guardrail)."""
        await self._release(_call_id(request_data))

    async def _release(self, call_id: str | None) -> None:
        hold = self._claim(call_id)
        if call_id is None or hold is None:
            return
        try:
            await self._async_client().void(hold.authorization, idempotency_key=f"{hold.key}:void")
        except HoldNotPending:
            pass  # resolved already, or expired: nothing is held
        except CreditgateError as error:
            log.warning(
                "creditgate: could not void authorization %s of LiteLLM call %s (%s): it"
                " expires after its TTL",
                hold.authorization,
                call_id,
                error,
            )
        finally:
            self._close(call_id, hold, retryable=True)

    # Sync calls, which LiteLLM logs in its logging thread

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        call_id = _call_id(kwargs)
        if call_id is not None and not _is_async(kwargs):
            self._charge_after(call_id, kwargs, response_obj)

    def _charge_after(self, call_id: str, kwargs: Mapping[str, Any], response: Any) -> None:
        """A sync call, which no LiteLLM hook could stop: charged now that it has run."""
        kind = _call_kind(kwargs.get("call_type"))
        if kind is None:
            return
        params = kwargs.get("litellm_params")
        params = params if isinstance(params, Mapping) else {}
        optional = kwargs.get("optional_params")
        optional = optional if isinstance(optional, Mapping) else {}
        request = {
            "metadata": params.get("metadata"),
            "litellm_metadata": params.get("litellm_metadata"),
            "user": kwargs.get("user") or optional.get("user"),
            "model": kwargs.get("model"),
        }
        customer = customer_of(request)
        if customer is None:
            if self.require_customer:
                log.warning(
                    "creditgate: LiteLLM call %s named no customer (metadata[%r] or user=):"
                    " it went unbilled",
                    call_id,
                    CUSTOMER_KEY,
                )
            return
        if not self._warned_sync:
            self._warned_sync = True
            log.warning(
                "creditgate: sync LiteLLM calls (litellm.completion) run no hook that can stop"
                " them: they are charged after they ran, never declined before; use"
                " litellm.acompletion (or a Router's, or the proxy) for the gate"
            )
        action = self.action if kind == "chat" else self.embedding_action
        terms = _terms(kwargs, response, Usage())
        try:
            charge = self._client_sync().charge(
                customer,
                action=action,
                dimensions={"model": _model_of(request)},
                quantities=terms.quantities,
                rate_card=self.rate_card,
                metadata=terms.metadata,
                idempotency_key=f"litellm:{call_id}",
            )
        except CreditgateError as error:
            log.warning("creditgate: could not charge LiteLLM call %s (%s)", call_id, error)
            return
        _check_charge(call_id, charge)


def _check_charge(call_id: str, charge: Charge) -> None:
    """A charge that took less than the usage was priced at says so in the log."""
    if charge.status != "posted":
        log.warning(
            "creditgate: the charge of LiteLLM call %s was %s (%s): the call went unbilled",
            call_id,
            charge.status,
            charge.decline_reason,
        )
    elif charge.shortfall:
        log.warning(
            "creditgate: LiteLLM call %s was charged %d of the %d %s its usage was priced at"
            " (charge %s); %d went unbilled",
            call_id,
            charge.amount,
            charge.requested,
            charge.asset,
            charge.id,
            charge.shortfall,
        )


# The handler LiteLLM's proxy config can name as it is
# (`callbacks: creditgate_sdk.integrations.litellm.handler`): the default actions and card,
# $CREDITGATE_BASE_URL and $CREDITGATE_API_KEY.
handler = CreditgateLogger()
