"""Packs, exchange rates, provider accounts, saved payment methods and the purchase lifecycle.

A purchase is `pending` until paid; only `complete_purchase` grants its credit (kind
`purchased`, cost basis = price paid per unit), and it does so in the same transaction as
the conditional update that marks the purchase paid, so a purchase grants exactly once
however many times a provider reports it paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from creditgate.domain.amounts import (
    MAX_BALANCE,
    check_amount,
    check_asset_code,
    check_money,
    currency_digits,
)
from creditgate.domain.billing import backoff, month_of, unit_value
from creditgate.domain.billing_errors import (
    NoExchangeRate,
    NotOverage,
    PackNotActive,
    ProviderNotConfigured,
    PurchaseNotPending,
    UnknownPack,
    UnknownPurchase,
)
from creditgate.domain.errors import AlreadyExists, InvalidInput
from creditgate.domain.grants import GrantRequest
from creditgate.domain.lots import LotKind
from creditgate.domain.webhooks import EventType
from creditgate.services.billing._shared import (
    MAX_DAYS,
    check_code,
    check_count,
    check_currency,
    insert_if_new,
)
from creditgate.services.billing.requests import NewPack, PurchaseOrder
from creditgate.services.billing.results import (
    ExchangeRate,
    Pack,
    PaymentMethod,
    ProviderAccount,
    Purchase,
)
from creditgate.services.catalog.catalog import check_external_id, check_id, check_name
from creditgate.services.context import Idempotent, Tx
from creditgate.services.ledger import grants
from creditgate.services.wallet import emit, lock_balance
from creditgate.storage import billing as store
from creditgate.storage import collection
from creditgate.storage.ids import new_id
from creditgate.storage.tables import (
    exchange_rates,
    packs,
    payment_methods,
    payment_providers,
    purchases,
)

PROVIDERS = ("manual", "stripe")
PENDING, PAID, FAILED = "pending", "paid", "failed"
OVERAGE = "overage"  # the origin of a bill for a wallet's debt (services/billing/overage.py)
MAX_REF = 255
MAX_URL = 2048


def minor_money(amount: Decimal, currency: str) -> int:
    """Money in the currency's smallest unit, as providers take it (25.00 USD -> 2500)."""
    return int(amount.scaleb(currency_digits(currency)))


def check_price(value: object, currency: str, field: str = "price") -> Decimal:
    price = check_money(value, field)
    digits = currency_digits(currency)
    if price <= 0:
        raise InvalidInput(f"{field} must be greater than zero", field=field)
    if price != price.quantize(Decimal(1).scaleb(-digits)):
        raise InvalidInput(
            f"{field} must be a whole number of {currency}'s smallest unit "
            f"({digits} decimal places)",
            field=field,
        )
    return price


def check_provider(value: object) -> str:
    if value not in PROVIDERS:
        raise InvalidInput(f"provider must be one of {', '.join(PROVIDERS)}", field="provider")
    return str(value)


def _check_ref(value: object, field: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_REF or not value.isprintable():
        raise InvalidInput(f"{field} must be 1-{MAX_REF} printable characters", field=field)
    return value


def check_url(value: object, field: str) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value.startswith(("https://", "http://"))
        or len(value) > MAX_URL
        or not value.isprintable()
    ):
        raise InvalidInput(f"{field} must be an http(s) URL", field=field)
    return value


# Packs


def _pack_result(row: Any) -> Pack:
    return Pack(
        id=row.id,
        code=row.code,
        name=row.name,
        asset=row.asset,
        amount=row.amount,
        price=row.price,
        currency=row.currency,
        expires_after_days=row.expires_after_days,
        active=bool(row.active),
        created_at=row.created_at,
    )


