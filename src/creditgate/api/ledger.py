"""The in-process Python API: creditgate as a library on an embedded SQLite file (or PostgreSQL).

cg = Creditgate("sqlite:///credits.db")
acme = cg.tenant(cg.create_tenant("Acme AI").id)
auth = acme.authorize("cust_42", "credits", 1_000)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection

from creditgate.api.billing import BillingMethods
from creditgate.api.clock import Clock, system_clock
from creditgate.domain.grants import DEFAULT_CURRENCY, GrantRequest
from creditgate.domain.holds import DEFAULT_TTL_SECONDS
from creditgate.domain.lots import LotKind
from creditgate.domain.pages import DEFAULT_CUSTOMER_PAGE, DEFAULT_PAGE
from creditgate.domain.policy import PolicyMode
from creditgate.domain.pricing import DEFAULT_RATE_CARD, Quote
from creditgate.domain.spend_limits import SpendLimit
from creditgate.services.billing import auto_top_up, due
from creditgate.services.catalog import api_keys, catalog, members
from creditgate.services.catalog.api_keys import Principal
from creditgate.services.context import Catalog, Operator, Reactions, Tx
from creditgate.services.ledger import gate, grants, queries, refunds, sweeps
from creditgate.services.pricing import margin, rate_cards
from creditgate.services.pricing import quotes as pricing
from creditgate.services.pricing.margin import FullMarginReport
from creditgate.services.reports import revenue
from creditgate.services.reports.verify import VerifyReport, verify
from creditgate.services.results import (
    ApiKey,
    AssetInfo,
    Authorization,
    Budget,
    BudgetList,
    Charge,
    CreatedApiKey,
    Customer,
    LedgerPage,
    Lot,
    Member,
    MemberList,
    MemberUsage,
    ModelPrice,
    Policy,
    PriceQuote,
    PublishedRateCard,
    RateCardVersion,
    Settlement,
    SweepReport,
    Tenant,
    Wallet,
)
from creditgate.services.webhooks import endpoints as webhook_service
from creditgate.services.webhooks.delivery import WebhookReport, WebhookSender, deliver_webhooks
from creditgate.services.webhooks.endpoints import (
    CreatedWebhookEndpoint,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookEndpoint,
)
from creditgate.storage.database import Database
from creditgate.storage.migrate import upgrade

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R", gate.AuthorizeRequest, gate.ChargeRequest)


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
        # The operator's settings, from the environment (an embedding program may replace them).
        self.operator = Operator.from_env(self.db.secret_keys)
        self.reactions = Reactions(threshold_crossed=auto_top_up.crossed)
        if migrate:
            upgrade(self.db)

    def tx(self, conn: Connection, tenant_id: str, now: datetime | None = None) -> Tx:
        """The unit of work of one tenant on `conn`: its time, caches, the operator's settings
        and the reactions between areas."""
        offset = None
        if now is None:
            offset = self.catalog.clock_offset(conn, tenant_id)
            now = self.clock() if offset is None else self.clock() + offset
        return Tx(
            conn,
            tenant_id,
            now,
            self.catalog,
            clock_offset=offset,
            operator=self.operator,
            reactions=self.reactions,
        )

    def create_tenant(
        self, name: str, *, tenant_id: str | None = None, mode: str = "live"
    ) -> Tenant:
        """A tenant: `live`, or `test` (a sandbox whose clock moves by `advance_clock`)."""
        tenant = self.db.run(
            lambda conn: catalog.create_tenant(
                conn, name=name, now=self.clock(), tenant_id=tenant_id, mode=mode
            )
        )
        self.catalog.note_mode(tenant.id, tenant.mode)
        return tenant

    def create_tenant_with_key(
        self, name: str, *, key_name: str = "default", mode: str = "live"
    ) -> tuple[Tenant, CreatedApiKey]:
        """A new tenant and its first API key, in one transaction."""

        def work(conn: Any) -> tuple[Tenant, CreatedApiKey]:
            now = self.clock()
            tenant = catalog.create_tenant(conn, name=name, now=now, mode=mode)
            key = api_keys.create_key(self.tx(conn, tenant.id, now), name=key_name)
            return tenant, key

        tenant, key = self.db.run(work)
        self.catalog.note_mode(tenant.id, tenant.mode)
        return tenant, key

    def authenticate(self, key: str) -> Principal:
        """The tenant and key an API key stands for; Unauthenticated if it is not valid."""
        now = self.clock()
        principal, stale = self.db.run(
            lambda conn: api_keys.authenticate(conn, key, now), read_only=True
        )
        if stale:
            self.db.run(lambda conn: api_keys.touch(conn, principal.key_id, now))
        # Its tenant's transactions need not read the mode (`Catalog.clock_offset`).
        self.catalog.note_mode(principal.tenant_id, principal.mode)
        return principal

    def tenants(self) -> list[Tenant]:
        found = self.db.run(catalog.list_tenants, read_only=True)
        for tenant in found:
            self.catalog.note_mode(tenant.id, tenant.mode)
        return found

    def tenants_due(self) -> list[str]:
        """The ids of the tenants the worker's round has anything to do for now (and every
        test-mode tenant, whose clock is its own), in one read."""
        now = self.clock()
        return self.db.run(lambda conn: due.tenants_due(conn, now), read_only=True)

    def tenant(self, tenant_id: str) -> TenantLedger:
        found = self.db.run(lambda conn: catalog.get_tenant(conn, tenant_id), read_only=True)
        self.catalog.note_mode(found.id, found.mode)
        return TenantLedger(self, tenant_id)

    def verify(self, tenant_id: str | None = None) -> VerifyReport:
        return self.db.run(lambda conn: verify(conn, tenant_id), read_only=True)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Creditgate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _now(tx: Tx) -> datetime:
    return tx.now


class TenantLedger(BillingMethods):
    """Every operation of one tenant, each run as one transaction."""

    def __init__(self, cg: Creditgate, tenant_id: str) -> None:
        self.cg = cg
        self.tenant_id = tenant_id

    def now(self) -> datetime:
        """The tenant's time: the server's, or a test-mode tenant's own clock."""
        return self._read(_now)

    def _work(
        self, fn: Callable[Concatenate[Tx, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Callable[[Connection], T]:
        """`fn` as a unit of work: on its connection, at the clock's time of each attempt."""

        def work(conn: Connection) -> T:
            return fn(self.cg.tx(conn, self.tenant_id), *args, **kwargs)

        return work

    def _run(self, fn: Callable[Concatenate[Tx, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(tx, ...)` as one transaction of this tenant."""
        return self.cg.db.run(self._work(fn, *args, **kwargs))

    def _read(self, fn: Callable[Concatenate[Tx, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`_run` for a use case that only reads: one read-only transaction."""
        return self.cg.db.run(self._work(fn, *args, **kwargs), read_only=True)

    def _run_step(self, fn: Callable[..., T], /, read_only: bool = False, **kwargs: Any) -> T:
        """One step of a billing flow that calls a payment provider between transactions
        (`payments.Runner`): `_run`, or `_read` with `read_only`."""
        return self.cg.db.run(self._work(fn, **kwargs), read_only=read_only)

    def _run_for_wallet(
        self,
        fn: Callable[[Tx, R], T],
        request: R,
    ) -> T:
        """`_run`, in one transaction with concurrent calls on the same wallet and asset when
        the call has an idempotency key (see `Database.run_combined`). A call whose asset
        comes from a rate card runs alone: a batch moves one balance row, so that batches
        lock rows in the one order every transaction does."""
        key, customer, asset = request.idempotency_key, request.customer, request.asset
        if not (isinstance(key, str) and isinstance(customer, str) and isinstance(asset, str)):
            return self._run(fn, request)
        work = self._work(fn, request)
        return self.cg.db.run_combined((self.tenant_id, customer, asset), work, token=key)

    # Catalog
    def create_asset(
        self, code: str, scale: int, name: str = "", *, idempotency_key: str | None = None
    ) -> AssetInfo:
        return self._run(
            catalog.create_asset, code=code, scale=scale, name=name, idempotency_key=idempotency_key
        )

    def assets(self) -> list[AssetInfo]:
        return self._read(catalog.list_assets)

    def create_customer(
        self,
        external_id: str,
        *,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        policy: str = PolicyMode.BLOCK,
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
        return self._read(catalog.get_customer, customer=external_id)

    def customers(
        self, *, limit: int = DEFAULT_CUSTOMER_PAGE, after: str | None = None
    ) -> list[Customer]:
        return self._read(catalog.list_customers, limit=limit, after=after)

    def set_policy(
        self,
        customer: str,
        asset: str,
        policy: str,
        *,
        overdraft_limit: int | None = None,
        low_balance_threshold: int | None = None,
        thresholds: list[int] | None = None,
        idempotency_key: str | None = None,
    ) -> Policy:
        return self._run(
            catalog.set_policy,
            customer=customer,
            asset=asset,
            policy=policy,
            overdraft_limit=overdraft_limit,
            low_balance_threshold=low_balance_threshold,
            thresholds=thresholds,
            idempotency_key=idempotency_key,
        )

    # Organizations: members and budgets
    def create_member(
        self,
        customer: str,
        external_id: str,
        *,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        active: bool = True,
        idempotency_key: str | None = None,
    ) -> Member:
        return self._run(
            members.create_member,
            customer=customer,
            external_id=external_id,
            name=name,
            metadata=metadata,
            active=active,
            idempotency_key=idempotency_key,
        )

    def member(self, customer: str, member: str) -> Member:
        return self._read(members.get_member, customer=customer, member=member)

    def members(
        self,
        customer: str,
        *,
        include_removed: bool = False,
        after: str | None = None,
        limit: int = DEFAULT_CUSTOMER_PAGE,
    ) -> MemberList:
        return self._read(
            members.list_members,
            customer=customer,
            include_removed=include_removed,
            after=after,
            limit=limit,
        )

    def update_member(
        self,
        customer: str,
        member: str,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        active: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Member:
        return self._run(
            members.update_member,
            customer=customer,
            member=member,
            name=name,
            metadata=metadata,
            active=active,
            idempotency_key=idempotency_key,
        )

    def remove_member(
        self, customer: str, member: str, *, idempotency_key: str | None = None
    ) -> Member:
        return self._run(
            members.remove_member,
            customer=customer,
            member=member,
            idempotency_key=idempotency_key,
        )

    def set_budget(
        self,
        customer: str,
        asset: str,
        amount: int,
        *,
        period: str,
        member: str | None = None,
        anchor: datetime | None = None,
        mode: str = "hard",
        thresholds: list[int] | None = None,
        idempotency_key: str | None = None,
    ) -> Budget:
        """The budget of `member` (or, without one, of the customer as a whole) in `asset`."""
        return self._run(
            members.set_budget,
            customer=customer,
            member=member,
            asset=asset,
            amount=amount,
            period=period,
            anchor=anchor,
            mode=mode,
            thresholds=thresholds,
            idempotency_key=idempotency_key,
        )

    def delete_budget(
        self,
        customer: str,
        asset: str,
        *,
        member: str | None = None,
        idempotency_key: str | None = None,
    ) -> Budget:
        return self._run(
            members.delete_budget,
            customer=customer,
            member=member,
            asset=asset,
            idempotency_key=idempotency_key,
        )

    def budgets(self, customer: str, *, member: str | None = None) -> BudgetList:
        return self._read(members.list_budgets, customer=customer, member=member)

    def usage(self, customer: str, *, member: str | None = None, periods: int = 1) -> MemberUsage:
        """Spent, held and remaining per budget period of `member` (or of the customer)."""
        return self._read(members.usage, customer=customer, member=member, periods=periods)

    # Grants
    def grant(
        self,
        customer: str,
        asset: str,
        amount: int,
        *,
        kind: str = LotKind.PROMOTIONAL,
        priority: int | None = None,
        effective_at: datetime | None = None,
        expires_at: datetime | None = None,
        cost_basis: Decimal | str | int = Decimal(0),
        currency: str = DEFAULT_CURRENCY,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Lot:
        request = GrantRequest(
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
        )
        return self._run(grants.grant, request, idempotency_key=idempotency_key)

    def void_lot(self, lot_id: str, *, reason: str = "", idempotency_key: str | None = None) -> Lot:
        return self._run(
            grants.void_lot, lot_id=lot_id, reason=reason, idempotency_key=idempotency_key
        )

    # The gate
    def authorize(
        self,
        customer: str,
        asset: str | None = None,
        amount: int | None = None,
        *,
        action: str | None = None,
        dimensions: dict[str, Any] | None = None,
        quantities: dict[str, Any] | None = None,
        rate_card: str = DEFAULT_RATE_CARD,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        member: str | None = None,
        spend_limit: SpendLimit | None = None,
    ) -> Authorization:
        """Hold credit before a call (see `services.ledger.gate.authorize`); with `member`,
        the hold is that member's and counts against its budgets; with `spend_limit`, it also
        counts against that limit's current period."""
        request = gate.AuthorizeRequest(
            customer=customer,
            asset=asset,
            amount=amount,
            action=action,
            dimensions=dimensions,
            quantities=quantities,
            rate_card=rate_card,
            ttl_seconds=ttl_seconds,
            metadata=metadata,
            idempotency_key=idempotency_key,
            member=member,
            spend_limit=spend_limit,
        )
        return self._run_for_wallet(gate.authorize, request)

    def settle(
        self,
        authorization_id: str,
        amount: int | None = None,
        *,
        quantities: dict[str, Any] | None = None,
        vendor_cost: Decimal | str | int | None = None,
        action: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Settlement:
        return self._run(
            gate.settle,
            authorization_id=authorization_id,
            amount=amount,
            quantities=quantities,
            vendor_cost=vendor_cost,
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
        asset: str | None = None,
        amount: int | None = None,
        *,
        action: str | None = None,
        dimensions: dict[str, Any] | None = None,
        quantities: dict[str, Any] | None = None,
        vendor_cost: Decimal | str | int | None = None,
        rate_card: str = DEFAULT_RATE_CARD,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        member: str | None = None,
    ) -> Charge:
        request = gate.ChargeRequest(
            customer=customer,
            asset=asset,
            amount=amount,
            action=action,
            dimensions=dimensions,
            quantities=quantities,
            vendor_cost=vendor_cost,
            rate_card=rate_card,
            metadata=metadata,
            idempotency_key=idempotency_key,
            member=member,
        )
        return self._run_for_wallet(gate.charge, request)

    # Rate cards
    def publish_rate_card(
        self,
        spec: dict[str, Any],
        *,
        name: str = DEFAULT_RATE_CARD,
        effective_at: datetime | None = None,
        strict: bool = False,
        idempotency_key: str | None = None,
    ) -> PublishedRateCard:
        return self._run(
            rate_cards.publish,
            spec=spec,
            name=name,
            effective_at=effective_at,
            strict=strict,
            idempotency_key=idempotency_key,
        )

    def rate_cards(self, *, name: str | None = None) -> list[RateCardVersion]:
        return self._read(rate_cards.list_versions, name=name)

    def quote(
        self,
        action: str,
        dimensions: dict[str, Any] | None = None,
        quantities: dict[str, Any] | None = None,
        *,
        rate_card: str = DEFAULT_RATE_CARD,
        at: datetime | None = None,
    ) -> Quote:
        return self._read(
            rate_cards.quote,
            action=action,
            dimensions=dimensions,
            quantities=quantities,
            rate_card=rate_card,
            at=at,
        )

    def set_model_price(
        self,
        model: str,
        *,
        input_mtok: Decimal | str | int,
        output_mtok: Decimal | str | int,
        cache_read_mtok: Decimal | str | int | None = None,
        provider: str | None = None,
        effective_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> ModelPrice:
        return self._run(
            pricing.set_model_price,
            model=model,
            input_mtok=input_mtok,
            output_mtok=output_mtok,
            cache_read_mtok=cache_read_mtok,
            provider=provider,
            effective_at=effective_at,
            idempotency_key=idempotency_key,
        )

    def price_quote(
        self,
        action: str,
        dimensions: dict[str, Any] | None = None,
        quantities: dict[str, Any] | None = None,
        *,
        rate_card: str = DEFAULT_RATE_CARD,
        at: datetime | None = None,
    ) -> PriceQuote:
        """`quote` as a result: the breakdown, its vendor cost and the card version used."""
        return self._read(
            pricing.quote,
            action=action,
            dimensions=dimensions,
            quantities=quantities,
            rate_card=rate_card,
            at=at,
        )

    def margin_report(
        self,
        *,
        start: datetime,
        end: datetime,
        by: str = "action",
        asset: str | None = None,
        rate_card: str = DEFAULT_RATE_CARD,
        worst: int = margin.DEFAULT_WORST,
        change: Decimal = margin.DEFAULT_CHANGE,
        target: Decimal = margin.DEFAULT_TARGET,
    ) -> FullMarginReport:
        """Margin of the charges created in [start, end): see `services.margin`."""
        request = margin.MarginRequest(
            start=start, end=end, by=by, asset=asset, worst=worst, change=change, target=target
        )
        return self._read(margin.tenant_margin_report, request=request, rate_card=rate_card)

    def authorization(self, authorization_id: str) -> Authorization:
        return self._read(gate.get_authorization, authorization_id=authorization_id)

    # Reading
    def wallet(self, customer: str) -> Wallet:
        return self._read(queries.get_wallet, customer=customer)

    def lots(
        self, customer: str, *, asset: str | None = None, include_closed: bool = False
    ) -> list[Lot]:
        return self._read(
            queries.list_lots,
            customer=customer,
            asset=asset,
            include_closed=include_closed,
        )

    def ledger(
        self,
        customer: str,
        *,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
        asset: str | None = None,
    ) -> LedgerPage:
        return self._read(
            queries.ledger_history,
            customer=customer,
            limit=limit,
            cursor=cursor,
            asset=asset,
        )

    # API keys
    def create_api_key(
        self, name: str = "", *, idempotency_key: str | None = None
    ) -> CreatedApiKey:
        return self._run(api_keys.create_key, name=name, idempotency_key=idempotency_key)

    def api_keys(self) -> list[ApiKey]:
        return self._read(api_keys.list_keys)

    def revoke_api_key(self, key_id: str, *, idempotency_key: str | None = None) -> ApiKey:
        return self._run(api_keys.revoke_key, key_id=key_id, idempotency_key=idempotency_key)

    def rotate_api_key(self, key_id: str, *, idempotency_key: str | None = None) -> CreatedApiKey:
        return self._run(api_keys.rotate_key, key_id=key_id, idempotency_key=idempotency_key)

    # Webhooks
    def create_webhook_endpoint(
        self,
        url: str,
        *,
        event_types: list[str] | None = None,
        description: str = "",
        enabled: bool = True,
        idempotency_key: str | None = None,
    ) -> CreatedWebhookEndpoint:
        return self._run(
            webhook_service.create_endpoint,
            url=url,
            event_types=event_types,
            description=description,
            enabled=enabled,
            idempotency_key=idempotency_key,
        )

    def webhook_endpoints(self) -> list[WebhookEndpoint]:
        return self._read(webhook_service.list_endpoints).data

    def webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        return self._read(webhook_service.get_endpoint, endpoint_id=endpoint_id)

    def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        idempotency_key: str | None = None,
    ) -> WebhookEndpoint:
        return self._run(
            webhook_service.update_endpoint,
            endpoint_id=endpoint_id,
            url=url,
            event_types=event_types,
            description=description,
            enabled=enabled,
            idempotency_key=idempotency_key,
        )

    def rotate_webhook_secret(
        self, endpoint_id: str, *, idempotency_key: str | None = None
    ) -> CreatedWebhookEndpoint:
        return self._run(
            webhook_service.rotate_secret, endpoint_id=endpoint_id, idempotency_key=idempotency_key
        )

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        self._run(webhook_service.delete_endpoint, endpoint_id=endpoint_id)

    def webhook_deliveries(
        self,
        *,
        endpoint: str | None = None,
        event: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> WebhookDeliveryPage:
        return self._read(
            webhook_service.list_deliveries,
            endpoint_id=endpoint,
            event_id=event,
            event_type=event_type,
            status=status,
            limit=limit,
            cursor=cursor,
        )

    def webhook_delivery(self, delivery_id: str) -> WebhookDelivery:
        return self._read(webhook_service.get_delivery, delivery_id=delivery_id)

    def replay_webhook_delivery(
        self, delivery_id: str, *, idempotency_key: str | None = None
    ) -> WebhookDelivery:
        return self._run(
            webhook_service.replay_delivery,
            delivery_id=delivery_id,
            idempotency_key=idempotency_key,
        )

    def replay_event(
        self, event_id: str, *, endpoint: str | None = None, idempotency_key: str | None = None
    ) -> list[WebhookDelivery]:
        return self._run(
            webhook_service.replay_event,
            event_id=event_id,
            endpoint_id=endpoint,
            idempotency_key=idempotency_key,
        ).data

    def send_test_webhook(
        self, endpoint_id: str, *, idempotency_key: str | None = None
    ) -> WebhookDelivery:
        return self._run(
            webhook_service.send_test_event,
            endpoint_id=endpoint_id,
            idempotency_key=idempotency_key,
        )

    def deliver_webhooks(self, sender: WebhookSender | None = None) -> WebhookReport:
        """One delivery round for this tenant, for use without `creditgate serve`'s worker."""
        if sender is not None:
            return deliver_webhooks(self.cg.db, self.cg.clock, sender, tenant_id=self.tenant_id)
        allow_private = self.cg.operator.allow_private_webhook_targets
        with WebhookSender(allow_private_targets=allow_private) as own:
            return deliver_webhooks(self.cg.db, self.cg.clock, own, tenant_id=self.tenant_id)

    # Refunds and revenue
    def refund_charge(
        self,
        charge_id: str,
        *,
        reason: str,
        amount: int | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> refunds.Refund:
        return self._run(
            refunds.refund_charge,
            charge_id=charge_id,
            reason=reason,
            amount=amount,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )

    def revenue_report(
        self, *, start: datetime, end: datetime, customer: str | None = None
    ) -> revenue.RevenueReport:
        return self._read(revenue.revenue_report, start=start, end=end, customer=customer)

    # Time-driven work
    def run_sweeps(self) -> SweepReport:
        return self._run(sweeps.run_sweeps)

    def expire_holds(self) -> int:
        return self._run(sweeps.expire_holds)

    def expire_lots(self) -> SweepReport:
        return self._run(sweeps.expire_lots)

    def activate_lots(self) -> int:
        return self._run(grants.activate_lots)
