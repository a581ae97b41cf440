"""Auto top-up: buy a configured pack with the saved payment method when credit runs low.

Each setting is `armed` while available is at or above its threshold, and crossings are
decided by the balance movements themselves: the wallet's balance row carries the
threshold, and the movement that lifts available to or above it re-arms the setting, the
one that takes it below fires it (`crossed`), in the movement's own transaction. A debit
that crosses nothing does no auto top-up work (on the one-round-trip path its guard
includes "crosses no threshold"), and a wallet without auto top-up none at all.

Firing claims the setting with one conditional update (armed, nothing in flight, the
month's count as read) that disarms it and records the purchase in flight, so concurrent
movements and workers start at most one purchase per crossing, and none while one is in
flight. The worker sends the purchase to its provider (never inside a movement's
transaction) and buys for crossings that had to wait (a purchase in flight, a backoff).
A failed payment raises `topup.failed`, re-arms and backs off (5 minutes, doubling to a
day); a paid one frees the slot, and the next purchase waits for the next crossing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, func, select, update

from creditgate.domain.billing import month_of
from creditgate.domain.billing_errors import (
    PaymentProviderError,
    ProviderNotConfigured,
    UnknownPack,
)
from creditgate.domain.errors import InvalidInput
from creditgate.domain.webhooks import EventType
from creditgate.services.billing import payments, purchases
from creditgate.services.billing._shared import check_count, insert_if_new
from creditgate.services.billing.requests import PurchaseOrder
from creditgate.services.billing.results import AutoTopUp, AutoTopUpReport, Purchase
from creditgate.services.catalog.catalog import check_external_id
from creditgate.services.context import Tx
from creditgate.services.wallet import emit, lock_balance
from creditgate.storage.ids import new_id
from creditgate.storage.tables import auto_top_ups, packs, wallet_balances
from creditgate.storage.tables import purchases as purchases_table

# A purchase in flight this long without an answer from the provider is charged again,
# under the same idempotency key (so the provider sees the same payment, not a new one).
STALE_AFTER = timedelta(minutes=2)
MAX_LIMIT = 1_000
ORIGIN = "auto_top_up"


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
    # The balance row first, as every credit movement locks it (created if the wallet never
    # held the asset): it carries the threshold that movements check.
    balance = lock_balance(tx, wallet_id, asset)
    tx.conn.execute(
        update(wallet_balances)
        .where(wallet_balances.c.wallet_id == wallet_id, wallet_balances.c.asset == asset)
        .values(top_up_threshold=threshold if enabled else None)
    )
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
            "in_flight_sent_at": None,
            "month": month_of(tx.now),
            "month_count": 0,
            "failures": 0,
            "backoff_until": None,
        },
    )
    if not created:
        # Armed while available is at or above the threshold; below it, a crossing not yet
        # bought stays armed (and one already bought stays disarmed) until a movement says.
        armed = {"armed": 1} if balance.available >= threshold else {}
        tx.conn.execute(
            update(auto_top_ups)
            .where(auto_top_ups.c.wallet_id == wallet_id, auto_top_ups.c.asset == asset)
            .values(**values, **armed)
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


def crossed(tx: Tx, wallet_id: str, asset: str, *, rising: bool) -> None:
    """A balance movement took available across the wallet's auto top-up threshold.

    Rising to or above it re-arms the setting; falling below it fires the setting (see
    `_fire`). Called from the movement's own transaction, with the balance row locked.
    """
    assert not tx.uow.in_pipeline, "a crossing is handled outside a pipeline"
    this = (auto_top_ups.c.wallet_id == wallet_id, auto_top_ups.c.asset == asset)
    if rising:
        tx.conn.execute(
            update(auto_top_ups)
            .where(*this, auto_top_ups.c.enabled == 1, auto_top_ups.c.armed == 0)
            .values(armed=1, updated_at=tx.now)
        )
        return
    row = tx.conn.execute(select(auto_top_ups).where(*this)).first()
    if row is not None and row.enabled:
        _fire(tx, row, sending=False)


Fired = Literal["started", "capped", "not_sold", "waiting"]


def _fire(tx: Tx, row: Any, *, sending: bool) -> tuple[Fired, Purchase | None]:
    """Buy the setting's pack for a crossing, if it is armed, nothing is in flight and it is
    not backing off: one conditional update (armed, nothing in flight, the month's count as
    read) disarms it and records the purchase in flight, so concurrent movements and workers
    start at most one purchase per crossing. At the monthly limit, or if the pack is no
    longer sold or the provider not set up, it disarms and raises `topup.failed` instead,
    once per crossing. `sending`: the caller sends the purchase to its provider now (else
    the worker does).

    A crossing it leaves armed (in flight, backing off, lost to a concurrent claim) is bought
    by the worker once it may be, if available is still below the threshold.
    """
    if not _may_fire(row, tx.now):
        return "waiting", None
    month = month_of(tx.now)
    count = row.month_count if row.month == month else 0
    armed_and_free = (
        auto_top_ups.c.wallet_id == row.wallet_id,
        auto_top_ups.c.asset == row.asset,
        auto_top_ups.c.armed == 1,
        auto_top_ups.c.in_flight_purchase_id.is_(None),
        auto_top_ups.c.enabled == 1,
        auto_top_ups.c.month == row.month,
        auto_top_ups.c.month_count == row.month_count,
    )
    refusal: Fired = "capped"
    reason = "monthly_limit_reached"
    if row.monthly_limit is None or count < row.monthly_limit:
        refusal, reason = "not_sold", _not_sold(tx, row) or ""
    if reason:
        if not tx.conn.execute(
            update(auto_top_ups).where(*armed_and_free).values(armed=0, updated_at=tx.now)
        ).rowcount:
            return "waiting", None
        payload = {"purchase": None, "customer": row.customer, "asset": row.asset}
        emit(
            tx,
            EventType.TOPUP_FAILED,
            row.wallet_id,
            payload | {"origin": ORIGIN, "reason": reason},
        )
        return refusal, None
    purchase_id = new_id("pur")
    won = tx.conn.execute(
        update(auto_top_ups)
        .where(*armed_and_free)
        .values(
            armed=0,
            in_flight_purchase_id=purchase_id,
            in_flight_sent_at=tx.now if sending else None,
            month=month,
            month_count=count + 1,
            updated_at=tx.now,
        )
    ).rowcount
    if not won:
        return "waiting", None  # another movement or worker claimed this crossing
    order = PurchaseOrder(
        customer=row.customer,
        pack=row.pack_id,
        provider=row.provider,
        origin=ORIGIN,
        purchase_id=purchase_id,
    )
    bought = purchases.start_purchase(tx, order=order)
    return "started", bought


def _may_fire(row: Any, now: datetime) -> bool:
    """Armed, nothing in flight, not backing off after a failure."""
    backing_off = row.backoff_until is not None and row.backoff_until > now
    return bool(row.armed) and row.in_flight_purchase_id is None and not backing_off


def _not_sold(tx: Tx, row: Any) -> str | None:
    """Why the setting's pack cannot be bought now, if it cannot (checked before anything is
    written, so that a movement that crosses the threshold never fails for it)."""
    active = tx.conn.execute(select(packs.c.active).where(packs.c.id == row.pack_id)).scalar()
    if not active:
        return "pack_not_active"
    if row.provider != "manual":
        try:
            purchases.provider_config(tx, row.provider)
        except ProviderNotConfigured:
            return "provider_not_configured"
    return None


# What a setting's wallet has available; a wallet that never held the asset has no balance
# row: it is at zero.
_AVAILABLE = func.coalesce(wallet_balances.c.posted - wallet_balances.c.held, 0)


def _enabled_settings(*columns: Any) -> Select[Any]:
    """Enabled settings, with their wallet's balance row if it has one."""
    return (
        select(*columns)
        .outerjoin(
            wallet_balances,
            (wallet_balances.c.wallet_id == auto_top_ups.c.wallet_id)
            & (wallet_balances.c.asset == auto_top_ups.c.asset),
        )
        .where(auto_top_ups.c.enabled == 1)
    )


