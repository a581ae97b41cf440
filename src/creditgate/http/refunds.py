"""Routes for refunds of charges and purchases, and the revenue recognition report."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field, StrictBool
from starlette.responses import Response

from creditgate.domain.billing_errors import (
    ProviderNotConfigured,
    PurchaseNotRefundable,
    RefundNotCovered,
    RefundPending,
    UnknownPurchase,
)
from creditgate.domain.errors import InvalidInput, UnknownCustomer
from creditgate.http import schemas
from creditgate.http.answers import RequiredIdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import (
    ID_PATTERN,
    MAX_REASON,
    MINOR,
    Amount,
    Body,
    CustomerId,
    Metadata,
    Text,
    Timestamp,
    example,
)
from creditgate.http.reference import errors
from creditgate.http.threads import waiting_on_a_provider
from creditgate.services.billing.results import PurchaseRefundList
from creditgate.services.ledger.refunds import UnknownCharge

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["refunds"])

DEFAULT_PERIOD = timedelta(days=30)
ChargePath = Annotated[str, Path(pattern=ID_PATTERN, description="The charge's id (`chg_…`)")]
PurchasePath = Annotated[str, Path(pattern=ID_PATTERN, description="The purchase's id (`pur_…`)")]


class NewRefund(Body):
    """Give back all that is left of a charge (no `amount`) or a part of it; name the reason."""

    model_config = example({"reason": "image failed to render", "amount": 100})

    reason: Annotated[Text, Field(min_length=1, max_length=MAX_REASON)] = Field(
        description="Why, kept with the refund and in the ledger"
    )
    amount: Amount | None = Field(
        None, description="Credit to give back, " + MINOR + "; left out: all not yet refunded"
    )
    metadata: Metadata | None = Field(
        None, description="Your own JSON object, kept with the refund"
    )


@router.post(
    "/charges/{charge}/refunds",
    status_code=201,
    response_model=schemas.Refund,
    summary="Refund a charge",
    responses=errors(UnknownCharge),
)
def refund_charge(
    charge: ChargePath, body: NewRefund, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """Give credit back for usage charged: to the lots it was drawn from (a new refund lot if
    one has closed), or against the debt it left. A charge is refunded at most what it took,
    over all its refunds (422 past that)."""
    refund = t.refund_charge(
        charge,
        reason=body.reason,
        amount=body.amount,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
    )
    return answer(refund, 201)


class NewPurchaseRefund(Body):
    """Take back a paid purchase's credit and pay its money back through its provider: all
    its unused credit (no `amount`) or `amount` credits; credit already used only with
    `include_consumed` (it is debited from the wallet again, leaving debt where the policy
    allows). Name the reason."""

    model_config = example({"reason": "customer asked", "amount": 20_000})

    reason: Annotated[Text, Field(min_length=1, max_length=MAX_REASON)] = Field(
        description="Why, kept with the refund and sent to the provider"
    )
    amount: Amount | None = Field(
        None, description="Credit to take back, " + MINOR + "; left out: all its unused credit"
    )
    include_consumed: StrictBool = Field(
        False,
        description="Also refund credit already used: it is debited from the wallet again, "
        "leaving debt where the policy allows",
    )
    metadata: Metadata | None = Field(
        None, description="Your own JSON object, kept with the refund"
    )


@router.post(
    "/purchases/{purchase}/refunds",
    status_code=201,
    response_model=schemas.PurchaseRefund,
    summary="Refund a purchase",
    responses=errors(
        UnknownPurchase,
        PurchaseNotRefundable,
        RefundPending,
        RefundNotCovered,
        ProviderNotConfigured,
    ),
)
async def refund_purchase(
    request: Request,
    purchase: PurchasePath,
    body: NewPurchaseRefund,
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    """Take back a paid purchase's credit and pay its money back through its provider.

    The money is the price x credits refunded / credits bought, rounded half to even to
    the currency's minor unit over the purchase's running total, never more than was paid
    less earlier refunds. `status` is the provider's answer: succeeded, processing (paid out
    later), failed (refused: the credit was given back), or pending (no answer yet: retry
    with the same Idempotency-Key)."""
    # The provider pays it back: not on the threads the rest of the API needs.
    refund = await waiting_on_a_provider(
        request,
        t.refund_purchase,
        purchase,
        reason=body.reason,
        amount=body.amount,
        include_consumed=body.include_consumed,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
    )
    return answer(refund, 201)


@router.get(
    "/purchases/{purchase}/refunds",
    response_model=schemas.PurchaseRefundList,
    summary="List a purchase's refunds",
    responses=errors(UnknownPurchase),
)
def list_purchase_refunds(purchase: PurchasePath, t: Ledger) -> Response:
    """Every refund of the purchase, oldest first, with its provider's status."""
    return answer(PurchaseRefundList(data=t.purchase_refunds(purchase)))


@router.get(
    "/reports/revenue",
    response_model=schemas.RevenueReport,
    tags=["reports"],
    summary="Revenue recognition report",
    responses=errors(UnknownCustomer),
)
def revenue_report(
    t: Ledger,
    start: Annotated[
        Timestamp | None,
        Query(alias="from", description="Start, inclusive (default: 30 days before `to`)"),
    ] = None,
    end: Annotated[Timestamp | None, Query(alias="to", description="End, exclusive")] = None,
    customer: Annotated[
        CustomerId | None, Query(description="Only this customer (its `external_id`)")
    ] = None,
) -> Response:
    """Per currency: opening deferred, sold, recognized, breakage, voided, refunded (usage
    given back), purchases refunded, closing deferred: credit sold is deferred revenue until
    it is used (recognized) or expires (breakage). The period is `from` (default: 30 days
    before `to`) to `to` (default: now)."""
    until = end or t.now()
    since = start or until - DEFAULT_PERIOD
    if since >= until:
        raise InvalidInput("from must be before to", field="from")
    return answer(t.revenue_report(start=since, end=until, customer=customer))
