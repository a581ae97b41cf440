"""`Client` and `AsyncClient`: the creditgate HTTP API over httpx, with retries and typed results.

Every write carries an `Idempotency-Key` (generated per call unless given) and keeps it on
every retry, so a retried request answers with its first result instead of a second effect.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import platform
import ssl
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import httpx

from creditgate_sdk import _operations as ops
from creditgate_sdk._operations import Money, Quantities
from creditgate_sdk._retry import RETRY_EXCEPTIONS, RETRY_STATUSES, RetryPolicy, retry_after
from creditgate_sdk._version import __version__
from creditgate_sdk.errors import (
    APIConnectionError,
    APITimeoutError,
    CreditgateError,
    UnexpectedResponse,
    error_from_problem,
    problem_from,
)
from creditgate_sdk.guard import (
    AsyncGuard,
    Guard,
    GuardOptions,
    GuardSpec,
    decorate,
    decorate_async,
    plan,
)
from creditgate_sdk.models import (
    Asset,
    Authorization,
    BatchItem,
    Budget,
    Charge,
    ChargeEvent,
    Customer,
    FullMarginReport,
    GatewayKey,
    Invoice,
    LedgerPage,
    LedgerTransaction,
    Lot,
    Member,
    MemberUsage,
    ModelPrice,
    Policy,
    PriceQuote,
    PublishedRateCard,
    Purchase,
    PurchaseRefund,
    RateCardVersion,
    Refund,
    Settlement,
    TestClock,
    Wallet,
)
from creditgate_sdk.pricing import Price

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

log = logging.getLogger("creditgate_sdk")

ENV_BASE_URL = "CREDITGATE_BASE_URL"
ENV_API_KEY = "CREDITGATE_API_KEY"
DEFAULT_TIMEOUT = 10.0


@functools.cache
def default_tls() -> ssl.SSLContext:
    """The TLS settings of the HTTP clients the SDK makes itself: httpx's default verification
    (certifi's authorities, or `SSL_CERT_FILE` / `SSL_CERT_DIR`), built once per process.
    Building it loads the whole CA bundle, about 30 ms of CPU, which each new `Client` would
    otherwise pay; one context is safe to share between clients and threads."""
    return httpx.create_ssl_context()


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _error_from_response(response: httpx.Response) -> CreditgateError:
    try:
        data: Any = response.json()
    except ValueError:
        data = {"detail": response.text[:500] or response.reason_phrase}
    # the status line is the truth, whatever the body says
    problem = replace(problem_from(data), status=response.status_code)
    return error_from_problem(
        problem,
        request_id=response.headers.get("x-request-id"),
        retry_after=retry_after(response),
    )


def _transport_error(exc: httpx.TransportError, method: str, url: str) -> CreditgateError:
    cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    error = cls(f"{method} {url}: {type(exc).__name__}: {exc}".rstrip(": "))
    error.__cause__ = exc
    return error


def _read(op: ops.Operation[T], response: httpx.Response) -> T:
    if response.status_code == 204:
        return op.read(None)
    try:
        data = response.json()
    except ValueError:
        raise UnexpectedResponse(
            f"{op.method} {op.path} answered {response.status_code} without JSON",
            status=response.status_code,
        ) from None
    return op.read(data)


class _BaseClient:
    """Configuration and the request plumbing both clients share."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy | None,
        default_asset: str,
        price: Price | None,
        strict: bool,
    ) -> None:
        base_url = base_url or os.environ.get(ENV_BASE_URL)
        api_key = api_key or os.environ.get(ENV_API_KEY)
        if not base_url:
            raise ValueError(f"give base_url= or set ${ENV_BASE_URL}")
        if not api_key:
            raise ValueError(f"give api_key= or set ${ENV_API_KEY}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry or RetryPolicy()
        self.default_asset = default_asset
        self.price = price
        self.strict = strict
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": (
                f"creditgate-sdk-python/{__version__} python/{platform.python_version()}"
                f" httpx/{httpx.__version__}"
            ),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def _prepare(
        self, op: ops.Operation[Any], idempotency_key: str | None
    ) -> tuple[str, dict[str, str]]:
        headers = dict(self._headers)
        if op.method in ops.WRITE_METHODS:
            headers["Idempotency-Key"] = idempotency_key or new_idempotency_key()
        return self.base_url + op.path, headers

    def _plan_guard(
        self,
        customer: str,
        action: str | None,
        *,
        asset: str | None,
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
        idempotency_key: str | None,
        strict: bool | None,
        member: str | None = None,
    ) -> GuardSpec:
        return plan(
            customer=customer,
            action=action,
            asset=asset,
            default_asset=self.default_asset,
            amount=amount,
            price=price or self.price,
            model=model,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            quantities=quantities,
            dimensions=dimensions,
            rate_card=rate_card,
            ttl_seconds=ttl_seconds,
            metadata=metadata,
            idempotency_key=idempotency_key or new_idempotency_key(),
            strict=self.strict if strict is None else strict,
            member=member,
        )


