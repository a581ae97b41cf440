"""Routes for promotional campaigns, redeeming their codes, and the consumption order."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.responses import Response

from creditgate.domain.billing_errors import (
    CampaignExhausted,
    CampaignExpired,
    CampaignLimitReached,
    UnknownCampaign,
)
from creditgate.domain.errors import AlreadyExists, UnknownAsset, UnknownCustomer
from creditgate.domain.lots import LotKind
from creditgate.http import schemas
from creditgate.http.answers import CustomerPath, IdempotencyKey, RequiredIdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.examples import ANSWERS
from creditgate.http.models import (
    MINOR,
    AssetCode,
    Body,
    GrantAmount,
    Name,
    Priority,
    Text,
    Timestamp,
    example,
)
from creditgate.http.plans import Code
from creditgate.http.reference import documented, errors
from creditgate.services.billing.results import Campaign

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["campaigns"])


class NewCampaign(Body):
    model_config = example(
        {
            "code": "WELCOME",
            "name": "Welcome credit",
            "asset": "credits",
            "amount": 5_000,
            "max_redemptions": 1_000,
            "credit_valid_days": 30,
        }
    )

    code: Code = Field(description="The code customers redeem, e.g. `WELCOME`")
    name: Name = Field("", description="A display name")
    asset: AssetCode = Field(description="The asset it grants")
    amount: GrantAmount = Field(description="Credit granted per redemption, " + MINOR)
    per_customer_limit: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        1, description="Times one customer may redeem it"
    )
    max_redemptions: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(
        None, description="Redemptions in all; left out: no limit"
    )
    expires_at: Timestamp | None = Field(
        None,
        description="No redemption after; the credit expires then too. ISO 8601 with a time "
        "zone; left out: never",
    )
    credit_valid_days: Annotated[int, Field(ge=1, le=36_600)] | None = Field(
        None, description="The credit expires this many days after it is redeemed"
    )


class CampaignList(BaseModel):
    data: list[Campaign]


CampaignListAnswer = documented(
    CampaignList, {"data": "The tenant's campaigns, oldest first"}, example=ANSWERS["campaigns"]
)


class NewRedemption(Body):
    model_config = example({"code": "WELCOME"})

    code: Annotated[Text, Field(min_length=1, max_length=64, examples=["WELCOME"])] = Field(
        description="The campaign's code, as the customer typed it"
    )


class KindPriorityChange(Body):
    model_config = example({"priority": 10})

    priority: Priority = Field(
        description="The kind's default priority: lower is used first (0 to 1,000,000)"
    )


@router.post(
    "/campaigns",
    status_code=201,
    response_model=schemas.Campaign,
    summary="Create a promotional campaign",
    responses=errors(UnknownAsset, (409, AlreadyExists.code, "a campaign with this code exists")),
)
def create_campaign(
    body: NewCampaign, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """A code customers redeem for promotional credit, with limits per customer and in
    all, and an end date or a validity for the credit."""
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


@router.get(
    "/campaigns",
    response_model=CampaignListAnswer,
    summary="List campaigns",
    responses=errors(),
)
def list_campaigns(t: Ledger) -> Response:
    """Every campaign of the tenant, with its redemptions so far."""
    return answer(CampaignList(data=t.campaigns()))


@router.post(
    "/customers/{customer}/redemptions",
    status_code=201,
    response_model=schemas.Redemption,
    summary="Redeem a campaign code",
    responses=errors(
        UnknownCustomer, UnknownCampaign, CampaignExpired, CampaignLimitReached, CampaignExhausted
    ),
)
def redeem(
    customer: CustomerPath, body: NewRedemption, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """Grant the customer a campaign's promotional credit for its code, within the
    campaign's limits."""
    return answer(t.redeem(customer, body.code, idempotency_key=idempotency_key), 201)


@router.get(
    "/consumption-order",
    response_model=schemas.ConsumptionOrder,
    summary="Get the consumption order",
    responses=errors(),
)
def consumption_order(t: Ledger) -> Response:
    """The default priority of each lot kind, in the order credit is used (lowest first).

    A grant that names no priority gets its kind's; burn order is priority, then soonest
    expiry, then oldest.
    """
    return answer(t.consumption_order())


@router.put(
    "/consumption-order/{kind}",
    response_model=schemas.ConsumptionOrder,
    summary="Set a lot kind's priority",
    responses=errors(),
)
def set_kind_priority(
    kind: Annotated[LotKind, Path(description="The lot kind")],
    body: KindPriorityChange,
    t: Ledger,
) -> Response:
    """Change the default priority of a lot kind for grants made from now on (lots already
    granted keep theirs). Answers the whole order."""
    return answer(t.set_kind_priority(kind.value, body.priority))
