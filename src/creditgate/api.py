"""The in-process Python API: creditgate as a library on an embedded SQLite file (or PostgreSQL).

cg = Creditgate("sqlite:///credits.db")
acme = cg.tenant(cg.create_tenant("Acme AI").id)
auth = acme.authorize("cust_42", "credits", 1_000)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from creditgate.services import catalog, gate, grants, queries, sweeps
from creditgate.services.context import Catalog, Tx
from creditgate.services.results import (
    AssetInfo,
    Authorization,
    Charge,
    Customer,
    LedgerPage,
    Lot,
    Policy,
    Settlement,
    SweepReport,
    Tenant,
    Wallet,
)
from creditgate.services.verify import VerifyReport, verify
from creditgate.storage.database import Database
from creditgate.storage.migrate import upgrade

T = TypeVar("T")
P = ParamSpec("P")

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Creditgate:
    """A handle on one creditgate database."""

    def __init__(
        self,
        url: str | None = None,
        *,
        clock: Clock = system_clock,
        migrate: bool = True,
        pool_size: int = 10,
    ) -> None:
        self.db = Database(url, pool_size=pool_size)
        self.clock = clock
        self.catalog = Catalog()
        if migrate:
            upgrade(self.db)

    def create_tenant(self, name: str, *, tenant_id: str | None = None) -> Tenant:
        return self.db.run(
            lambda conn: catalog.create_tenant(
                conn, name=name, now=self.clock(), tenant_id=tenant_id
            )
        )

    def tenants(self) -> list[Tenant]:
        return self.db.run(catalog.list_tenants, read_only=True)

    def tenant(self, tenant_id: str) -> TenantLedger:
        self.db.run(lambda conn: catalog.get_tenant(conn, tenant_id), read_only=True)
        return TenantLedger(self, tenant_id)

    def verify(self, tenant_id: str | None = None) -> VerifyReport:
        return self.db.run(lambda conn: verify(conn, tenant_id), read_only=True)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Creditgate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TenantLedger:
    """Every operation of one tenant, each run as one transaction."""

    def __init__(self, cg: Creditgate, tenant_id: str) -> None:
        self.cg = cg
        self.tenant_id = tenant_id

    def _run(self, fn: Callable[..., T], /, read_only: bool = False, **kwargs: Any) -> T:
        def work(conn: Any) -> T:
            tx = Tx(conn, self.tenant_id, self.cg.clock(), self.cg.catalog)
            return fn(tx, **kwargs)

        return self.cg.db.run(work, read_only=read_only)

    # Catalog
    def create_asset(
        self, code: str, scale: int, name: str = "", *, idempotency_key: str | None = None
    ) -> AssetInfo:
        return self._run(
            catalog.create_asset, code=code, scale=scale, name=name, idempotency_key=idempotency_key
        )

    def assets(self) -> list[AssetInfo]:
        return self._run(catalog.list_assets, read_only=True)

    def create_customer(
        self,
        external_id: str,
        *,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        policy: str = "block",
        overdraft_limit: int | None = None,
        idempotency_key: str | None = None,
    ) -> Customer:
        return self._run(
            catalog.create_customer,
            external_id=external_id,
            name=name,
            metadata=metadata,
            policy=policy,
            overdraft_limit=overdraft_limit,
            idempotency_key=idempotency_key,
        )

    def customer(self, external_id: str) -> Customer:
        return self._run(catalog.get_customer, read_only=True, customer=external_id)

    def customers(self, *, limit: int = 100, after: str | None = None) -> list[Customer]:
        return self._run(catalog.list_customers, read_only=True, limit=limit, after=after)

    def set_policy(
        self,
        customer: str,
        asset: str,
        policy: str,
        *,
        overdraft_limit: int | None = None,
        low_balance_threshold: int | None = None,
        idempotency_key: str | None = None,
    ) -> Policy:
        return self._run(
            catalog.set_policy,
            customer=customer,
            asset=asset,
            policy=policy,
            overdraft_limit=overdraft_limit,
            low_balance_threshold=low_balance_threshold,
            idempotency_key=idempotency_key,
        )

    # Grants
    def grant(
        self,
        customer: str,
        asset: str,
        amount: int,
        *,
        kind: str = "promotional",
        priority: int = 0,
        effective_at: datetime | None = None,
        expires_at: datetime | None = None,
        cost_basis: Decimal | str | int = Decimal(0),
        currency: str = "USD",
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Lot:
        return self._run(
            grants.grant,
            customer=customer,
            asset=asset,
            amount=amount,
            kind=kind,
            priority=priority,
            effective_at=effective_at,
            expires_at=expires_at,
            cost_basis=cost_basis,
            currency=currency,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )

    def void_lot(self, lot_id: str, *, reason: str = "", idempotency_key: str | None = None) -> Lot:
        return self._run(
            grants.void_lot, lot_id=lot_id, reason=reason, idempotency_key=idempotency_key
        )

    # The gate
    def authorize(
        self,
        customer: str,
        asset: str,
        amount: int,
        *,
        ttl_seconds: int = 600,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Authorization:
        return self._run(
            gate.authorize,
            customer=customer,
            asset=asset,
            amount=amount,
            ttl_seconds=ttl_seconds,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )

    def settle(
        self,
        authorization_id: str,
        amount: int,
        *,
        action: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Settlement:
        return self._run(
            gate.settle,
            authorization_id=authorization_id,
            amount=amount,
            action=action,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )

    def void(self, authorization_id: str, *, idempotency_key: str | None = None) -> Authorization:
        return self._run(
            gate.void, authorization_id=authorization_id, idempotency_key=idempotency_key
        )

    def charge(
        self,
        customer: str,
        asset: str,
        amount: int,
        *,
        action: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Charge:
        return self._run(
            gate.charge,
            customer=customer,
            asset=asset,
            amount=amount,
            action=action,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )

    def authorization(self, authorization_id: str) -> Authorization:
        return self._run(gate.get_authorization, read_only=True, authorization_id=authorization_id)

    # Reading
    def wallet(self, customer: str) -> Wallet:
        return self._run(queries.get_wallet, read_only=True, customer=customer)

    def lots(
        self, customer: str, *, asset: str | None = None, include_closed: bool = False
    ) -> list[Lot]:
        return self._run(
            queries.list_lots,
            read_only=True,
            customer=customer,
            asset=asset,
            include_closed=include_closed,
        )

    def ledger(
        self, customer: str, *, limit: int = 50, cursor: str | None = None, asset: str | None = None
    ) -> LedgerPage:
        return self._run(
            queries.ledger_history,
            read_only=True,
            customer=customer,
            limit=limit,
            cursor=cursor,
            asset=asset,
        )

    # Time-driven work
    def run_sweeps(self) -> SweepReport:
        return self._run(sweeps.run_sweeps)

    def expire_holds(self) -> int:
        return self._run(sweeps.expire_holds)

    def expire_lots(self) -> SweepReport:
        return self._run(sweeps.expire_lots)

    def activate_lots(self) -> int:
        return self._run(grants.activate_lots)