def create_pack(tx: Tx, *, pack: NewPack, idempotency_key: str | None = None) -> Pack:
    """A pack of credit for sale, e.g. 100 credits for $25, valid 365 days after purchase."""
    code = check_code(pack.code)
    name = check_name(pack.name, "name", required=False)
    tx.asset(check_asset_code(pack.asset))
    amount = check_amount(pack.amount)
    if amount > MAX_BALANCE:
        raise InvalidInput(f"amount must be at most {MAX_BALANCE}", field="amount")
    currency = check_currency(pack.currency)
    money = check_price(pack.price, currency)
    days = check_count(
        pack.expires_after_days, "expires_after_days", minimum=1, maximum=MAX_DAYS, optional=True
    )
    request = {
        "code": code,
        "name": name,
        "asset": pack.asset,
        "amount": amount,
        "price": money,
        "currency": currency,
        "expires_after_days": days,
    }
    idem = Idempotent(tx, idempotency_key, "pack.create", request)
    if (replayed := idem.replay(Pack)) is not None:
        return replayed
    if store.code_taken(tx.conn, packs, tx.tenant_id, code):
        raise AlreadyExists(f"pack {code!r} already exists", field="code")
    pack_id = new_id("pck")
    store.insert_row(
        tx.conn,
        packs,
        {**request, "tenant_id": tx.tenant_id, "id": pack_id, "active": 1, "created_at": tx.now},
    )
    return idem.record(_pack_result(store.row_by_id(tx.conn, packs, pack_id)))


def list_packs(tx: Tx, *, include_inactive: bool = False) -> list[Pack]:
    rows = store.list_packs(tx.conn, tx.tenant_id, include_inactive=include_inactive)
    return [_pack_result(r) for r in rows]


def set_pack_active(tx: Tx, *, pack: str, active: bool) -> Pack:
    """Stop (or resume) selling a pack; purchases already made are not affected."""
    row = pack_row(tx, pack)
    store.set_pack_active(tx.conn, row.id, active)
    return _pack_result(store.row_by_id(tx.conn, packs, row.id))


def pack_row(tx: Tx, pack: object) -> Any:
    """A pack of this tenant by its id or code."""
    if not isinstance(pack, str) or not 1 <= len(pack) <= 64 or not pack.isprintable():
        raise InvalidInput("pack must be a pack's id or code", field="pack")
    row = store.by_id_or_code(tx.conn, packs, tx.tenant_id, pack)
    if row is None:
        raise UnknownPack(f"pack {pack!r} does not exist", field="pack")
    return row


# Exchange rates


def set_exchange_rate(
    tx: Tx, *, currency: str, asset: str, rate: Decimal | str | int
) -> ExchangeRate:
    """How many whole units of `asset` one unit of `currency` buys (e.g. 1 USD = 40 credits)."""
    currency = check_currency(currency)
    tx.asset(check_asset_code(asset))
    value = check_money(rate, "rate")
    if value <= 0:
        raise InvalidInput("rate must be greater than zero", field="rate")
    created = insert_if_new(
        tx,
        exchange_rates,
        {
            "tenant_id": tx.tenant_id,
            "currency": currency,
            "asset": asset,
            "rate": value,
            "updated_at": tx.now,
        },
    )
    if not created:
        store.update_exchange_rate(tx.conn, tx.tenant_id, currency, asset, value, tx.now)
    return ExchangeRate(currency=currency, asset=asset, rate=value, updated_at=tx.now)


def list_exchange_rates(tx: Tx) -> list[ExchangeRate]:
    rows = store.list_exchange_rates(tx.conn, tx.tenant_id)
    return [
        ExchangeRate(currency=r.currency, asset=r.asset, rate=r.rate, updated_at=r.updated_at)
        for r in rows
    ]


def credits_for(tx: Tx, asset: str, money: Decimal, currency: str) -> int:
    """What `money` buys of `asset`: 1:1 into the currency's own asset, else at the tenant's rate.

    Rounded once, half to even, to the asset's minor unit.
    """
    info = tx.asset(asset)
    if asset.upper() == currency:
        return info.to_minor(money)
    rate = store.exchange_rate(tx.conn, tx.tenant_id, currency, asset)
    if rate is None:
        raise NoExchangeRate(
            f"no exchange rate from {currency} to {asset}: set one first", field="currency"
        )
    return info.to_minor(money * rate)


# Provider accounts and payment methods


SECRET_FIELDS = ("api_key", "webhook_secret")


