"""Routes for packs, purchases and top-ups, payment providers, auto top-up, and Stripe's webhook."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from creditgate.api import Creditgate
from creditgate.domain.billing_errors import InvalidSignature
from creditgate.domain.errors import NotFound
from creditgate.http.answers import (
    AssetPath,
    CustomerPath,
    IdempotencyKey,
    ObjectPath,
    RequiredIdempotencyKey,
    answer,
)
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.load import in_flight_slot
from creditgate.http.models import (
    ID_PATTERN,
    AssetCode,
    Body,
    DecimalText,
    GrantAmount,
    Limit,
    Name,
    Text,
)
from creditgate.http.plans import Code, Currency
from creditgate.services.billing.payments import stripe_event_tenant
from creditgate.services.billing.results import (
    AutoTopUp,
    ExchangeRate,
    Pack,
    PaymentMethod,
    ProviderAccount,
    ProviderEventOutcome,
    Purchase,
)

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["payments"])

Provider = Literal["manual", "stripe"]
Ref = Annotated[Text, Field(min_length=1, max_length=255)]
Url = Annotated[
    str, Field(pattern=r"^https?://[!-~]{1,2000}$", examples=["https://example.com/ok"])
]
PackRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
CurrencyPath = Annotated[str, Path(pattern=r"^[A-Za-z]{3,8}$", examples=["USD"])]


class NewPack(Body):
    code: Code
    name: Name = ""
    asset: AssetCode
    amount: GrantAmount
    price: DecimalText
    currency: Currency = "USD"
    expires_after_days: Annotated[int, Field(ge=1, le=36_600)] | None = None


class PackList(BaseModel):
    data: list[Pack]


class PackState(Body):
    active: bool


class NewPurchase(Body):
    pack: PackRef | None = Field(None, description="The pack's id or code")
    asset: AssetCode | None = Field(None, description="With price: the asset a top-up buys")
    price: DecimalText | None = Field(None, description="With asset: the money to top up with")
    currency: Currency = "USD"
    provider: Provider = "manual"
    success_url: Url | None = None
    cancel_url: Url | None = None


class PurchaseList(BaseModel):
    data: list[Purchase]


class InvoiceFailure(Body):
    reason: Annotated[Text, Field(max_length=255)] = ""


class RateChange(Body):
    rate: DecimalText = Field(description="Whole units of the asset one unit of money buys")


class ExchangeRateList(BaseModel):
    data: list[ExchangeRate]


class ProviderSettings(Body):
    api_key: Ref | None = None
    webhook_secret: Ref | None = None
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
    provider: Provider
    method_ref: Ref = Field(description="The provider's payment method, e.g. pm_…")
    customer_ref: Ref | None = Field(None, description="The provider's customer, e.g. cus_…")


class PaymentMethodList(BaseModel):
    data: list[PaymentMethod]


class AutoTopUpSettings(Body):
    threshold: Limit
    pack: PackRef
    provider: Provider = "stripe"
    monthly_limit: Annotated[int, Field(ge=1, le=1_000)] | None = None
    enabled: bool = True


class AutoTopUpList(BaseModel):
    data: list[AutoTopUp]


@router.post("/packs", status_code=201, response_model=Pack)
def create_pack(body: NewPack, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
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


@router.get("/packs", response_model=PackList)
def list_packs(t: Ledger, include_inactive: bool = False) -> Response:
    return answer(PackList(data=t.packs(include_inactive=include_inactive)))


@router.put("/packs/{pack}/state", response_model=Pack)
def set_pack_state(pack: ObjectPath, body: PackState, t: Ledger) -> Response:
    return answer(t.set_pack_active(pack, body.active))


@router.post("/customers/{customer}/purchases", status_code=201, response_model=Purchase)
def create_purchase(
    customer: CustomerPath, body: NewPurchase, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    purchase = t.buy(
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


@router.get("/customers/{customer}/purchases", response_model=PurchaseList)
def list_purchases(customer: CustomerPath, t: Ledger) -> Response:
    return answer(PurchaseList(data=t.purchases(customer)))


@router.get("/purchases/{purchase}", response_model=Purchase)
def get_purchase(purchase: ObjectPath, t: Ledger) -> Response:
    return answer(t.purchase(purchase))


@router.post("/purchases/{purchase}/mark-paid", response_model=Purchase)
def mark_paid(purchase: ObjectPath, t: Ledger, idempotency_key: RequiredIdempotencyKey) -> Response:
    """An operator records a manual invoice as paid: its credit is granted, once."""
    return answer(t.mark_paid(purchase, idempotency_key=idempotency_key))


@router.post("/purchases/{purchase}/mark-failed", response_model=Purchase)
def mark_failed(
    purchase: ObjectPath,
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
    body: InvoiceFailure | None = None,
) -> Response:
    reason = body.reason if body is not None else ""
    return answer(t.mark_failed(purchase, reason=reason, idempotency_key=idempotency_key))


@router.put("/exchange-rates/{currency}/{asset}", response_model=ExchangeRate)
def set_exchange_rate(
    currency: CurrencyPath,
    asset: AssetPath,
    body: RateChange,
    t: Ledger,
) -> Response:
    return answer(t.set_exchange_rate(currency, asset, body.rate))


@router.get("/exchange-rates", response_model=ExchangeRateList)
def list_exchange_rates(t: Ledger) -> Response:
    return answer(ExchangeRateList(data=t.exchange_rates()))


@router.put("/payment-providers/{provider}", response_model=ProviderAccount)
def set_provider_account(provider: Provider, body: ProviderSettings, t: Ledger) -> Response:
    """The tenant's provider account. Secrets are stored, never shown again."""
    account = t.set_provider_account(
        provider, api_key=body.api_key, webhook_secret=body.webhook_secret
    )
    return answer(account)


