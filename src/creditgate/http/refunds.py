"""Routes for refunds of charges and purchases, and the revenue recognition report."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field
from starlette.responses import Response

from creditgate.domain.errors import InvalidInput
from creditgate.http.answers import ObjectPath, RequiredIdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import MAX_REASON, Amount, Body, CustomerId, Metadata, Text, Timestamp
from creditgate.services.billing.results import PurchaseRefund, PurchaseRefundList
from creditgate.services.ledger.refunds import Refund
from creditgate.services.reports.revenue import RevenueReport

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["refunds"])

DEFAULT_PERIOD = timedelta(days=30)


class NewRefund(Body):
    """Give back all that is left of a charge (no `amount`) or a part of it; name the reason."""

    reason: Annotated[Text, Field(min_length=1, max_length=MAX_REASON)]
    amount: Amount | None = None
    metadata: Metadata | None = None


@router.post("/charges/{charge}/refunds", status_code=201, response_model=Refund)
def refund_charge(
    charge: ObjectPath, body: NewRefund, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
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

    reason: Annotated[Text, Field(min_length=1, max_length=MAX_REASON)]
    amount: Amount | None = None
    include_consumed: bool = False
    metadata: Metadata | None = None


@router.post("/purchases/{purchase}/refunds", status_code=201, response_model=PurchaseRefund)
def refund_purchase(
    purchase: ObjectPath,
    body: NewPurchaseRefund,
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    """The money is the price x credits refunded / credits bought, rounded half to even to
    the currency's minor unit over the purchase's running total, never more than was paid
    less earlier refunds. `status` is the provider's answer: succeeded, processing (paid out
    later), failed (refused: the credit was given back), or pending (no answer yet: retry
    with the same Idempotency-Key)."""
    refund = t.refund_purchase(
        purchase,
        reason=body.reason,
        amount=body.amount,
        include_consumed=body.include_consumed,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
    )
    return answer(refund, 201)


@router.get("/purchases/{purchase}/refunds", response_model=PurchaseRefundList)
def list_purchase_refunds(purchase: ObjectPath, t: Ledger) -> Response:
    return answer(PurchaseRefundList(data=t.purchase_refunds(purchase)))


@router.get("/reports/revenue", response_model=RevenueReport, tags=["reports"])
def revenue_report(
    t: Ledger,
    start: Annotated[
        Timestamp | None,
        Query(alias="from", description="Start, inclusive (default: 30 days before `to`)"),
    ] = None,
    end: Annotated[Timestamp | None, Query(alias="to", description="End, exclusive")] = None,
    customer: Annotated[CustomerId | None, Query()] = None,
) -> Response:
    """Per currency: opening deferred, sold, recognized, breakage, voided, refunded (usage
    given back), purchases refunded, closing deferred."""
    until = end or t.cg.clock()
    since = start or until - DEFAULT_PERIOD
    if since >= until:
        raise InvalidInput("from must be before to", field="from")
    return answer(t.revenue_report(start=since, end=until, customer=customer))