def set_provider_account(
    tx: Tx,
    *,
    provider: str,
    api_key: str | None = None,
    webhook_secret: str | None = None,
) -> ProviderAccount:
    """The tenant's account at a provider: its secret API key and webhook endpoint secret,
    stored sealed and never shown again. Where the server connects to reach the provider is
    the operator's to set (`CREDITGATE_STRIPE_API_BASE`), never a tenant's."""
    provider = check_provider(provider)
    given = {
        "api_key": _check_ref(api_key, "api_key", optional=True),
        "webhook_secret": _check_ref(webhook_secret, "webhook_secret", optional=True),
    }
    keys = tx.operator.secret_keys
    config = {name: None if value is None else keys.seal(value) for name, value in given.items()}
    created = insert_if_new(
        tx,
        payment_providers,
        {"tenant_id": tx.tenant_id, "provider": provider, "config": config, "updated_at": tx.now},
    )
    if not created:
        store.update_provider_config(tx.conn, tx.tenant_id, provider, config, tx.now)
    return _account_result(provider, config, tx.now)


def _account_result(provider: str, config: dict[str, Any], updated_at: Any) -> ProviderAccount:
    return ProviderAccount(
        provider=provider,
        api_key_set=bool(config.get("api_key")),
        webhook_secret_set=bool(config.get("webhook_secret")),
        updated_at=updated_at,
    )


def list_provider_accounts(tx: Tx) -> list[ProviderAccount]:
    rows = store.list_provider_accounts(tx.conn, tx.tenant_id)
    return [_account_result(r.provider, r.config, r.updated_at) for r in rows]


def stored_provider_config(tx: Tx, provider: str) -> dict[str, Any] | None:
    """A provider account's secrets, opened; None when the tenant has not set one."""
    config = store.provider_config(tx.conn, tx.tenant_id, provider)
    if not config:
        return None
    keys = tx.operator.secret_keys
    return {
        name: keys.open(config[name]) if name in SECRET_FIELDS and config.get(name) else None
        for name in SECRET_FIELDS
    }


def provider_config(tx: Tx, provider: str) -> dict[str, Any]:
    """What the services that call the provider need: the secrets, and where to connect."""
    if provider == "manual":
        return {}
    config = stored_provider_config(tx, provider)
    if not config or not config.get("api_key"):
        raise ProviderNotConfigured(f"set the {provider} account's API key first", field="provider")
    return {**config, "api_base": tx.operator.stripe_api_base}


def _method_result(row: Any) -> PaymentMethod:
    return PaymentMethod(
        id=row.id,
        customer=row.customer,
        provider=row.provider,
        customer_ref=row.customer_ref,
        method_ref=row.method_ref,
        created_at=row.created_at,
    )


