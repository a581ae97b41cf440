"""Routes for packs, purchases and top-ups, payment providers, auto top-up, and Stripe's webhook."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, Field, StrictBool, field_validator
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from creditgate.api import Creditgate
from creditgate.domain.billing_errors import (
    InvalidSignature,
    NoExchangeRate,
    PackNotActive,
    PaymentProviderError,
    PeriodNotIssued,
    ProviderNotConfigured,
    PurchaseNotPending,
    UnknownPack,
    UnknownPurchase,
)
from creditgate.domain.errors import AlreadyExists, NotFound, UnknownAsset, UnknownCustomer
from creditgate.http import schemas
from creditgate.http.answers import (
    AssetPath,
    CustomerPath,
    IdempotencyKey,
    RequiredIdempotencyKey,
    answer,
)
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.examples import ANSWERS
from creditgate.http.load import in_flight_slot
from creditgate.http.models import (
    ID_PATTERN,
    MINOR,
    AssetCode,
    Body,
    DecimalText,
    GrantAmount,
    Limit,
    Name,
    Text,
    example,
)
from creditgate.http.plans import Code, Currency
from creditgate.http.reference import documented, errors
from creditgate.http.threads import waiting_on_a_provider
from creditgate.services.billing.payments import stripe_event_tenant
from creditgate.services.billing.results import (
    AutoTopUp,
    ExchangeRate,
    Pack,
    PaymentMethod,
    ProviderAccount,
    Purchase,
)

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["payments"])

Provider = Literal["manual", "stripe"]
Ref = Annotated[Text, Field(min_length=1, max_length=255)]
Url = Annotated[
    str, Field(pattern=r"^https?://[!-~]{1,2000}$", examples=["https://example.com/ok"])
]
PackRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
CurrencyPath = Annotated[
    str,
    Path(pattern=r"^[A-Za-z]{3,8}$", description="The money (ISO 4217 code)", examples=["USD"]),
]
PackPath = Annotated[str, Path(pattern=ID_PATTERN, description="The pack's id (`pck_…`) or code")]
PurchasePath = Annotated[str, Path(pattern=ID_PATTERN, description="The purchase's id (`pur_…`)")]
ProviderPath = Annotated[Provider, Path(description="The payment provider")]
_CURRENCY = "The currency (ISO 4217 code)"


class NewPack(Body):
    model_config = example(
        {
            "code": "starter",
            "name": "Starter pack",
            "asset": "credits",
            "amount": 100_000,
            "price": "10",
            "currency": "USD",
            "expires_after_days": 365,
        }
    )

    code: Code = Field(description="Your code for the pack, e.g. `starter`")
    name: Name = Field("", description="A display name, shown in the portal")
    asset: AssetCode = Field(description="The asset it grants")
    amount: GrantAmount = Field(description="Credit granted per purchase, " + MINOR)
    price: DecimalText = Field(description="Its price in `currency`, a decimal string")
    currency: Currency = Field("USD", description="The price's currency (ISO 4217 code)")
    expires_after_days: Annotated[int, Field(ge=1, le=36_600)] | None = Field(
        None, description="Days after purchase its credit expires; left out: never"
    )


class PackList(BaseModel):
    data: list[Pack]


class PackState(Body):
    model_config = example({"active": False})

    active: StrictBool = Field(description="Whether it is on sale")


class NewPurchase(Body):
    """A pack (`pack`), or a top-up by price (`asset` and `price`)."""

    model_config = example({"pack": "starter"}, {"asset": "credits", "price": "25"})

    pack: PackRef | None = Field(None, description="The pack's id or code")
    asset: AssetCode | None = Field(None, description="With price: the asset a top-up buys")
    price: DecimalText | None = Field(
        None, description="With asset: the money to top up with, in `currency`, a decimal string"
    )
    currency: Currency = Field("USD", description=_CURRENCY + " of a top-up's price")
    provider: Provider = Field(
        "manual",
        description="`manual` (an invoice, pending until marked paid) or `stripe` (Stripe "
        "Checkout: send the customer to `checkout_url`)",
    )
    success_url: Url | None = Field(
        None, description="With stripe: where Checkout sends the customer after paying"
    )
    cancel_url: Url | None = Field(
        None, description="With stripe: where Checkout sends the customer who cancels"
    )


class PurchaseList(BaseModel):
    data: list[Purchase]


class InvoiceFailure(Body):
    model_config = example({"reason": "card declined"})

    reason: Annotated[Text, Field(max_length=255)] = Field(
        "", description="Why, kept as the purchase's `failure_reason`"
    )


class RateChange(Body):
    model_config = example({"rate": "110"})

    rate: DecimalText = Field(
        description="Whole units of the asset one unit of money buys, a decimal string"
    )


class ExchangeRateList(BaseModel):
    data: list[ExchangeRate]


class ProviderSettings(Body):
    model_config = example({"api_key": "sk_test_…", "webhook_secret": "whsec_…"})

    api_key: Ref | None = Field(
        None, description="The provider's secret API key; stored sealed, never shown again"
    )
    webhook_secret: Ref | None = Field(
        None,
        description="The provider's webhook signing secret; stored sealed, never shown again",
    )
    # Refused with a message saying why: where the server connects is the operator's setting.
    api_base: SkipJsonSchema[Any] = None

    @field_validator("api_base", mode="before")
    @classmethod
    def _operator_only(cls, value: object) -> None:
        raise ValueError(
            "where the server connects for a provider is set by the operator "
            "(CREDITGATE_STRIPE_API_BASE), not by a tenant"
        )


class ProviderAccountList(BaseModel):
    data: list[ProviderAccount]


class NewPaymentMethod(Body):
    model_config = example(
        {"provider": "stripe", "method_ref": "pm_1Q2w3E", "customer_ref": "cus_Q8x1"}
    )

    provider: Provider = Field(description="The payment provider: manual or stripe")
    method_ref: Ref = Field(description="The provider's payment method, e.g. pm_…")
    customer_ref: Ref | None = Field(None, description="The provider's customer, e.g. cus_…")


class PaymentMethodList(BaseModel):
    data: list[PaymentMethod]


class AutoTopUpSettings(Body):
    model_config = example(
        {"threshold": 5_000, "pack": "starter", "provider": "stripe", "monthly_limit": 3}
    )

    threshold: Limit = Field(description="Buy when available falls below it, " + MINOR)
    pack: PackRef = Field(description="The pack to buy: its id or code")
    provider: Provider = Field(
        "stripe",
        description="`stripe` (charges the saved payment method) or `manual` (an invoice)",
    )
    monthly_limit: Annotated[int, Field(ge=1, le=1_000)] | None = Field(
        None, description="Most purchases per calendar month (UTC); left out: no limit"
    )
    enabled: StrictBool = Field(True, description="Whether it is on")


class AutoTopUpList(BaseModel):
    data: list[AutoTopUp]


PackListAnswer = documented(
    PackList, {"data": "The tenant's packs, oldest first"}, example={"data": [ANSWERS["pack"]]}
)
PurchaseListAnswer = documented(
    PurchaseList,
    {"data": "The customer's purchases, newest first"},
    example={"data": [ANSWERS["getpurchase"]]},
)
ExchangeRateListAnswer = documented(
    ExchangeRateList, {"data": "Every rate the tenant set"}, example=ANSWERS["rates"]
)
ProviderAccountListAnswer = documented(
    ProviderAccountList,
    {"data": "The tenant's provider accounts (whether each secret is set)"},
    example=ANSWERS["providers"],
)
PaymentMethodListAnswer = documented(
    PaymentMethodList,
    {"data": "The customer's saved payment methods"},
    example=ANSWERS["pms"],
)
AutoTopUpListAnswer = documented(
    AutoTopUpList,
    {"data": "The customer's auto top-up settings, one per asset"},
    example=ANSWERS["atus"],
)


@router.post(
    "/packs",
    status_code=201,
    response_model=schemas.Pack,
    summary="Create a pack",
    responses=errors(UnknownAsset, (409, AlreadyExists.code, "a pack with this code exists")),
)
def create_pack(body: NewPack, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
    """A pack of credit on sale at a price: customers buy it in the portal, you sell it with
    `POST /v1/customers/{customer}/purchases`, auto top-up buys it."""
    pack = t.create_pack(
        body.code,
        asset=body.asset,
        amount=body.amount,
        price=body.price,
        currency=body.currency,
        name=body.name,
        expires_after_days=body.expires_after_days,
        idempotency_key=idempotency_key,
    )
    return answer(pack, 201)


@router.get("/packs", response_model=PackListAnswer, summary="List packs", responses=errors())
def list_packs(
    t: Ledger,
    include_inactive: Annotated[bool, Query(description="Also packs taken off sale")] = False,
) -> Response:
    """The packs on sale (and those taken off sale, with `include_inactive`)."""
    return answer(PackList(data=t.packs(include_inactive=include_inactive)))


@router.put(
    "/packs/{pack}/state",
    response_model=schemas.Pack,
    summary="Put a pack on or off sale",
    responses=errors(UnknownPack),
)
def set_pack_state(pack: PackPath, body: PackState, t: Ledger) -> Response:
    """Put a pack on sale or take it off (purchases already made stand)."""
    return answer(t.set_pack_active(pack, body.active))


@router.post(
    "/customers/{customer}/purchases",
    status_code=201,
    response_model=schemas.Purchase,
    summary="Start a purchase",
    responses=errors(
        UnknownCustomer,
        UnknownPack,
        UnknownAsset,
        PackNotActive,
        ProviderNotConfigured,
        NoExchangeRate,
        PaymentProviderError,
    ),
)
async def create_purchase(
    request: Request,
    customer: CustomerPath,
    body: NewPurchase,
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    """Sell the customer a pack, or a top-up by price. It starts `pending`: with `stripe`,
    send the customer to `checkout_url` and the credit is granted when Stripe reports the
    payment; with `manual`, it is an invoice whose credit is granted when you mark it paid."""
    # Stripe's Checkout may keep it waiting: not on the threads the rest of the API needs.
    purchase = await waiting_on_a_provider(
        request,
        t.buy,
        customer,
        pack=body.pack,
        asset=body.asset,
        price=body.price,
        currency=body.currency,
        provider=body.provider,
        success_url=body.success_url,
        cancel_url=body.cancel_url,
        idempotency_key=idempotency_key,
    )
    return answer(purchase, 201)


@router.get(
    "/customers/{customer}/purchases",
    response_model=PurchaseListAnswer,
    summary="List a customer's purchases",
    responses=errors(UnknownCustomer),
)
def list_purchases(customer: CustomerPath, t: Ledger) -> Response:
    """The customer's purchases and their state: pending, paid or failed."""
    return answer(PurchaseList(data=t.purchases(customer)))


