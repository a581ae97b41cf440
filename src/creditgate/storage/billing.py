"""The billing services' statements: packs, exchange rates, provider accounts, payment
methods, purchases and their refunds, campaigns and plans.

Each function takes a connection and plain values and returns rows (or plain values); the
billing services (services/billing/) check, decide and answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from creditgate.domain.lots import LotKind
from creditgate.storage.tables import (
    auto_top_ups,
    exchange_rates,
    lots,
    packs,
    payment_methods,
    payment_providers,
    purchase_refunds,
    purchases,
)

PENDING = "pending"


def insert_if_new(conn: Connection, table: Table, values: Mapping[str, Any]) -> bool:
    """Insert a row unless one with its key exists; whether it was inserted.

    Told by RETURNING: the driver's rowcount for ON CONFLICT DO NOTHING is not reliable.
    """
    ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    key = next(iter(table.primary_key.columns))
    stmt = ins(table).values(**values).on_conflict_do_nothing().returning(key)
    return conn.execute(stmt).first() is not None


def tenant_row(conn: Connection, table: Table, tenant_id: str, row_id: str) -> Any | None:
    """A row of the tenant's by its id, or None."""
    return conn.execute(
        select(table).where(table.c.id == row_id, table.c.tenant_id == tenant_id)
    ).first()


def row_by_id(conn: Connection, table: Table, row_id: str) -> Any:
    """A row known to exist, by its id."""
    return conn.execute(select(table).where(table.c.id == row_id)).one()


def code_taken(conn: Connection, table: Table, tenant_id: str, code: str) -> bool:
    """Whether the tenant has a pack, plan or campaign with this code."""
    found = conn.execute(
        select(table.c.id).where(table.c.tenant_id == tenant_id, table.c.code == code)
    ).first()
    return found is not None


def insert_row(conn: Connection, table: Table, values: Mapping[str, Any]) -> None:
    conn.execute(table.insert().values(**values))


def by_id_or_code(conn: Connection, table: Table, tenant_id: str, key: str) -> Any | None:
    """A pack or plan of the tenant's by its id or its code, or None."""
    return conn.execute(
        select(table).where(
            table.c.tenant_id == tenant_id, or_(table.c.id == key, table.c.code == key)
        )
    ).first()


# Packs


def list_packs(conn: Connection, tenant_id: str, *, include_inactive: bool) -> Sequence[Any]:
    query = select(packs).where(packs.c.tenant_id == tenant_id)
    if not include_inactive:
        query = query.where(packs.c.active == 1)
    return conn.execute(query.order_by(packs.c.code)).all()


def set_pack_active(conn: Connection, pack_id: str, active: bool) -> None:
    conn.execute(update(packs).where(packs.c.id == pack_id).values(active=int(bool(active))))


# Exchange rates


def update_exchange_rate(
    conn: Connection, tenant_id: str, currency: str, asset: str, rate: Decimal, now: datetime
) -> None:
    conn.execute(
        update(exchange_rates)
        .where(
            exchange_rates.c.tenant_id == tenant_id,
            exchange_rates.c.currency == currency,
            exchange_rates.c.asset == asset,
        )
        .values(rate=rate, updated_at=now)
    )


def list_exchange_rates(conn: Connection, tenant_id: str) -> Sequence[Any]:
    return conn.execute(
        select(exchange_rates)
        .where(exchange_rates.c.tenant_id == tenant_id)
        .order_by(exchange_rates.c.currency, exchange_rates.c.asset)
    ).all()


def exchange_rate(conn: Connection, tenant_id: str, currency: str, asset: str) -> Decimal | None:
    rate: Decimal | None = conn.execute(
        select(exchange_rates.c.rate).where(
            exchange_rates.c.tenant_id == tenant_id,
            exchange_rates.c.currency == currency,
            exchange_rates.c.asset == asset,
        )
    ).scalar()
    return rate


# Provider accounts and payment methods


def update_provider_config(
    conn: Connection, tenant_id: str, provider: str, config: Mapping[str, Any], now: datetime
) -> None:
    conn.execute(
        update(payment_providers)
        .where(
            payment_providers.c.tenant_id == tenant_id,
            payment_providers.c.provider == provider,
        )
        .values(config=dict(config), updated_at=now)
    )