def save_payment_method(
    tx: Tx,
    *,
    customer: str,
    provider: str,
    method_ref: str,
    customer_ref: str | None = None,
    idempotency_key: str | None = None,
) -> PaymentMethod:
    """The payment method auto top-up charges (one per customer and provider; replaces)."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    provider = check_provider(provider)
    method = _check_ref(method_ref, "method_ref")
    owner = _check_ref(customer_ref, "customer_ref", optional=True)
    request = {"customer": customer, "provider": provider, "method": method, "owner": owner}
    idem = Idempotent(tx, idempotency_key, "payment_method.save", request)
    if (replayed := idem.replay(PaymentMethod)) is not None:
        return replayed
    values = {
        "tenant_id": tx.tenant_id,
        "wallet_id": wallet_id,
        "id": new_id("pmt"),
        "customer": customer,
        "provider": provider,
        "customer_ref": owner,
        "method_ref": method,
        "created_at": tx.now,
    }
    if not insert_if_new(tx, payment_methods, values):
        store.replace_payment_method(
            tx.conn,
            wallet_id,
            provider,
            {"customer_ref": owner, "method_ref": method, "created_at": tx.now},
        )
    return idem.record(_method_result(store.payment_method(tx.conn, wallet_id, provider)))


def payment_method(tx: Tx, wallet_id: str, provider: str) -> PaymentMethod | None:
    row = store.payment_method(tx.conn, wallet_id, provider)
    return None if row is None else _method_result(row)


def list_payment_methods(tx: Tx, *, customer: str) -> list[PaymentMethod]:
    wallet_id = tx.wallet_id(check_external_id(customer))
    return [_method_result(r) for r in store.list_payment_methods(tx.conn, wallet_id)]


# Purchases


def purchase_result(row: Any) -> Purchase:
    return Purchase(
        id=row.id,
        customer=row.customer,
        pack_id=row.pack_id,
        asset=row.asset,
        amount=row.amount,
        price=row.price,
        currency=row.currency,
        status=row.status,
        origin=row.origin,
        provider=row.provider,
        provider_ref=row.provider_ref,
        payment_ref=row.payment_ref,
        checkout_url=row.checkout_url,
        failure_reason=row.failure_reason,
        lot_id=row.lot_id,
        created_at=row.created_at,
        paid_at=row.paid_at,
        failed_at=row.failed_at,
        refunded=row.refunded,
        refunded_money=row.refunded_money,
    )


def _purchase_row(tx: Tx, purchase_id: object) -> Any:
    row = store.tenant_row(tx.conn, purchases, tx.tenant_id, check_id(purchase_id, "purchase"))
    if row is None:
        raise UnknownPurchase(f"purchase {purchase_id!r} does not exist", field="purchase")
    return row


def get_purchase(tx: Tx, *, purchase_id: str) -> Purchase:
    return purchase_result(_purchase_row(tx, purchase_id))


def list_purchases(tx: Tx, *, customer: str, limit: int = 100) -> list[Purchase]:
    wallet_id = tx.wallet_id(check_external_id(customer))
    return [purchase_result(r) for r in store.list_purchases(tx.conn, wallet_id, limit)]


def start_purchase(tx: Tx, *, order: PurchaseOrder, idempotency_key: str | None = None) -> Purchase:
    """A pending purchase of a pack, or of `price` worth of an asset (a money top-up).

    It grants nothing until paid: by the provider's confirmation, or an operator marking a
    manual invoice paid.
    """
    wallet_id = tx.wallet_id(check_external_id(order.customer))
    provider = check_provider(order.provider)
    success = check_url(order.success_url, "success_url")
    check_url(order.cancel_url, "cancel_url")
    if provider == "stripe" and order.origin == "checkout" and success is None:
        raise InvalidInput("success_url is required for a Stripe checkout", field="success_url")
    request = {
        "customer": order.customer,
        "pack": order.pack,
        "asset": order.asset,
        "price": order.price if order.price is None else str(order.price),
        "currency": order.currency,
        "provider": provider,
        "success_url": order.success_url,
        "cancel_url": order.cancel_url,
    }
    idem = Idempotent(tx, idempotency_key, "purchase.create", request)
    if (replayed := idem.replay(Purchase)) is not None:
        return replayed
    if (order.pack is None) == (order.price is None):
        raise InvalidInput("give a pack, or a price and an asset to top up", field="pack")
    item = _of_pack(tx, order.pack) if order.pack is not None else _of_money(tx, order)
    if provider != "manual":
        provider_config(tx, provider)
    new = order.purchase_id or new_id("pur")
    store.insert_row(
        tx.conn,
        purchases,
        {
            "tenant_id": tx.tenant_id,
            "wallet_id": wallet_id,
            "id": new,
            "customer": order.customer,
            "pack_id": item.pack_id,
            "asset": item.asset,
            "amount": item.amount,
            "price": item.price,
            "currency": item.currency,
            "expires_after_days": item.expires_after_days,
            "status": PENDING,
            "origin": order.origin,
            "provider": provider,
            "provider_ref": None,
            "payment_ref": None,
            "checkout_url": None,
            "failure_reason": None,
            "lot_id": None,
            "created_at": tx.now,
            "paid_at": None,
            "failed_at": None,
        },
    )
    return idem.record(purchase_result(_purchase_row(tx, new)))


@dataclass(frozen=True, slots=True)
class _Item:
    """What a purchase buys, and for how much."""

    pack_id: str | None
    asset: str
    amount: int
    price: Decimal
    currency: str
    expires_after_days: int | None


def _of_pack(tx: Tx, pack: str) -> _Item:
    row = pack_row(tx, pack)
    if not row.active:
        raise PackNotActive(f"pack {row.code!r} is no longer sold", field="pack")
    return _Item(row.id, row.asset, row.amount, row.price, row.currency, row.expires_after_days)


def _of_money(tx: Tx, order: PurchaseOrder) -> _Item:
    """A money top-up: `price` in its currency, converted to the asset at the tenant's rate."""
    if order.asset is None:
        raise InvalidInput("asset is required for a top-up", field="asset")
    asset = check_asset_code(order.asset)
    currency = check_currency(order.currency)
    money = check_price(order.price, currency)
    amount = credits_for(tx, asset, money, currency)
    if amount <= 0:
        raise InvalidInput("price buys less than one minor unit of the asset", field="price")
    if amount > MAX_BALANCE:
        raise InvalidInput("price buys more than a balance can hold", field="price")
    return _Item(None, asset, amount, money, currency, None)


