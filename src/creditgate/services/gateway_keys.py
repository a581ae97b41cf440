"""Customer gateway keys: `cgk_<prefix>_<secret>`, each bound to one customer of a tenant.

A customer key is what a product hands to a customer (or to its own code acting for one) to
call the LLM gateway directly: the key fixes the tenant and the customer, so no tenant key
and no customer header travel with the call. It is kept as the API keys are (the prefix to
find it, a SHA-256 of the secret; `services/catalog/api_keys.py`), shown by its prefix after
it is created, and revoked rather than deleted. It may carry a spend limit (at most so much of
one asset per day, week, month or in total; `domain/spend_limits.py`) and the models it may
call. It works on the gateway's routes only, never on the JSON API.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from creditgate.domain.amounts import check_amount
from creditgate.domain.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from creditgate.domain.periods import Period, check_period
from creditgate.domain.spend_limits import SpendLimit, current_period, room
from creditgate.services.catalog.api_keys import (
    LAST_USED_RESOLUTION,
    display,
    hash_secret,
    new_secret,
    parse_key,
)
from creditgate.services.catalog.catalog import check_external_id, check_name
from creditgate.services.context import Idempotent, Tx
from creditgate.services.results import Result
from creditgate.storage.database import RetryTransaction
from creditgate.storage.ids import new_id
from creditgate.storage.tables import gateway_keys, spend_periods, tenants

SCHEME = "cgk"
MAX_MODELS = 100
MAX_MODEL_LENGTH = 200


class UnknownGatewayKey(NotFound):
    code = "unknown_gateway_key"


class ModelNotAllowed(Forbidden):
    """The customer gateway key may not call this model (its `models` do not name it)."""

    code = "model_not_allowed"


class CustomerNotOfKey(Forbidden):
    """The call names another customer than the one its gateway key is bound to."""

    code = "customer_not_of_key"


class GatewayKeyLimit(Result):
    """At most `amount` of `asset` (minor units) per `period`."""

    asset: str
    amount: int
    period: str


class GatewayKeyUsage(Result):
    """What the key's holds hold and its charges spent in the current period."""

    period_start: datetime
    period_end: datetime | None
    held: int
    spent: int
    remaining: int


class GatewayKey(Result):
    """A customer gateway key as listed: its prefix identifies it; the secret is never kept."""

    id: str
    customer: str
    name: str
    prefix: str
    spend_limit: GatewayKeyLimit | None
    models: list[str] | None
    usage: GatewayKeyUsage | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class CreatedGatewayKey(GatewayKey):
    """A new key with its secret, shown this once (null when the answer is a replay)."""

    key: str | None


class GatewayKeyList(Result):
    data: list[GatewayKey]


@dataclass(frozen=True, slots=True)
class GatewayKeyPrincipal:
    """Who a gateway call is, through a customer key: the tenant, the customer, the key's
    rules."""

    tenant_id: str
    key_id: str
    prefix: str
    customer: str
    spend_limit: SpendLimit | None
    models: frozenset[str] | None
    mode: str = "live"  # the tenant's: live | test

    @property
    def shown(self) -> str:
        return display(self.prefix, SCHEME)

    def check_customer(self, customer: str | None) -> None:
        """Refuse a call that names another customer than the key's (none named: the key's)."""
        if customer and customer != self.customer:
            raise CustomerNotOfKey(
                f"the gateway key {self.shown} is bound to another customer than {customer!r}",
                field="customer",
            )

    def check_model(self, model: str) -> None:
        """Refuse a call to a model the key is not allowed; nothing is held or sent for it."""
        if self.models is not None and model not in self.models:
            allowed = ", ".join(sorted(self.models))
            raise ModelNotAllowed(
                f"the gateway key {self.shown} may not call {model!r} (allowed: {allowed})",
                field="model",
            )


