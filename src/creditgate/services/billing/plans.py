"""Plans and subscriptions: an included grant per period, rollover, plan changes, renewals.

A period's included credit is a lot of kind `included` that expires at the period's end,
valued at the period fee spread over the included amount. With a rollover cap, up to the
cap of what the period's own included lot left unused carries into the next period as a
new lot (kind `included`, metadata `rollover_from`, the old lot's cost basis) expiring with
that period; carried credit does not carry again. The plan fee itself is collected outside
creditgate (e.g. by Stripe Billing); creditgate records what the included credit is worth.
"""

from __future__ import annotations

import re
from contextlib import suppress
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from creditgate.domain.amounts import MAX_BALANCE, check_amount, check_asset_code, check_money
from creditgate.domain.billing import Period, period_bounds, rollover, unit_value
from creditgate.domain.billing_errors import (
    AlreadySubscribed,
    SubscriptionNotActive,
    UnknownPlan,
    UnknownSubscription,
)
from creditgate.domain.errors import AlreadyExists, InvalidInput, PolicyNotSatisfied
from creditgate.domain.grants import GrantRequest
from creditgate.domain.ledger import Account, Entry, TransactionKind
from creditgate.domain.lots import LotKind, LotStatus
from creditgate.domain.policy import WalletPolicy
from creditgate.domain.webhooks import EventType
from creditgate.services.billing._shared import check_code, check_count, check_currency
from creditgate.services.billing.requests import NewPlan
from creditgate.services.billing.results import (
    Plan,
    RenewalReport,
    Subscription,
    SubscriptionPeriod,
)
from creditgate.services.catalog import catalog
from creditgate.services.catalog.catalog import check_external_id, check_id, check_name
from creditgate.services.context import Idempotent, Tx
from creditgate.services.ledger import grants
from creditgate.services.wallet import emit, held_lot_shares, lock_balance, post
from creditgate.storage import billing as store
from creditgate.storage.database import RetryTransaction
from creditgate.storage.ids import new_id
from creditgate.storage.tables import (
    plans,
    subscription_periods,
    subscriptions,
)

ACTIVE = "active"
CANCELED = "canceled"
EXTERNAL = "external"
# A period's fee, when creditgate collects it.
OPEN = "open"
PAID = "paid"
FAILED = "failed"
When = Literal["now", "period_end"]


def _plan_result(row: Any) -> Plan:
    return Plan(
        id=row.id,
        code=row.code,
        name=row.name,
        period=row.period,
        fee=row.fee,
        currency=row.currency,
        asset=row.asset,
        included=row.included,
        rollover_cap=row.rollover_cap,
        overage_policy=row.overage_policy,
        overdraft_limit=row.overdraft_limit,
        created_at=row.created_at,
        collection=row.collection,
        stripe_price=row.stripe_price,
        grant_before_payment=bool(row.grant_before_payment),
        grace_days=row.grace_days,
    )


COLLECTIONS = ("external", "manual", "stripe")
MAX_GRACE_DAYS = 90
STRIPE_PRICE = re.compile(r"^price_[A-Za-z0-9_]{1,200}$")


def check_collection(plan: NewPlan) -> tuple[str, str | None, bool, int]:
    """Who collects a plan's fee, the Stripe price, and the dunning terms, checked."""
    price = plan.stripe_price
    if price is not None and (not isinstance(price, str) or not STRIPE_PRICE.match(price)):
        raise InvalidInput("stripe_price must be a Stripe price id (price_…)", field="stripe_price")
    collection = plan.collection or ("stripe" if price else "external")
    if collection not in COLLECTIONS:
        raise InvalidInput("collection must be external, manual or stripe", field="collection")
    if collection == "stripe" and price is None:
        raise InvalidInput(
            "a plan collected through Stripe names its stripe_price", field="stripe_price"
        )
    if collection != "stripe" and price is not None:
        raise InvalidInput("stripe_price applies only to collection stripe", field="stripe_price")
    if not isinstance(plan.grant_before_payment, bool):
        raise InvalidInput(
            "grant_before_payment must be true or false", field="grant_before_payment"
        )
    if plan.grant_before_payment and collection == "external":
        raise InvalidInput(
            "grant_before_payment applies only to a plan whose fee creditgate collects "
            "(collection manual or stripe)",
            field="grant_before_payment",
        )
    grace = check_count(plan.grace_days, "grace_days", maximum=MAX_GRACE_DAYS)
    return collection, price, plan.grant_before_payment, grace