def list_provider_accounts(conn: Connection, tenant_id: str) -> Sequence[Any]:
    return conn.execute(
        select(payment_providers)
        .where(payment_providers.c.tenant_id == tenant_id)
        .order_by(payment_providers.c.provider)
    ).all()


def provider_config(conn: Connection, tenant_id: str, provider: str) -> Any:
    """The provider account's stored (sealed) config, or None."""
    return conn.execute(
        select(payment_providers.c.config).where(
            payment_providers.c.tenant_id == tenant_id,
            payment_providers.c.provider == provider,
        )
    ).scalar()


def replace_payment_method(
    conn: Connection, wallet_id: str, provider: str, values: Mapping[str, Any]
) -> None:
    conn.execute(
        update(payment_methods)
        .where(payment_methods.c.wallet_id == wallet_id, payment_methods.c.provider == provider)
        .values(**values)
    )


def payment_method(conn: Connection, wallet_id: str, provider: str) -> Any | None:
    return conn.execute(
        select(payment_methods).where(
            payment_methods.c.wallet_id == wallet_id, payment_methods.c.provider == provider
        )
    ).first()


def list_payment_methods(conn: Connection, wallet_id: str) -> Sequence[Any]:
    return conn.execute(
        select(payment_methods)
        .where(payment_methods.c.wallet_id == wallet_id)
        .order_by(payment_methods.c.provider)
    ).all()


# Purchases


def list_purchases(conn: Connection, wallet_id: str, limit: int) -> Sequence[Any]:
    return conn.execute(
        select(purchases)
        .where(purchases.c.wallet_id == wallet_id)
        .order_by(purchases.c.created_at.desc(), purchases.c.id.desc())
        .limit(limit)
    ).all()


def purchase_by_ref(conn: Connection, tenant_id: str, ref: str) -> Any | None:
    """A purchase of the tenant's by the provider's id of its checkout or its payment."""
    return conn.execute(
        select(purchases).where(
            purchases.c.tenant_id == tenant_id,
            (purchases.c.provider_ref == ref) | (purchases.c.payment_ref == ref),
        )
    ).first()


def update_purchase(conn: Connection, purchase_id: str, values: Mapping[str, Any]) -> None:
    conn.execute(update(purchases).where(purchases.c.id == purchase_id).values(**values))


def claim_purchase_paid(conn: Connection, purchase_id: str, now: datetime) -> bool:
    """Mark a pending or failed purchase paid; whether this call did."""
    claimed = conn.execute(
        update(purchases)
        .where(purchases.c.id == purchase_id, purchases.c.status.in_((PENDING, "failed")))
        .values(status="paid", paid_at=now, failure_reason=None)
    ).rowcount
    return bool(claimed)


def claim_purchase_failed(
    conn: Connection, purchase_id: str, reason: str, payment_ref: str | None, now: datetime
) -> bool:
    """Mark a pending purchase failed; whether this call did."""
    claimed = conn.execute(
        update(purchases)
        .where(purchases.c.id == purchase_id, purchases.c.status == PENDING)
        .values(
            status="failed",
            failed_at=now,
            failure_reason=reason,
            # Kept if a concurrent call recorded one since the row was read.
            payment_ref=func.coalesce(purchases.c.payment_ref, payment_ref),
        )
    ).rowcount
    return bool(claimed)


def release_paid_top_up(conn: Connection, purchase_id: str, now: datetime) -> None:
    """Free the auto top-up slot a paid purchase held, clearing its failures."""
    conn.execute(
        update(auto_top_ups)
        .where(auto_top_ups.c.in_flight_purchase_id == purchase_id)
        .values(
            in_flight_purchase_id=None,
            in_flight_sent_at=None,
            failures=0,
            backoff_until=None,
            updated_at=now,
        )
    )


def top_up_in_flight(conn: Connection, purchase_id: str) -> Any | None:
    """The auto top-up waiting on this purchase, or None."""
    return conn.execute(
        select(auto_top_ups).where(auto_top_ups.c.in_flight_purchase_id == purchase_id)
    ).first()


def release_failed_top_up(
    conn: Connection, setting: Any, purchase_id: str, values: Mapping[str, Any]
) -> None:
    """Free the auto top-up slot a failed purchase held, with the setting's new values."""
    conn.execute(
        update(auto_top_ups)
        .where(
            auto_top_ups.c.wallet_id == setting.wallet_id,
            auto_top_ups.c.asset == setting.asset,
            auto_top_ups.c.in_flight_purchase_id == purchase_id,
        )
        .values(in_flight_purchase_id=None, in_flight_sent_at=None, **values)
    )


