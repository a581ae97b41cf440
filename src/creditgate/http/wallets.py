"""Routes for reading a wallet: balances per asset and the ledger history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from creditgate.domain.errors import UnknownAsset, UnknownCustomer
from creditgate.domain.pages import DEFAULT_PAGE, MAX_PAGE
from creditgate.http import schemas
from creditgate.http.answers import AssetQuery, CustomerPath, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.reference import errors

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["wallets"])


@router.get(
    "/customers/{customer}/wallet",
    response_model=schemas.Wallet,
    summary="Get a wallet's balances",
    responses=errors(UnknownCustomer),
)
def get_wallet(customer: CustomerPath, t: Ledger) -> Response:
    """The customer's balance in each asset: posted, held by pending authorizations,
    available to the next authorization, debt, and the policy. Amounts are in minor units."""
    return answer(t.wallet(customer))


@router.get(
    "/customers/{customer}/ledger",
    response_model=schemas.LedgerPage,
    summary="List a wallet's ledger transactions",
    responses=errors(UnknownCustomer, UnknownAsset),
)
def get_ledger(
    customer: CustomerPath,
    t: Ledger,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description="Transactions per page")
    ] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^txn_[0-9a-z]{1,60}$", description="next_cursor of the previous page"),
    ] = None,
    asset: AssetQuery = None,
) -> Response:
    """The wallet's double-entry history, newest first, a page at a time: grants, charges,
    expiries, voids, refunds. Pass `next_cursor` as `cursor` for the next page."""
    return answer(t.ledger(customer, limit=limit, cursor=cursor, asset=asset))