def create_plan(tx: Tx, *, plan: NewPlan, idempotency_key: str | None = None) -> Plan:
    code = check_code(plan.code)
    name = check_name(plan.name, "name", required=False)
    try:
        plan_period = Period(plan.period)
    except ValueError:
        raise InvalidInput("period must be monthly or yearly", field="period") from None
    tx.asset(check_asset_code(plan.asset))
    included = check_amount(plan.included, "included")
    if included > MAX_BALANCE:
        raise InvalidInput(f"included must be at most {MAX_BALANCE}", field="included")
    rollover_cap = check_amount(plan.rollover_cap, "rollover_cap", allow_zero=True)
    if rollover_cap > MAX_BALANCE:
        raise InvalidInput(f"rollover_cap must be at most {MAX_BALANCE}", field="rollover_cap")
    money = check_money(plan.fee, "fee")
    currency = check_currency(plan.currency)
    policy = WalletPolicy.build(plan.overage_policy, plan.overdraft_limit)
    collection, stripe_price, grant_first, grace_days = check_collection(plan)
    request = {
        "code": code,
        "name": name,
        "period": plan_period.value,
        "asset": plan.asset,
        "included": included,
        "fee": money,
        "currency": currency,
        "rollover_cap": rollover_cap,
        "overage_policy": policy.mode.value,
        "overdraft_limit": policy.overdraft_limit,
        "collection": collection,
        "stripe_price": stripe_price,
        "grant_before_payment": int(grant_first),
        "grace_days": grace_days,
    }
    idem = Idempotent(tx, idempotency_key, "plan.create", request)
    if (replayed := idem.replay(Plan)) is not None:
        return replayed
    if store.code_taken(tx.conn, plans, tx.tenant_id, code):
        raise AlreadyExists(f"plan {code!r} already exists", field="code")
    plan_id = new_id("pln")
    values = {**request, "fee": money, "tenant_id": tx.tenant_id, "id": plan_id}
    if not store.insert_once(tx.conn, plans, {**values, "created_at": tx.now}):
        raise RetryTransaction
    return idem.record(_plan_result(store.row_by_id(tx.conn, plans, plan_id)))


def list_plans(tx: Tx) -> list[Plan]:
    return [_plan_result(r) for r in store.list_by_code(tx.conn, plans, tx.tenant_id)]


def _plan(tx: Tx, plan: object) -> Any:
    """A plan of this tenant by its id or its code."""
    if not isinstance(plan, str) or not 1 <= len(plan) <= 64 or not plan.isprintable():
        raise InvalidInput("plan must be a plan's id or code", field="plan")
    row = store.by_id_or_code(tx.conn, plans, tx.tenant_id, plan)
    if row is None:
        raise UnknownPlan(f"plan {plan!r} does not exist", field="plan")
    return row


def _plan_by_id(tx: Tx, plan_id: str) -> Any:
    return store.row_by_id(tx.conn, plans, plan_id)


def _subscription_result(tx: Tx, row: Any) -> Subscription:
    periods = store.periods_of(tx.conn, row.id)
    return Subscription(
        id=row.id,
        customer=row.customer,
        plan_id=row.plan_id,
        status=row.status,
        current_period_start=row.current_period_start,
        current_period_end=row.current_period_end,
        pending_plan_id=row.pending_plan_id,
        cancel_at_period_end=bool(row.cancel_at_period_end),
        canceled_at=row.canceled_at,
        created_at=row.created_at,
        periods=[
            SubscriptionPeriod(
                index=p.period_index,
                plan_id=p.plan_id,
                period_start=p.period_start,
                period_end=p.period_end,
                lot_id=p.lot_id,
                rollover_lot_id=p.rollover_lot_id,
                rolled_over=p.rolled_over,
                fee_status=p.fee_status,
                invoice_id=p.invoice_id,
                withheld=p.withheld,
            )
            for p in periods
        ],
        payment_status=row.payment_status,
        payment_failure_reason=row.payment_failure_reason,
        provider_ref=row.provider_ref,
    )


def _subscription_row(tx: Tx, subscription_id: str, *, lock: bool = False) -> Any:
    check_id(subscription_id, "subscription")
    row = store.subscription(tx.conn, tx.tenant_id, subscription_id, lock=lock)
    if row is None:
        raise UnknownSubscription(
            f"subscription {subscription_id!r} does not exist", field="subscription"
        )
    return row


