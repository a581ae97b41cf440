"""Every API operation once: its method, path, body and result type, for both clients."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar
from urllib.parse import quote as url_quote

from creditgate_sdk._decode import decode
from creditgate_sdk.errors import UnexpectedResponse
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

T = TypeVar("T")

# Requests that change something; each carries an Idempotency-Key.
WRITE_METHODS = frozenset({"POST", "PUT"})


@dataclass(frozen=True, slots=True)
class Operation(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    body: dict[str, Any] | None = None
    params: dict[str, str | int] | None = None


def _p(segment: str) -> str:
    """One path segment: customer ids are the product's own and may hold any character."""
    if not isinstance(segment, str) or not segment:
        raise ValueError(f"expected a non-empty id, got {segment!r}")
    return url_quote(segment, safe="")


def _body(**values: Any) -> dict[str, Any]:
    """A JSON body without the options left unset, so the server's defaults apply."""
    return {k: _json(v) for k, v in values.items() if v is not None}


def _json(value: Any) -> Any:
    if isinstance(value, float):
        raise TypeError("amounts and rates are integers or Decimal, never float")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"decimals sent to creditgate must be finite, got {value}")
        # Plain fixed-point text: the API reads "0.00002", not "2E-5".
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes sent to creditgate must be timezone-aware")
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def _one(cls: type[T]) -> Callable[[Any], T]:
    return lambda data: decode(cls, data)


def _listed(cls: type[T]) -> Callable[[Any], list[T]]:
    def read(data: Any) -> list[T]:
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise UnexpectedResponse('a list answer should be {"data": [...]}')
        return [decode(cls, item) for item in data["data"]]

    return read


# Catalog


def create_asset(code: str, scale: int, name: str | None) -> Operation[Asset]:
    return Operation("POST", "/v1/assets", _one(Asset), _body(code=code, scale=scale, name=name))


def list_assets() -> Operation[list[Asset]]:
    return Operation("GET", "/v1/assets", _listed(Asset))


def create_customer(
    customer: str,
    name: str | None,
    metadata: Mapping[str, Any] | None,
    policy: str | None,
    overdraft_limit: int | None,
) -> Operation[Customer]:
    body = _body(
        external_id=customer,
        name=name,
        metadata=metadata,
        policy=policy,
        overdraft_limit=overdraft_limit,
    )
    return Operation("POST", "/v1/customers", _one(Customer), body)


def get_customer(customer: str) -> Operation[Customer]:
    return Operation("GET", f"/v1/customers/{_p(customer)}", _one(Customer))


def get_wallet(customer: str) -> Operation[Wallet]:
    return Operation("GET", f"/v1/customers/{_p(customer)}/wallet", _one(Wallet))


def set_policy(
    customer: str,
    asset: str,
    policy: str,
    overdraft_limit: int | None,
    low_balance_threshold: int | None,
    thresholds: Sequence[int] | None = None,
) -> Operation[Policy]:
    body = _body(
        policy=policy,
        overdraft_limit=overdraft_limit,
        low_balance_threshold=low_balance_threshold,
        thresholds=thresholds,
    )
    path = f"/v1/customers/{_p(customer)}/policies/{_p(asset)}"
    return Operation("PUT", path, _one(Policy), body)


# Organizations: members and budgets


def _members(customer: str) -> str:
    return f"/v1/customers/{_p(customer)}/members"


def _budgets(customer: str, member: str | None) -> str:
    owner = "" if member is None else f"/members/{_p(member)}"
    return f"/v1/customers/{_p(customer)}{owner}/budgets"


def create_member(
    customer: str,
    external_id: str,
    name: str | None,
    metadata: Mapping[str, Any] | None,
    active: bool | None,
) -> Operation[Member]:
    body = _body(external_id=external_id, name=name, metadata=metadata, active=active)
    return Operation("POST", _members(customer), _one(Member), body)


def get_member(customer: str, member: str) -> Operation[Member]:
    return Operation("GET", f"{_members(customer)}/{_p(member)}", _one(Member))