def attach_provider_ref(
    tx: Tx,
    *,
    purchase_id: str,
    provider_ref: str | None,
    checkout_url: str | None = None,
    payment_ref: str | None = None,
) -> Purchase:
    """Remember the provider's objects for a purchase (its checkout session, its payment)."""
    row = _purchase_row(tx, purchase_id)
    values: dict[str, Any] = {}
    if provider_ref and not row.provider_ref:
        values["provider_ref"] = _check_ref(provider_ref, "provider_ref")
    if checkout_url and not row.checkout_url:
        values["checkout_url"] = checkout_url[:MAX_URL]
    if payment_ref and not row.payment_ref:
        values["payment_ref"] = _check_ref(payment_ref, "payment_ref")
    if values:
        store.update_purchase(tx.conn, row.id, values)
    return purchase_result(_purchase_row(tx, purchase_id))


def find_purchase(tx: Tx, *, purchase_id: str | None, refs: list[str]) -> Any | None:
    """A purchase by the id the provider echoes back, else by one of the provider's ids."""
    if isinstance(purchase_id, str) and len(purchase_id) <= 40:
        row = store.tenant_row(tx.conn, purchases, tx.tenant_id, purchase_id)
        if row is not None:
            return row
    for ref in refs:
        row = store.purchase_by_ref(tx.conn, tx.tenant_id, ref)
        if row is not None:
            return row
    return None


def complete_purchase(
    tx: Tx, *, purchase_id: str, payment_ref: str | None = None, manual: bool = False
) -> Purchase:
    """Mark a purchase paid and grant its credit, in one transaction, exactly once.

    A purchase that failed may still be paid later (a retried payment); one already paid
    answers as it is. `manual` is an operator marking an invoice paid.
    """
    return record_payment(tx, purchase_id=purchase_id, payment_ref=payment_ref, manual=manual)[0]


def _by_hand(row: Any, manual: bool) -> None:
    if manual and row.provider != "manual":
        raise InvalidInput(
            f"purchase {row.id} is paid through {row.provider}, not marked by hand",
            field="purchase",
        )


def _as_it_ended(tx: Tx, row: Any) -> Any:
    """The purchase again after its conditional update changed nothing.

    On PostgreSQL that update waited for a concurrent transaction that was moving the same
    purchase and then found it moved: the row read before it is out of date, and a read
    now sees what that transaction committed.
    """
    return _purchase_row(tx, row.id)


def record_payment(
    tx: Tx, *, purchase_id: str, payment_ref: str | None = None, manual: bool = False
) -> tuple[Purchase, bool]:
    """`complete_purchase`, also telling whether this call is the one that paid it."""
    row = _purchase_row(tx, purchase_id)
    _by_hand(row, manual)
    if not store.claim_purchase_paid(tx.conn, row.id, tx.now):
        row = _as_it_ended(tx, row)
        if row.status == PAID:
            return purchase_result(row), False
        raise PurchaseNotPending(f"purchase {row.id} is {row.status}", field="purchase")
    asset = tx.asset(row.asset)
    expires = tx.now + timedelta(days=row.expires_after_days) if row.expires_after_days else None
    lot = grants.grant(
        tx,
        GrantRequest(
            customer=row.customer,
            asset=row.asset,
            amount=row.amount,
            kind=LotKind.PURCHASED,
            expires_at=expires,
            cost_basis=unit_value(row.price, row.amount, asset),
            currency=row.currency,
            metadata={"purchase": row.id, **({"pack": row.pack_id} if row.pack_id else {})},
        ),
    )
    values: dict[str, Any] = {"lot_id": lot.id}
    if payment_ref and not row.payment_ref:
        values["payment_ref"] = _check_ref(payment_ref, "payment_ref")
    store.update_purchase(tx.conn, row.id, values)
    # The auto top-up that bought it may fire again at the next crossing (the grant above
    # re-armed it if it lifted available to its threshold).
    store.release_paid_top_up(tx.conn, row.id, tx.now)
    if row.origin == OVERAGE:
        _stopped_wallet_blocks(tx, row)
    emit(
        tx,
        EventType.OVERAGE_PAID if row.origin == OVERAGE else EventType.TOPUP_SUCCEEDED,
        row.wallet_id,
        {
            "purchase": row.id,
            "customer": row.customer,
            "asset": row.asset,
            "amount": row.amount,
            "price": str(row.price),
            "currency": row.currency,
            "origin": row.origin,
            "provider": row.provider,
            "lot": lot.id,
        },
    )
    return purchase_result(_purchase_row(tx, row.id)), True


