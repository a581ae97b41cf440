"""Auto top-up: buy a configured pack with the saved payment method when credit runs low.

Crossings are found by a worker job that reads the balance rows, not on the authorize hot
path. Each setting is `armed` while available is at or above its threshold; a crossing
claims the setting with one conditional update (armed, nothing in flight, under the
monthly limit) that also disarms it and records the purchase in flight. Concurrent workers
and charges therefore start at most one purchase per crossing, and none while one is in
flight. A failed payment raises `topup.failed`, re-arms and backs off (5 minutes, doubling
to a day); a paid one frees the slot, and the next purchase waits for the next crossing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from creditgate.domain.billing import backoff, month_of
from creditgate.domain.billing_errors import PaymentProviderError, UnknownPack
from creditgate.domain.errors import InvalidInput
from creditgate.ids import new_id
from creditgate.services import payments, purchases
from creditgate.services._billing import check_count, insert_if_new
from creditgate.services._wallet import emit
from creditgate.services.billing_results import AutoTopUp, AutoTopUpReport, Purchase
from creditgate.services.catalog import check_external_id
from creditgate.services.context import Tx
from creditgate.storage.tables import auto_top_ups, wallet_balances
from creditgate.storage.tables import purchases as purchases_table

# A purchase in flight this long without an answer from the provider is charged again,
# under the same idempotency key (so the provider sees the same payment, not a new one).
STALE_AFTER = timedelta(minutes=2)
MAX_LIMIT = 1_000


def _result(row: Any) -> AutoTopUp:
    return AutoTopUp(
        customer=row.customer,
        asset=row.asset,
        threshold=row.threshold,
        pack_id=row.pack_id,
        provider=row.provider,
        monthly_limit=row.monthly_limit,
        enabled=bool(row.enabled),
        armed=bool(row.armed),
        in_flight_purchase_id=row.in_flight_purchase_id,
        month=row.month,
        month_count=row.month_count,
        failures=row.failures,
        backoff_until=row.backoff_until,
    )


def _row(tx: Tx, wallet_id: str, asset: str) -> Any:
    return tx.conn.execute(
        select(auto_top_ups).where(
            auto_top_ups.c.wallet_id == wallet_id, auto_top_ups.c.asset == asset
        )
    ).first()


def set_auto_top_up(
    tx: Tx,
    *,
    customer: str,
    asset: str,
    threshold: int,
    pack: str,
    provider: str = "stripe",
    monthly_limit: int | None = None,
    enabled: bool = True,
) -> AutoTopUp:
    """Buy `pack` when the customer's available `asset` falls below `threshold`."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    tx.asset(asset)
    threshold = check_count(threshold, "threshold", minimum=0, maximum=2**61)
    limit = check_count(monthly_limit, "monthly_limit", minimum=1, maximum=MAX_LIMIT, optional=True)
    provider = purchases.check_provider(provider)
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", field="enabled")
    pack_row = purchases.pack_row(tx, pack)
    if pack_row.asset != asset:
        raise UnknownPack(f"pack {pack!r} sells {pack_row.asset}, not {asset}", field="pack")
    if provider != "manual":
        purchases.provider_config(tx, provider)
    values = {
        "threshold": threshold,
        "pack_id": pack_row.id,
        "provider": provider,
        "monthly_limit": limit,
        "enabled": int(enabled),
        "updated_at": tx.now,
    }
    created = insert_if_new(
        tx,
        auto_top_ups,
        {
            **values,
            "tenant_id": tx.tenant_id,
            "wallet_id": wallet_id,
            "asset": asset,
            "customer": customer,
            "armed": 1,
            "in_flight_purchase_id": None,
            "month": month_of(tx.now),
            "month_count": 0,
            "failures": 0,
            "backoff_until": None,
        },
    )
    if not created:
        tx.conn.execute(
            update(auto_top_ups)
            .where(auto_top_ups.c.wallet_id == wallet_id, auto_top_ups.c.asset == asset)
            .values(**values)
        )
    return _result(_row(tx, wallet_id, asset))


def get_auto_top_ups(tx: Tx, *, customer: str) -> list[AutoTopUp]:
    wallet_id = tx.wallet_id(check_external_id(customer))
    rows = tx.conn.execute(
        select(auto_top_ups)
        .where(auto_top_ups.c.wallet_id == wallet_id)
        .order_by(auto_top_ups.c.asset)
    )
    return [_result(r) for r in rows]


def after_failure(tx: Tx, purchase_id: str) -> None:
    """Free the slot a failed purchase held, count the failure, back off and re-arm."""
    row = tx.conn.execute(
        select(auto_top_ups).where(auto_top_ups.c.in_flight_purchase_id == purchase_id)
    ).first()
    if row is None:
        return
    failures = row.failures + 1
    same_month = row.month == month_of(tx.now)
    tx.conn.execute(
        update(auto_top_ups)
        .where(
            auto_top_ups.c.wallet_id == row.wallet_id,
            auto_top_ups.c.asset == row.asset,
            auto_top_ups.c.in_flight_purchase_id == purchase_id,
        )
        .values(
            in_flight_purchase_id=None,
            armed=1,
            failures=failures,
            backoff_until=tx.now + backoff(failures),
            # A failed purchase does not count against the monthly limit.
            month_count=max(0, row.month_count - 1) if same_month else row.month_count,
            updated_at=tx.now,
        )
    )


