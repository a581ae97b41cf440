"""Tenants, assets, customers (each with one wallet) and wallet policies."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Connection, insert, select, update

from creditgate.domain.amounts import check_asset_code, check_scale
from creditgate.domain.balances import check_balance_thresholds
from creditgate.domain.errors import (
    AlreadyExists,
    InvalidInput,
    PolicyNotSatisfied,
    UnknownTenant,
)
from creditgate.domain.pages import DEFAULT_CUSTOMER_PAGE
from creditgate.domain.policy import PolicyMode, WalletPolicy
from creditgate.services.context import Idempotent, Tx
from creditgate.services.results import AssetInfo, Customer, Policy, Tenant
from creditgate.services.wallet import lock_balance, shift_balance
from creditgate.storage.ids import new_id
from creditgate.storage.tables import assets, customers, tenants, wallet_balances

MAX_NAME = 200
MAX_METADATA_BYTES = 16_384


def check_name(value: object, field: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInput(f"{field} must be a non-empty string", field=field)
    if len(value) > MAX_NAME or not value.isprintable():
        raise InvalidInput(f"{field} must be at most {MAX_NAME} printable characters", field=field)
    return value


def check_metadata(value: object, field: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{field} must be an object with string keys", field=field)
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must hold only JSON values", field=field) from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(
            f"{field} must be at most {MAX_METADATA_BYTES} bytes of JSON", field=field
        )
    if not _interoperable(value):
        raise InvalidInput(
            f"{field} numbers must be within ±{MAX_SAFE_INTEGER} (I-JSON, RFC 7493): "
            "larger ones do not survive JavaScript clients; send them as strings",
            field=field,
        )
    return value


# The largest integer every JSON reader holds exactly (RFC 7493, 2.2).
MAX_SAFE_INTEGER = 2**53 - 1


def _interoperable(value: object) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return True
    if isinstance(value, int):
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if isinstance(value, dict):
        return all(_interoperable(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_interoperable(v) for v in value)
    return True


TENANT_MODES = ("live", "test")


def create_tenant(
    conn: Connection, *, name: str, now: Any, tenant_id: str | None = None, mode: str = "live"
) -> Tenant:
    """A tenant: `live` (the default), or `test`, a sandbox that may move its own clock."""
    name = check_name(name, "name")
    if mode not in TENANT_MODES:
        raise InvalidInput("mode must be live or test", field="mode")
    tenant = Tenant(id=tenant_id or new_id("ten"), name=name, created_at=now, mode=mode)
    conn.execute(insert(tenants).values(**tenant.model_dump()))
    return tenant


def get_tenant(conn: Connection, tenant_id: str) -> Tenant:
    row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
    if row is None:
        raise UnknownTenant(f"tenant {tenant_id!r} does not exist", field="tenant")
    return Tenant(id=row.id, name=row.name, created_at=row.created_at, mode=row.mode)


def list_tenants(conn: Connection) -> list[Tenant]:
    rows = conn.execute(select(tenants).order_by(tenants.c.created_at, tenants.c.id))
    return [Tenant(id=r.id, name=r.name, created_at=r.created_at, mode=r.mode) for r in rows]


def create_asset(
    tx: Tx, *, code: str, scale: int, name: str = "", idempotency_key: str | None = None
) -> AssetInfo:
    code = check_asset_code(code, "code")
    scale = check_scale(scale)
    name = check_name(name, "name", required=False)
    idem = Idempotent(
        tx, idempotency_key, "asset.create", {"code": code, "scale": scale, "name": name}
    )
    if (replayed := idem.replay(AssetInfo)) is not None:
        return replayed
    exists = tx.conn.execute(
        select(assets.c.code).where(assets.c.tenant_id == tx.tenant_id, assets.c.code == code)
    ).first()
    if exists is not None:
        raise AlreadyExists(f"asset {code!r} already exists", field="code")
    tx.conn.execute(
        insert(assets).values(
            tenant_id=tx.tenant_id, code=code, scale=scale, name=name, created_at=tx.now
        )
    )
    return idem.record(AssetInfo(code=code, scale=scale, name=name))


def list_assets(tx: Tx) -> list[AssetInfo]:
    rows = tx.conn.execute(
        select(assets).where(assets.c.tenant_id == tx.tenant_id).order_by(assets.c.code)
    )
    return [AssetInfo(code=r.code, scale=r.scale, name=r.name) for r in rows]


def customer_result(row: Any) -> Customer:
    return Customer(
        id=row.id,
        external_id=row.external_id,
        wallet_id=row.wallet_id,
        name=row.name,
        metadata=row.metadata,
        policy=row.policy,
        overdraft_limit=row.overdraft_limit,
        created_at=row.created_at,
    )


MAX_ID = 40


def check_id(value: object, field: str) -> str:
    """One of creditgate's own ids (`hld_…`, `lot_…`): short, printable, no NUL bytes."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID or not value.isprintable():
        raise InvalidInput(f"{field} must be an id of at most {MAX_ID} characters", field=field)
    return value


def check_external_id(value: object, field: str = "customer") -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME or not value.isprintable():
        raise InvalidInput(f"{field} must be 1-{MAX_NAME} printable characters", field=field)
    return value