class Client(_BaseClient):
    """The creditgate API, synchronously.

    `Client(base_url, api_key)`; both default to $CREDITGATE_BASE_URL and $CREDITGATE_API_KEY.
    Guards are priced by the server's rate card unless given `amount=` or a `price`; `price`
    here is the default for guards (a function of `Usage`, e.g. `TokenRate`),
    `default_asset` the asset a guard holds an amount of when not told otherwise, and `strict`
    the guards' default: raise `ChargeShortfall` for a settle charged short and `UnbilledCall`
    for a guard left without settle or void, where a guard otherwise logs a warning.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        default_asset: str = "credits",
        price: Price | None = None,
        strict: bool = False,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            retry=retry,
            default_asset=default_asset,
            price=price,
            strict=strict,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(verify=default_tls())

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, op: ops.Operation[T], idempotency_key: str | None = None) -> T:
        url, headers = self._prepare(op, idempotency_key)
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    op.method,
                    url,
                    json=op.body,
                    params=op.params,
                    headers=headers,
                    timeout=_as_tuple(self.timeout),
                )
            except RETRY_EXCEPTIONS as exc:
                error = _transport_error(exc, op.method, url)
            except httpx.TransportError as exc:
                raise _transport_error(exc, op.method, url) from exc
            else:
                if response.is_success:
                    return _read(op, response)
                error = _error_from_response(response)
                if response.status_code not in RETRY_STATUSES:
                    raise error
            delay = self.retry.delay(attempt, error.retry_after)
            if delay is None:
                raise error
            log.info("creditgate: %s %s failed (%s); retry in %.2fs", op.method, url, error, delay)
            time.sleep(delay)
            attempt += 1

    # Catalog

    def create_asset(
        self, code: str, scale: int, name: str | None = None, *, idempotency_key: str | None = None
    ) -> Asset:
        return self._send(ops.create_asset(code, scale, name), idempotency_key)

    def assets(self) -> list[Asset]:
        return self._send(ops.list_assets())

    def create_customer(
        self,
        customer: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        policy: str | None = None,
        overdraft_limit: int | None = None,
        idempotency_key: str | None = None,
    ) -> Customer:
        op = ops.create_customer(customer, name, metadata, policy, overdraft_limit)
        return self._send(op, idempotency_key)

    def customer(self, customer: str) -> Customer:
        return self._send(ops.get_customer(customer))

    def wallet(self, customer: str) -> Wallet:
        return self._send(ops.get_wallet(customer))

    def set_policy(
        self,
        customer: str,
        asset: str,
        policy: str,
        *,
        overdraft_limit: int | None = None,
        low_balance_threshold: int | None = None,
        thresholds: Sequence[int] | None = None,
        idempotency_key: str | None = None,
    ) -> Policy:
        op = ops.set_policy(
            customer, asset, policy, overdraft_limit, low_balance_threshold, thresholds
        )
        return self._send(op, idempotency_key)

    # Organizations: members and budgets

    def create_member(
        self,
        customer: str,
        external_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        active: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Member:
        """Add a member (a user, seat, project or API key of yours) to a customer: calls that
        name it (`member=`) draw on the customer's wallet under its budgets."""
        op = ops.create_member(customer, external_id, name, metadata, active)
        return self._send(op, idempotency_key)

    def member(self, customer: str, member: str) -> Member:
        return self._send(ops.get_member(customer, member))

    def members(
        self,
        customer: str,
        *,
        include_removed: bool = False,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[Member]:
        """One page of the customer's members, in order of `external_id`."""
        return self._send(ops.list_members(customer, include_removed, after, limit))

    def update_member(
        self,
        customer: str,
        member: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        active: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Member:
        """Change a member's name, metadata or `active` flag (an inactive member's calls are
        declined); what is left out stays."""
        op = ops.update_member(customer, member, name, metadata, active)
        return self._send(op, idempotency_key)

    def remove_member(self, customer: str, member: str) -> Member:
        """Remove a member for good: its calls are declined, its history stays (removing it
        again answers the same)."""
        return self._send(ops.remove_member(customer, member))

    def set_budget(
        self,
        customer: str,
        asset: str,
        amount: int,
        *,
        period: str,
        member: str | None = None,
        anchor: datetime | None = None,
        mode: str | None = None,
        thresholds: Sequence[int] | None = None,
        idempotency_key: str | None = None,
    ) -> Budget:
        """Cap what `member` (or, without one, the customer as a whole) may use of `asset`
        per `period` (day, week, month from `anchor`, or total): `hard` declines past it,
        `soft` lets calls through; `thresholds` (percentages) raise alerts."""
        op = ops.set_budget(
            customer,
            member,
            asset,
            amount,
            period=period,
            anchor=anchor,
            mode=mode,
            thresholds=thresholds,
        )
        return self._send(op, idempotency_key)

    def delete_budget(self, customer: str, asset: str, *, member: str | None = None) -> None:
        self._send(ops.delete_budget(customer, member, asset))

    def budgets(self, customer: str, *, member: str | None = None) -> list[Budget]:
        return self._send(ops.list_budgets(customer, member))

    def usage(
        self, customer: str, *, member: str | None = None, periods: int | None = None
    ) -> MemberUsage:
        """Spent, held and remaining per budget period of `member` (or of the customer)."""
        return self._send(ops.usage(customer, member, periods))

    # Grants

    def grant(
        self,
        customer: str,
        asset: str,
        amount: int,
        *,
        kind: str | None = None,
        priority: int | None = None,
        effective_at: datetime | None = None,
        expires_at: datetime | None = None,
        cost_basis: Decimal | str | int | None = None,
        currency: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Lot:
        op = ops.create_grant(
            customer,
            asset,
            amount,
            kind=kind,
            priority=priority,
            effective_at=effective_at,
            expires_at=expires_at,
            cost_basis=cost_basis,
            currency=currency,
            metadata=metadata,
        )
        return self._send(op, idempotency_key)

    def grants(
        self, customer: str, *, asset: str | None = None, include_closed: bool = False
    ) -> list[Lot]:
        return self._send(ops.list_grants(customer, asset, include_closed))

    def void_grant(
        self, grant: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Lot:
        return self._send(ops.void_grant(grant, reason), idempotency_key)

    # Customer gateway keys

    def create_gateway_key(
        self,
        customer: str,
        *,
        name: str | None = None,
        spend_limit: Mapping[str, Any] | None = None,
        models: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> GatewayKey:
        """A key bound to `customer` for calling the LLM gateway directly (its `key` is in
        this answer only). `spend_limit`: `{"asset", "amount", "period"}`, period one of
        day, week, month (the default) or total; `models`: the models it may call."""
        op = ops.create_gateway_key(customer, name, spend_limit, models)
        return self._send(op, idempotency_key)

    def gateway_keys(self, customer: str) -> list[GatewayKey]:
        """The customer's gateway keys, revoked ones too, with their current period's use."""
        return self._send(ops.list_gateway_keys(customer))

    def revoke_gateway_key(self, customer: str, key_id: str) -> GatewayKey:
        """Stop a gateway key working; revoking a revoked key answers it as it is."""
        return self._send(ops.revoke_gateway_key(customer, key_id))

    # The gate

    def authorize(
        self,
        customer: str,
        asset: str | None = None,
        amount: int | None = None,
        *,
        action: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        quantities: Quantities | None = None,
        rate_card: str | None = None,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        member: str | None = None,
    ) -> Authorization:
        """Hold credit before a call: `amount` of `asset`, or (no amount) the rate card's price
        of `action` for its `dimensions` and estimated `quantities`, e.g.
        `{"input_tokens": n, "output_tokens": max_tokens}`. A decline is an answer
        (`approved` False), not an error."""
        op = ops.authorize(
            customer,
            asset,
            amount,
            action=action,
            dimensions=dimensions,
            quantities=quantities,
            rate_card=rate_card,
            ttl_seconds=ttl_seconds,
            metadata=metadata,
            member=member,
        )
        return self._send(op, idempotency_key)

    def authorization(self, authorization: str) -> Authorization:
        return self._send(ops.get_authorization(authorization))

    def settle(
        self,
        authorization: str,
        amount: int | None = None,
        *,
        quantities: Quantities | None = None,
        vendor_cost: Money | None = None,
        action: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Settlement:
        """Charge what the call used and release the rest of the hold: `amount`, or (for a hold
        priced by the rate card) the actual `quantities`, priced by the card version the hold
        was priced with. `vendor_cost` (USD) replaces the cost the card would compute."""
        op = ops.settle(
            authorization,
            amount,
            quantities=quantities,
            vendor_cost=vendor_cost,
            action=action,
            metadata=metadata,
        )
        return self._send(op, idempotency_key)

    def void(self, authorization: str, *, idempotency_key: str | None = None) -> Authorization:
        return self._send(ops.void(authorization), idempotency_key)

    def charge(
        self,
        customer: str,
        asset: str | None = None,
        amount: int | None = None,
        *,
        action: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        quantities: Quantities | None = None,
        vendor_cost: Money | None = None,
        rate_card: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        member: str | None = None,
    ) -> Charge:
        """Authorize and settle in one step (`amount`, or the card's price of `action`); a
        decline comes back as a `declined` charge."""
        op = ops.charge(
            customer,
            asset,
            amount,
            action=action,
            dimensions=dimensions,
            quantities=quantities,
            vendor_cost=vendor_cost,
            rate_card=rate_card,
            metadata=metadata,
            member=member,
        )
        return self._send(op, idempotency_key)

    def charge_batch(
        self, events: Sequence[ChargeEvent], *, idempotency_key: str | None = None
    ) -> list[BatchItem]:
        return self._send(ops.charge_batch(events), idempotency_key)

    # Refunds and purchases

    def refund_charge(
        self,
        charge: str,
        reason: str,
        *,
        amount: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Refund:
        """Give back what is left of a charge (or `amount` of it) to the customer's lots."""
        op = ops.refund_charge(charge, reason, amount, metadata)
        return self._send(op, idempotency_key)

    def create_purchase(
        self,
        customer: str,
        *,
        pack: str | None = None,
        asset: str | None = None,
        price: Money | None = None,
        currency: str | None = None,
        provider: str | None = None,
        success_url: str | None = None,
        cancel_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Purchase:
        """Start a purchase of a `pack` (id or code), or a top-up of `asset` for `price`; its
        credit is granted once it is paid."""
        op = ops.create_purchase(
            customer,
            pack=pack,
            asset=asset,
            price=price,
            currency=currency,
            provider=provider,
            success_url=success_url,
            cancel_url=cancel_url,
        )
        return self._send(op, idempotency_key)

    def purchase(self, purchase: str) -> Purchase:
        return self._send(ops.get_purchase(purchase))

    def mark_purchase_paid(self, purchase: str, *, idempotency_key: str | None = None) -> Purchase:
        """Record a manual purchase as paid: its credit is granted, once."""
        return self._send(ops.mark_purchase_paid(purchase), idempotency_key)

    def mark_purchase_failed(
        self, purchase: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Purchase:
        return self._send(ops.mark_purchase_failed(purchase, reason), idempotency_key)

    def invoices(self, customer: str) -> list[Invoice]:
        """The customer's plan fees and bills of overage, newest first."""
        return self._send(ops.invoices(customer))

    def mark_invoice_paid(self, invoice: str, *, idempotency_key: str | None = None) -> Invoice:
        """Record a manual plan invoice as paid: the period's credit is granted, once."""
        return self._send(ops.mark_invoice_paid(invoice), idempotency_key)

    def mark_invoice_failed(
        self, invoice: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Invoice:
        return self._send(ops.mark_invoice_failed(invoice, reason), idempotency_key)

    def advance_test_clock(self, to: datetime, *, idempotency_key: str | None = None) -> TestClock:
        """Move a test-mode tenant's clock forward (renewals, expiries, dunning and overage
        billing run as if the time had passed); a live tenant is refused. A retry under the
        same key answers the first move."""
        return self._send(ops.advance_test_clock(to), idempotency_key)

    def refund_purchase(
        self,
        purchase: str,
        reason: str,
        *,
        amount: int | None = None,
        include_consumed: bool | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> PurchaseRefund:
        """Take back a paid purchase's unused credit (or `amount` of it; credit already used
        only with `include_consumed`) and pay its money back through its provider."""
        op = ops.refund_purchase(purchase, reason, amount, include_consumed, metadata)
        return self._send(op, idempotency_key)

    # Pricing

    def publish_rate_card(
        self,
        spec: Mapping[str, Any],
        *,
        name: str | None = None,
        effective_at: datetime | None = None,
        strict: bool = False,
        idempotency_key: str | None = None,
    ) -> PublishedRateCard:
        """Publish the next version of a rate card (`name` defaults to "default"), in effect
        from `effective_at` (default now). Give prices as decimal strings or `Decimal`.
        The answer's `warnings` name quantities priced at 0 that the vendor charges for;
        `strict=True` refuses such a card instead (InvalidRequest, code `unpriced_cost`)."""
        op = ops.publish_rate_card(spec, name, effective_at, strict)
        return self._send(op, idempotency_key)

    def rate_cards(self, *, name: str | None = None) -> list[RateCardVersion]:
        """Every version of the tenant's rate cards (or of the card `name`), oldest first."""
        return self._send(ops.list_rate_cards(name))

    def quote(
        self,
        action: str,
        dimensions: Mapping[str, str] | None = None,
        quantities: Quantities | None = None,
        *,
        rate_card: str | None = None,
        at: datetime | None = None,
    ) -> PriceQuote:
        """What an action costs, line by line with its vendor cost; changes nothing."""
        return self._send(ops.quote(action, dimensions, quantities, rate_card, at))

    def set_model_price(
        self,
        model: str,
        *,
        input_mtok: Money,
        output_mtok: Money,
        cache_read_mtok: Money | None = None,
        provider: str | None = None,
        effective_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> ModelPrice:
        """Your own price of an LLM model (USD per million tokens) for vendor costs from
        `effective_at` (default now) on, in place of the maintained price table."""
        op = ops.set_model_price(
            model,
            input_mtok=input_mtok,
            output_mtok=output_mtok,
            cache_read_mtok=cache_read_mtok,
            provider=provider,
            effective_at=effective_at,
        )
        return self._send(op, idempotency_key)

    def margin_report(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        by: str | None = None,
        asset: str | None = None,
        rate_card: str | None = None,
        worst: int | None = None,
        change: Decimal | str | None = None,
        target: Decimal | str | None = None,
    ) -> FullMarginReport:
        """Margin of the charges created in [start, end) (default: the last 30 days), grouped
        `by` action, model, customer or day; across customers; the card's worst cases; and
        what falls below `target` margin if vendor prices change by `change`."""
        op = ops.margin_report(
            start=start,
            end=end,
            by=by,
            asset=asset,
            rate_card=rate_card,
            worst=worst,
            change=change,
            target=target,
        )
        return self._send(op)

    # Reading

    def ledger(
        self,
        customer: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        asset: str | None = None,
    ) -> LedgerPage:
        return self._send(ops.ledger(customer, limit, cursor, asset))

    def iter_ledger(
        self, customer: str, *, asset: str | None = None, page_size: int | None = None
    ) -> Iterator[LedgerTransaction]:
        """Every ledger transaction of the customer, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = self.ledger(customer, limit=page_size, cursor=cursor, asset=asset)
            yield from page.data
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # The guard

    def guard(
        self,
        customer: str,
        action: str | None = None,
        *,
        asset: str | None = None,
        amount: int | None = None,
        price: Price | None = None,
        model: str | None = None,
        input_tokens: int | None = None,
        max_tokens: int | None = None,
        quantities: Mapping[str, int] | None = None,
        dimensions: Mapping[str, str] | None = None,
        rate_card: str | None = None,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        strict: bool | None = None,
        member: str | None = None,
    ) -> Guard:
        """A hold around one call, for `with`: see `creditgate_sdk.guard`. With `member`, the
        hold is that member's of the customer, counted in its budgets."""
        spec = self._plan_guard(
            customer,
            action,
            asset=asset,
            amount=amount,
            price=price,
            model=model,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            quantities=quantities,
            dimensions=dimensions,
            rate_card=rate_card,
            ttl_seconds=ttl_seconds,
            metadata=metadata,
            idempotency_key=idempotency_key,
            strict=strict,
            member=member,
        )
        return Guard(self, spec)

    def guarded(
        self,
        action: str | None = None,
        *,
        customer: str | Callable[..., str] | None = None,
        asset: str | None = None,
        amount: int | Callable[..., int] | None = None,
        price: Price | None = None,
        model: str | None = None,
        input_tokens: int | Callable[..., int] | None = None,
        max_tokens: int | Callable[..., int] | None = None,
        quantities: Mapping[str, int] | None = None,
        dimensions: Mapping[str, str] | None = None,
        rate_card: str | None = None,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        strict: bool | None = None,
        member: str | Callable[..., str | None] | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Guard every call of a function and settle on the response it returns.

        The customer is the function's `customer` argument unless `customer=` says otherwise;
        the member (of an organization) is `member=`, else the function's `member` argument
        if it has one, else none. `customer`, `member`, `amount`, `input_tokens` and
        `max_tokens` may be functions of the call's arguments. Inside, `Guard.current()` is
        the open guard (to settle a stream yourself).
        """
        options = GuardOptions(
            action=action,
            customer=customer,
            asset=asset,
            amount=amount,
            price=price,
            model=model,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            quantities=quantities,
            dimensions=dimensions,
            rate_card=rate_card,
            ttl_seconds=ttl_seconds,
            metadata=metadata,
            strict=strict,
            member=member,
        )
        return decorate(self, options)


class AsyncClient(_BaseClient):
    """The creditgate API for asyncio; the same methods as `Client`, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        default_asset: str = "credits",
        price: Price | None = None,
        strict: bool = False,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            retry=retry,
            default_asset=default_asset,
            price=price,
            strict=strict,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(verify=default_tls())

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, op: ops.Operation[T], idempotency_key: str | None = None) -> T:
        url, headers = self._prepare(op, idempotency_key)
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    op.method,
                    url,
                    json=op.body,
                    params=op.params,
                    headers=headers,
                    timeout=_as_tuple(self.timeout),
                )
            except RETRY_EXCEPTIONS as exc:
                error = _transport_error(exc, op.method, url)
            except httpx.TransportError as exc:
                raise _transport_error(exc, op.method, url) from exc
            else:
                if response.is_success:
                    return _read(op, response)
                error = _error_from_response(response)
                if response.status_code not in RETRY_STATUSES:
                    raise error
            delay = self.retry.delay(attempt, error.retry_after)
            if delay is None:
                raise error
            log.info("creditgate: %s %s failed (%s); retry in %.2fs", op.method, url, error, delay)
            await asyncio.sleep(delay)
            attempt += 1

    # Catalog

    async def create_asset(
        self, code: str, scale: int, name: str | None = None, *, idempotency_key: str | None = None
    ) -> Asset:
        return await self._send(ops.create_asset(code, scale, name), idempotency_key)

    async def assets(self) -> list[Asset]:
        return await self._send(ops.list_assets())

    async def create_customer(
        self,
        customer: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        policy: str | None = None,
        overdraft_limit: int | None = None,
        idempotency_key: str | None = None,
    ) -> Customer:
        op = ops.create_customer(customer, name, metadata, policy, overdraft_limit)
        return await self._send(op, idempotency_key)

    async def customer(self, customer: str) -> Customer:
        return await self._send(ops.get_customer(customer))

    async def wallet(self, customer: str) -> Wallet:
        return await self._send(ops.get_wallet(customer))

    async def set_policy(
        self,
        customer: str,
        asset: str,
        policy: str,
        *,
        overdraft_limit: int | None = None,
        low_balance_threshold: int | None = None,
        thresholds: Sequence[int] | None = None,
        idempotency_key: str | None = None,
    ) -> Policy:
        op = ops.set_policy(
            customer, asset, policy, overdraft_limit, low_balance_threshold, thresholds
        )
        return await self._send(op, idempotency_key)

    # Organizations: members and budgets

    async def create_member(
        self,
        customer: str,
        external_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        active: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Member:
        """Add a member (a user, seat, project or API key of yours) to a customer: calls that
        name it (`member=`) draw on the customer's wallet under its budgets."""
        op = ops.create_member(customer, external_id, name, metadata, active)
        return await self._send(op, idempotency_key)

    async def member(self, customer: str, member: str) -> Member:
        return await self._send(ops.get_member(customer, member))

    async def members(
        self,
        customer: str,
        *,
        include_removed: bool = False,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[Member]:
        """One page of the customer's members, in order of `external_id`."""
        return await self._send(ops.list_members(customer, include_removed, after, limit))

    async def update_member(
        self,
        customer: str,
        member: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        active: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Member:
        """Change a member's name, metadata or `active` flag (an inactive member's calls are
        declined); what is left out stays."""
        op = ops.update_member(customer, member, name, metadata, active)
        return await self._send(op, idempotency_key)

    async def remove_member(self, customer: str, member: str) -> Member:
        """Remove a member for good: its calls are declined, its history stays (removing it
        again answers the same)."""
        return await self._send(ops.remove_member(customer, member))

    async def set_budget(
        self,
        customer: str,
        asset: str,
        amount: int,
        *,
        period: str,
        member: str | None = None,
        anchor: datetime | None = None,
        mode: str | None = None,
        thresholds: Sequence[int] | None = None,
        idempotency_key: str | None = None,
    ) -> Budget:
        """Cap what `member` (or, without one, the customer as a whole) may use of `asset`
        per `period` (day, week, month from `anchor`, or total): `hard` declines past it,
        `soft` lets calls through; `thresholds` (percentages) raise alerts."""
        op = ops.set_budget(
            customer,
            member,
            asset,
            amount,
            period=period,
            anchor=anchor,
            mode=mode,
            thresholds=thresholds,
        )
        return await self._send(op, idempotency_key)

    async def delete_budget(self, customer: str, asset: str, *, member: str | None = None) -> None:
        await self._send(ops.delete_budget(customer, member, asset))

    async def budgets(self, customer: str, *, member: str | None = None) -> list[Budget]:
        return await self._send(ops.list_budgets(customer, member))

    async def usage(
        self, customer: str, *, member: str | None = None, periods: int | None = None
    ) -> MemberUsage:
        """Spent, held and remaining per budget period of `member` (or of the customer)."""
        return await self._send(ops.usage(customer, member, periods))

    # Grants

    async def grant(
        self,
        customer: str,
        asset: str,
        amount: int,
        *,
        kind: str | None = None,
        priority: int | None = None,
        effective_at: datetime | None = None,
        expires_at: datetime | None = None,
        cost_basis: Decimal | str | int | None = None,
        currency: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Lot:
        op = ops.create_grant(
            customer,
            asset,
            amount,
            kind=kind,
            priority=priority,
            effective_at=effective_at,
            expires_at=expires_at,
            cost_basis=cost_basis,
            currency=currency,
            metadata=metadata,
        )
        return await self._send(op, idempotency_key)

    async def grants(
        self, customer: str, *, asset: str | None = None, include_closed: bool = False
    ) -> list[Lot]:
        return await self._send(ops.list_grants(customer, asset, include_closed))

    async def void_grant(
        self, grant: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Lot:
        return await self._send(ops.void_grant(grant, reason), idempotency_key)

    # Customer gateway keys

    async def create_gateway_key(
        self,
        customer: str,
        *,
        name: str | None = None,
        spend_limit: Mapping[str, Any] | None = None,
        models: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> GatewayKey:
        """A key bound to `customer` for calling the LLM gateway directly (its `key` is in
        this answer only). `spend_limit`: `{"asset", "amount", "period"}`, period one of
        day, week, month (the default) or total; `models`: the models it may call."""
        op = ops.create_gateway_key(customer, name, spend_limit, models)
        return await self._send(op, idempotency_key)

    async def gateway_keys(self, customer: str) -> list[GatewayKey]:
        """The customer's gateway keys, revoked ones too, with their current period's use."""
        return await self._send(ops.list_gateway_keys(customer))

    async def revoke_gateway_key(self, customer: str, key_id: str) -> GatewayKey:
        """Stop a gateway key working; revoking a revoked key answers it as it is."""
        return await self._send(ops.revoke_gateway_key(customer, key_id))

    # The gate

    async def authorize(
        self,
        customer: str,
        asset: str | None = None,
        amount: int | None = None,
        *,
        action: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        quantities: Quantities | None = None,
        rate_card: str | None = None,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        member: str | None = None,
    ) -> Authorization:
        """Hold credit before a call: `amount` of `asset`, or (no amount) the rate card's price
        of `action` for its `dimensions` and estimated `quantities`, e.g.
        `{"input_tokens": n, "output_tokens": max_tokens}`. A decline is an answer
        (`approved` False), not an error."""
        op = ops.authorize(
            customer,
            asset,
            amount,
            action=action,
            dimensions=dimensions,
            quantities=quantities,
            rate_card=rate_card,
            ttl_seconds=ttl_seconds,
            metadata=metadata,
            member=member,
        )
        return await self._send(op, idempotency_key)

    async def authorization(self, authorization: str) -> Authorization:
        return await self._send(ops.get_authorization(authorization))

    async def settle(
        self,
        authorization: str,
        amount: int | None = None,
        *,
        quantities: Quantities | None = None,
        vendor_cost: Money | None = None,
        action: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Settlement:
        """Charge what the call used and release the rest of the hold: `amount`, or (for a hold
        priced by the rate card) the actual `quantities`, priced by the card version the hold
        was priced with. `vendor_cost` (USD) replaces the cost the card would compute."""
        op = ops.settle(
            authorization,
            amount,
            quantities=quantities,
            vendor_cost=vendor_cost,
            action=action,
            metadata=metadata,
        )
        return await self._send(op, idempotency_key)

    async def void(
        self, authorization: str, *, idempotency_key: str | None = None
    ) -> Authorization:
        return await self._send(ops.void(authorization), idempotency_key)

    async def charge(
        self,
        customer: str,
        asset: str | None = None,
        amount: int | None = None,
        *,
        action: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        quantities: Quantities | None = None,
        vendor_cost: Money | None = None,
        rate_card: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        member: str | None = None,
    ) -> Charge:
        """Authorize and settle in one step (`amount`, or the card's price of `action`); a
        decline comes back as a `declined` charge."""
        op = ops.charge(
            customer,
            asset,
            amount,
            action=action,
            dimensions=dimensions,
            quantities=quantities,
            vendor_cost=vendor_cost,
            rate_card=rate_card,
            metadata=metadata,
            member=member,
        )
        return await self._send(op, idempotency_key)

    async def charge_batch(
        self, events: Sequence[ChargeEvent], *, idempotency_key: str | None = None
    ) -> list[BatchItem]:
        return await self._send(ops.charge_batch(events), idempotency_key)

    # Refunds and purchases

    async def refund_charge(
        self,
        charge: str,
        reason: str,
        *,
        amount: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Refund:
        """Give back what is left of a charge (or `amount` of it) to the customer's lots."""
        op = ops.refund_charge(charge, reason, amount, metadata)
        return await self._send(op, idempotency_key)

    async def create_purchase(
        self,
        customer: str,
        *,
        pack: str | None = None,
        asset: str | None = None,
        price: Money | None = None,
        currency: str | None = None,
        provider: str | None = None,
        success_url: str | None = None,
        cancel_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Purchase:
        """Start a purchase of a `pack` (id or code), or a top-up of `asset` for `price`; its
        credit is granted once it is paid."""
        op = ops.create_purchase(
            customer,
            pack=pack,
            asset=asset,
            price=price,
            currency=currency,
            provider=provider,
            success_url=success_url,
            cancel_url=cancel_url,
        )
        return await self._send(op, idempotency_key)

    async def purchase(self, purchase: str) -> Purchase:
        return await self._send(ops.get_purchase(purchase))

    async def mark_purchase_paid(
        self, purchase: str, *, idempotency_key: str | None = None
    ) -> Purchase:
        """Record a manual purchase as paid: its credit is granted, once."""
        return await self._send(ops.mark_purchase_paid(purchase), idempotency_key)

    async def mark_purchase_failed(
        self, purchase: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Purchase:
        return await self._send(ops.mark_purchase_failed(purchase, reason), idempotency_key)

    async def invoices(self, customer: str) -> list[Invoice]:
        """The customer's plan fees and bills of overage, newest first."""
        return await self._send(ops.invoices(customer))

    async def mark_invoice_paid(
        self, invoice: str, *, idempotency_key: str | None = None
    ) -> Invoice:
        """Record a manual plan invoice as paid: the period's credit is granted, once."""
        return await self._send(ops.mark_invoice_paid(invoice), idempotency_key)

    async def mark_invoice_failed(
        self, invoice: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Invoice:
        return await self._send(ops.mark_invoice_failed(invoice, reason), idempotency_key)

    async def advance_test_clock(
        self, to: datetime, *, idempotency_key: str | None = None
    ) -> TestClock:
        """Move a test-mode tenant's clock forward; a live tenant is refused. A retry under
        the same key answers the first move."""
        return await self._send(ops.advance_test_clock(to), idempotency_key)

    async def refund_purchase(
        self,
        purchase: str,
        reason: str,
        *,
        amount: int | None = None,
        include_consumed: bool | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> PurchaseRefund:
        """Take back a paid purchase's unused credit (or `amount` of it; credit already used
        only with `include_consumed`) and pay its money back through its provider."""
        op = ops.refund_purchase(purchase, reason, amount, include_consumed, metadata)
        return await self._send(op, idempotency_key)

    # Pricing

    async def publish_rate_card(
        self,
        spec: Mapping[str, Any],
        *,
        name: str | None = None,
        effective_at: datetime | None = None,
        strict: bool = False,
        idempotency_key: str | None = None,
    ) -> PublishedRateCard:
        """Publish the next version of a rate card (`name` defaults to "default"), in effect
        from `effective_at` (default now). Give prices as decimal strings or `Decimal`.
        The answer's `warnings` name quantities priced at 0 that the vendor charges for;
        `strict=True` refuses such a card instead (InvalidRequest, code `unpriced_cost`)."""
        op = ops.publish_rate_card(spec, name, effective_at, strict)
        return await self._send(op, idempotency_key)

    async def rate_cards(self, *, name: str | None = None) -> list[RateCardVersion]:
        """Every version of the tenant's rate cards (or of the card `name`), oldest first."""
        return await self._send(ops.list_rate_cards(name))

    async def quote(
        self,
        action: str,
        dimensions: Mapping[str, str] | None = None,
        quantities: Quantities | None = None,
        *,
        rate_card: str | None = None,
        at: datetime | None = None,
    ) -> PriceQuote:
        """What an action costs, line by line with its vendor cost; changes nothing."""
        return await self._send(ops.quote(action, dimensions, quantities, rate_card, at))

    async def set_model_price(
        self,
        model: str,
        *,
        input_mtok: Money,
        output_mtok: Money,
        cache_read_mtok: Money | None = None,
        provider: str | None = None,
        effective_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> ModelPrice:
        """Your own price of an LLM model (USD per million tokens) for vendor costs from
        `effective_at` (default now) on, in place of the maintained price table."""
        op = ops.set_model_price(
            model,
            input_mtok=input_mtok,
            output_mtok=output_mtok,
            cache_read_mtok=cache_read_mtok,
            provider=provider,
            effective_at=effective_at,
        )
        return await self._send(op, idempotency_key)

    async def margin_report(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        by: str | None = None,
        asset: str | None = None,
        rate_card: str | None = None,
        worst: int | None = None,
        change: Decimal | str | None = None,
        target: Decimal | str | None = None,
    ) -> FullMarginReport:
        """Margin of the charges created in [start, end) (default: the last 30 days), grouped
        `by` action, model, customer or day; across customers; the card's worst cases; and
        what falls below `target` margin if vendor prices change by `change`."""
        op = ops.margin_report(
            start=start,
            end=end,
            by=by,
            asset=asset,
            rate_card=rate_card,
            worst=worst,
            change=change,
            target=target,
        )
        return await self._send(op)

    # Reading

    async def ledger(
        self,
        customer: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        asset: str | None = None,
    ) -> LedgerPage:
        return await self._send(ops.ledger(customer, limit, cursor, asset))

    async def iter_ledger(
        self, customer: str, *, asset: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[LedgerTransaction]:
        """Every ledger transaction of the customer, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = await self.ledger(customer, limit=page_size, cursor=cursor, asset=asset)
            for transaction in page.data:
                yield transaction
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # The guard

    def guard(
        self,
        customer: str,
        action: str | None = None,
        *,
        asset: str | None = None,
        amount: int | None = None,
        price: Price | None = None,
        model: str | None = None,
        input_tokens: int | None = None,
        max_tokens: int | None = None,
        quantities: Mapping[str, int] | None = None,
        dimensions: Mapping[str, str] | None = None,
        rate_card: str | None = None,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        strict: bool | None = None,
        member: str | None = None,
    ) -> AsyncGuard:
        """A hold around one call, for `async with`: see `creditgate_sdk.guard`. With
        `member`, the hold is that member's of the customer, counted in its budgets."""
        spec = self._plan_guard(
            customer,
            action,
            asset=asset,
            amount=amount,
            price=price,
            model=model,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            quantities=quantities,
            dimensions=dimensions,
            rate_card=rate_card,
            ttl_seconds=ttl_seconds,
            metadata=metadata,
            idempotency_key=idempotency_key,
            strict=strict,
            member=member,
        )
        return AsyncGuard(self, spec)

    def guarded(
        self,
        action: str | None = None,
        *,
        customer: str | Callable[..., str] | None = None,
        asset: str | None = None,
        amount: int | Callable[..., int] | None = None,
        price: Price | None = None,
        model: str | None = None,
        input_tokens: int | Callable[..., int] | None = None,
        max_tokens: int | Callable[..., int] | None = None,
        quantities: Mapping[str, int] | None = None,
        dimensions: Mapping[str, str] | None = None,
        rate_card: str | None = None,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        strict: bool | None = None,
        member: str | Callable[..., str | None] | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
        """Guard every call of an async function and settle on the response it returns."""
        options = GuardOptions(
            action=action,
            customer=customer,
            asset=asset,
            amount=amount,
            price=price,
            model=model,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            quantities=quantities,
            dimensions=dimensions,
            rate_card=rate_card,
            ttl_seconds=ttl_seconds,
            metadata=metadata,
            strict=strict,
            member=member,
        )
        return decorate_async(self, options)


def _as_tuple(
    timeout: httpx.Timeout,
) -> tuple[float | None, float | None, float | None, float | None]:
    """The timeout as (connect, read, write, pool): a form every transport a client may be
    given accepts (httpx's own clients, and test clients built on other httpx releases)."""
    return (timeout.connect, timeout.read, timeout.write, timeout.pool)