def get_subscription(tx: Tx, *, subscription_id: str) -> Subscription:
    return _subscription_result(tx, _subscription_row(tx, subscription_id))


def customer_subscriptions(tx: Tx, *, customer: str) -> list[Subscription]:
    wallet_id = tx.wallet_id(check_external_id(customer))
    rows = store.subscriptions_of(tx.conn, wallet_id)
    return [_subscription_result(tx, r) for r in rows]


def _apply_overage_policy(tx: Tx, customer: str, plan: Any) -> None:
    """The plan's overage policy becomes the wallet's policy for the plan's asset."""
    threshold = store.low_balance_threshold(tx.conn, tx.wallet_id(customer), plan.asset)
    catalog.set_policy(
        tx,
        customer=customer,
        asset=plan.asset,
        policy=plan.overage_policy,
        overdraft_limit=plan.overdraft_limit
        if plan.overage_policy in ("overdraft", "soft_cap")
        else None,
        low_balance_threshold=threshold,
    )


def _grant_included(
    tx: Tx,
    sub_id: str,
    customer: str,
    plan: Any,
    index: int,
    start: datetime,
    end: datetime,
) -> str:
    asset = tx.asset(plan.asset)
    lot = grants.grant(
        tx,
        GrantRequest(
            customer=customer,
            asset=plan.asset,
            amount=plan.included,
            kind=LotKind.INCLUDED,
            effective_at=min(start, tx.now),
            expires_at=end,
            cost_basis=unit_value(plan.fee, plan.included, asset),
            currency=plan.currency,
            metadata={"subscription": sub_id, "plan": plan.id, "period": index},
        ),
    )
    return lot.id


def _start_period(
    tx: Tx,
    row: Any,
    plan: Any,
    index: int,
    start: datetime,
    end: datetime,
    *,
    carry_from: Any | None = None,
) -> tuple[str | None, str | None, int]:
    """Record period `index` and grant its credit (and any rollover); once per index."""
    collected = plan.collection != EXTERNAL
    # Credit waits for the fee when creditgate collects it (unless the tenant grants first);
    # a fee of zero is paid as soon as it is due.
    grant_now = not collected or bool(plan.grant_before_payment) or plan.fee == 0
    # A fee creditgate collects is the period's invoice, recorded with it.
    invoice = (
        {
            "invoice_id": new_id("inv"),
            "fee": plan.fee,
            "currency": plan.currency,
            "provider": plan.collection,
            "fee_status": PAID if plan.fee == 0 else OPEN,
            "paid_at": tx.now if plan.fee == 0 else None,
        }
        if collected
        else {}
    )
    recorded = store.insert_once(
        tx.conn,
        subscription_periods,
        {
            "tenant_id": tx.tenant_id,
            "wallet_id": row.wallet_id,
            "subscription_id": row.id,
            "period_index": index,
            "plan_id": plan.id,
            "period_start": start,
            "period_end": end,
            "lot_id": None,
            "rollover_lot_id": None,
            "rolled_over": 0,
            "created_at": tx.now,
            **invoice,
        },
    )
    if not recorded:
        raise RetryTransaction
    lot_id = rollover_lot_id = None
    carried = 0
    # A period that ended before it could be issued has no credit left to give.
    if end > tx.now:
        if carry_from is not None:
            old_plan, old_lot_id = carry_from
            if old_lot_id and old_plan.rollover_cap > 0 and old_plan.asset == plan.asset:
                carried, basis, currency = _take_unused(tx, old_lot_id, old_plan.rollover_cap)
                if carried:
                    lot = grants.grant(
                        tx,
                        GrantRequest(
                            customer=row.customer,
                            asset=plan.asset,
                            amount=carried,
                            kind=LotKind.INCLUDED,
                            effective_at=min(start, tx.now),
                            expires_at=end,
                            cost_basis=basis,
                            currency=currency,
                            metadata={
                                "subscription": row.id,
                                "period": index,
                                "rollover_from": old_lot_id,
                            },
                            ledger_kind=TransactionKind.ROLLOVER,
                        ),
                    )
                    rollover_lot_id = lot.id
        if grant_now:
            lot_id = _grant_included(tx, row.id, row.customer, plan, index, start, end)
    store.set_period_lots(
        tx.conn,
        row.id,
        index,
        {"lot_id": lot_id, "rollover_lot_id": rollover_lot_id, "rolled_over": carried},
    )
    return lot_id, rollover_lot_id, carried