def list_members(
    customer: str, include_removed: bool, after: str | None, limit: int | None
) -> Operation[list[Member]]:
    params: dict[str, str | int] = {}
    if include_removed:
        params["include_removed"] = "true"
    if after is not None:
        params["after"] = after
    if limit is not None:
        params["limit"] = limit
    return Operation("GET", _members(customer), _listed(Member), params=params or None)


def update_member(
    customer: str,
    member: str,
    name: str | None,
    metadata: Mapping[str, Any] | None,
    active: bool | None,
) -> Operation[Member]:
    body = _body(name=name, metadata=metadata, active=active)
    return Operation("POST", f"{_members(customer)}/{_p(member)}", _one(Member), body)


def remove_member(customer: str, member: str) -> Operation[Member]:
    return Operation("DELETE", f"{_members(customer)}/{_p(member)}", _one(Member))


def set_budget(
    customer: str,
    member: str | None,
    asset: str,
    amount: int,
    *,
    period: str,
    anchor: datetime | None,
    mode: str | None,
    thresholds: Sequence[int] | None,
) -> Operation[Budget]:
    body = _body(amount=amount, period=period, anchor=anchor, mode=mode, thresholds=thresholds)
    path = f"{_budgets(customer, member)}/{_p(asset)}"
    return Operation("PUT", path, _one(Budget), body)


def delete_budget(customer: str, member: str | None, asset: str) -> Operation[None]:
    path = f"{_budgets(customer, member)}/{_p(asset)}"
    return Operation("DELETE", path, lambda _: None)


def list_budgets(customer: str, member: str | None) -> Operation[list[Budget]]:
    return Operation("GET", _budgets(customer, member), _listed(Budget))


def usage(customer: str, member: str | None, periods: int | None) -> Operation[MemberUsage]:
    owner = "" if member is None else f"/members/{_p(member)}"
    params: dict[str, str | int] | None = None if periods is None else {"periods": periods}
    path = f"/v1/customers/{_p(customer)}{owner}/usage"
    return Operation("GET", path, _one(MemberUsage), params=params)


# Grants


def create_grant(
    customer: str,
    asset: str,
    amount: int,
    *,
    kind: str | None,
    priority: int | None,
    effective_at: datetime | None,
    expires_at: datetime | None,
    cost_basis: Decimal | str | int | None,
    currency: str | None,
    metadata: Mapping[str, Any] | None,
) -> Operation[Lot]:
    body = _body(
        asset=asset,
        amount=amount,
        kind=kind,
        priority=priority,
        effective_at=effective_at,
        expires_at=expires_at,
        cost_basis=Decimal(cost_basis) if isinstance(cost_basis, int) else cost_basis,
        currency=currency,
        metadata=metadata,
    )
    return Operation("POST", f"/v1/customers/{_p(customer)}/grants", _one(Lot), body)


def list_grants(customer: str, asset: str | None, include_closed: bool) -> Operation[list[Lot]]:
    params: dict[str, str | int] = {}
    if asset is not None:
        params["asset"] = asset
    if include_closed:
        params["include_closed"] = "true"
    path = f"/v1/customers/{_p(customer)}/grants"
    return Operation("GET", path, _listed(Lot), params=params or None)


def void_grant(grant: str, reason: str | None) -> Operation[Lot]:
    return Operation("POST", f"/v1/grants/{_p(grant)}/void", _one(Lot), _body(reason=reason))


# Customer gateway keys


def create_gateway_key(
    customer: str,
    name: str | None,
    spend_limit: Mapping[str, Any] | None,
    models: Sequence[str] | None,
) -> Operation[GatewayKey]:
    body = _body(
        name=name,
        spend_limit=spend_limit,
        models=None if models is None else list(models),
    )
    path = f"/v1/customers/{_p(customer)}/gateway-keys"
    return Operation("POST", path, _one(GatewayKey), body)


def list_gateway_keys(customer: str) -> Operation[list[GatewayKey]]:
    path = f"/v1/customers/{_p(customer)}/gateway-keys"
    return Operation("GET", path, _listed(GatewayKey))


def revoke_gateway_key(customer: str, key_id: str) -> Operation[GatewayKey]:
    path = f"/v1/customers/{_p(customer)}/gateway-keys/{_p(key_id)}"
    return Operation("DELETE", path, _one(GatewayKey))


# The gate


