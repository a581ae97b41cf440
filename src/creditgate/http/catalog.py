"""Routes for assets, customers and wallet policies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from creditgate.domain.pages import DEFAULT_CUSTOMER_PAGE, MAX_PAGE
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
from creditgate.services.catalog.catalog import MAX_NAME, check_external_id
from creditgate.services.results import AssetInfo, Customer, Policy

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute)


@router.post("/assets", status_code=201, response_model=AssetInfo, tags=["assets"])
def create_asset(body: NewAsset, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
    asset = t.create_asset(body.code, body.scale, body.name, idempotency_key=idempotency_key)
    return answer(asset, 201)


@router.get("/assets", response_model=AssetList, tags=["assets"])
def list_assets(t: Ledger) -> Response:
    return answer(AssetList(data=t.assets()))


@router.post("/customers", status_code=201, response_model=Customer, tags=["customers"])
def create_customer(
    body: NewCustomer, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    customer = t.create_customer(
        body.id,
        name=body.name,
        metadata=body.metadata,
        policy=body.policy.value,
        overdraft_limit=body.overdraft_limit,
        idempotency_key=idempotency_key,
    )
    return answer(customer, 201)


@router.get("/customers", response_model=CustomerList, tags=["customers"])
def list_customers(
    t: Ledger,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_CUSTOMER_PAGE,
    after: Annotated[
        str | None, Query(max_length=MAX_NAME, description="The last customer id of a page")
    ] = None,
) -> Response:
    if after is not None:
        check_external_id(after, "after")
    return answer(CustomerList(data=t.customers(limit=limit, after=after)))


@router.get("/customers/{customer}", response_model=Customer, tags=["customers"])
def get_customer(customer: CustomerPath, t: Ledger) -> Response:
    return answer(t.customer(customer))


@router.put("/customers/{customer}/policies/{asset}", response_model=Policy, tags=["customers"])
def set_policy(
    customer: CustomerPath,
    asset: AssetPath,
    body: PolicyChange,
    t: Ledger,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    policy = t.set_policy(
        customer,
        asset,
        body.policy.value,
        overdraft_limit=body.overdraft_limit,
        low_balance_threshold=body.low_balance_threshold,
        idempotency_key=idempotency_key,
    )
    return answer(policy)