@router.get(
    "/purchases/{purchase}",
    response_model=schemas.Purchase,
    summary="Get a purchase",
    responses=errors(UnknownPurchase),
)
def get_purchase(purchase: PurchasePath, t: Ledger) -> Response:
    """A purchase and its state; `lot_id` is its credit once paid."""
    return answer(t.purchase(purchase))


@router.post(
    "/purchases/{purchase}/mark-paid",
    response_model=schemas.Purchase,
    summary="Mark a manual purchase paid",
    responses=errors(UnknownPurchase, PurchaseNotPending),
)
def mark_paid(
    purchase: PurchasePath, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """An operator records a manual invoice as paid: its credit is granted, once. A purchase
    changes state once (409 once paid or failed)."""
    return answer(t.mark_paid(purchase, idempotency_key=idempotency_key))


@router.post(
    "/purchases/{purchase}/mark-failed",
    response_model=schemas.Purchase,
    summary="Mark a manual purchase failed",
    responses=errors(UnknownPurchase, PurchaseNotPending),
)
def mark_failed(
    purchase: PurchasePath,
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
    body: InvoiceFailure | None = None,
) -> Response:
    """An operator records a manual invoice as not paid: no credit is granted. A purchase
    changes state once (409 once paid or failed). The body is optional."""
    reason = body.reason if body is not None else ""
    return answer(t.mark_failed(purchase, reason=reason, idempotency_key=idempotency_key))


@router.put(
    "/exchange-rates/{currency}/{asset}",
    response_model=schemas.ExchangeRate,
    summary="Set an exchange rate",
    responses=errors(UnknownAsset),
)
def set_exchange_rate(
    currency: CurrencyPath,
    asset: AssetPath,
    body: RateChange,
    t: Ledger,
) -> Response:
    """How many whole units of the asset one unit of the currency buys (e.g. 1 USD = 100
    credits), for top-ups by price and packs priced in that currency."""
    return answer(t.set_exchange_rate(currency, asset, body.rate))


@router.get(
    "/exchange-rates",
    response_model=ExchangeRateListAnswer,
    summary="List exchange rates",
    responses=errors(),
)
def list_exchange_rates(t: Ledger) -> Response:
    """Every exchange rate the tenant set."""
    return answer(ExchangeRateList(data=t.exchange_rates()))


@router.put(
    "/payment-providers/{provider}",
    response_model=schemas.ProviderAccount,
    summary="Set a payment provider account",
    responses=errors(),
)
def set_provider_account(provider: ProviderPath, body: ProviderSettings, t: Ledger) -> Response:
    """The tenant's own account with a payment provider (e.g. its Stripe API key and webhook
    signing secret). Secrets are stored sealed and never shown again; a field left out stays
    as it is."""
    account = t.set_provider_account(
        provider, api_key=body.api_key, webhook_secret=body.webhook_secret
    )
    return answer(account)


@router.get(
    "/payment-providers",
    response_model=ProviderAccountListAnswer,
    summary="List payment provider accounts",
    responses=errors(),
)
def list_provider_accounts(t: Ledger) -> Response:
    """The tenant's provider accounts: which secrets are set, never the secrets."""
    return answer(ProviderAccountList(data=t.provider_accounts()))


@router.post(
    "/customers/{customer}/payment-methods",
    status_code=201,
    response_model=schemas.PaymentMethod,
    summary="Save a payment method",
    responses=errors(UnknownCustomer),
)
def save_payment_method(
    customer: CustomerPath,
    body: NewPaymentMethod,
    t: Ledger,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The provider's payment method auto top-up charges for this customer (one per customer
    and provider: a new one replaces the old)."""
    method = t.save_payment_method(
        customer,
        body.provider,
        body.method_ref,
        customer_ref=body.customer_ref,
        idempotency_key=idempotency_key,
    )
    return answer(method, 201)


@router.get(
    "/customers/{customer}/payment-methods",
    response_model=PaymentMethodListAnswer,
    summary="List a customer's payment methods",
    responses=errors(UnknownCustomer),
)
def list_payment_methods(customer: CustomerPath, t: Ledger) -> Response:
    """The customer's saved payment methods, one per provider."""
    return answer(PaymentMethodList(data=t.payment_methods(customer)))


@router.put(
    "/customers/{customer}/auto-top-up/{asset}",
    response_model=schemas.AutoTopUp,
    summary="Set auto top-up",
    responses=errors(UnknownCustomer, UnknownAsset, UnknownPack, ProviderNotConfigured),
)
def set_auto_top_up(
    customer: CustomerPath, asset: AssetPath, body: AutoTopUpSettings, t: Ledger
) -> Response:
    """Buy `pack` when the customer's available balance in the asset falls below
    `threshold`: once per crossing, at most `monthly_limit` times a month, backing off after
    a failed payment. Replaces the asset's earlier setting."""
    setting = t.set_auto_top_up(
        customer,
        asset,
        threshold=body.threshold,
        pack=body.pack,
        provider=body.provider,
        monthly_limit=body.monthly_limit,
        enabled=body.enabled,
    )
    return answer(setting)


@router.get(
    "/customers/{customer}/auto-top-up",
    response_model=AutoTopUpListAnswer,
    summary="List a customer's auto top-up settings",
    responses=errors(UnknownCustomer),
)
def list_auto_top_ups(customer: CustomerPath, t: Ledger) -> Response:
    """The customer's auto top-up settings and their state (armed, in flight, backing off)."""
    return answer(AutoTopUpList(data=t.auto_top_ups(customer)))


# Signed by Stripe rather than keyed: a slot once routed, its body read.
@router.post(
    "/providers/stripe/webhook",
    response_model=schemas.ProviderEventOutcome,
    summary="Receive Stripe's events",
    responses=errors(InvalidSignature, ProviderNotConfigured, PeriodNotIssued),
    dependencies=[Depends(in_flight_slot)],
)
async def stripe_webhook(
    request: Request,
    tenant: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, description="The tenant; else the event's metadata names it"),
    ] = None,
    stripe_signature: Annotated[
        str | None, Header(max_length=4096, description="Stripe's signature of the body")
    ] = None,
) -> Response:
    """Stripe's events for a tenant's purchases and plan invoices, verified with the
    tenant's endpoint secret.

    Register `…/v1/providers/stripe/webhook?tenant=<tenant id>` in Stripe. A body whose
    signature does not verify is answered 400 and changes nothing; an invoice of a period
    that has not started here yet is answered 409 and changes nothing (Stripe sends it
    again later).
    """
    payload = await request.body()
    tenant_id = tenant or stripe_event_tenant(payload)
    if not tenant_id:
        raise InvalidSignature("name the tenant: register the endpoint with ?tenant=<tenant id>")
    cg: Creditgate = request.app.state.cg
    try:
        ledger = await run_in_threadpool(cg.tenant, tenant_id)
    except NotFound:
        raise InvalidSignature("the signature does not verify for this endpoint") from None
    outcome = await run_in_threadpool(ledger.handle_stripe_webhook, payload, stripe_signature)
    return answer(outcome)