Dimensions = Mapping[str, str]
Quantities = Mapping[str, int | Decimal | str]
Money = Decimal | str | int


def authorize(
    customer: str,
    asset: str | None,
    amount: int | None,
    *,
    action: str | None,
    dimensions: Dimensions | None,
    quantities: Quantities | None,
    rate_card: str | None,
    ttl_seconds: int | None,
    metadata: Mapping[str, Any] | None,
    member: str | None = None,
) -> Operation[Authorization]:
    body = _body(
        member=member,
        customer=customer,
        asset=asset,
        amount=amount,
        action=action,
        dimensions=dimensions,
        quantities=quantities,
        rate_card=rate_card,
        ttl_seconds=ttl_seconds,
        metadata=metadata,
    )
    return Operation("POST", "/v1/authorizations", _one(Authorization), body)


def get_authorization(authorization: str) -> Operation[Authorization]:
    return Operation("GET", f"/v1/authorizations/{_p(authorization)}", _one(Authorization))


def settle(
    authorization: str,
    amount: int | None,
    *,
    quantities: Quantities | None,
    vendor_cost: Money | None,
    action: str | None,
    metadata: Mapping[str, Any] | None,
) -> Operation[Settlement]:
    body = _body(
        amount=amount,
        quantities=quantities,
        vendor_cost=_money(vendor_cost),
        action=action,
        metadata=metadata,
    )
    path = f"/v1/authorizations/{_p(authorization)}/settle"
    return Operation("POST", path, _one(Settlement), body)


def void(authorization: str) -> Operation[Authorization]:
    path = f"/v1/authorizations/{_p(authorization)}/void"
    return Operation("POST", path, _one(Authorization), {})


def charge(
    customer: str,
    asset: str | None,
    amount: int | None,
    *,
    action: str | None,
    dimensions: Dimensions | None,
    quantities: Quantities | None,
    vendor_cost: Money | None,
    rate_card: str | None,
    metadata: Mapping[str, Any] | None,
    member: str | None = None,
) -> Operation[Charge]:
    body = _body(
        member=member,
        customer=customer,
        asset=asset,
        amount=amount,
        action=action,
        dimensions=dimensions,
        quantities=quantities,
        vendor_cost=_money(vendor_cost),
        rate_card=rate_card,
        metadata=metadata,
    )
    return Operation("POST", "/v1/charges", _one(Charge), body)


def charge_batch(events: Sequence[ChargeEvent]) -> Operation[list[BatchItem]]:
    body = {"events": [_event(event) for event in events]}
    return Operation("POST", "/v1/charges/batch", _listed(BatchItem), body)


def _event(event: ChargeEvent) -> dict[str, Any]:
    values = {f: getattr(event, f) for f in event.__dataclass_fields__}
    return _body(**{**values, "vendor_cost": _money(event.vendor_cost)})


