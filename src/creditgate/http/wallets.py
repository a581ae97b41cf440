"""Routes for reading a wallet: balances per asset and the ledger history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from creditgate.domain.pages import DEFAULT_PAGE, MAX_PAGE
from creditgate.http.answers import AssetQuery, CustomerPath, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.services.results import LedgerPage, Wallet

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["wallets"])


@router.get("/customers/{customer}/wallet", response_model=Wallet)
def get_wallet(customer: CustomerPath, t: Ledger) -> Response:
    return answer(t.wallet(customer))


@router.get("/customers/{customer}/ledger", response_model=LedgerPage)
def get_ledger(
    customer: CustomerPath,
    t: Ledger,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^txn_[0-9a-z]{1,60}$", description="next_cursor of the previous page"),
    ] = None,
    asset: AssetQuery = None,
) -> Response:
    return answer(t.ledger(customer, limit=limit, cursor=cursor, asset=asset))