def fail_purchase(
    tx: Tx,
    *,
    purchase_id: str,
    reason: str = "",
    payment_ref: str | None = None,
    manual: bool = False,
) -> Purchase:
    """Mark a pending purchase failed (nothing is granted) and raise `topup.failed`.

    A purchase already paid or failed answers as it is when a provider reports it (events
    arrive late and out of order); an operator is told it is no longer pending.
    """
    return record_failure(
        tx, purchase_id=purchase_id, reason=reason, payment_ref=payment_ref, manual=manual
    )[0]


def record_failure(
    tx: Tx,
    *,
    purchase_id: str,
    reason: str = "",
    payment_ref: str | None = None,
    manual: bool = False,
) -> tuple[Purchase, bool]:
    """`fail_purchase`, also telling whether this call is the one that failed it."""
    row = _purchase_row(tx, purchase_id)
    _by_hand(row, manual)
    text = (reason or "failed")[:MAX_REF]
    if not store.claim_purchase_failed(tx.conn, row.id, text, payment_ref, tx.now):
        row = _as_it_ended(tx, row)
        if manual:
            raise PurchaseNotPending(f"purchase {row.id} is {row.status}", field="purchase")
        return purchase_result(row), False
    _free_top_up_after_failure(tx, row.id)
    stopped = _stop_after_failure(tx, row) if row.origin == OVERAGE else None
    emit(
        tx,
        EventType.OVERAGE_PAYMENT_FAILED if row.origin == OVERAGE else EventType.TOPUP_FAILED,
        row.wallet_id,
        {
            "purchase": row.id,
            "customer": row.customer,
            "asset": row.asset,
            "amount": row.amount,
            "price": str(row.price),
            "currency": row.currency,
            "origin": row.origin,
            "provider": row.provider,
            "reason": text,
            **({"wallet_stopped": stopped} if stopped is not None else {}),
        },
    )
    return purchase_result(_purchase_row(tx, row.id)), True


def mark_paid(tx: Tx, *, purchase_id: str, idempotency_key: str | None = None) -> Purchase:
    """An operator records a manual invoice as paid: its credit is granted, once."""
    idem = Idempotent(tx, idempotency_key, "purchase.mark_paid", {"purchase": purchase_id})
    if (replayed := idem.replay(Purchase)) is not None:
        return replayed
    return idem.record(complete_purchase(tx, purchase_id=purchase_id, manual=True))


def mark_failed(
    tx: Tx, *, purchase_id: str, reason: str = "", idempotency_key: str | None = None
) -> Purchase:
    """An operator records a manual invoice as failed: nothing is granted."""
    request = {"purchase": purchase_id, "reason": reason}
    idem = Idempotent(tx, idempotency_key, "purchase.mark_failed", request)
    if (replayed := idem.replay(Purchase)) is not None:
        return replayed
    return idem.record(fail_purchase(tx, purchase_id=purchase_id, reason=reason, manual=True))


def _free_top_up_after_failure(tx: Tx, purchase_id: str) -> None:
    """Free the auto top-up slot a failed purchase held, count the failure, back off and
    re-arm (a paid one frees it in `complete_purchase`)."""
    row = store.top_up_in_flight(tx.conn, purchase_id)
    if row is None:
        return
    failures = row.failures + 1
    same_month = row.month == month_of(tx.now)
    store.release_failed_top_up(
        tx.conn,
        row,
        purchase_id,
        {
            "armed": 1,
            "failures": failures,
            "backoff_until": tx.now + backoff(failures),
            # A failed purchase does not count against the monthly limit.
            "month_count": max(0, row.month_count - 1) if same_month else row.month_count,
            "updated_at": tx.now,
        },
    )