def _to_send(now: datetime, *columns: Any) -> Select[Any]:
    """Purchases a movement started and no worker has sent, or sent and never answered
    `STALE_AFTER` ago."""
    return (
        select(*columns)
        .select_from(purchases_table)
        .join(auto_top_ups, auto_top_ups.c.in_flight_purchase_id == purchases_table.c.id)
        .where(
            purchases_table.c.status == purchases.PENDING,
            purchases_table.c.provider != "manual",
            purchases_table.c.payment_ref.is_(None),
            auto_top_ups.c.in_flight_sent_at.is_(None)
            | (auto_top_ups.c.in_flight_sent_at <= now - STALE_AFTER),
        )
    )


def tenants_with_top_ups_due(now: datetime) -> dict[str, Select[Any]]:
    """Reads of the tenants `claim_due` has work for at `now`: a setting below its threshold
    that may fire (`_may_fire`, in SQL), and a purchase to send."""
    may_fire = (
        auto_top_ups.c.armed == 1,
        auto_top_ups.c.in_flight_purchase_id.is_(None),
        auto_top_ups.c.backoff_until.is_(None) | (auto_top_ups.c.backoff_until <= now),
    )
    return {
        "auto_top_up_below_threshold": _enabled_settings(auto_top_ups.c.tenant_id).where(
            auto_top_ups.c.threshold > _AVAILABLE, *may_fire
        ),
        "auto_top_up_to_send": _to_send(now, auto_top_ups.c.tenant_id),
    }


