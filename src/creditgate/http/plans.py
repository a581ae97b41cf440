"""Routes for plans and subscriptions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from creditgate.domain.billing import Period
from creditgate.domain.policy import PolicyMode
from creditgate.http.answers import (
    CustomerPath,
    IdempotencyKey,
    ObjectPath,
    RequiredIdempotencyKey,
    answer,
)
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import AssetCode, Body, DecimalText, GrantAmount, Limit, Name
from creditgate.services.billing.results import Plan, Subscription

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["plans"])

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", examples=["pro"])]
PlanRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", examples=["pro"])]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3,8}$", examples=["USD"])]


class NewPlan(Body):
    code: Code
    name: Name = ""
    period: Period = Period.MONTHLY
    fee: DecimalText = Field(description="The period fee, in `currency`")
    currency: Currency = "USD"
    asset: AssetCode
    included: GrantAmount = Field(description="Credit included each period (minor units)")
    rollover_cap: Limit = Field(0, description="Most unused included credit carried over")
    overage_policy: PolicyMode = PolicyMode.BLOCK
    overdraft_limit: Limit | None = None


class PlanList(BaseModel):
    data: list[Plan]


class SubscriptionList(BaseModel):
    data: list[Subscription]


class NewSubscription(Body):
    plan: PlanRef = Field(description="The plan's id or code")


class PlanChange(Body):
    plan: PlanRef = Field(description="The plan's id or code")
    at: Literal["now", "period_end"] = "now"


class Cancellation(Body):
    at: Literal["now", "period_end"] = "period_end"


@router.post("/plans", status_code=201, response_model=Plan)
def create_plan(body: NewPlan, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
    plan = t.create_plan(
        body.code,
        asset=body.asset,
        included=body.included,
        fee=body.fee,
        currency=body.currency,
        period=body.period.value,
        name=body.name,
        rollover_cap=body.rollover_cap,
        overage_policy=body.overage_policy.value,
        overdraft_limit=body.overdraft_limit,
        idempotency_key=idempotency_key,
    )
    return answer(plan, 201)


@router.get("/plans", response_model=PlanList)
def list_plans(t: Ledger) -> Response:
    return answer(PlanList(data=t.plans()))


@router.post("/customers/{customer}/subscriptions", status_code=201, response_model=Subscription)
def subscribe(
    customer: CustomerPath,
    body: NewSubscription,
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    return answer(t.subscribe(customer, body.plan, idempotency_key=idempotency_key), 201)


@router.get("/customers/{customer}/subscriptions", response_model=SubscriptionList)
def list_subscriptions(customer: CustomerPath, t: Ledger) -> Response:
    return answer(SubscriptionList(data=t.subscriptions(customer)))


@router.get("/subscriptions/{subscription}", response_model=Subscription)
def get_subscription(subscription: ObjectPath, t: Ledger) -> Response:
    return answer(t.subscription(subscription))


@router.post("/subscriptions/{subscription}/change-plan", response_model=Subscription)
def change_plan(
    subscription: ObjectPath, body: PlanChange, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    changed = t.change_plan(subscription, body.plan, at=body.at, idempotency_key=idempotency_key)
    return answer(changed)


@router.post("/subscriptions/{subscription}/cancel", response_model=Subscription)
def cancel_subscription(
    subscription: ObjectPath,
    t: Ledger,
    body: Cancellation | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    at = body.at if body is not None else "period_end"
    return answer(t.cancel_subscription(subscription, at=at, idempotency_key=idempotency_key))