def _take_unused(tx: Tx, lot_id: str, cap: int) -> tuple[int, Decimal, str]:
    """Take up to `cap` of a lot's unused credit out, to be granted anew in this transaction.

    What is still in the lot leaves the wallet (sparing its share of open holds); if the
    expiry sweep already expired the lot, the part carried is taken back out of expired
    (its breakage undone) instead, so the result does not depend on which job ran first.
    Both are posted as a rollover, as is the new lot the caller grants the same amount to
    within the same transaction: deferred revenue carried over, not a sale. The balance row
    is moved without balance events: the wallet's available does not drop overall.
    """
    found = store.lot_owner(tx.conn, tx.tenant_id, lot_id)
    before = lock_balance(tx, found.wallet_id, found.asset)
    lot = store.lot(tx.conn, lot_id)
    from_wallet = from_expired = 0
    if lot.status == LotStatus.ACTIVE:
        shares = held_lot_shares(tx, found.wallet_id, found.asset, before.held)
        from_wallet = rollover(lot.remaining - shares.get(lot_id, 0), cap)
    if lot.status in (LotStatus.ACTIVE, LotStatus.EXPIRED):
        from_expired = rollover(lot.expired, cap - from_wallet)
    carried = from_wallet + from_expired
    if carried:
        entries = [Entry(Account.issued(LotKind.INCLUDED), carried)]
        if from_wallet:
            entries.append(Entry(Account.WALLET, -from_wallet, lot_id))
        if from_expired:
            entries.append(Entry(Account.EXPIRED, -from_expired, lot_id))
        post(
            tx,
            wallet_id=found.wallet_id,
            asset=found.asset,
            kind=TransactionKind.ROLLOVER,
            entries=entries,
            reference_id=lot_id,
        )
    if from_wallet:
        store.lower_posted(tx.conn, found.wallet_id, found.asset, from_wallet, tx.now)
    if carried:
        store.carry_out_of_lot(tx.conn, lot_id, from_wallet, from_expired)
    return carried, lot.cost_basis, lot.currency


