"""Routes for organizations: a customer's members, budgets per member or customer, usage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from creditgate.domain.budgets import MemberRemoved, UnknownBudget, UnknownMember
from creditgate.domain.errors import (
    AlreadyExists,
    CreditgateError,
    UnknownAsset,
    UnknownCustomer,
)
from creditgate.domain.pages import DEFAULT_CUSTOMER_PAGE, MAX_PAGE
from creditgate.http import schemas
from creditgate.http.answers import AssetPath, CustomerPath, IdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import BudgetSpec, MemberChange, NewMember
from creditgate.http.problems import from_error, problem_response
from creditgate.http.reference import errors
from creditgate.services.catalog.catalog import MAX_NAME
from creditgate.services.catalog.members import MAX_PERIODS

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["members and budgets"])

MemberPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_NAME,
        description="Your own id for the member (its `external_id`)",
        examples=["alice"],
    ),
]
Periods = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_PERIODS,
        description=f"How many periods per budget: the current one and up to {MAX_PERIODS - 1} "
        "earlier ones it was used in",
    ),
]
_MEMBERS = "/customers/{customer}/members"
_MEMBER = _MEMBERS + "/{member}"
_REMOVED = (MemberRemoved,)


@router.post(
    _MEMBERS,
    status_code=201,
    response_model=schemas.Member,
    summary="Add a member to a customer",
    responses=errors(
        UnknownCustomer,
        (409, AlreadyExists.code, "the customer has a member with this `external_id`"),
    ),
)
def create_member(
    customer: CustomerPath, body: NewMember, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Make the customer an organization whose members draw on its wallet: a user, seat,
    project or API key of yours, under your own id for it. Authorizations and charges that
    name the member (`member`) count against its budgets and the customer's."""
    try:
        member = t.create_member(
            customer,
            body.external_id,
            name=body.name,
            metadata=body.metadata,
            active=body.active,
            idempotency_key=idempotency_key,
        )
    except CreditgateError as exc:
        if exc.field == "external_id":  # the body's name for it (a customer's is `id`)
            return problem_response(from_error(exc).model_copy(update={"field": "external_id"}))
        raise
    return answer(member, 201)


@router.get(
    _MEMBERS,
    response_model=schemas.MemberList,
    summary="List a customer's members",
    responses=errors(UnknownCustomer),
)
def list_members(
    customer: CustomerPath,
    t: Ledger,
    include_removed: Annotated[
        bool, Query(description="Also list removed members (their history stays)")
    ] = False,
    after: Annotated[
        str | None,
        Query(
            max_length=MAX_NAME,
            description="The last `external_id` of the previous page: the page after it",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description=f"Members per page (1-{MAX_PAGE})")
    ] = DEFAULT_CUSTOMER_PAGE,
) -> Response:
    """The customer's members in order of `external_id`, a page at a time: pass the last
    one's `external_id` as `after` for the next page."""
    found = t.members(customer, include_removed=include_removed, after=after, limit=limit)
    return answer(found)


@router.get(
    _MEMBER,
    response_model=schemas.Member,
    summary="Get a member",
    responses=errors(UnknownCustomer, UnknownMember),
)
def get_member(customer: CustomerPath, member: MemberPath, t: Ledger) -> Response:
    """A member of the customer by your own id, with its status (`active`, `inactive`,
    `removed`)."""
    return answer(t.member(customer, member))