# Purchase refunds


def refunds_of(conn: Connection, purchase_id: str) -> Sequence[Any]:
    """A purchase's refunds, oldest first."""
    return conn.execute(
        select(purchase_refunds)
        .where(purchase_refunds.c.purchase_id == purchase_id)
        .order_by(purchase_refunds.c.created_at, purchase_refunds.c.id)
    ).all()


def pending_refunds(conn: Connection, tenant_id: str, purchase_id: str) -> Sequence[Any]:
    return conn.execute(
        select(purchase_refunds).where(
            purchase_refunds.c.tenant_id == tenant_id,
            purchase_refunds.c.purchase_id == purchase_id,
            purchase_refunds.c.status == PENDING,
        )
    ).all()


def first_pending_refund(conn: Connection, purchase_id: str) -> str | None:
    """The id of a refund of the purchase still waiting for the provider, if any."""
    found = conn.execute(
        select(purchase_refunds.c.id).where(
            purchase_refunds.c.purchase_id == purchase_id, purchase_refunds.c.status == PENDING
        )
    ).first()
    return None if found is None else str(found.id)


def lot(conn: Connection, lot_id: str) -> Any:
    return conn.execute(select(lots).where(lots.c.id == lot_id)).one()


def given_back_to(conn: Connection, wallet_id: str, asset: str, lot_id: str) -> int:
    """Credit that refunds of charges gave back in refund lots made for a closed lot."""
    return sum(
        int(r.amount)
        for r in conn.execute(
            select(lots.c.amount, lots.c.metadata).where(
                lots.c.wallet_id == wallet_id,
                lots.c.asset == asset,
                lots.c.kind == LotKind.REFUND.value,
            )
        )
        if (r.metadata or {}).get("refund_of") == lot_id
    )


def take_refunded_credit(
    conn: Connection, lot_id: str, *, from_unused: int, from_consumed: int
) -> bool:
    """Void a refund's credit on its lot (unused off remaining, consumed off consumed);
    False if the lot no longer has the unused credit."""
    taken = conn.execute(
        update(lots)
        .where(lots.c.id == lot_id, lots.c.remaining >= from_unused)
        .values(
            remaining=lots.c.remaining - from_unused,
            consumed=lots.c.consumed - from_consumed,
            voided=lots.c.voided + from_unused + from_consumed,
        )
    ).rowcount
    return bool(taken == 1)


def repay_debt_from_lot(conn: Connection, lot_id: str, repay: int) -> None:
    """Credit arriving in a lot pays the wallet's debt: it is consumed at once."""
    conn.execute(
        update(lots)
        .where(lots.c.id == lot_id)
        .values(remaining=lots.c.remaining - repay, consumed=lots.c.consumed + repay)
    )


def set_refunded(
    conn: Connection, purchase_id: str, refunded: int, refunded_money: Decimal
) -> None:
    conn.execute(
        update(purchases)
        .where(purchases.c.id == purchase_id)
        .values(refunded=refunded, refunded_money=refunded_money)
    )


def unrefund(conn: Connection, purchase_id: str, amount: int, refunded_money: Decimal) -> None:
    """A refund that failed: its credit no longer counts as refunded."""
    conn.execute(
        update(purchases)
        .where(purchases.c.id == purchase_id)
        .values(refunded=purchases.c.refunded - amount, refunded_money=refunded_money)
    )


def insert_refund(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(purchase_refunds).values(**values))


def answer_refund(conn: Connection, refund_id: str, values: Mapping[str, Any]) -> bool:
    """Record the provider's answer on a refund still pending; whether it was."""
    changed = conn.execute(
        update(purchase_refunds)
        .where(purchase_refunds.c.id == refund_id, purchase_refunds.c.status == PENDING)
        .values(**values)
    ).rowcount
    return bool(changed)


# Campaigns and plans


def list_by_code(conn: Connection, table: Table, tenant_id: str) -> Sequence[Any]:
    """The tenant's campaigns or plans, by code."""
    return conn.execute(
        select(table).where(table.c.tenant_id == tenant_id).order_by(table.c.code)
    ).all()
