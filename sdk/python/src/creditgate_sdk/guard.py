"""The guard around an LLM call: hold before it, settle the real usage after, void on failure.

    cg = Client(base_url, api_key)
    with cg.guard("cust_42", "chat.completion", model="gpt-4.1", input_tokens=n,
                  max_tokens=800) as g:
        resp = openai_client.chat.completions.create(...)
        g.settle(resp)

Entering authorizes the hold (a decline raises `Declined` before the body runs); an
exception in the body voids the hold and propagates; leaving without settling voids it and
logs a warning that the call went unbilled (as does a guard garbage-collected with its hold
pending). `g.settle` reads OpenAI chat completions and Responses, Anthropic messages, and
(through `g.observe(event)` for each streamed event, then `g.settle()`) their streams; or
takes plain quantities (`g.settle(input_tokens=..., output_tokens=...)`) or `amount=`. An
action the card prices flat settles with no usage at all: `g.settle()`.

A settle whose charge is short of the priced usage (a `block` wallet that could not pay past
the hold: the answer's `shortfall`) logs a warning on the "creditgate_sdk" logger. With
`strict=True` (on the guard, or the client's default) it raises `ChargeShortfall` instead,
after the settle, and leaving a guard without settle or void raises `UnbilledCall`.
`async with acg.guard(...)` is the same for `AsyncClient`; `@cg.guarded(...)` wraps a
function and settles on the response it returns.

Organizations: `member=` names the member of the customer the call is for (its hold then
counts against the member's budgets, and a call past a hard one raises `Declined` with
`budget_exceeded`). `@cg.guarded` takes `member=` as a string or a function of the call's
arguments, and without it uses the function's own `member` argument, if it has one.

Pricing. With neither `amount=` nor `price=` (on the guard or the client), the server's rate
card prices both ends: the hold is the card's price of `action` with `dimensions` (and
`model` as the `model` dimension) for the estimate — `input_tokens`, `max_tokens` as
`output_tokens`, and any other `quantities` — and the settle sends the quantities read off
the response, which the server prices by the same card version the hold used. Tokens are
counted disjointly on both sides (see `creditgate_sdk.usage` for each vendor's mapping):
`input_tokens` are the uncached ones, beside `cached_tokens` and `cache_write_tokens`. A card
that prices `chat.completion` per token should price `cached_tokens` and `cache_write_tokens`
too, since a kind of token the card prices at nothing is given away.

With `amount=` the hold is that amount; with `price=` (any function from `Usage` to minor
units, e.g. `TokenRate`) it is `price(estimate)`, and the settle is `price(usage)` or
`amount=`: the client prices, the server records `action` and `dimensions` as labels.

Writes are idempotent: the hold uses the guard's key (`idempotency_key=` or a new one), the
settle and the void that key plus `:settle` / `:void`, and every retry keeps them.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar

from creditgate_sdk.errors import ChargeShortfall, Declined, HoldNotPending, UnbilledCall
from creditgate_sdk.models import Authorization, Settlement
from creditgate_sdk.pricing import Price
from creditgate_sdk.usage import Usage, UsageMeter, UsageNotFound, usage_from


class GuardedClient(Protocol):
    """What a guard asks of `creditgate_sdk.Client` (named here, so that the client, which
    makes guards, is the only one of the two that imports the other)."""

    def authorize(self, *args: Any, **kwargs: Any) -> Authorization: ...
    def settle(self, *args: Any, **kwargs: Any) -> Settlement: ...
    def void(self, *args: Any, **kwargs: Any) -> Authorization: ...
    def guard(self, *args: Any, **kwargs: Any) -> Guard: ...


class AsyncGuardedClient(Protocol):
    """What an async guard asks of `creditgate_sdk.AsyncClient`."""

    async def authorize(self, *args: Any, **kwargs: Any) -> Authorization: ...
    async def settle(self, *args: Any, **kwargs: Any) -> Settlement: ...
    async def void(self, *args: Any, **kwargs: Any) -> Authorization: ...
    def guard(self, *args: Any, **kwargs: Any) -> AsyncGuard: ...


P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

log = logging.getLogger("creditgate_sdk")

# A weak reference, so a guard abandoned with its hold pending is still collected (and warns).
_current: ContextVar[weakref.ref[_GuardState] | None] = ContextVar("creditgate_guard", default=None)


def _innermost() -> _GuardState | None:
    ref = _current.get()
    return None if ref is None else ref()


def _left_pending(hold: str) -> None:
    log.warning(
        "creditgate: a guard was garbage-collected with authorization %s pending: the call"
        " went unbilled and the hold stays until its TTL expires",
        hold,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class GuardSpec:
    """Everything a guard needs to authorize and settle; built and checked before any I/O."""

    customer: str
    action: str | None
    asset: str | None  # None: the asset the rate card prices in
    hold: int | None  # None: the server's rate card prices the hold from `estimate`
    price: Price | None
    model: str | None
    estimate: Usage | None
    dimensions: Mapping[str, str] = field(default_factory=dict)
    rate_card: str | None = None
    ttl_seconds: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str
    strict: bool = False
    member: str | None = None  # the member of the customer the call is for


def plan(
    *,
    customer: str,
    action: str | None,
    asset: str | None,
    default_asset: str,
    amount: int | None,
    price: Price | None,
    model: str | None,
    input_tokens: int | None,
    max_tokens: int | None,
    quantities: Mapping[str, int] | None,
    dimensions: Mapping[str, str] | None,
    rate_card: str | None,
    ttl_seconds: int | None,
    metadata: Mapping[str, Any] | None,
    idempotency_key: str,
    strict: bool = False,
    member: str | None = None,
) -> GuardSpec:
    estimate: Usage | None = None
    if input_tokens is not None or max_tokens is not None or quantities:
        estimate = Usage(
            input_tokens=input_tokens or 0,
            output_tokens=max_tokens or 0,
            model=model,
            quantities=quantities or {},
        )
    dims = dict(dimensions or {})
    if model is not None and dims.get("model", model) != model:
        raise ValueError(f"model={model!r} and dimensions['model']={dims['model']!r} differ")
    hold: int | None
    if amount is not None:
        hold = amount
    elif price is not None:
        hold = _priced(price, estimate or Usage(model=model))
    elif action is None:
        raise TypeError(
            "the guard needs an action for the server's rate card to price, amount= (the"
            " hold), or price= (a function of Usage, e.g. TokenRate)"
        )
    else:
        hold = None
    if hold is not None and (isinstance(hold, bool) or not isinstance(hold, int) or hold < 1):
        raise ValueError(f"the hold must be a whole amount of 1 or more minor units, got {hold!r}")
    return GuardSpec(
        customer=customer,
        action=action,
        asset=asset if hold is None else asset or default_asset,
        hold=hold,
        price=price,
        model=model,
        estimate=estimate,
        dimensions=dims,
        rate_card=rate_card,
        ttl_seconds=ttl_seconds,
        metadata=dict(metadata or {}),
        idempotency_key=idempotency_key,
        strict=strict,
        member=member,
    )


def _priced(price: Price, usage: Usage) -> int:
    amount = price(usage)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"price() must return a whole amount of zero or more, got {amount!r}")
    return amount


@dataclass(frozen=True, slots=True)
class _Terms:
    amount: int | None
    quantities: dict[str, int] | None  # for the rate card to price, when amount is None
    usage: Usage | None
    metadata: dict[str, Any]


class _GuardState:
    """What the sync and async guards share: the hold's state and how to price the settle."""

    def __init__(self, spec: GuardSpec) -> None:
        self.spec = spec
        self.authorization: Authorization | None = None
        self.settlement: Settlement | None = None
        self.usage: Usage | None = None
        self._meter = UsageMeter()
        self._observed = False
        self._status = "new"
        self._token: Token[weakref.ref[_GuardState] | None] | None = None
        self._unbilled: weakref.finalize[[str], _GuardState] | None = None

    @property
    def status(self) -> str:
        """new, pending, settled, voided or closed (resolved elsewhere, e.g. expired)."""
        return self._status

    @property
    def amount(self) -> int | None:
        """The amount held (priced by the server: known once the hold is made)."""
        if self.spec.hold is not None:
            return self.spec.hold
        return None if self.authorization is None else self.authorization.requested

    @property
    def server_priced(self) -> bool:
        """Whether the server's rate card prices the hold and the settle."""
        return self.spec.hold is None

    def observe(self, item: T) -> T:
        """Record the usage a stream event carries; returns it, for `for c in map(g.observe, s)`."""
        self._observed = True
        self._meter.observe(item)
        return item

    @property
    def _key(self) -> str:
        return self.spec.idempotency_key

    def _authorize_request(self) -> dict[str, Any]:
        """The arguments of `authorize`: priced by the card, or an amount with labels."""
        spec = self.spec
        dimensions = {**spec.dimensions, **({"model": spec.model} if spec.model else {})}
        common: dict[str, Any] = {
            "action": spec.action,
            "dimensions": dimensions or None,
            "ttl_seconds": spec.ttl_seconds,
            "idempotency_key": self._key,
        }
        if spec.member is not None:
            common["member"] = spec.member
        if spec.hold is None:
            quantities = spec.estimate.as_quantities() if spec.estimate is not None else {}
            return {
                **common,
                "asset": spec.asset,
                "quantities": quantities,
                "rate_card": spec.rate_card,
                "metadata": dict(spec.metadata) or None,
            }
        return {
            **common,
            "asset": spec.asset,
            "amount": spec.hold,
            "metadata": self._authorize_metadata(),
        }

    def _authorize_metadata(self) -> dict[str, Any]:
        spec = self.spec
        auto: dict[str, Any] = {}
        if spec.action:
            auto["action"] = spec.action
        if spec.model:
            auto["model"] = spec.model
        if spec.dimensions:
            auto["dimensions"] = dict(spec.dimensions)
        if spec.estimate is not None:
            auto["estimate"] = spec.estimate.as_dict()
        return {**auto, **spec.metadata}

    def _opened(self, authorization: Authorization) -> None:
        self.authorization = authorization
        if not authorization.approved:
            self._status = "declined"
            raise Declined(authorization)
        self._status = "pending"
        self._token = _current.set(weakref.ref(self))
        self._unbilled = weakref.finalize(self, _left_pending, authorization.id)
        self._unbilled.atexit = False  # logging may be gone by then

    def _resolve(self, status: str) -> None:
        self._status = status
        if self._unbilled is not None:
            self._unbilled.detach()

    def _closing(self) -> None:
        if self._unbilled is not None:
            self._unbilled.detach()  # leaving the block says what became of the hold
        if self._token is not None:
            with contextlib.suppress(ValueError):  # left in another context than entered in
                _current.reset(self._token)
            self._token = None

    def _pending_id(self) -> str:
        if self._status != "pending" or self.authorization is None:
            raise RuntimeError(f"this guard's hold is {self._status}, not pending")
        return self.authorization.id

    def _terms(
        self,
        responses: tuple[Any, ...],
        amount: int | None,
        tokens: dict[str, int | None],
        quantities: Mapping[str, int] | None,
        metadata: Mapping[str, Any] | None,
    ) -> _Terms:
        given = {k: v for k, v in tokens.items() if v is not None}
        sources = sum(bool(s) for s in (responses, given or quantities, self._observed))
        if sources > 1:
            raise ValueError(
                "settle from one source: responses, quantities, or the events given to observe()"
            )
        usage: Usage | None = None
        if responses:
            usage = usage_from(*responses)
        elif given or quantities:
            usage = Usage(
                input_tokens=given.get("input_tokens", 0),
                output_tokens=given.get("output_tokens", 0),
                cached_tokens=given.get("cached_tokens", 0),
                cache_write_tokens=given.get("cache_write_tokens", 0),
                reasoning_tokens=given.get("reasoning_tokens", 0),
                quantities=quantities or {},
            )
        elif self._observed:
            if self._meter.seen:
                usage = self._meter.total
            elif amount is None:
                raise UsageNotFound(
                    "the observed stream carried no usage (OpenAI: pass"
                    " stream_options={'include_usage': True}) and no amount= was given"
                )
        if usage is not None and usage.model is None and self.spec.model:
            usage = replace(usage, model=self.spec.model)
        priced: dict[str, int] | None = None
        if amount is None:
            if self.server_priced:
                # No usage at all: the card prices the action flat (or says it needs usage).
                priced = None if usage is None else usage.as_quantities()
            elif usage is None:
                raise TypeError("settle() needs a response, quantities, observed events or amount=")
            elif self.spec.price is None:
                raise TypeError(
                    "no price to turn usage into an amount: give the guard price= (or no"
                    " amount=, for the rate card to price it), or settle with amount="
                )
            else:
                amount = _priced(self.spec.price, usage)
        if self.server_priced:
            # The charge records the quantities and the price; only the caller's metadata.
            return _Terms(amount, priced, usage, {**self.spec.metadata, **(metadata or {})})
        auto: dict[str, Any] = {}
        if self.spec.model:
            auto["model"] = self.spec.model
        if self.spec.dimensions:
            auto["dimensions"] = dict(self.spec.dimensions)
        if usage is not None:
            auto["usage"] = usage.as_dict()
        return _Terms(amount, None, usage, {**auto, **self.spec.metadata, **(metadata or {})})

    def _settled(self, settlement: Settlement, usage: Usage | None) -> None:
        self.settlement = settlement
        self.usage = usage
        self.authorization = settlement.authorization
        self._resolve("settled")
        charge = settlement.charge
        if charge.shortfall:
            log.warning(
                "creditgate: authorization %s settled short: charge %s took %d of the %d %s"
                " the usage was priced at; %d went unbilled",
                settlement.authorization.id,
                charge.id,
                charge.amount,
                charge.requested,
                charge.asset,
                charge.shortfall,
            )
            if self.spec.strict:
                raise ChargeShortfall(settlement)

    def _voided(self, authorization: Authorization) -> None:
        self.authorization = authorization
        self._resolve("voided")

    def _resolve_failed(self, error: BaseException) -> None:
        if isinstance(error, HoldNotPending):
            self._resolve("closed")

    def _left_unsettled(self, voided: Authorization) -> None:
        """The body ended without settle or void, and the guard voided the hold for it."""
        log.warning(
            "creditgate: the guard of authorization %s was left without settle or void: its"
            " hold was voided and the call went unbilled",
            voided.id,
        )
        if self.spec.strict:
            raise UnbilledCall(voided)

    def _void_failed(self, error: Exception, during: BaseException | None) -> None:
        hold = self.authorization.id if self.authorization else "?"
        message = (
            f"creditgate: could not void authorization {hold} ({error}); it expires after its TTL"
        )
        log.warning(message)
        if during is not None:
            during.add_note(message)