def _money(value: Money | None) -> Money | None:
    # An int is sent as its decimal text: the API reads USD amounts as exact strings.
    return Decimal(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Refunds and purchases


def refund_charge(
    charge: str, reason: str, amount: int | None, metadata: Mapping[str, Any] | None
) -> Operation[Refund]:
    body = _body(reason=reason, amount=amount, metadata=metadata)
    return Operation("POST", f"/v1/charges/{_p(charge)}/refunds", _one(Refund), body)


def create_purchase(
    customer: str,
    *,
    pack: str | None,
    asset: str | None,
    price: Money | None,
    currency: str | None,
    provider: str | None,
    success_url: str | None,
    cancel_url: str | None,
) -> Operation[Purchase]:
    body = _body(
        pack=pack,
        asset=asset,
        price=_money(price),
        currency=currency,
        provider=provider,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    return Operation("POST", f"/v1/customers/{_p(customer)}/purchases", _one(Purchase), body)


def get_purchase(purchase: str) -> Operation[Purchase]:
    return Operation("GET", f"/v1/purchases/{_p(purchase)}", _one(Purchase))


def mark_purchase_paid(purchase: str) -> Operation[Purchase]:
    return Operation("POST", f"/v1/purchases/{_p(purchase)}/mark-paid", _one(Purchase), {})


def mark_purchase_failed(purchase: str, reason: str | None) -> Operation[Purchase]:
    path = f"/v1/purchases/{_p(purchase)}/mark-failed"
    return Operation("POST", path, _one(Purchase), _body(reason=reason))


def invoices(customer: str) -> Operation[list[Invoice]]:
    return Operation("GET", f"/v1/customers/{_p(customer)}/invoices", _listed(Invoice))


def mark_invoice_paid(invoice: str) -> Operation[Invoice]:
    return Operation("POST", f"/v1/invoices/{_p(invoice)}/mark-paid", _one(Invoice), {})


def mark_invoice_failed(invoice: str, reason: str | None) -> Operation[Invoice]:
    path = f"/v1/invoices/{_p(invoice)}/mark-failed"
    return Operation("POST", path, _one(Invoice), _body(reason=reason))


def advance_test_clock(to: datetime) -> Operation[TestClock]:
    if not isinstance(to, datetime) or to.tzinfo is None:
        raise ValueError("to must be a timezone-aware datetime")
    return Operation("POST", "/v1/test-clock/advance", _one(TestClock), {"to": to.isoformat()})


def refund_purchase(
    purchase: str,
    reason: str,
    amount: int | None,
    include_consumed: bool | None,
    metadata: Mapping[str, Any] | None,
) -> Operation[PurchaseRefund]:
    body = _body(reason=reason, amount=amount, include_consumed=include_consumed, metadata=metadata)
    path = f"/v1/purchases/{_p(purchase)}/refunds"
    return Operation("POST", path, _one(PurchaseRefund), body)


# Pricing


def publish_rate_card(
    spec: Mapping[str, Any], name: str | None, effective_at: datetime | None, strict: bool
) -> Operation[PublishedRateCard]:
    body = _body(spec=spec, name=name, effective_at=effective_at, strict=strict or None)
    return Operation("POST", "/v1/rate-cards", _one(PublishedRateCard), body)


def list_rate_cards(name: str | None) -> Operation[list[RateCardVersion]]:
    params: dict[str, str | int] | None = None if name is None else {"name": name}
    return Operation("GET", "/v1/rate-cards", _listed(RateCardVersion), params=params)


def quote(
    action: str,
    dimensions: Dimensions | None,
    quantities: Quantities | None,
    rate_card: str | None,
    at: datetime | None,
) -> Operation[PriceQuote]:
    body = _body(
        action=action, dimensions=dimensions, quantities=quantities, rate_card=rate_card, at=at
    )
    return Operation("POST", "/v1/rate-cards/quote", _one(PriceQuote), body)


def set_model_price(
    model: str,
    *,
    input_mtok: Money,
    output_mtok: Money,
    cache_read_mtok: Money | None,
    provider: str | None,
    effective_at: datetime | None,
) -> Operation[ModelPrice]:
    body = _body(
        model=model,
        input_mtok=_money(input_mtok),
        output_mtok=_money(output_mtok),
        cache_read_mtok=_money(cache_read_mtok),
        provider=provider,
        effective_at=effective_at,
    )
    return Operation("POST", "/v1/model-prices", _one(ModelPrice), body)


def margin_report(
    *,
    start: datetime | None,
    end: datetime | None,
    by: str | None,
    asset: str | None,
    rate_card: str | None,
    worst: int | None,
    change: Decimal | str | None,
    target: Decimal | str | None,
) -> Operation[FullMarginReport]:
    values = {
        "from": start,
        "to": end,
        "by": by,
        "asset": asset,
        "rate_card": rate_card,
        "worst": worst,
        "change": change,
        "target": target,
    }
    params: dict[str, str | int] = {k: _json(v) for k, v in values.items() if v is not None}
    return Operation("GET", "/v1/reports/margin", _one(FullMarginReport), params=params or None)


# Reading


def ledger(
    customer: str, limit: int | None, cursor: str | None, asset: str | None
) -> Operation[LedgerPage]:
    params: dict[str, str | int] = {}
    if limit is not None:
        params["limit"] = limit
    if cursor is not None:
        params["cursor"] = cursor
    if asset is not None:
        params["asset"] = asset
    path = f"/v1/customers/{_p(customer)}/ledger"
    return Operation("GET", path, _one(LedgerPage), params=params or None)