def _check_models(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_MODELS:
        raise InvalidInput(
            f"models must be a list of 1-{MAX_MODELS} names (left out: any model)",
            field="models",
        )
    for model in value:
        if (
            not isinstance(model, str)
            or not 1 <= len(model) <= MAX_MODEL_LENGTH
            or not model.isprintable()
        ):
            raise InvalidInput(
                f"each model must be 1-{MAX_MODEL_LENGTH} printable characters", field="models"
            )
    if len(set(value)) != len(value):
        raise InvalidInput("models names a model twice", field="models")
    return list(value)


def _check_limit(tx: Tx, value: object) -> GatewayKeyLimit | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"asset", "amount", "period"}:
        raise InvalidInput(
            "spend_limit must be an object with asset, amount and period", field="spend_limit"
        )
    asset = value.get("asset")
    if not isinstance(asset, str):
        raise InvalidInput("spend_limit.asset must be an asset's code", field="spend_limit.asset")
    tx.asset(asset)  # UnknownAsset if the tenant has none by that code
    amount = check_amount(value.get("amount"), "spend_limit.amount", allow_zero=True)
    period = check_period(value.get("period", Period.MONTH.value), "spend_limit.period")
    return GatewayKeyLimit(asset=asset, amount=amount, period=period.value)


def _limit_of(row: Any) -> SpendLimit | None:
    if row.limit_amount is None:
        return None
    return SpendLimit(row.id, row.limit_asset, row.limit_amount, Period(row.limit_period))


def _usage(tx: Tx, rows: list[Any]) -> dict[str, GatewayKeyUsage]:
    """The current period's usage of each limited key among `rows`, in one read."""
    limits = {row.id: limit for row in rows if (limit := _limit_of(row)) is not None}
    if not limits:
        return {}
    found = {
        (r.limit_id, r.period_start): r
        for r in tx.conn.execute(
            select(spend_periods).where(spend_periods.c.limit_id.in_(list(limits)))
        )
    }
    usage = {}
    for key_id, limit in limits.items():
        current = current_period(limit.period, tx.now)
        period = found.get((key_id, current.start))
        held, spent = (period.held, period.spent) if period is not None else (0, 0)
        usage[key_id] = GatewayKeyUsage(
            period_start=current.start,
            period_end=current.end,
            held=held,
            spent=spent,
            remaining=room(limit.amount, held, spent),
        )
    return usage