def _usage_kwargs(
    input_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int | None,
    cache_write_tokens: int | None,
    reasoning_tokens: int | None,
) -> dict[str, int | None]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_tokens": cached_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
    }


class Guard(_GuardState):
    """A hold around one call, for `with`; made by `Client.guard`."""

    def __init__(self, client: GuardedClient, spec: GuardSpec) -> None:
        super().__init__(spec)
        self._client = client

    @staticmethod
    def current() -> Guard:
        """The innermost guard open in this context, e.g. inside a `Client.guarded` function."""
        guard = _innermost()
        if not isinstance(guard, Guard):
            raise LookupError("no creditgate Guard is open here")
        return guard

    def __enter__(self) -> Guard:
        if self._status != "new":
            raise RuntimeError("a guard can be entered once")
        request = self._authorize_request()
        authorization = self._client.authorize(self.spec.customer, **request)
        self._opened(authorization)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing()
        if self._status == "pending":
            try:
                voided = self.void()
            except Exception as error:
                self._void_failed(error, exc)
            else:
                if exc is None:
                    self._left_unsettled(voided)

    def settle(
        self,
        *responses: Any,
        amount: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        quantities: Mapping[str, int] | None = None,
        vendor_cost: Decimal | str | int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Settlement:
        """Charge the call: from response objects, quantities, observed events, or `amount=`.

        Token counts given here are disjoint, as `Usage` counts them: `input_tokens` are the
        uncached ones. With nothing at all, the card prices the action flat. `vendor_cost`
        (USD) replaces the cost the rate card would compute.
        """
        hold = self._pending_id()
        tokens = _usage_kwargs(
            input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens
        )
        terms = self._terms(responses, amount, tokens, quantities, metadata)
        try:
            settlement = self._client.settle(
                hold,
                terms.amount,
                quantities=terms.quantities,
                vendor_cost=vendor_cost,
                action=self.spec.action,
                metadata=terms.metadata or None,
                idempotency_key=f"{self._key}:settle",
            )
        except Exception as error:
            self._resolve_failed(error)
            raise
        self._settled(settlement, terms.usage)
        return settlement

    def void(self) -> Authorization:
        """Release the hold in full: the call did not happen or is not charged."""
        hold = self._pending_id()
        try:
            authorization = self._client.void(hold, idempotency_key=f"{self._key}:void")
        except Exception as error:
            self._resolve_failed(error)
            raise
        self._voided(authorization)
        return authorization


class AsyncGuard(_GuardState):
    """A hold around one call, for `async with`; made by `AsyncClient.guard`."""

    def __init__(self, client: AsyncGuardedClient, spec: GuardSpec) -> None:
        super().__init__(spec)
        self._client = client

    @staticmethod
    def current() -> AsyncGuard:
        """The innermost guard open in this task, e.g. inside an `AsyncClient.guarded` function."""
        guard = _innermost()
        if not isinstance(guard, AsyncGuard):
            raise LookupError("no creditgate AsyncGuard is open here")
        return guard

    async def __aenter__(self) -> AsyncGuard:
        if self._status != "new":
            raise RuntimeError("a guard can be entered once")
        request = self._authorize_request()
        authorization = await self._client.authorize(self.spec.customer, **request)
        self._opened(authorization)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing()
        if self._status == "pending":
            try:
                voided = await self.void()
            except Exception as error:
                self._void_failed(error, exc)
            else:
                if exc is None:
                    self._left_unsettled(voided)

    async def settle(
        self,
        *responses: Any,
        amount: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        quantities: Mapping[str, int] | None = None,
        vendor_cost: Decimal | str | int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Settlement:
        """Charge the call: from response objects, quantities, observed events, or `amount=`.

        Token counts given here are disjoint, as `Usage` counts them: `input_tokens` are the
        uncached ones. With nothing at all, the card prices the action flat. `vendor_cost`
        (USD) replaces the cost the rate card would compute.
        """
        hold = self._pending_id()
        tokens = _usage_kwargs(
            input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens
        )
        terms = self._terms(responses, amount, tokens, quantities, metadata)
        try:
            settlement = await self._client.settle(
                hold,
                terms.amount,
                quantities=terms.quantities,
                vendor_cost=vendor_cost,
                action=self.spec.action,
                metadata=terms.metadata or None,
                idempotency_key=f"{self._key}:settle",
            )
        except Exception as error:
            self._resolve_failed(error)
            raise
        self._settled(settlement, terms.usage)
        return settlement

    async def void(self) -> Authorization:
        """Release the hold in full: the call did not happen or is not charged."""
        hold = self._pending_id()
        try:
            authorization = await self._client.void(hold, idempotency_key=f"{self._key}:void")
        except Exception as error:
            self._resolve_failed(error)
            raise
        self._voided(authorization)
        return authorization


# The decorator form: options may be values or functions of the decorated call's arguments.


@dataclass(frozen=True, kw_only=True, slots=True)
class GuardOptions:
    action: str | None
    customer: str | Callable[..., str] | None
    asset: str | None
    amount: int | Callable[..., int] | None
    price: Price | None
    model: str | None
    input_tokens: int | Callable[..., int] | None
    max_tokens: int | Callable[..., int] | None
    quantities: Mapping[str, int] | None
    dimensions: Mapping[str, str] | None
    rate_card: str | None
    ttl_seconds: int | None
    metadata: Mapping[str, Any] | None
    strict: bool | None = None
    member: str | Callable[..., str | None] | None = None


def _customer_of(
    fn: Callable[..., Any], customer: str | Callable[..., str] | None
) -> Callable[..., str]:
    if isinstance(customer, str):
        fixed = customer
        return lambda *args, **kwargs: fixed
    if customer is not None:
        return customer
    signature = inspect.signature(fn)
    if "customer" not in signature.parameters:
        raise TypeError(
            f"{fn.__qualname__} has no `customer` parameter: pass guarded(customer=...)"
        )

    def from_argument(*args: Any, **kwargs: Any) -> str:
        value = signature.bind(*args, **kwargs).arguments["customer"]
        if not isinstance(value, str):
            raise TypeError(f"customer must be a string, got {value!r}")
        return value

    return from_argument


def _member_of(
    fn: Callable[..., Any], member: str | Callable[..., str | None] | None
) -> Callable[..., str | None]:
    """Whose call it is in the customer: `member=` (a string, or a function of the call's
    arguments), else the function's own `member` argument if it has one, else no member."""
    if isinstance(member, str):
        fixed = member
        return lambda *args, **kwargs: fixed
    if member is not None:
        return member
    signature = inspect.signature(fn)
    if "member" not in signature.parameters:
        return lambda *args, **kwargs: None

    def from_argument(*args: Any, **kwargs: Any) -> str | None:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        value = bound.arguments["member"]
        if value is not None and not isinstance(value, str):
            raise TypeError(f"member must be a string or None, got {value!r}")
        return value

    return from_argument


def _resolved(
    option: int | Callable[..., int] | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> int | None:
    return option(*args, **kwargs) if callable(option) else option


def _guard_kwargs(
    options: GuardOptions, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "asset": options.asset,
        "amount": _resolved(options.amount, args, kwargs),
        "price": options.price,
        "model": options.model,
        "input_tokens": _resolved(options.input_tokens, args, kwargs),
        "max_tokens": _resolved(options.max_tokens, args, kwargs),
        "quantities": options.quantities,
        "dimensions": options.dimensions,
        "rate_card": options.rate_card,
        "ttl_seconds": options.ttl_seconds,
        "metadata": options.metadata,
        "strict": options.strict,
    }


def decorate(
    client: GuardedClient, options: GuardOptions
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def decorator(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            raise TypeError("use AsyncClient.guarded for async functions")
        customer = _customer_of(fn, options.customer)
        member = _member_of(fn, options.member)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            who = customer(*args, **kwargs)
            extra = _guard_kwargs(options, args, kwargs)
            extra["member"] = member(*args, **kwargs)
            with client.guard(who, options.action, **extra) as g:
                result = fn(*args, **kwargs)
                if g.status == "pending":
                    g.settle(result)
                return result

        return wrapper

    return decorator


def decorate_async(
    client: AsyncGuardedClient, options: GuardOptions
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    def decorator(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError("AsyncClient.guarded decorates async functions; use Client.guarded")
        customer = _customer_of(fn, options.customer)
        member = _member_of(fn, options.member)

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            who = customer(*args, **kwargs)
            extra = _guard_kwargs(options, args, kwargs)
            extra["member"] = member(*args, **kwargs)
            async with client.guard(who, options.action, **extra) as g:
                result = await fn(*args, **kwargs)
                if g.status == "pending":
                    await g.settle(result)
                return result

        return wrapper

    return decorator
