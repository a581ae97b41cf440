"""The statements of collecting money: plan fees as invoices, their dunning, the overage price
and the debt billed per cycle. The services (services/billing/plan_fees.py, overage.py)
check, decide and answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, case, func, select, update

from creditgate.storage.tables import (
    customers,
    ledger_entries,
    ledger_transactions,
    lots,
    overage_bills,
    overage_settings,
    plans,
    purchases,
    subscription_periods,
    subscriptions,
    tenants,
    wallet_balances,
)

OPEN, PAID, FAILED = "open", "paid", "failed"
_UNPAID = (OPEN, FAILED)


# Plan fees


def _with_customer() -> Select[Any]:
    """Periods with their subscription's customer (its external id), which answers and
    events name."""
    return select(subscription_periods, subscriptions.c.customer).join(
        subscriptions, subscriptions.c.id == subscription_periods.c.subscription_id
    )


def period(conn: Connection, subscription_id: str, index: int) -> Any:
    return conn.execute(
        _with_customer().where(
            subscription_periods.c.subscription_id == subscription_id,
            subscription_periods.c.period_index == index,
        )
    ).first()


def period_by_invoice(conn: Connection, tenant_id: str, invoice_id: str) -> Any | None:
    return conn.execute(
        _with_customer().where(
            subscription_periods.c.tenant_id == tenant_id,
            subscription_periods.c.invoice_id == invoice_id,
        )
    ).first()


def subscription_by_ref(conn: Connection, tenant_id: str, ref: str) -> Any | None:
    return conn.execute(
        select(subscriptions).where(
            subscriptions.c.tenant_id == tenant_id, subscriptions.c.provider_ref == ref
        )
    ).first()


def claim_period_paid(
    conn: Connection, subscription_id: str, index: int, values: Mapping[str, Any]
) -> bool:
    """Mark an unpaid (open or failed) period fee paid; whether this call did. A payment
    reported again, or a failure reported after it, finds it paid and changes nothing."""
    claimed = conn.execute(
        update(subscription_periods)
        .where(
            subscription_periods.c.subscription_id == subscription_id,
            subscription_periods.c.period_index == index,
            subscription_periods.c.fee_status.in_(_UNPAID),
        )
        .values(fee_status=PAID, **values)
    ).rowcount
    return bool(claimed == 1)


def claim_period_failed(
    conn: Connection, subscription_id: str, index: int, reason: str, now: datetime, ref: str | None
) -> bool:
    """Record a failed attempt at an unpaid period fee (the first failure's time is kept:
    the grace period counts from it); whether this call did."""
    values: dict[str, Any] = {
        "fee_status": FAILED,
        "failure_reason": reason,
        "attempts": subscription_periods.c.attempts + 1,
        "failed_at": func.coalesce(subscription_periods.c.failed_at, now),
    }
    if ref:
        values["invoice_ref"] = func.coalesce(subscription_periods.c.invoice_ref, ref)
    claimed = conn.execute(
        update(subscription_periods)
        .where(
            subscription_periods.c.subscription_id == subscription_id,
            subscription_periods.c.period_index == index,
            subscription_periods.c.fee_status.in_(_UNPAID),
        )
        .values(**values)
    ).rowcount
    return bool(claimed == 1)


def attach_invoice(
    conn: Connection, subscription_id: str, index: int, ref: str | None, pay_url: str | None
) -> None:
    """Remember the provider's invoice and where it is paid (first ones kept)."""
    values: dict[str, Any] = {}
    if ref:
        values["invoice_ref"] = func.coalesce(subscription_periods.c.invoice_ref, ref)
    if pay_url:
        values["pay_url"] = pay_url
    if values:
        conn.execute(
            update(subscription_periods)
            .where(
                subscription_periods.c.subscription_id == subscription_id,
                subscription_periods.c.period_index == index,
            )
            .values(**values)
        )


def _unpaid_periods(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        subscription_periods.c.fee_status == FAILED,
        subscription_periods.c.lot_id.is_not(None),
        subscription_periods.c.withheld == 0,
        subscription_periods.c.period_end > now,
        plans.c.grant_before_payment == 1,
    )


