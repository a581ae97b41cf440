"""Routes for assets, customers and wallet policies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from creditgate.domain.errors import (
    AlreadyExists,
    CreditgateError,
    PolicyNotSatisfied,
    UnknownAsset,
    UnknownCustomer,
)
from creditgate.domain.pages import DEFAULT_CUSTOMER_PAGE, MAX_PAGE
from creditgate.http import schemas
from creditgate.http.answers import AssetPath, CustomerPath, IdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import (
    AssetList,
    CustomerList,
    NewAsset,
    NewCustomer,
    PolicyChange,
)
from creditgate.http.problems import from_error, problem_response
from creditgate.http.reference import errors
from creditgate.services.catalog.catalog import MAX_NAME, check_external_id

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute)


@router.post(
    "/assets",
    status_code=201,
    response_model=schemas.AssetInfo,
    tags=["assets"],
    summary="Create an asset",
    responses=errors((409, AlreadyExists.code, "an asset with this code exists")),
)
def create_asset(body: NewAsset, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
    """Create a unit of credit (e.g. `credits`, scale 2) that grants, holds and charges are
    counted in. Do this once per tenant, before granting any credit."""
    asset = t.create_asset(body.code, body.scale, body.name, idempotency_key=idempotency_key)
    return answer(asset, 201)


@router.get(
    "/assets",
    response_model=schemas.AssetListAnswer,
    tags=["assets"],
    summary="List assets",
    responses=errors(),
)
def list_assets(t: Ledger) -> Response:
    """Every asset of the tenant, with its scale."""
    return answer(AssetList(data=t.assets()))


@router.post(
    "/customers",
    status_code=201,
    response_model=schemas.Customer,
    tags=["customers"],
    summary="Create a customer",
    responses=errors((409, AlreadyExists.code, "a customer with this `external_id` exists")),
)
def create_customer(
    body: NewCustomer, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Create a customer under your own id (`external_id`), with a wallet and its policy.

    Every other request names the customer by that id. `id` in the body is the earlier name
    of `external_id`, still taken; a failure names the field as the request did.
    """
    try:
        customer = t.create_customer(
            body.customer_id,
            name=body.name,
            metadata=body.metadata,
            policy=body.policy.value,
            overdraft_limit=body.overdraft_limit,
            idempotency_key=idempotency_key,
        )
    except CreditgateError as exc:
        if exc.field == "external_id" and body.id_field == "external_id":
            # The problem names the field as the request did (`id` for the deprecated name).
            named = from_error(exc).model_copy(update={"field": "external_id"})
            return problem_response(named)
        raise
    return answer(customer, 201)


@router.get(
    "/customers",
    response_model=schemas.CustomerListAnswer,
    tags=["customers"],
    summary="List customers",
    responses=errors(),
)
def list_customers(
    t: Ledger,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description=f"Customers per page (1-{MAX_PAGE})")
    ] = DEFAULT_CUSTOMER_PAGE,
    after: Annotated[
        str | None,
        Query(
            max_length=MAX_NAME,
            description="The last `external_id` of the previous page: the page after it",
        ),
    ] = None,
) -> Response:
    """Customers in order of `external_id`, a page at a time: pass the last one's
    `external_id` as `after` for the next page."""
    if after is not None:
        check_external_id(after, "after")
    return answer(CustomerList(data=t.customers(limit=limit, after=after)))


@router.get(
    "/customers/{customer}",
    response_model=schemas.Customer,
    tags=["customers"],
    summary="Get a customer",
    responses=errors(UnknownCustomer),
)
def get_customer(customer: CustomerPath, t: Ledger) -> Response:
    """A customer by your own id. For its balances, read its wallet."""
    return answer(t.customer(customer))


@router.put(
    "/customers/{customer}/policies/{asset}",
    response_model=schemas.Policy,
    tags=["customers"],
    summary="Set a wallet policy",
    responses=errors(UnknownCustomer, UnknownAsset, PolicyNotSatisfied),
)
def set_policy(
    customer: CustomerPath,
    asset: AssetPath,
    body: PolicyChange,
    t: Ledger,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """How far the customer's wallet may go in one asset: `block` declines what the balance
    cannot pay, `overdraft` lets it go down to -`overdraft_limit`, `allow` never declines and
    records debt. Also sets the low-balance threshold for `balance.low` events and the alert
    `thresholds` for `balance.threshold_crossed` (each time available falls below one). A
    policy the balance already breaks is refused (409)."""
    policy = t.set_policy(
        customer,
        asset,
        body.policy.value,
        overdraft_limit=body.overdraft_limit,
        low_balance_threshold=body.low_balance_threshold,
        thresholds=body.thresholds,
        idempotency_key=idempotency_key,
    )
    return answer(policy)
