"""Routes for promotional campaigns, redeeming their codes, and the consumption order."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.responses import Response

from creditgate.domain.lots import LotKind
from creditgate.http.answers import CustomerPath, IdempotencyKey, RequiredIdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import AssetCode, Body, GrantAmount, Name, Priority, Text, Timestamp
from creditgate.http.plans import Code
from creditgate.services.billing.results import Campaign, Redemption
from creditgate.services.results import ConsumptionOrder

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["campaigns"])


class NewCampaign(Body):
    code: Code
    name: Name = ""
    asset: AssetCode
    amount: GrantAmount
    per_customer_limit: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    max_redemptions: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    expires_at: Timestamp | None = Field(
        None, description="No redemption after; the credit expires then too"
    )
    credit_valid_days: Annotated[int, Field(ge=1, le=36_600)] | None = Field(
        None, description="The credit expires this many days after it is redeemed"
    )


class CampaignList(BaseModel):
    data: list[Campaign]


class NewRedemption(Body):
    code: Annotated[Text, Field(min_length=1, max_length=64, examples=["WELCOME"])]


class KindPriorityChange(Body):
    priority: Priority


@router.post("/campaigns", status_code=201, response_model=Campaign)
def create_campaign(
    body: NewCampaign, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    campaign = t.create_campaign(
        body.code,
        asset=body.asset,
        amount=body.amount,
        name=body.name,
        per_customer_limit=body.per_customer_limit,
        max_redemptions=body.max_redemptions,
        expires_at=body.expires_at,
        credit_valid_days=body.credit_valid_days,
        idempotency_key=idempotency_key,
    )
    return answer(campaign, 201)


@router.get("/campaigns", response_model=CampaignList)
def list_campaigns(t: Ledger) -> Response:
    return answer(CampaignList(data=t.campaigns()))


@router.post("/customers/{customer}/redemptions", status_code=201, response_model=Redemption)
def redeem(
    customer: CustomerPath, body: NewRedemption, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    return answer(t.redeem(customer, body.code, idempotency_key=idempotency_key), 201)


@router.get("/consumption-order", response_model=ConsumptionOrder)
def consumption_order(t: Ledger) -> Response:
    """The default priority of each lot kind, in the order credit is used (lowest first).

    A grant that names no priority gets its kind's; burn order is priority, then soonest
    expiry, then oldest.
    """
    return answer(t.consumption_order())


@router.put("/consumption-order/{kind}", response_model=ConsumptionOrder)
def set_kind_priority(
    kind: Annotated[LotKind, Path()], body: KindPriorityChange, t: Ledger
) -> Response:
    return answer(t.set_kind_priority(kind.value, body.priority))