def due_withholdings(conn: Connection, tenant_id: str, now: datetime) -> Sequence[Any]:
    """Periods granted before payment whose payment failed and is still unpaid, with their
    plan's grace period, and credit not yet withheld."""
    return conn.execute(
        _with_customer()
        .add_columns(plans.c.grace_days)
        .join(plans, plans.c.id == subscription_periods.c.plan_id)
        .where(subscription_periods.c.tenant_id == tenant_id, *_unpaid_periods(now))
    ).all()


def withhold(conn: Connection, subscription_id: str, index: int, amount: int) -> bool:
    """Record credit withheld from a period, once."""
    claimed = conn.execute(
        update(subscription_periods)
        .where(
            subscription_periods.c.subscription_id == subscription_id,
            subscription_periods.c.period_index == index,
            subscription_periods.c.withheld == 0,
            subscription_periods.c.fee_status == FAILED,
        )
        .values(withheld=amount)
    ).rowcount
    return bool(claimed == 1)


def periods_of_wallet(conn: Connection, wallet_id: str) -> Sequence[Any]:
    """The invoiced periods of a wallet's subscriptions, newest first, with the customer."""
    return conn.execute(
        _with_customer()
        .where(
            subscription_periods.c.wallet_id == wallet_id,
            subscription_periods.c.invoice_id.is_not(None),
        )
        .order_by(subscription_periods.c.period_start.desc())
    ).all()


# Test clocks on Stripe


def stripe_test_clock(conn: Connection, tenant_id: str) -> tuple[str, str | None]:
    row = conn.execute(
        select(tenants.c.mode, tenants.c.stripe_test_clock).where(tenants.c.id == tenant_id)
    ).one()
    return str(row.mode), row.stripe_test_clock


def set_stripe_test_clock(conn: Connection, tenant_id: str, clock: str) -> None:
    conn.execute(
        update(tenants)
        .where(tenants.c.id == tenant_id, tenants.c.stripe_test_clock.is_(None))
        .values(stripe_test_clock=clock)
    )


# Overage


def overage_setting(conn: Connection, tenant_id: str, asset: str) -> Any | None:
    return conn.execute(
        select(overage_settings).where(
            overage_settings.c.tenant_id == tenant_id, overage_settings.c.asset == asset
        )
    ).first()


def overage_settings_of(conn: Connection, tenant_id: str) -> Sequence[Any]:
    return conn.execute(
        select(overage_settings)
        .where(overage_settings.c.tenant_id == tenant_id)
        .order_by(overage_settings.c.asset)
    ).all()


def put_overage_setting(conn: Connection, values: Mapping[str, Any]) -> None:
    changed = conn.execute(
        update(overage_settings)
        .where(
            overage_settings.c.tenant_id == values["tenant_id"],
            overage_settings.c.asset == values["asset"],
        )
        .values(**values)
    ).rowcount
    if not changed:
        conn.execute(overage_settings.insert().values(**values))


_IN_DEBT = wallet_balances.c.debt > 0


def wallets_in_debt(
    conn: Connection, tenant_id: str, asset: str, limit: int, after: str = ""
) -> Sequence[Any]:
    """Balance rows of an asset that owe something, with their customer, in wallet order
    from the first wallet after `after`."""
    return conn.execute(
        select(wallet_balances, customers.c.external_id.label("customer"))
        .join(customers, customers.c.wallet_id == wallet_balances.c.wallet_id)
        .where(
            wallet_balances.c.tenant_id == tenant_id,
            wallet_balances.c.asset == asset,
            _IN_DEBT,
            wallet_balances.c.wallet_id > after,
        )
        .order_by(wallet_balances.c.wallet_id)
        .limit(limit)
    ).all()