def claim_due(tx: Tx, *, limit: int = 500) -> tuple[list[Purchase], AutoTopUpReport]:
    """Buy for crossings left armed below the threshold, and hand back the purchases in
    flight that are to be sent to their provider.

    A crossing is fired by the movement that made it (`crossed`); what is left here is one
    that could not be bought then (a purchase was in flight, or the setting was backing
    off after a failure) and a setting created below its threshold. To be sent: purchases a
    movement started (the worker sends them), and purchases the provider never answered (a
    crash, a network failure), sent again under their idempotency key after `STALE_AFTER`.
    """
    rows = tx.conn.execute(
        _enabled_settings(auto_top_ups, _AVAILABLE.label("available"))
        .where(auto_top_ups.c.tenant_id == tx.tenant_id)
        .order_by(auto_top_ups.c.wallet_id, auto_top_ups.c.asset)
        .limit(limit)
    ).all()
    claimed: list[Purchase] = []
    started = capped = 0
    for row in rows:
        if row.available >= row.threshold or not _may_fire(row, tx.now):
            continue
        # Decided under the balance row's lock, as a movement decides: a movement that lifted
        # available since the read above has re-armed it and is not to be bought for.
        if lock_balance(tx, row.wallet_id, row.asset).available >= row.threshold:
            continue
        outcome, bought = _fire(tx, row, sending=True)
        if bought is not None:
            claimed.append(bought)
            started += 1
        capped += outcome == "capped"
    to_send = tx.conn.execute(
        _to_send(tx.now, purchases_table, auto_top_ups.c.in_flight_sent_at).where(
            auto_top_ups.c.tenant_id == tx.tenant_id
        )
    ).all()
    for row in to_send:
        sent_at = auto_top_ups.c.in_flight_sent_at
        # Claimed for sending, so concurrent workers send it once.
        if tx.conn.execute(
            update(auto_top_ups)
            .where(
                auto_top_ups.c.in_flight_purchase_id == row.id,
                sent_at.is_(None)
                if row.in_flight_sent_at is None
                else sent_at == row.in_flight_sent_at,
            )
            .values(in_flight_sent_at=tx.now)
        ).rowcount:
            claimed.append(purchases.purchase_result(row))
            started += row.in_flight_sent_at is None  # sent for the first time
    return claimed, AutoTopUpReport(started=started, capped=capped)


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
