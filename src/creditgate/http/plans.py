"""Routes for plans and subscriptions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field, StrictBool
from starlette.responses import Response

from creditgate.domain.billing import Period
from creditgate.domain.billing_errors import (
    AlreadySubscribed,
    PaymentProviderError,
    ProviderNotConfigured,
    SubscriptionNotActive,
    UnknownPlan,
    UnknownSubscription,
)
from creditgate.domain.errors import AlreadyExists, UnknownAsset, UnknownCustomer
from creditgate.domain.policy import PolicyMode
from creditgate.http import schemas
from creditgate.http.answers import (
    CustomerPath,
    IdempotencyKey,
    RequiredIdempotencyKey,
    answer,
)
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.examples import ANSWERS
from creditgate.http.models import (
    ID_PATTERN,
    MINOR,
    AssetCode,
    Body,
    DecimalText,
    GrantAmount,
    Limit,
    Name,
    example,
)
from creditgate.http.reference import documented, errors
from creditgate.http.threads import waiting_on_a_provider
from creditgate.services.billing.results import Plan, Subscription

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["plans"])

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", examples=["pro"])]
PlanRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", examples=["pro"])]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3,8}$", examples=["USD"])]
SubscriptionPath = Annotated[
    str, Path(pattern=ID_PATTERN, description="The subscription's id (`sub_…`)")
]
_WHEN = "`now` (the current period ends and a new one starts on the new plan) or `period_end`"


class NewPlan(Body):
    model_config = example(
        {
            "code": "pro",
            "name": "Pro",
            "period": "monthly",
            "fee": "20",
            "currency": "USD",
            "asset": "credits",
            "included": 200_000,
            "rollover_cap": 50_000,
        }
    )

    code: Code = Field(description="Your code for the plan, e.g. `pro`: letters, digits, `_ . -`")
    name: Name = Field("", description="A display name")
    period: Period = Field(Period.MONTHLY, description="How often it renews: monthly or yearly")
    fee: DecimalText = Field(description="The period fee, in `currency`, a decimal string")
    currency: Currency = Field("USD", description="The fee's currency (ISO 4217 code)")
    asset: AssetCode = Field(description="The asset its included credit is in")
    included: GrantAmount = Field(description="Credit included each period, " + MINOR)
    rollover_cap: Limit = Field(
        0, description="Most unused included credit carried into the next period, " + MINOR
    )
    overage_policy: PolicyMode = Field(
        PolicyMode.BLOCK,
        description="The wallet policy while subscribed: block, overdraft, soft_cap or allow",
    )
    overdraft_limit: Limit | None = Field(
        None,
        description="With overdraft or soft_cap: how far below zero the wallet may go, " + MINOR,
    )
    collection: Literal["external", "manual", "stripe"] | None = Field(
        None,
        description="Who collects the fee: external (outside creditgate: credit granted at "
        "once; the default), manual (an invoice you mark paid) or stripe (the default with "
        "`stripe_price`). Collected by creditgate, a period's credit waits for its fee",
    )
    stripe_price: Annotated[str, Field(pattern=r"^price_[A-Za-z0-9_]{1,200}$")] | None = Field(
        None,
        description="The recurring Stripe price a subscription is billed on (your Stripe "
        "account, the plan's fee, currency and period; else 422 naming it)",
    )
    grant_before_payment: StrictBool = Field(
        False,
        description="Grant each period's credit at its start, before its fee is paid (taken "
        "back `grace_days` after a failed payment)",
    )
    grace_days: Annotated[int, Field(ge=0, le=90)] = Field(
        0, description="Days after a failed payment before credit granted early is withheld"
    )


class PlanList(BaseModel):
    data: list[Plan]


class SubscriptionList(BaseModel):
    data: list[Subscription]


PlanListAnswer = documented(
    PlanList, {"data": "The tenant's plans, oldest first"}, example={"data": [ANSWERS["plan"]]}
)
SubscriptionListAnswer = documented(
    SubscriptionList,
    {"data": "The customer's subscriptions, oldest first"},
    example={"data": [ANSWERS["changeplan"]]},
)


class NewSubscription(Body):
    model_config = example({"plan": "pro"})

    plan: PlanRef = Field(description="The plan's id or code")


class PlanChange(Body):
    model_config = example({"plan": "team", "at": "period_end"})

    plan: PlanRef = Field(description="The plan's id or code")
    at: Literal["now", "period_end"] = Field("now", description="When: " + _WHEN)


class Cancellation(Body):
    model_config = example({"at": "period_end"})

    at: Literal["now", "period_end"] = Field(
        "period_end", description="When it ends: `now` or `period_end` (the default)"
    )


@router.post(
    "/plans",
    status_code=201,
    response_model=schemas.Plan,
    summary="Create a plan",
    responses=errors(
        UnknownAsset,
        ProviderNotConfigured,
        PaymentProviderError,
        (409, AlreadyExists.code, "a plan with this code exists"),
    ),
)
async def create_plan(
    request: Request, body: NewPlan, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """A subscription plan: a fee per period and the credit it includes, with unused credit
    carried over up to `rollover_cap`. The credit is granted at the start of every period,
    or, when creditgate collects the fee (`stripe_price`, or `collection: manual`), when
    that period's invoice is paid (`grant_before_payment`: at the start all the same)."""
    # A `stripe_price` is looked up at Stripe.
    plan = await waiting_on_a_provider(
        request,
        t.create_plan,
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
        collection=body.collection,
        stripe_price=body.stripe_price,
        grant_before_payment=body.grant_before_payment,
        grace_days=body.grace_days,
        idempotency_key=idempotency_key,
    )
    return answer(plan, 201)


