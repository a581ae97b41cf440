"""The unit a service runs in: one connection in one transaction, the tenant, the time, caches."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, bindparam, insert, select

from creditgate.domain.amounts import Asset
from creditgate.domain.errors import (
    IdempotencyConflict,
    InvalidInput,
    UnknownAsset,
    UnknownCustomer,
)
from creditgate.services.results import Result
from creditgate.settings import Settings
from creditgate.storage import balance_at_commit
from creditgate.storage.prepared import Pending, Prepared, pipeline
from creditgate.storage.secret_keys import SecretKeys
from creditgate.storage.tables import assets, customers, idempotency_keys, tenants
from creditgate.storage.unit_of_work import UnitOfWork

R = TypeVar("R", bound=Result)

MAX_KEY_LENGTH = 255


class Catalog:
    """Process-wide cache of what never changes once created: assets and customer wallets.

    Filled only from committed rows read back, so a rolled-back creation never lands here.
    """

    def __init__(self, max_customers: int = 100_000) -> None:
        self._assets: dict[tuple[str, str], Asset] = {}
        self._wallets: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._max = max_customers
        self._lock = threading.Lock()
        self._live: set[str] = set()  # tenants in live mode: their clock is the server's

    def note_mode(self, tenant_id: str, mode: str) -> None:
        """What a read of the tenant (its key's verification, a list of tenants) said of its
        mode: a live tenant's transactions then never read it (a mode never changes)."""
        if mode == "live" and tenant_id not in self._live:
            with self._lock:
                self._live.add(tenant_id)

    def clock_offset(self, conn: Connection, tenant_id: str) -> timedelta | None:
        """How far a test-mode tenant's clock runs ahead of the server's, as the database has
        it now; None for a live tenant (or none such), whose clock is the server's.

        A live tenant is known without a read once anything has read its mode in this process
        (`note_mode`), else after this one read. A test-mode tenant's offset is read in every
        transaction, in one statement that is its only cost: an advance made through any
        server process is then seen by all of them at once, which a copy kept in a process
        could not be without a read of its own to check it."""
        if tenant_id in self._live:
            return None
        row = conn.execute(
            select(tenants.c.mode, tenants.c.clock_offset_us).where(tenants.c.id == tenant_id)
        ).first()
        if row is None:
            return None
        if row.mode != "test":
            self.note_mode(tenant_id, str(row.mode))
            return None
        return timedelta(microseconds=int(row.clock_offset_us))

    def asset(self, conn: Connection, tenant_id: str, code: str) -> Asset:
        found = self._assets.get((tenant_id, code))
        if found is not None:
            return found
        row = conn.execute(
            select(assets.c.code, assets.c.scale, assets.c.name).where(
                assets.c.tenant_id == tenant_id, assets.c.code == code
            )
        ).first()
        if row is None:
            raise UnknownAsset(f"asset {code!r} does not exist", field="asset")
        asset = Asset(row.code, row.scale, row.name)
        self._assets[(tenant_id, code)] = asset
        return asset

    def wallet_id(self, conn: Connection, tenant_id: str, external_id: str) -> str:
        key = (tenant_id, external_id)
        with self._lock:
            found = self._wallets.get(key)
            if found is not None:
                self._wallets.move_to_end(key)
                return found
        row = conn.execute(
            select(customers.c.wallet_id).where(
                customers.c.tenant_id == tenant_id, customers.c.external_id == external_id
            )
        ).first()
        if row is None:
            raise UnknownCustomer(f"customer {external_id!r} does not exist", field="customer")
        with self._lock:
            self._wallets[key] = row.wallet_id
            if len(self._wallets) > self._max:
                self._wallets.popitem(last=False)
        return str(row.wallet_id)


@dataclass(frozen=True, slots=True)
class PricingStamp:
    """The tenant's pricing version a transaction prices at (see services/rate_cards.py)."""

    version: int
    read: bool  # read from the database in this transaction; else checked with the commit


ENV_ALLOW_PRIVATE = "CREDITGATE_ALLOW_PRIVATE_WEBHOOK_TARGETS"
ENV_STRIPE_API_BASE = "CREDITGATE_STRIPE_API_BASE"


@dataclass(frozen=True, slots=True)
class Operator:
    """What the operator decides for every tenant: where the server may connect on a tenant's
    behalf, and the keys the tenants' secrets are sealed with. No tenant sets any of it."""

    secret_keys: SecretKeys = field(default_factory=SecretKeys)
    # Webhooks may go to loopback and private networks (a self-hosted setup's own receivers).
    allow_private_webhook_targets: bool = False
    # Where the Stripe client connects instead of Stripe's API (a proxy, or an offline fake).
    stripe_api_base: str | None = None

    @classmethod
    def from_env(cls, secret_keys: SecretKeys) -> Operator:
        settings = Settings()
        return cls(
            secret_keys=secret_keys,
            allow_private_webhook_targets=settings.allow_private_webhook_targets,
            stripe_api_base=(settings.stripe_api_base or "").strip() or None,
        )


# Where none are given: private targets refused, Stripe itself, and no key to seal with.
# One shared instance: a Tx is made per request, the gate's included.
DEFAULT_OPERATOR = Operator()


class ThresholdCrossed(Protocol):
    def __call__(self, tx: Tx, wallet_id: str, asset: str, *, rising: bool) -> None: ...


def _unwired(tx: Tx, wallet_id: str, asset: str, *, rising: bool) -> None:
    raise RuntimeError(
        "a balance crossed its auto top-up threshold in a transaction built without its "
        "reactions: build it with Creditgate.tx"
    )


@dataclass(frozen=True, slots=True)
class Reactions:
    """What other areas do, in the same transaction, when the ledger moves a balance: buying
    the auto top-up of a wallet whose available fell below its threshold (or re-arming it).
    The composition (`creditgate.api`) wires them, so the ledger never imports billing."""

    threshold_crossed: ThresholdCrossed = _unwired


UNWIRED = Reactions()


@dataclass
class Tx:
    """One tenant's work in one transaction: its connection and unit of work (deferred
    writes, after-commit actions, pending views, mode), the time, caches, settings."""

    conn: Connection
    tenant_id: str
    now: datetime
    catalog: Catalog = field(default_factory=Catalog)
    pricing_stamp: PricingStamp | None = None
    # A test-mode tenant's clock offset as read to set `now` (`Catalog.clock_offset`); None
    # for a live tenant, or for a transaction given its time.
    clock_offset: timedelta | None = None
    operator: Operator = DEFAULT_OPERATOR
    reactions: Reactions = UNWIRED
    uow: UnitOfWork = field(init=False)

    def __post_init__(self) -> None:
        # The transaction's unit of work, which `Database.connect` made with it.
        self.uow = UnitOfWork.of(self.conn)

    def asset(self, code: str) -> Asset:
        return self.catalog.asset(self.conn, self.tenant_id, code)

    def wallet_id(self, external_id: str) -> str:
        return self.catalog.wallet_id(self.conn, self.tenant_id, external_id)


# Values a request's hash takes as they are (their exact types: a subclass, such as a
# string enum, goes through the checks below, which also leave it as it is).
_AS_THEY_ARE = frozenset({str, int, bool, float, type(None)})


def _canonical(value: Any) -> Any:
    if type(value) in _AS_THEY_ARE:
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def request_hash(operation: str, request: dict[str, Any]) -> str:
    body = json.dumps([operation, _canonical(request)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def check_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            f"idempotency_key must be 1-{MAX_KEY_LENGTH} printable characters",
            field="idempotency_key",
        )
    return key


_FIND_KEY = Prepared(
    select(
        idempotency_keys.c.operation,
        idempotency_keys.c.request_hash,
        idempotency_keys.c.response,
    ).where(
        idempotency_keys.c.tenant_id == bindparam("tenant"),
        idempotency_keys.c.key == bindparam("key"),
    )
)
_SAVE_KEY = Prepared(insert(idempotency_keys))


class Idempotent:
    """One key, one effect: a replay answers the first result; another body under it conflicts."""

    def __init__(self, tx: Tx, key: str | None, operation: str, request: dict[str, Any]) -> None:
        self.tx = tx
        self.key = check_key(key)
        self.operation = operation
        self.hash = request_hash(operation, request) if self.key is not None else ""

    def replay(self, model: type[R]) -> R | None:
        if self.key is None:
            return None
        # In a pipeline: on PostgreSQL the transaction's BEGIN goes in the same round trip.
        with pipeline(self.tx.conn):
            found = self.lookup()
        return self.replay_found(found, model)

    def lookup(self) -> Pending | None:
        """Send the key's lookup (inside a caller's pipeline, with its other reads)."""
        if self.key is None:
            return None
        return _FIND_KEY.submit(self.tx.conn, {"tenant": self.tx.tenant_id, "key": self.key})

    def replay_found(self, found: Pending | None, model: type[R]) -> R | None:
        """The first answer under this key, from a `lookup` that has arrived; None if new."""
        row = None if found is None else found.first()
        if row is None:
            return None
        if row.operation != self.operation or row.request_hash != self.hash:
            raise IdempotencyConflict(
                f"idempotency key {self.key!r} was already used with a different request",
                field="idempotency_key",
            )
        return model.model_validate_json(row.response)

    def record(self, result: R) -> R:
        if self.key is None:
            return result
        # Written with the commit; if another request under the same key committed first,
        # the conflict restarts this transaction, which then replays that answer.
        params: dict[str, Any] = {
            "tenant_id": self.tx.tenant_id,
            "key": self.key,
            "operation": self.operation,
            "request_hash": self.hash,
            "response": result.model_dump_json(),
            "created_at": self.tx.now,
        }
        # An answer whose balance a write sent with the commit moves takes its `available`
        # from the row, after that write, in the same transaction (`balance_at_commit`).
        if not balance_at_commit.record(self.tx.uow, params):
            # After the transaction's other writes: the balance row is locked before any key.
            self.tx.uow.defer(_SAVE_KEY, params, last=True)
        return result
