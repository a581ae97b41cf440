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

from sqlalchemy import ColumnElement, Connection, Select, Table, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from creditgate.domain.lots import LotKind
from creditgate.storage.tables import (
    auto_top_ups,
    campaign_redemptions,
    campaigns,
    exchange_rates,
    lots,
    packs,
    payment_methods,
    payment_providers,
    provider_events,
    purchase_refunds,
    purchases,
    subscription_periods,
    subscriptions,
    wallet_balances,
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


def campaign_by_code(conn: Connection, tenant_id: str, code: str) -> Any | None:
    return conn.execute(
        select(campaigns).where(campaigns.c.tenant_id == tenant_id, campaigns.c.code == code)
    ).first()


def redemptions_by(conn: Connection, campaign_id: str, wallet_id: str) -> int:
    """How many times the wallet has redeemed the campaign."""
    return int(
        conn.execute(
            select(func.count()).where(
                campaign_redemptions.c.campaign_id == campaign_id,
                campaign_redemptions.c.wallet_id == wallet_id,
            )
        ).scalar_one()
    )


def count_redemption(conn: Connection, campaign_id: str, max_redemptions: int | None) -> bool:
    """Count one more redemption of the campaign, within its total limit if it has one;
    False when none is left."""
    query = update(campaigns).where(campaigns.c.id == campaign_id)
    if max_redemptions is not None:
        query = query.where(campaigns.c.redemptions < max_redemptions)
    counted = conn.execute(query.values(redemptions=campaigns.c.redemptions + 1)).rowcount
    return bool(counted)


# Provider events


def set_provider_event_outcome(
    conn: Connection, tenant_id: str, provider: str, event_id: str, outcome: str
) -> None:
    conn.execute(
        update(provider_events)
        .where(
            provider_events.c.tenant_id == tenant_id,
            provider_events.c.provider == provider,
            provider_events.c.event_id == event_id,
        )
        .values(outcome=outcome)
    )


# Subscriptions and their periods


def subscription(conn: Connection, tenant_id: str, subscription_id: str, *, lock: bool) -> Any:
    """A subscription of the tenant's (locked for this transaction with `lock`), or None."""
    query = select(subscriptions).where(
        subscriptions.c.id == subscription_id, subscriptions.c.tenant_id == tenant_id
    )
    return conn.execute(query.with_for_update() if lock else query).first()


def periods_of(conn: Connection, subscription_id: str) -> Sequence[Any]:
    """A subscription's periods in order."""
    return conn.execute(
        select(subscription_periods)
        .where(subscription_periods.c.subscription_id == subscription_id)
        .order_by(subscription_periods.c.period_index)
    ).all()


def subscriptions_of(conn: Connection, wallet_id: str) -> Sequence[Any]:
    """A wallet's subscriptions, newest first."""
    return conn.execute(
        select(subscriptions)
        .where(subscriptions.c.wallet_id == wallet_id)
        .order_by(subscriptions.c.created_at.desc(), subscriptions.c.id.desc())
    ).all()


def live_subscription(conn: Connection, wallet_id: str) -> str | None:
    """The id of the wallet's live (active) subscription, if any."""
    found = conn.execute(
        select(subscriptions.c.id).where(subscriptions.c.live_wallet_id == wallet_id)
    ).first()
    return None if found is None else str(found.id)


def insert_once(conn: Connection, table: Table, values: Mapping[str, Any]) -> bool:
    """Insert a row; False when its key (or a unique column) is already taken, in which
    case the transaction must start over."""
    try:
        conn.execute(table.insert().values(**values))
    except IntegrityError:
        return False
    return True


def update_subscription(conn: Connection, subscription_id: str, values: Mapping[str, Any]) -> None:
    conn.execute(
        update(subscriptions).where(subscriptions.c.id == subscription_id).values(**values)
    )


def advance_subscription(
    conn: Connection, subscription_id: str, period_index: int, values: Mapping[str, Any]
) -> bool:
    """Move an active subscription on from `period_index`; whether this call did."""
    claimed = conn.execute(
        update(subscriptions)
        .where(
            subscriptions.c.id == subscription_id,
            subscriptions.c.period_index == period_index,
            subscriptions.c.status == "active",
        )
        .values(**values)
    ).rowcount
    return bool(claimed == 1)


def _period_ended(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (subscriptions.c.status == "active", subscriptions.c.current_period_end <= now)


def tenants_with_periods_ended(now: datetime) -> Select[Any]:
    """The tenants with a subscription `due_subscriptions` would find at `now`."""
    return select(subscriptions.c.tenant_id).where(*_period_ended(now))


def due_subscriptions(conn: Connection, tenant_id: str, now: datetime, limit: int) -> list[str]:
    """Ids of the tenant's active subscriptions whose period has ended, soonest first."""
    rows = conn.execute(
        select(subscriptions.c.id)
        .where(subscriptions.c.tenant_id == tenant_id, *_period_ended(now))
        .order_by(subscriptions.c.current_period_end, subscriptions.c.id)
        .limit(limit)
    ).all()
    return [str(sub_id) for (sub_id,) in rows]


def set_period_lots(
    conn: Connection,
    subscription_id: str,
    period_index: int,
    values: Mapping[str, Any],
) -> None:
    """Record the lots a period granted (lot_id, rollover_lot_id, rolled_over)."""
    conn.execute(
        update(subscription_periods)
        .where(
            subscription_periods.c.subscription_id == subscription_id,
            subscription_periods.c.period_index == period_index,
        )
        .values(**values)
    )


def period_lot(conn: Connection, subscription_id: str, period_index: int) -> str | None:
    """The included lot a period granted, if any."""
    lot_id: str | None = conn.execute(
        select(subscription_periods.c.lot_id).where(
            subscription_periods.c.subscription_id == subscription_id,
            subscription_periods.c.period_index == period_index,
        )
    ).scalar()
    return lot_id


def low_balance_threshold(conn: Connection, wallet_id: str, asset: str) -> int | None:
    threshold: int | None = conn.execute(
        select(wallet_balances.c.low_balance_threshold).where(
            wallet_balances.c.wallet_id == wallet_id, wallet_balances.c.asset == asset
        )
    ).scalar()
    return threshold


def lot_owner(conn: Connection, tenant_id: str, lot_id: str) -> Any:
    """The wallet_id and asset of a lot of the tenant's."""
    return conn.execute(
        select(lots.c.wallet_id, lots.c.asset).where(
            lots.c.id == lot_id, lots.c.tenant_id == tenant_id
        )
    ).one()


def lower_posted(conn: Connection, wallet_id: str, asset: str, amount: int, now: datetime) -> None:
    """Take `amount` off a balance's posted credit, without balance events (a rollover
    grants it again in the same transaction)."""
    conn.execute(
        update(wallet_balances)
        .where(wallet_balances.c.wallet_id == wallet_id, wallet_balances.c.asset == asset)
        .values(posted=wallet_balances.c.posted - amount, updated_at=now)
    )


def carry_out_of_lot(conn: Connection, lot_id: str, from_wallet: int, from_expired: int) -> None:
    """Void what a rollover carries out of a lot: from its remaining and from its expired."""
    conn.execute(
        update(lots)
        .where(lots.c.id == lot_id)
        .values(
            remaining=lots.c.remaining - from_wallet,
            expired=lots.c.expired - from_expired,
            voided=lots.c.voided + from_wallet + from_expired,
        )
    )