@router.get("/payment-providers", response_model=ProviderAccountList)
def list_provider_accounts(t: Ledger) -> Response:
    return answer(ProviderAccountList(data=t.provider_accounts()))


@router.post("/customers/{customer}/payment-methods", status_code=201, response_model=PaymentMethod)
def save_payment_method(
    customer: CustomerPath,
    body: NewPaymentMethod,
    t: Ledger,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    method = t.save_payment_method(
        customer,
        body.provider,
        body.method_ref,
        customer_ref=body.customer_ref,
        idempotency_key=idempotency_key,
    )
    return answer(method, 201)


@router.get("/customers/{customer}/payment-methods", response_model=PaymentMethodList)
def list_payment_methods(customer: CustomerPath, t: Ledger) -> Response:
    return answer(PaymentMethodList(data=t.payment_methods(customer)))


@router.put("/customers/{customer}/auto-top-up/{asset}", response_model=AutoTopUp)
def set_auto_top_up(
    customer: CustomerPath, asset: AssetPath, body: AutoTopUpSettings, t: Ledger
) -> Response:
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


@router.get("/customers/{customer}/auto-top-up", response_model=AutoTopUpList)
def list_auto_top_ups(customer: CustomerPath, t: Ledger) -> Response:
    return answer(AutoTopUpList(data=t.auto_top_ups(customer)))


# Signed by Stripe rather than keyed: a slot once routed, its body read.
@router.post(
    "/providers/stripe/webhook",
    response_model=ProviderEventOutcome,
    dependencies=[Depends(in_flight_slot)],
)
async def stripe_webhook(
    request: Request,
    tenant: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, description="The tenant; else the event's metadata names it"),
    ] = None,
    stripe_signature: Annotated[str | None, Header(max_length=4096)] = None,
) -> Response:
    """Stripe's events for a tenant's purchases, verified with the tenant's endpoint secret.

    Register `…/v1/providers/stripe/webhook?tenant=<tenant id>` in Stripe. A body whose
    signature does not verify is answered 400 and changes nothing.
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