@router.post(
    _MEMBER,
    response_model=schemas.Member,
    summary="Change a member",
    responses=errors(UnknownCustomer, UnknownMember, *_REMOVED),
)
def update_member(
    customer: CustomerPath,
    member: MemberPath,
    body: MemberChange,
    t: Ledger,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Change a member's name, metadata or `active` flag; what is left out stays. An
    inactive member's calls are declined (`member_inactive`) until it is active again. A
    removed member cannot be changed (409)."""
    changed = t.update_member(
        customer,
        member,
        name=body.name,
        metadata=body.metadata,
        active=body.active,
        idempotency_key=idempotency_key,
    )
    return answer(changed)


@router.delete(
    _MEMBER,
    response_model=schemas.Member,
    summary="Remove a member",
    responses=errors(UnknownCustomer, UnknownMember),
)
def remove_member(customer: CustomerPath, member: MemberPath, t: Ledger) -> Response:
    """Remove a member for good: its calls are declined (`member_removed`), its id stays
    taken, and its holds, charges, ledger entries, budgets and usage stay readable. Open
    holds still settle. Removing it again answers the same."""
    return answer(t.remove_member(customer, member))


@router.put(
    _MEMBER + "/budgets/{asset}",
    response_model=schemas.Budget,
    summary="Set a member's budget",
    responses=errors(UnknownCustomer, UnknownMember, UnknownAsset, *_REMOVED),
)
def set_member_budget(
    customer: CustomerPath,
    member: MemberPath,
    asset: AssetPath,
    body: BudgetSpec,
    t: Ledger,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Cap what the member may use of one asset per period: authorizations hold against it
    while open, settles and one-step charges spend it, voids, expiries and refunds give it
    back. Under `hard`, a call past it is declined (`budget_exceeded`) and a settle past it
    charges only what is left; the check is made with the balance's, in one transaction,
    so concurrent calls never pass it. Periods turn by the clock: nothing has to run.

    Setting it again with the same period and anchor keeps what the period has counted; with
    another period or anchor it is a new budget, counted from zero."""
    budget = t.set_budget(
        customer,
        asset,
        body.amount,
        period=body.period,
        member=member,
        anchor=body.anchor,
        mode=body.mode.value,
        thresholds=body.thresholds,
        idempotency_key=idempotency_key,
    )
    return answer(budget)


@router.delete(
    _MEMBER + "/budgets/{asset}",
    status_code=204,
    response_class=Response,
    summary="Remove a member's budget",
    responses=errors(UnknownCustomer, UnknownMember, UnknownBudget, *_REMOVED),
)
def delete_member_budget(
    customer: CustomerPath, member: MemberPath, asset: AssetPath, t: Ledger
) -> Response:
    """The member's calls in this asset no longer count against a budget of its own (the
    customer's, if it has one, still applies). Its usage so far stays readable only while a
    budget exists: set one again to count from zero."""
    t.delete_budget(customer, asset, member=member)
    return Response(status_code=204)


@router.get(
    _MEMBER + "/budgets",
    response_model=schemas.BudgetList,
    summary="List a member's budgets",
    responses=errors(UnknownCustomer, UnknownMember),
)
def list_member_budgets(customer: CustomerPath, member: MemberPath, t: Ledger) -> Response:
    """The member's budgets, one per asset."""
    return answer(t.budgets(customer, member=member))


@router.get(
    _MEMBER + "/usage",
    response_model=schemas.MemberUsage,
    summary="Get a member's usage per budget period",
    responses=errors(UnknownCustomer, UnknownMember),
)
def member_usage(
    customer: CustomerPath, member: MemberPath, t: Ledger, periods: Periods = 1
) -> Response:
    """What the member has spent, what its open authorizations hold and what remains, for
    each of its budgets, in the current period (and earlier ones, with `periods`)."""
    return answer(t.usage(customer, member=member, periods=periods))


@router.put(
    "/customers/{customer}/budgets/{asset}",
    response_model=schemas.Budget,
    summary="Set the customer's own budget",
    responses=errors(UnknownCustomer, UnknownAsset),
)
def set_customer_budget(
    customer: CustomerPath,
    asset: AssetPath,
    body: BudgetSpec,
    t: Ledger,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Cap what the customer as a whole may use of one asset per period, beside its balance:
    every call counts, whether it names a member or not. Otherwise as a member's budget."""
    budget = t.set_budget(
        customer,
        asset,
        body.amount,
        period=body.period,
        anchor=body.anchor,
        mode=body.mode.value,
        thresholds=body.thresholds,
        idempotency_key=idempotency_key,
    )
    return answer(budget)


@router.delete(
    "/customers/{customer}/budgets/{asset}",
    status_code=204,
    response_class=Response,
    summary="Remove the customer's own budget",
    responses=errors(UnknownCustomer, UnknownBudget),
)
def delete_customer_budget(customer: CustomerPath, asset: AssetPath, t: Ledger) -> Response:
    """The customer's calls in this asset no longer count against a budget of its own."""
    t.delete_budget(customer, asset)
    return Response(status_code=204)


@router.get(
    "/customers/{customer}/budgets",
    response_model=schemas.BudgetList,
    summary="List the customer's own budgets",
    responses=errors(UnknownCustomer),
)
def list_customer_budgets(customer: CustomerPath, t: Ledger) -> Response:
    """The budgets of the customer as a whole, one per asset (its members' are listed
    under each member)."""
    return answer(t.budgets(customer))


@router.get(
    "/customers/{customer}/usage",
    response_model=schemas.MemberUsage,
    summary="Get the customer's usage per budget period",
    responses=errors(UnknownCustomer),
)
def customer_usage(customer: CustomerPath, t: Ledger, periods: Periods = 1) -> Response:
    """Spent, held and remaining for each of the customer's own budgets, in the current
    period (and earlier ones, with `periods`); `member` is null."""
    return answer(t.usage(customer, periods=periods))