def posted_before(conn: Connection, wallet_id: str, asset: str, before: datetime) -> int:
    """What the ledger says the wallet's posted balance was just before `before`.

    The balance row's `posted` is the sum of the wallet's ledger entries (`verify`'s third
    invariant), so this is `posted` less what the wallet's transactions since `before`
    moved, both read in one statement (one snapshot). The transactions since `before` are
    read down `ix_ledger_transactions_wallet_time`: the cost is the cycle's, not the
    wallet's whole history, which a billing run would read again for each wallet in debt."""
    # The entries are filtered in the sum, not the WHERE clause: with no condition of
    # their own, the planner reaches them only from the transactions (a filter on them
    # looked so selective that it chose to scan every entry of the ledger instead).
    moved = case((ledger_entries.c.account == "wallet", ledger_entries.c.amount), else_=0)
    since = (
        select(func.coalesce(func.sum(moved), 0))
        .select_from(ledger_transactions)
        .join(ledger_entries, ledger_entries.c.transaction_id == ledger_transactions.c.id)
        .where(
            ledger_transactions.c.wallet_id == wallet_id,
            ledger_transactions.c.asset == asset,
            ledger_transactions.c.created_at >= before,
        )
        .scalar_subquery()
    )
    total = conn.execute(
        select(wallet_balances.c.posted - since).where(
            wallet_balances.c.wallet_id == wallet_id, wallet_balances.c.asset == asset
        )
    ).scalar_one_or_none()
    return 0 if total is None else int(total)  # no balance row: nothing was ever posted


def open_billed_debt(conn: Connection, wallet_id: str, asset: str) -> int:
    """Debt billed and not yet paid or written off (pending or failed bills)."""
    total = conn.execute(
        select(func.coalesce(func.sum(purchases.c.amount), 0)).where(
            purchases.c.wallet_id == wallet_id,
            purchases.c.asset == asset,
            purchases.c.origin == "overage",
            purchases.c.status.in_(("pending", "failed")),
        )
    ).scalar_one()
    return int(total)


def bills_in_cycle(conn: Connection, wallet_id: str, asset: str, prefix: str) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                overage_bills.c.wallet_id == wallet_id,
                overage_bills.c.asset == asset,
                overage_bills.c.cycle.like(f"{prefix}%"),
            )
        ).scalar_one()
    )


def bill_of(conn: Connection, purchase_id: str) -> Any | None:
    return conn.execute(
        select(overage_bills).where(overage_bills.c.purchase_id == purchase_id)
    ).first()


def mark_bill_stopped(conn: Connection, purchase_id: str) -> None:
    conn.execute(
        update(overage_bills).where(overage_bills.c.purchase_id == purchase_id).values(stopped=1)
    )


def _unanswered(sent_before: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        purchases.c.origin == "overage",
        purchases.c.provider == "stripe",
        purchases.c.status == "pending",
        purchases.c.provider_ref.is_(None),
        overage_bills.c.created_at < sent_before,
    )


def unsent_bills(conn: Connection, tenant_id: str, sent_before: datetime) -> Sequence[Any]:
    """Overage purchases through a provider that were never answered (no provider ref),
    billed before `sent_before`: sent again under the same idempotency key."""
    return conn.execute(
        select(purchases.c.id)
        .join(overage_bills, overage_bills.c.purchase_id == purchases.c.id)
        .where(purchases.c.tenant_id == tenant_id, *_unanswered(sent_before))
        .order_by(purchases.c.created_at)
    ).all()


def tenants_with_collection_due(now: datetime, sent_before: datetime) -> dict[str, Select[Any]]:
    """Reads of the tenants the collection round has work for: periods whose credit may be
    withheld (their grace is checked per period), wallets owing an asset billed in arrears
    (whether a bill is due is decided per wallet), and bills never answered before
    `sent_before`, on the predicates of the reads above; by read."""
    return {
        "due_withholdings": select(subscription_periods.c.tenant_id)
        .join(plans, plans.c.id == subscription_periods.c.plan_id)
        .where(*_unpaid_periods(now)),
        "wallets_in_debt": select(overage_settings.c.tenant_id)
        .join(
            wallet_balances,
            (wallet_balances.c.tenant_id == overage_settings.c.tenant_id)
            & (wallet_balances.c.asset == overage_settings.c.asset),
        )
        .where(_IN_DEBT),
        "unsent_bills": select(purchases.c.tenant_id)
        .join(overage_bills, overage_bills.c.purchase_id == purchases.c.id)
        .where(*_unanswered(sent_before)),
    }