def subscribe(
    tx: Tx, *, customer: str, plan: str, idempotency_key: str | None = None
) -> Subscription:
    """Start a subscription now: the first period's included credit is granted at once."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    idem = Idempotent(
        tx, idempotency_key, "subscription.create", {"customer": customer, "plan": plan}
    )
    if (replayed := idem.replay(Subscription)) is not None:
        return replayed
    plan_row = _plan(tx, plan)
    live = store.live_subscription(tx.conn, wallet_id)
    if live is not None:
        raise AlreadySubscribed(
            f"customer {customer!r} already has subscription {live}; change its plan instead",
            field="customer",
        )
    start, end = period_bounds(tx.now, Period(plan_row.period), 0)
    sub_id = new_id("sub")
    started = store.insert_once(
        tx.conn,
        subscriptions,
        {
            "tenant_id": tx.tenant_id,
            "wallet_id": wallet_id,
            "id": sub_id,
            "customer": customer,
            "plan_id": plan_row.id,
            "status": ACTIVE,
            "live_wallet_id": wallet_id,
            "anchor_at": start,
            "anchor_index": 0,
            "period_index": 0,
            "current_period_start": start,
            "current_period_end": end,
            "pending_plan_id": None,
            "cancel_at_period_end": 0,
            "canceled_at": None,
            "created_at": tx.now,
        },
    )
    if not started:
        # Another subscribe for this customer committed first: start over and refuse.
        raise RetryTransaction
    row = _subscription_row(tx, sub_id)
    lot_id, _, _ = _start_period(tx, row, plan_row, 0, start, end)
    refresh_payment_status(tx, sub_id)
    _apply_overage_policy(tx, customer, plan_row)
    emit(
        tx,
        EventType.SUBSCRIPTION_CREATED,
        wallet_id,
        {"subscription": sub_id, "customer": customer, "plan": plan_row.id, "lot": lot_id},
    )
    return idem.record(_subscription_result(tx, _subscription_row(tx, sub_id)))


def _active(row: Any) -> None:
    if row.status != ACTIVE:
        raise SubscriptionNotActive(f"subscription {row.id} is {row.status}", field="subscription")


def _when(at: object) -> str:
    if at not in ("now", "period_end"):
        raise InvalidInput("at must be now or period_end", field="at")
    return str(at)


def change_plan(
    tx: Tx,
    *,
    subscription_id: str,
    plan: str,
    at: When = "now",
    idempotency_key: str | None = None,
) -> Subscription:
    """Move to another plan now (a new period starts at once with the new plan's included
    credit; nothing is prorated and credit already granted keeps its expiry) or at the end of
    the current period."""
    when = _when(at)
    idem = Idempotent(
        tx,
        idempotency_key,
        "subscription.change_plan",
        {"subscription": subscription_id, "plan": plan, "at": when},
    )
    if (replayed := idem.replay(Subscription)) is not None:
        return replayed
    row = _subscription_row(tx, subscription_id, lock=True)
    _active(row)
    plan_row = _plan(tx, plan)
    if when == "period_end":
        store.update_subscription(
            tx.conn,
            row.id,
            {"pending_plan_id": None if plan_row.id == row.plan_id else plan_row.id},
        )
    else:
        index = row.period_index + 1
        start, end = period_bounds(tx.now, Period(plan_row.period), 0)
        claimed = store.advance_subscription(
            tx.conn,
            row.id,
            row.period_index,
            {
                "plan_id": plan_row.id,
                "pending_plan_id": None,
                "anchor_at": start,
                "anchor_index": index,
                "period_index": index,
                "current_period_start": start,
                "current_period_end": end,
            },
        )
        if not claimed:
            raise RetryTransaction
        _start_period(tx, row, plan_row, index, start, end)
        refresh_payment_status(tx, row.id)
        _apply_overage_policy(tx, row.customer, plan_row)
    emit(
        tx,
        EventType.SUBSCRIPTION_PLAN_CHANGED,
        row.wallet_id,
        {"subscription": row.id, "customer": row.customer, "plan": plan_row.id, "at": when},
    )
    return idem.record(_subscription_result(tx, _subscription_row(tx, row.id)))


def cancel(
    tx: Tx, *, subscription_id: str, at: When = "period_end", idempotency_key: str | None = None
) -> Subscription:
    """Stop renewing now or at the end of the current period. Included credit already
    granted stays until it expires (nothing is prorated)."""
    when = _when(at)
    idem = Idempotent(
        tx, idempotency_key, "subscription.cancel", {"subscription": subscription_id, "at": when}
    )
    if (replayed := idem.replay(Subscription)) is not None:
        return replayed
    row = _subscription_row(tx, subscription_id, lock=True)
    _active(row)
    if when == "period_end":
        store.update_subscription(tx.conn, row.id, {"cancel_at_period_end": 1})
    else:
        _end(tx, row, tx.now)
    return idem.record(_subscription_result(tx, _subscription_row(tx, row.id)))


def _end(tx: Tx, row: Any, when: datetime) -> bool:
    ended = store.advance_subscription(
        tx.conn,
        row.id,
        row.period_index,
        {"status": CANCELED, "live_wallet_id": None, "canceled_at": when, "pending_plan_id": None},
    )
    if ended:
        emit(
            tx,
            EventType.SUBSCRIPTION_CANCELED,
            row.wallet_id,
            {"subscription": row.id, "customer": row.customer, "canceled_at": when.isoformat()},
        )
    return bool(ended)


def renew_due(tx: Tx, *, limit: int = 100) -> RenewalReport:
    """Issue every period whose time has come, each exactly once however often this runs.

    A subscription the job has not seen for several periods is brought up to date one
    period at a time; periods that ended before they were issued get no credit.
    """
    due = store.due_subscriptions(tx.conn, tx.tenant_id, tx.now, limit)
    renewed = canceled = carried = 0
    for sub_id in due:
        report = bring_up_to_date(tx, sub_id)
        renewed += report.renewed
        canceled += report.canceled
        carried += report.rolled_over
    return RenewalReport(renewed=renewed, canceled=canceled, rolled_over=carried)


def bring_up_to_date(tx: Tx, subscription_id: str) -> RenewalReport:
    """Issue the periods of one subscription that are due (or end it, if it was to be
    canceled at its period's end); nothing if another run issued them first."""
    renewed = canceled = carried = 0
    while True:
        row = _subscription_row(tx, subscription_id)
        if row.status != ACTIVE or row.current_period_end > tx.now:
            break
        if row.cancel_at_period_end:
            canceled += _end(tx, row, row.current_period_end)
            break
        outcome = _renew_once(tx, row)
        if outcome is None:
            break
        renewed += 1
        carried += outcome
    return RenewalReport(renewed=renewed, canceled=canceled, rolled_over=carried)


def end_now(tx: Tx, subscription_id: str) -> bool:
    """End an active subscription at once (its provider ended it); whether this call did."""
    row = _subscription_row(tx, subscription_id, lock=True)
    return row.status == ACTIVE and _end(tx, row, tx.now)


def _renew_once(tx: Tx, row: Any) -> int | None:
    """Issue period `row.period_index + 1`; None if another run issued it first."""
    old_plan = _plan_by_id(tx, row.plan_id)
    plan = _plan_by_id(tx, row.pending_plan_id) if row.pending_plan_id else old_plan
    index = row.period_index + 1
    start = row.current_period_end
    anchor_at, anchor_index = row.anchor_at, row.anchor_index
    if plan.id != old_plan.id:
        anchor_at, anchor_index = start, index
    period_start, end = period_bounds(anchor_at, Period(plan.period), index - anchor_index)
    claimed = store.advance_subscription(
        tx.conn,
        row.id,
        row.period_index,
        {
            "plan_id": plan.id,
            "pending_plan_id": None,
            "anchor_at": anchor_at,
            "anchor_index": anchor_index,
            "period_index": index,
            "current_period_start": period_start,
            "current_period_end": end,
        },
    )
    if not claimed:
        return None
    previous = store.period_lot(tx.conn, row.id, row.period_index)
    lot_id, rollover_lot_id, carried = _start_period(
        tx, row, plan, index, period_start, end, carry_from=(old_plan, previous)
    )
    refresh_payment_status(tx, row.id)
    if plan.id != old_plan.id:
        # If the balance already breaks the new plan's policy (debt under `block`), the
        # renewal goes ahead and the wallet keeps its policy until the tenant acts.
        with suppress(PolicyNotSatisfied):
            _apply_overage_policy(tx, row.customer, plan)
    emit(
        tx,
        EventType.SUBSCRIPTION_RENEWED,
        row.wallet_id,
        {
            "subscription": row.id,
            "customer": row.customer,
            "plan": plan.id,
            "period": index,
            "period_start": period_start.isoformat(),
            "period_end": end.isoformat(),
            "lot": lot_id,
            "rollover_lot": rollover_lot_id,
            "rolled_over": carried,
        },
    )
    return carried


def refresh_payment_status(tx: Tx, subscription_id: str) -> None:
    """Say on the subscription where its fees stand: `past_due` while a period's payment
    has failed (with the latest failure's reason), else `awaiting_payment` while the current
    period's fee is open, else `paid`; `none` for a plan whose fee is collected outside."""
    periods = store.periods_of(tx.conn, subscription_id)
    collected = [p for p in periods if p.fee_status != EXTERNAL]
    if not collected:
        status, reason = "none", None
    else:
        failed = [p for p in collected if p.fee_status == FAILED]
        if failed:
            status, reason = "past_due", failed[-1].failure_reason
        elif periods[-1].fee_status == OPEN:
            status, reason = "awaiting_payment", None
        else:
            status, reason = PAID, None
    store.update_subscription(
        tx.conn, subscription_id, {"payment_status": status, "payment_failure_reason": reason}
    )


def grant_paid_period(tx: Tx, subscription_id: str, period: Any) -> str | None:
    """The included credit of a period whose fee has just been paid (the caller claimed the
    payment, so this runs once per period): the plan's included amount if none was granted,
    or what was withheld after a failed payment. Nothing once the period has ended."""
    if period.period_end <= tx.now:
        return None
    row = _subscription_row(tx, subscription_id)
    plan = _plan_by_id(tx, period.plan_id)
    if period.lot_id is None:
        lot_id = _grant_included(
            tx,
            row.id,
            row.customer,
            plan,
            period.period_index,
            period.period_start,
            period.period_end,
        )
        store.set_period_lots(tx.conn, row.id, period.period_index, {"lot_id": lot_id})
        return lot_id
    if period.withheld:
        asset = tx.asset(plan.asset)
        lot = grants.grant(
            tx,
            GrantRequest(
                customer=row.customer,
                asset=plan.asset,
                amount=period.withheld,
                kind=LotKind.INCLUDED,
                expires_at=period.period_end,
                cost_basis=unit_value(plan.fee, plan.included, asset),
                currency=plan.currency,
                metadata={
                    "subscription": row.id,
                    "plan": plan.id,
                    "period": period.period_index,
                    "restores": period.lot_id,
                },
            ),
        )
        store.set_period_lots(tx.conn, row.id, period.period_index, {"withheld": 0})
        return lot.id
    return None