def _result(row: Any, usage: GatewayKeyUsage | None) -> GatewayKey:
    limit = _limit_of(row)
    return GatewayKey(
        id=row.id,
        customer=row.customer,
        name=row.name,
        prefix=row.prefix,
        spend_limit=None
        if limit is None
        else GatewayKeyLimit(asset=limit.asset, amount=limit.amount, period=limit.period.value),
        models=row.models,
        usage=usage,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _results(tx: Tx, rows: list[Any]) -> list[GatewayKey]:
    usage = _usage(tx, rows)
    return [_result(row, usage.get(row.id)) for row in rows]


def create_key(
    tx: Tx,
    *,
    customer: str,
    name: str = "",
    spend_limit: dict[str, Any] | None = None,
    models: list[str] | None = None,
    idempotency_key: str | None = None,
) -> CreatedGatewayKey:
    """A new key for `customer`; its secret is in this answer only (a replay answers the key
    without it)."""
    check_external_id(customer)
    wallet_id = tx.wallet_id(customer)
    name = check_name(name, "name", required=False)
    limit = _check_limit(tx, spend_limit)
    allowed = _check_models(models)
    body = {
        "customer": customer,
        "name": name,
        "spend_limit": None if limit is None else limit.model_dump(),
        "models": allowed,
    }
    idem = Idempotent(tx, idempotency_key, "gateway_key.create", body)
    replayed = idem.replay(GatewayKey)
    if replayed is not None:
        return CreatedGatewayKey(**replayed.model_dump(), key=None)
    prefix, secret = new_secret()
    values = {
        "id": new_id("gwk"),
        "tenant_id": tx.tenant_id,
        "wallet_id": wallet_id,
        "customer": customer,
        "prefix": prefix,
        "hash": hash_secret(secret),
        "name": name,
        "limit_asset": None if limit is None else limit.asset,
        "limit_amount": None if limit is None else limit.amount,
        "limit_period": None if limit is None else limit.period,
        "models": allowed,
        "created_at": tx.now,
        "revoked_at": None,
        "last_used_at": None,
    }
    try:
        row = tx.conn.execute(insert(gateway_keys).values(**values).returning(gateway_keys)).one()
    except IntegrityError:
        # Two keys drew the same prefix: draw again in a fresh transaction.
        raise RetryTransaction from None
    created = _results(tx, [row])[0]
    idem.record(created)  # without the secret: a replay never shows it
    return CreatedGatewayKey(**created.model_dump(), key=f"{SCHEME}_{prefix}_{secret}")


def list_keys(tx: Tx, *, customer: str) -> GatewayKeyList:
    """The customer's keys, revoked ones too, oldest first, each shown by its prefix."""
    check_external_id(customer)
    tx.wallet_id(customer)  # UnknownCustomer for a customer the tenant does not have
    rows = tx.conn.execute(
        select(gateway_keys)
        .where(gateway_keys.c.tenant_id == tx.tenant_id, gateway_keys.c.customer == customer)
        .order_by(gateway_keys.c.id)
    ).all()
    return GatewayKeyList(data=_results(tx, list(rows)))


def _find(tx: Tx, customer: str, key_id: str) -> Any:
    row = tx.conn.execute(
        select(gateway_keys).where(
            gateway_keys.c.id == key_id,
            gateway_keys.c.tenant_id == tx.tenant_id,
            gateway_keys.c.customer == customer,
        )
    ).first()
    if row is None:
        raise UnknownGatewayKey(f"customer {customer!r} has no gateway key {key_id!r}", field="key")
    return row


def revoke_key(
    tx: Tx, *, customer: str, key_id: str, idempotency_key: str | None = None
) -> GatewayKey:
    """Stop a key working (at once on the server that revokes it, within the key cache's
    seconds on the others); revoking twice changes nothing."""
    check_external_id(customer)
    tx.wallet_id(customer)
    idem = Idempotent(
        tx, idempotency_key, "gateway_key.revoke", {"customer": customer, "key": key_id}
    )
    if (replayed := idem.replay(GatewayKey)) is not None:
        return replayed
    _find(tx, customer, key_id)
    tx.conn.execute(
        update(gateway_keys)
        .where(gateway_keys.c.id == key_id, gateway_keys.c.revoked_at.is_(None))
        .values(revoked_at=tx.now)
    )
    return idem.record(_results(tx, [_find(tx, customer, key_id)])[0])


def authenticate(conn: Connection, key: str, now: datetime) -> tuple[GatewayKeyPrincipal, bool]:
    """The tenant, customer and rules a customer key stands for, and whether its
    last_used_at is due a refresh; Unauthenticated if it is not a valid, unrevoked key."""
    prefix, secret = parse_key(key, SCHEME, "gateway key")
    row = conn.execute(
        select(gateway_keys, tenants.c.mode)
        .join(tenants, tenants.c.id == gateway_keys.c.tenant_id)
        .where(gateway_keys.c.prefix == prefix)
    ).first()
    if row is None or not hmac.compare_digest(row.hash, hash_secret(secret)):
        raise Unauthenticated("the gateway key is not valid")
    if row.revoked_at is not None:
        raise Unauthenticated(f"the gateway key {display(prefix, SCHEME)} has been revoked")
    stale = row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION
    models = None if row.models is None else frozenset(row.models)
    principal = GatewayKeyPrincipal(
        row.tenant_id, row.id, prefix, row.customer, _limit_of(row), models, row.mode
    )
    return principal, stale


def touch(conn: Connection, key_id: str, now: datetime) -> None:
    conn.execute(
        update(gateway_keys)
        .where(
            gateway_keys.c.id == key_id,
            or_(
                gateway_keys.c.last_used_at.is_(None),
                gateway_keys.c.last_used_at < now - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=now)
    )