# A new customer's id: it goes into URL paths (`/v1/customers/{id}/…`), so only characters
# that need no escaping there and cannot end or reshape a path (no `/`, `?`, `#`, `%`, no
# `.` or `..` alone). Lookups still take any id an earlier version let in.
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def check_new_external_id(value: object, field: str = "external_id") -> str:
    if not isinstance(value, str) or CUSTOMER_ID.fullmatch(value) is None:
        raise InvalidInput(
            f"{field} must be 1-128 characters of A-Z, a-z, 0-9 and . _ : @ -, "
            "starting with a letter or digit",
            field=field,
        )
    return value


def create_customer(
    tx: Tx,
    *,
    external_id: str,
    name: str = "",
    metadata: dict[str, Any] | None = None,
    policy: str = PolicyMode.BLOCK,
    overdraft_limit: int | None = None,
    idempotency_key: str | None = None,
) -> Customer:
    external_id = check_new_external_id(external_id)
    name = check_name(name, "name", required=False)
    meta = check_metadata(metadata)
    wallet_policy = WalletPolicy.build(policy, overdraft_limit)
    request = {
        "external_id": external_id,
        "name": name,
        "metadata": meta,
        "policy": wallet_policy.mode.value,
        "overdraft_limit": wallet_policy.overdraft_limit,
    }
    idem = Idempotent(tx, idempotency_key, "customer.create", request)
    if (replayed := idem.replay(Customer)) is not None:
        return replayed
    exists = tx.conn.execute(
        select(customers.c.id).where(
            customers.c.tenant_id == tx.tenant_id, customers.c.external_id == external_id
        )
    ).first()
    if exists is not None:
        raise AlreadyExists(f"customer {external_id!r} already exists", field="external_id")
    customer = Customer(
        id=new_id("cus"),
        external_id=external_id,
        wallet_id=new_id("wal"),
        name=name,
        metadata=meta,
        policy=wallet_policy.mode.value,
        overdraft_limit=wallet_policy.overdraft_limit,
        created_at=tx.now,
    )
    tx.conn.execute(insert(customers).values(tenant_id=tx.tenant_id, **customer.model_dump()))
    return idem.record(customer)


def get_customer(tx: Tx, *, customer: str) -> Customer:
    wallet_id = tx.wallet_id(check_external_id(customer))
    row = tx.conn.execute(select(customers).where(customers.c.wallet_id == wallet_id)).one()
    return customer_result(row)


def list_customers(
    tx: Tx, *, limit: int = DEFAULT_CUSTOMER_PAGE, after: str | None = None
) -> list[Customer]:
    query = select(customers).where(customers.c.tenant_id == tx.tenant_id)
    if after is not None:
        query = query.where(customers.c.external_id > after)
    rows = tx.conn.execute(query.order_by(customers.c.external_id).limit(limit))
    return [customer_result(r) for r in rows]


def set_policy(
    tx: Tx,
    *,
    customer: str,
    asset: str,
    policy: str,
    overdraft_limit: int | None = None,
    low_balance_threshold: int | None = None,
    thresholds: list[int] | None = None,
    idempotency_key: str | None = None,
) -> Policy:
    """Set how the wallet answers when a charge of this asset does not fit, and the alert
    thresholds of its available (`balance.threshold_crossed` as it falls below each)."""
    wallet_policy = WalletPolicy.build(policy, overdraft_limit, low_balance_threshold)
    alerts = check_balance_thresholds(thresholds)
    wallet_id = tx.wallet_id(check_external_id(customer))
    found = tx.asset(check_asset_code(asset))
    request: dict[str, Any] = {
        "customer": customer,
        "asset": asset,
        "policy": wallet_policy.mode.value,
        "overdraft_limit": wallet_policy.overdraft_limit,
        "low_balance_threshold": wallet_policy.low_balance_threshold,
    }
    if alerts:
        request["thresholds"] = list(alerts)
    idem = Idempotent(tx, idempotency_key, "policy.set", request)
    if (replayed := idem.replay(Policy)) is not None:
        return replayed
    before = lock_balance(tx, wallet_id, asset)
    if before.available + wallet_policy.effective_limit < 0:
        floor = -wallet_policy.effective_limit
        raise PolicyNotSatisfied(
            f"available is {found.amount_text(before.available)}, below this policy's floor of "
            f"{found.amount_text(floor)}; grant credit or release holds first",
            field="policy",
        )
    tx.conn.execute(
        update(wallet_balances)
        .where(wallet_balances.c.wallet_id == wallet_id, wallet_balances.c.asset == asset)
        .values(
            policy=wallet_policy.mode.value,
            overdraft_limit=wallet_policy.overdraft_limit,
            low_balance_threshold=wallet_policy.low_balance_threshold,
            thresholds=list(alerts) or None,
        )
    )
    # Re-evaluate the low-balance alert against the new threshold (the alert thresholds
    # raise only as available falls below them, so setting them raises nothing).
    shift_balance(tx, wallet_id, asset, posted=0, held=0, debt=0, need=0)
    return idem.record(
        Policy(
            customer=customer,
            asset=asset,
            policy=wallet_policy.mode.value,
            overdraft_limit=wallet_policy.overdraft_limit,
            low_balance_threshold=wallet_policy.low_balance_threshold,
            thresholds=list(alerts),
        )
    )
