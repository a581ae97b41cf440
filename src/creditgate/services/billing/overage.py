"""Overage in arrears: the debt of an `allow`, `overdraft` or `soft_cap` wallet, billed.

A tenant sets, per asset, the price of a whole unit of debt, the provider, an optional
threshold and what a failed payment does (`keep`, or `block`: the wallet stops where it
stands). At each cycle's end — the end of the wallet's subscription period when it has a
live subscription in the asset, else of the calendar month (UTC) — the debt the ledger says
the wallet owed at that moment (and still owes, less what is already billed) becomes a bill:
a pending purchase (origin `overage`) of that much credit at the overage price. When unbilled
debt exceeds the threshold, it is billed at once. Paid, the purchase's lot pays the debt down
and its revenue is recognized at that moment; failed, the tenant's rule applies and
`overage.payment_failed` is raised.

A cycle is billed once: the bill's key (wallet, asset, cycle) is inserted in the transaction
that makes the bill, so retries, concurrent workers and a crash between billing and sending
find it there. Sending it to Stripe happens after that transaction (payments.py) under an
idempotency key derived from the purchase, so a resend is the same payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from creditgate.domain.amounts import check_asset_code, check_money, currency_digits, decimal_text
from creditgate.domain.billing import overage_money
from creditgate.domain.errors import InvalidInput
from creditgate.domain.webhooks import EventType
from creditgate.services.billing import purchases
from creditgate.services.billing._shared import check_currency
from creditgate.services.billing.results import Invoice, OverageSetting, Purchase
from creditgate.services.catalog.catalog import check_external_id
from creditgate.services.context import Tx
from creditgate.services.wallet import emit, lock_balance, read_balance
from creditgate.storage import billing as billing_store
from creditgate.storage import collection as store
from creditgate.storage.database import RetryTransaction
from creditgate.storage.tables import overage_bills, plans

ON_FAILURE = ("keep", "block")


def _setting_result(row: Any) -> OverageSetting:
    return OverageSetting(
        asset=row.asset,
        price=row.price,
        currency=row.currency,
        provider=row.provider,
        threshold=row.threshold,
        on_failure=row.on_failure,
        return_url=row.return_url,
        updated_at=row.updated_at,
    )


def set_overage(
    tx: Tx,
    *,
    asset: str,
    price: Decimal | str | int,
    currency: str = "USD",
    provider: str = "manual",
    threshold: int | None = None,
    on_failure: str = "keep",
    return_url: str | None = None,
) -> OverageSetting:
    """The price of a whole unit of `asset`'s debt and how it is billed (a setting: putting
    it again replaces it)."""
    code = tx.asset(check_asset_code(asset)).code
    money = check_money(price, "price")
    if money <= 0:
        raise InvalidInput("price must be greater than zero", field="price")
    currency = check_currency(currency)
    provider = purchases.check_provider(provider)
    if provider != "manual":
        purchases.provider_config(tx, provider)
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0
    ):
        raise InvalidInput("threshold must be a whole number of minor units", field="threshold")
    if on_failure not in ON_FAILURE:
        raise InvalidInput("on_failure must be keep or block", field="on_failure")
    url = purchases.check_url(return_url, "return_url")
    store.put_overage_setting(
        tx.conn,
        {
            "tenant_id": tx.tenant_id,
            "asset": code,
            "price": money,
            "currency": currency,
            "provider": provider,
            "threshold": threshold,
            "on_failure": on_failure,
            "return_url": url,
            "updated_at": tx.now,
        },
    )
    return _setting_result(store.overage_setting(tx.conn, tx.tenant_id, code))


def setting_for(tx: Tx, *, asset: str) -> OverageSetting | None:
    row = store.overage_setting(tx.conn, tx.tenant_id, asset)
    return None if row is None else _setting_result(row)


def overage_settings(tx: Tx) -> list[OverageSetting]:
    return [_setting_result(r) for r in store.overage_settings_of(tx.conn, tx.tenant_id)]


def cycle_start(tx: Tx, wallet_id: str, asset: str) -> datetime:
    """Where the wallet's current billing cycle began: the last period boundary of its live
    subscription in the asset that has passed, else the start of this calendar month."""
    for sub in billing_store.subscriptions_of(tx.conn, wallet_id):
        if sub.status != "active":
            continue
        plan = billing_store.row_by_id(tx.conn, plans, sub.plan_id)
        if plan.asset != asset:
            continue
        if sub.current_period_end <= tx.now:
            # The renewal has not run yet: the cycle has ended.
            ended: datetime = sub.current_period_end
            return ended
        started: datetime = sub.current_period_start
        return started
    now = tx.now.astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def _bill_due(tx: Tx, setting: Any, wallet_id: str, owed: int) -> tuple[str, int, Decimal] | None:
    """The bill due for a wallet owing `owed` (its cycle key, the debt it bills and its
    price), or None: nothing beyond its open bills, its cycle not ended or already billed
    and the threshold not passed, or worth less than a minor unit of money."""
    billed = store.open_billed_debt(tx.conn, wallet_id, setting.asset)
    if owed - billed <= 0:
        return None
    start = cycle_start(tx, wallet_id, setting.asset)
    at_end = max(0, -store.posted_before(tx.conn, wallet_id, setting.asset, start))
    cycle, amount = f"period:{start.isoformat()}", min(at_end, owed) - billed
    if amount > 0 and store.bills_in_cycle(tx.conn, wallet_id, setting.asset, cycle):
        # This cycle's bill was made (and since paid or written off): debt owed now is new,
        # and waits for the next cycle's end or the threshold. Billing the cycle again would
        # meet its key and start over, every run, for ever.
        amount = 0
    if amount <= 0:
        if setting.threshold is None or owed - billed <= setting.threshold:
            return None
        prefix = f"threshold:{start.isoformat()}:"
        n = store.bills_in_cycle(tx.conn, wallet_id, setting.asset, prefix)
        cycle, amount = f"{prefix}{n + 1}", owed - billed
    money = overage_money(
        setting.price, amount, tx.asset(setting.asset), currency_digits(setting.currency)
    )
    if money <= 0:
        return None  # worth less than a minor unit of money: it waits for more
    return cycle, amount, money


# Wallets in debt one transaction of `bill_due` goes through; `payments.bill_overage` runs
# it page after page until every wallet in debt has been seen.
BILL_PAGE = 200


@dataclass(frozen=True, slots=True)
class BillPage:
    made: list[str]  # the ids of the bills made
    after: tuple[str, str] | None  # (asset, wallet id) to go on from; None: every one seen


def bill_due(tx: Tx, *, after: tuple[str, str] | None = None) -> BillPage:
    """Bill the debt that is due (a cycle's end, or past the threshold) of the next
    `BILL_PAGE` wallets in debt, in (asset, wallet) order after `after`, once per cycle
    however often this runs."""
    made: list[str] = []
    seen = 0
    for setting in store.overage_settings_of(tx.conn, tx.tenant_id):
        if after is not None and setting.asset < after[0]:
            continue
        start = after[1] if after is not None and setting.asset == after[0] else ""
        rows = store.wallets_in_debt(
            tx.conn, tx.tenant_id, setting.asset, BILL_PAGE - seen, after=start
        )
        for row in rows:
            wallet_id = row.wallet_id
            seen += 1
            if seen == BILL_PAGE:  # the page is full: the next one goes on from here
                after = (setting.asset, wallet_id)
            # A glance without the balance row's lock first. A wallet whose debt waits for its
            # cycle's end (round after round, the common case) then leaves the row to the
            # calls that need it. What the glance finds is decided again under the lock; a
            # glance that a payment overtook at worst leaves a bill to the next round.
            glance = read_balance(tx, wallet_id, setting.asset).debt
            if _bill_due(tx, setting, wallet_id, glance) is None:
                continue
            # The debt and what is billed of it, read as of one moment: with the balance row
            # locked, a payment or write-off (which moves that row and closes its bill in one
            # transaction) is in both reads or in neither. Read apart, a bill paid between
            # them would leave its debt owed and unbilled, and it would be billed again.
            owed = lock_balance(tx, wallet_id, setting.asset, create=False).debt
            due = _bill_due(tx, setting, wallet_id, owed)
            if due is None:
                continue
            cycle, amount, money = due
            purchase = purchases.start_bill(
                tx,
                wallet_id=wallet_id,
                customer=row.customer,
                asset=setting.asset,
                amount=amount,
                price=money,
                currency=setting.currency,
                provider=setting.provider,
            )
            fresh = billing_store.insert_if_new(
                tx.conn,
                overage_bills,
                {
                    "tenant_id": tx.tenant_id,
                    "wallet_id": wallet_id,
                    "asset": setting.asset,
                    "cycle": cycle,
                    "purchase_id": purchase.id,
                    "debt": amount,
                    "created_at": tx.now,
                },
            )
            if not fresh:
                # Another run billed this cycle first (and its bill is committed): this
                # transaction's purchase must not stay.
                raise RetryTransaction
            emit(
                tx,
                EventType.OVERAGE_BILLED,
                wallet_id,
                {
                    "purchase": purchase.id,
                    "customer": row.customer,
                    "asset": setting.asset,
                    "debt": amount,
                    "amount": decimal_text(money),
                    "currency": setting.currency,
                    "provider": setting.provider,
                    "cycle": cycle,
                },
            )
            made.append(purchase.id)
        if seen == BILL_PAGE:
            return BillPage(made, after)
    return BillPage(made, None)


def unsent(tx: Tx, *, older_than: timedelta) -> list[str]:
    """Bills through a provider made more than `older_than` ago and never answered."""
    return [r.id for r in store.unsent_bills(tx.conn, tx.tenant_id, tx.now - older_than)]


def bill_invoice(purchase: Purchase) -> Invoice:
    """A bill of overage as the customer's invoice."""
    status = {"pending": "open"}.get(purchase.status, purchase.status)
    return Invoice(
        id=purchase.id,
        kind="overage",
        customer=purchase.customer,
        status=status,
        amount=purchase.price,
        currency=purchase.currency,
        provider=purchase.provider,
        provider_ref=purchase.provider_ref,
        pay_url=purchase.checkout_url,
        failure_reason=purchase.failure_reason,
        asset=purchase.asset,
        debt=purchase.amount,
        created_at=purchase.created_at,
        paid_at=purchase.paid_at,
    )


def customer_bills(tx: Tx, *, customer: str) -> list[Invoice]:
    wallet_id = tx.wallet_id(check_external_id(customer))
    rows = billing_store.list_purchases(tx.conn, wallet_id, 1000)
    return [bill_invoice(purchases.purchase_result(r)) for r in rows if r.origin == "overage"]