def claim_due(tx: Tx, *, limit: int = 500) -> tuple[list[Purchase], AutoTopUpReport]:
    """Find crossings, claim each with a conditional update and make its purchase pending.

    Also hands back purchases in flight that the provider never answered (a crash between
    the claim and the charge), to be charged again under their idempotency key.
    """
    rows = tx.conn.execute(
        select(
            auto_top_ups,
            func.coalesce(wallet_balances.c.posted - wallet_balances.c.held, 0).label("available"),
        )
        # A wallet that never held the asset has no balance row: it is at zero.
        .outerjoin(
            wallet_balances,
            (wallet_balances.c.wallet_id == auto_top_ups.c.wallet_id)
            & (wallet_balances.c.asset == auto_top_ups.c.asset),
        )
        .where(auto_top_ups.c.tenant_id == tx.tenant_id, auto_top_ups.c.enabled == 1)
        .order_by(auto_top_ups.c.wallet_id, auto_top_ups.c.asset)
        .limit(limit)
    ).all()
    month = month_of(tx.now)
    claimed: list[Purchase] = []
    started = capped = rearmed = 0
    for row in rows:
        this = (auto_top_ups.c.wallet_id == row.wallet_id, auto_top_ups.c.asset == row.asset)
        if row.available >= row.threshold:
            if not row.armed and row.in_flight_purchase_id is None:
                rearmed += tx.conn.execute(
                    update(auto_top_ups)
                    .where(
                        *this,
                        auto_top_ups.c.armed == 0,
                        auto_top_ups.c.in_flight_purchase_id.is_(None),
                    )
                    .values(armed=1, updated_at=tx.now)
                ).rowcount
            continue
        if not row.armed or row.in_flight_purchase_id is not None:
            continue
        if row.backoff_until is not None and row.backoff_until > tx.now:
            continue
        count = row.month_count if row.month == month else 0
        armed_and_free = (
            *this,
            auto_top_ups.c.armed == 1,
            auto_top_ups.c.in_flight_purchase_id.is_(None),
            auto_top_ups.c.enabled == 1,
            auto_top_ups.c.month == row.month,
            auto_top_ups.c.month_count == row.month_count,
        )
        if row.monthly_limit is not None and count >= row.monthly_limit:
            if tx.conn.execute(
                update(auto_top_ups).where(*armed_and_free).values(armed=0, updated_at=tx.now)
            ).rowcount:
                capped += 1
                emit(
                    tx,
                    "topup.failed",
                    row.wallet_id,
                    {
                        "purchase": None,
                        "customer": row.customer,
                        "asset": row.asset,
                        "origin": "auto_top_up",
                        "reason": "monthly_limit_reached",
                    },
                )
            continue
        purchase_id = new_id("pur")
        won = tx.conn.execute(
            update(auto_top_ups)
            .where(*armed_and_free)
            .values(
                armed=0,
                in_flight_purchase_id=purchase_id,
                month=month,
                month_count=count + 1,
                updated_at=tx.now,
            )
        ).rowcount
        if not won:
            continue  # another worker claimed this crossing
        claimed.append(
            purchases.start_purchase(
                tx,
                customer=row.customer,
                pack=row.pack_id,
                provider=row.provider,
                origin="auto_top_up",
                purchase_id=purchase_id,
            )
        )
        started += 1
    stale = tx.conn.execute(
        select(purchases_table)
        .join(
            auto_top_ups,
            auto_top_ups.c.in_flight_purchase_id == purchases_table.c.id,
        )
        .where(
            auto_top_ups.c.tenant_id == tx.tenant_id,
            purchases_table.c.status == purchases.PENDING,
            purchases_table.c.provider != "manual",
            purchases_table.c.payment_ref.is_(None),
            purchases_table.c.created_at <= tx.now - STALE_AFTER,
        )
    ).all()
    claimed += [purchases.purchase_result(r) for r in stale]
    return claimed, AutoTopUpReport(started=started, capped=capped, rearmed=rearmed)


def run_auto_top_ups(run: payments.Runner, tenant_id: str) -> AutoTopUpReport:
    """Claim every crossing in one transaction, then charge each outside any transaction."""
    due: list[Purchase]
    report: AutoTopUpReport
    due, report = run(claim_due)
    succeeded = failed = pending = 0
    for purchase in due:
        if purchase.provider == "manual":
            pending += 1  # an invoice: an operator marks it paid
            continue
        try:
            done = payments.charge(run, tenant_id, purchase)
        except PaymentProviderError:
            pending += 1  # outcome unknown: charged again later under the same key
            continue
        if done.status == purchases.PAID:
            succeeded += 1
        elif done.status == purchases.FAILED:
            failed += 1
        else:
            pending += 1
    return report.model_copy(update={"succeeded": succeeded, "failed": failed, "pending": pending})