def set_wallet_stopped(conn: Connection, wallet_id: str, asset: str, available: int) -> None:
    """Stop a wallet at where it stands: block if it owes nothing, else an overdraft whose
    limit is what it owes now, so no further usage fits (block would put available below
    block's floor of zero)."""
    if available >= 0:
        values: dict[str, Any] = {"policy": "block", "overdraft_limit": 0}
    else:
        values = {"policy": "overdraft", "overdraft_limit": -available}
    conn.execute(
        update(wallet_balances)
        .where(wallet_balances.c.wallet_id == wallet_id, wallet_balances.c.asset == asset)
        .values(**values)
    )


def claim_written_off(conn: Connection, purchase_id: str, now: datetime) -> bool:
    claimed = conn.execute(
        update(purchases)
        .where(purchases.c.id == purchase_id, purchases.c.status.in_(("pending", "failed")))
        .values(status="written_off", failed_at=func.coalesce(purchases.c.failed_at, now))
    ).rowcount
    return bool(claimed == 1)


# Reports and the verifier


def fee_periods_between(
    conn: Connection, tenant_id: str, start: datetime, end: datetime, wallet_id: str | None
) -> Sequence[Any]:
    """Invoiced periods starting in [start, end), with their plan's asset and the amount
    and cost basis of the included lot they granted."""
    query = (
        select(
            subscription_periods,
            plans.c.asset,
            lots.c.amount.label("lot_amount"),
            lots.c.cost_basis,
        )
        .join(plans, plans.c.id == subscription_periods.c.plan_id)
        .outerjoin(lots, lots.c.id == subscription_periods.c.lot_id)
        .where(
            subscription_periods.c.tenant_id == tenant_id,
            subscription_periods.c.invoice_id.is_not(None),
            subscription_periods.c.period_start >= start,
            subscription_periods.c.period_start < end,
        )
        .order_by(subscription_periods.c.period_start, subscription_periods.c.subscription_id)
    )
    if wallet_id is not None:
        query = query.where(subscription_periods.c.wallet_id == wallet_id)
    return conn.execute(query).all()


def overage_bills_between(
    conn: Connection, tenant_id: str, start: datetime, end: datetime, wallet_id: str | None
) -> Sequence[Any]:
    query = (
        select(purchases.c.status, purchases.c.price, purchases.c.currency)
        .join(overage_bills, overage_bills.c.purchase_id == purchases.c.id)
        .where(
            overage_bills.c.tenant_id == tenant_id,
            overage_bills.c.created_at >= start,
            overage_bills.c.created_at < end,
        )
    )
    if wallet_id is not None:
        query = query.where(overage_bills.c.wallet_id == wallet_id)
    return conn.execute(query).all()


def collected_periods(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    """Every invoiced period (of one tenant, or all) with its plan's terms (the verifier)."""
    query = select(
        subscription_periods,
        plans.c.grant_before_payment,
        plans.c.included,
    ).join(plans, plans.c.id == subscription_periods.c.plan_id)
    query = query.where(subscription_periods.c.invoice_id.is_not(None))
    if tenant_id is not None:
        query = query.where(subscription_periods.c.tenant_id == tenant_id)
    return conn.execute(query).all()


def all_overage_bills(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    """Every overage bill with its purchase and the lot it granted (the verifier)."""
    query = (
        select(
            overage_bills.c.tenant_id,
            overage_bills.c.wallet_id,
            overage_bills.c.debt,
            overage_bills.c.cycle,
            purchases.c.id,
            purchases.c.origin,
            purchases.c.status,
            purchases.c.amount,
            purchases.c.wallet_id.label("purchase_wallet"),
            lots.c.amount.label("lot_amount"),
            lots.c.kind.label("lot_kind"),
            lots.c.cost_basis,
        )
        .join(purchases, purchases.c.id == overage_bills.c.purchase_id)
        .outerjoin(lots, lots.c.id == purchases.c.lot_id)
    )
    if tenant_id is not None:
        query = query.where(overage_bills.c.tenant_id == tenant_id)
    return conn.execute(query).all()
