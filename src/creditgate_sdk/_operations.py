"""Every API operation once: its method, path, body and result type, for both clients."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from creditgate_sdk._decode import decode
from creditgate_sdk.errors import UnexpectedResponse
from creditgate_sdk.models import (
    Asset,
    Authorization,
    BatchItem,
    Charge,
    ChargeEvent,
    Customer,
    LedgerPage,
    Lot,
    Policy,
    Settlement,
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
    return quote(segment, safe="")


def _body(**values: Any) -> dict[str, Any]:
    """A JSON body without the options left unset, so the server's defaults apply."""
    return {k: _json(v) for k, v in values.items() if v is not None}


def _json(value: Any) -> Any:
    if isinstance(value, float):
        raise TypeError("amounts and rates are integers or Decimal, never float")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes sent to creditgate must be timezone-aware")
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
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
        id=customer,
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
) -> Operation[Policy]:
    body = _body(
        policy=policy, overdraft_limit=overdraft_limit, low_balance_threshold=low_balance_threshold
    )
    path = f"/v1/customers/{_p(customer)}/policies/{_p(asset)}"
    return Operation("PUT", path, _one(Policy), body)


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


# The gate


def authorize(
    customer: str,
    asset: str,
    amount: int,
    ttl_seconds: int | None,
    metadata: Mapping[str, Any] | None,
) -> Operation[Authorization]:
    body = _body(
        customer=customer, asset=asset, amount=amount, ttl_seconds=ttl_seconds, metadata=metadata
    )
    return Operation("POST", "/v1/authorizations", _one(Authorization), body)


def get_authorization(authorization: str) -> Operation[Authorization]:
    return Operation("GET", f"/v1/authorizations/{_p(authorization)}", _one(Authorization))


def settle(
    authorization: str, amount: int, action: str | None, metadata: Mapping[str, Any] | None
) -> Operation[Settlement]:
    body = _body(amount=amount, action=action, metadata=metadata)
    path = f"/v1/authorizations/{_p(authorization)}/settle"
    return Operation("POST", path, _one(Settlement), body)


def void(authorization: str) -> Operation[Authorization]:
    path = f"/v1/authorizations/{_p(authorization)}/void"
    return Operation("POST", path, _one(Authorization), {})


def charge(
    customer: str,
    asset: str,
    amount: int,
    action: str | None,
    metadata: Mapping[str, Any] | None,
) -> Operation[Charge]:
    body = _body(customer=customer, asset=asset, amount=amount, action=action, metadata=metadata)
    return Operation("POST", "/v1/charges", _one(Charge), body)


def charge_batch(events: Sequence[ChargeEvent]) -> Operation[list[BatchItem]]:
    body = {"events": [_body(**asdict(event)) for event in events]}
    return Operation("POST", "/v1/charges/batch", _listed(BatchItem), body)


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