# Bills of overage (services/billing/overage.py makes them): what paying or failing one does


def start_bill(
    tx: Tx,
    *,
    wallet_id: str,
    customer: str,
    asset: str,
    amount: int,
    price: Decimal,
    currency: str,
    provider: str,
) -> Purchase:
    """A pending purchase that bills `amount` of a wallet's debt for `price`: paid, its lot
    (kind purchased, cost basis = price per unit) pays the debt down at once, so the revenue
    is recognized when the money arrives."""
    new = new_id("pur")
    store.insert_row(
        tx.conn,
        purchases,
        {
            "tenant_id": tx.tenant_id,
            "wallet_id": wallet_id,
            "id": new,
            "customer": customer,
            "pack_id": None,
            "asset": asset,
            "amount": amount,
            "price": price,
            "currency": currency,
            "expires_after_days": None,
            "status": PENDING,
            "origin": OVERAGE,
            "provider": provider,
            "provider_ref": None,
            "payment_ref": None,
            "checkout_url": None,
            "failure_reason": None,
            "lot_id": None,
            "created_at": tx.now,
            "paid_at": None,
            "failed_at": None,
        },
    )
    return purchase_result(_purchase_row(tx, new))


def _stop_after_failure(tx: Tx, row: Any) -> str | None:
    """The tenant's rule for a failed bill of overage: `block` stops the wallet where it
    stands (no further usage fits), `keep` leaves it. Which policy it now has, if changed."""
    setting = collection.overage_setting(tx.conn, tx.tenant_id, row.asset)
    if setting is None or setting.on_failure != "block":
        return None
    balance = lock_balance(tx, row.wallet_id, row.asset)
    collection.set_wallet_stopped(tx.conn, row.wallet_id, row.asset, balance.available)
    collection.mark_bill_stopped(tx.conn, row.id)
    return "block" if balance.available >= 0 else "overdraft"


def _stopped_wallet_blocks(tx: Tx, row: Any) -> None:
    """A bill whose failure stopped the wallet is paid (or written off): the debt it billed
    is closed, so the wallet is now under `block` as the tenant's rule says."""
    bill = collection.bill_of(tx.conn, row.id)
    if bill is None or not bill.stopped:
        return
    balance = lock_balance(tx, row.wallet_id, row.asset)
    collection.set_wallet_stopped(tx.conn, row.wallet_id, row.asset, balance.available)


def write_off(tx: Tx, *, purchase_id: str, idempotency_key: str | None = None) -> Purchase:
    """Give up collecting a bill of overage (pending or failed): the debt it billed leaves
    the wallet as an adjustment worth nothing (no revenue), up to what the wallet still owes,
    and the report counts it as written off."""
    idem = Idempotent(tx, idempotency_key, "purchase.write_off", {"purchase": purchase_id})
    if (replayed := idem.replay(Purchase)) is not None:
        return replayed
    row = _purchase_row(tx, purchase_id)
    if row.origin != OVERAGE:
        raise NotOverage(f"purchase {row.id} is not a bill of overage", field="purchase")
    if not collection.claim_written_off(tx.conn, row.id, tx.now):
        row = _as_it_ended(tx, row)
        raise NotOverage(f"purchase {row.id} is {row.status}", field="purchase")
    owed = lock_balance(tx, row.wallet_id, row.asset).debt
    closed = min(owed, row.amount)
    if closed:
        lot = grants.grant(
            tx,
            GrantRequest(
                customer=row.customer,
                asset=row.asset,
                amount=closed,
                kind=LotKind.ADJUSTMENT,
                cost_basis=Decimal(0),
                currency=row.currency,
                metadata={"written_off": row.id},
            ),
        )
        store.update_purchase(tx.conn, row.id, {"lot_id": lot.id})
    _stopped_wallet_blocks(tx, row)
    return idem.record(purchase_result(_purchase_row(tx, row.id)))
