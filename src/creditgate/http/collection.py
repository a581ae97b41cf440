"""Routes for collecting the money: invoices, overage billing and a test-mode tenant's clock."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from creditgate.domain.billing_errors import (
    NotOverage,
    PaymentProviderError,
    ProviderNotConfigured,
    UnknownInvoice,
    UnknownPurchase,
)
from creditgate.domain.errors import LiveTenant, UnknownAsset, UnknownCustomer
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
from creditgate.http.examples import ANSWERS, REQUESTS
from creditgate.http.models import ID_PATTERN, Body, DecimalText, Limit, Timestamp, example
from creditgate.http.plans import Currency
from creditgate.http.purchases import InvoiceFailure, PurchasePath
from creditgate.http.reference import documented, errors
from creditgate.http.threads import waiting_on_a_provider
from creditgate.services.billing.results import Invoice, OverageSetting

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["collection"])

InvoicePath = Annotated[
    str, Path(pattern=ID_PATTERN, description="The invoice's id (`inv_…`, a plan fee)")
]


class InvoiceList(BaseModel):
    data: list[Invoice]


class OverageList(BaseModel):
    data: list[OverageSetting]


InvoiceListAnswer = documented(
    InvoiceList,
    {"data": "The customer's invoices, newest first: plan fees and bills of overage"},
    example=ANSWERS["invoices"],
)
OverageListAnswer = documented(
    OverageList, {"data": "The tenant's overage settings, by asset"}, example=ANSWERS["overages"]
)


class OverageBody(Body):
    model_config = example(REQUESTS["overage"])

    price: DecimalText = Field(description="Money per whole unit of debt, in `currency`")
    currency: Currency = Field("USD", description="The money's currency (ISO 4217 code)")
    provider: Literal["manual", "stripe"] = Field(
        "manual", description="manual (an invoice you mark paid) or stripe"
    )
    threshold: Limit | None = Field(
        None,
        description="Bill unbilled debt at once when it exceeds this, in minor units of the "
        "asset; null: only at the cycle's end",
    )
    on_failure: Literal["keep", "block"] = Field(
        "keep", description="What a failed payment does: keep, or block (the wallet stops)"
    )
    return_url: Annotated[str, Field(max_length=2048)] | None = Field(
        None,
        description="Stripe without a saved payment method: where the bill's pay link (a "
        "Checkout Session) returns the customer",
    )


class ClockAdvanceBody(Body):
    model_config = example(REQUESTS["advance"])

    to: Timestamp = Field(description="The tenant's new time: now or later (ISO 8601)")


@router.get(
    "/customers/{customer}/invoices",
    response_model=InvoiceListAnswer,
    summary="List a customer's invoices",
    responses=errors(UnknownCustomer),
)
def list_invoices(customer: CustomerPath, t: Ledger) -> Response:
    """Plan fees (one per period of a plan whose fee creditgate collects) and bills of
    overage, newest first, each with its status and, when the provider gives one, where the
    customer pays it."""
    return answer(InvoiceList(data=t.invoices(customer)))


@router.get(
    "/invoices/{invoice}",
    response_model=schemas.Invoice,
    summary="Get a plan invoice",
    responses=errors(UnknownInvoice),
)
def get_invoice(invoice: InvoicePath, t: Ledger) -> Response:
    """A period's fee as an invoice (a bill of overage is a purchase: `GET /v1/purchases/…`)."""
    return answer(t.invoice(invoice))


@router.post(
    "/invoices/{invoice}/mark-paid",
    response_model=schemas.Invoice,
    summary="Mark a manual plan invoice paid",
    responses=errors(UnknownInvoice),
)
def mark_invoice_paid(
    invoice: InvoicePath, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """An operator records a manual plan invoice paid: the period's included credit is
    granted, once (while the period lasts). Marking it paid again changes nothing."""
    return answer(t.mark_invoice_paid(invoice, idempotency_key=idempotency_key))


@router.post(
    "/invoices/{invoice}/mark-failed",
    response_model=schemas.Invoice,
    summary="Record a failed payment of a manual plan invoice",
    responses=errors(UnknownInvoice),
)
def mark_invoice_failed(
    invoice: InvoicePath,
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
    body: InvoiceFailure | None = None,
) -> Response:
    """An operator records a failed attempt: the subscription is `past_due`, and
    `subscription.payment_failed` is raised (the dunning rule in docs/collection.md). It can
    still be marked paid later. The body is optional."""
    reason = body.reason if body is not None else ""
    return answer(t.mark_invoice_failed(invoice, reason=reason, idempotency_key=idempotency_key))


@router.put(
    "/overage/{asset}",
    response_model=schemas.OverageSetting,
    summary="Set how an asset's debt is billed",
    responses=errors(UnknownAsset, ProviderNotConfigured),
)
def set_overage(asset: AssetPath, body: OverageBody, t: Ledger) -> Response:
    """The price of a whole unit of debt and how it is billed in arrears: at each cycle's
    end (the subscription's period, else the calendar month) and above `threshold`. Putting
    it again replaces it."""
    setting = t.set_overage(
        asset,
        price=body.price,
        currency=body.currency,
        provider=body.provider,
        threshold=body.threshold,
        on_failure=body.on_failure,
        return_url=body.return_url,
    )
    return answer(setting)


@router.get(
    "/overage",
    response_model=OverageListAnswer,
    summary="List overage settings",
    responses=errors(),
)
def list_overage(t: Ledger) -> Response:
    """Every asset whose debt the tenant bills, with its price and rules."""
    return answer(OverageList(data=t.overage_settings()))


@router.post(
    "/purchases/{purchase}/write-off",
    response_model=schemas.Purchase,
    summary="Write off a bill of overage",
    responses=errors(UnknownPurchase, NotOverage),
)
def write_off(
    purchase: PurchasePath, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """Give up collecting a pending or failed bill of overage: the debt it billed leaves the
    wallet at no value, and the revenue report counts it written off."""
    return answer(t.write_off(purchase, idempotency_key=idempotency_key))


@router.get(
    "/test-clock",
    response_model=schemas.TestClock,
    summary="Read a test-mode tenant's clock",
    responses=errors(LiveTenant),
)
def get_test_clock(t: Ledger) -> Response:
    """The tenant's time and how far ahead of the server's it runs (test-mode tenants only:
    403 for a live tenant)."""
    return answer(t.test_clock())


@router.post(
    "/test-clock/advance",
    response_model=schemas.ClockAdvance,
    summary="Advance a test-mode tenant's clock",
    responses=errors(LiveTenant, PaymentProviderError),
)
async def advance_test_clock(
    request: Request, body: ClockAdvanceBody, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Move a test-mode tenant's clock forward to `to`, then run what the worker runs at
    that time: overage billing, renewals, dunning, auto top-up and the sweeps (expiries).
    Only test-mode tenants may (403 for a live tenant); a time before the tenant's present
    is refused (422). Advance a period at a time to see each period's invoices in turn.
    Sent again with its `Idempotency-Key` (an answer lost), it answers the same time, moves
    nothing and only runs the round again, which bills and renews nothing twice; without
    one, the clock has run past `to` by then and the retry is refused (422)."""
    # It may move the tenant's Stripe test clock and collect through Stripe.
    advanced = await waiting_on_a_provider(
        request, t.advance_clock, body.to, idempotency_key=idempotency_key
    )
    return answer(advanced)