@router.get("/plans", response_model=PlanListAnswer, summary="List plans", responses=errors())
def list_plans(t: Ledger) -> Response:
    """Every plan of the tenant."""
    return answer(PlanList(data=t.plans()))


@router.post(
    "/customers/{customer}/subscriptions",
    status_code=201,
    response_model=schemas.Subscription,
    summary="Subscribe a customer to a plan",
    responses=errors(UnknownCustomer, UnknownPlan, AlreadySubscribed, PaymentProviderError),
)
async def subscribe(
    request: Request,
    customer: CustomerPath,
    body: NewSubscription,
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    """Start a subscription now: the first period's included credit is granted at once (or,
    for a plan whose fee creditgate collects, when its invoice is paid), and each period
    renews with a new grant. For a plan on Stripe its Stripe subscription is created too.
    A customer has one active subscription."""
    # A plan on Stripe has its Stripe subscription created.
    subscribed = await waiting_on_a_provider(
        request, t.subscribe, customer, body.plan, idempotency_key=idempotency_key
    )
    return answer(subscribed, 201)


@router.get(
    "/customers/{customer}/subscriptions",
    response_model=SubscriptionListAnswer,
    summary="List a customer's subscriptions",
    responses=errors(UnknownCustomer),
)
def list_subscriptions(customer: CustomerPath, t: Ledger) -> Response:
    """The customer's subscriptions, canceled ones too, with their periods."""
    return answer(SubscriptionList(data=t.subscriptions(customer)))


@router.get(
    "/subscriptions/{subscription}",
    response_model=schemas.Subscription,
    summary="Get a subscription",
    responses=errors(UnknownSubscription),
)
def get_subscription(subscription: SubscriptionPath, t: Ledger) -> Response:
    """A subscription with its current period and every period so far."""
    return answer(t.subscription(subscription))


@router.post(
    "/subscriptions/{subscription}/change-plan",
    response_model=schemas.Subscription,
    summary="Change a subscription's plan",
    responses=errors(UnknownSubscription, UnknownPlan, SubscriptionNotActive),
)
def change_plan(
    subscription: SubscriptionPath,
    body: PlanChange,
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    """Move an active subscription to another plan, `now` (a new period starts on it) or
    at the current period's end (`pending_plan_id` until then)."""
    changed = t.change_plan(subscription, body.plan, at=body.at, idempotency_key=idempotency_key)
    return answer(changed)


@router.post(
    "/subscriptions/{subscription}/cancel",
    response_model=schemas.Subscription,
    summary="Cancel a subscription",
    responses=errors(UnknownSubscription, SubscriptionNotActive),
)
def cancel_subscription(
    subscription: SubscriptionPath,
    t: Ledger,
    body: Cancellation | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """End a subscription at the current period's end (the default) or `now`; credit
    already granted stays. The body is optional."""
    at = body.at if body is not None else "period_end"
    return answer(t.cancel_subscription(subscription, at=at, idempotency_key=idempotency_key))
