"""Routes for grants (lots of credit): add, list in burn order, void."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from creditgate.domain.errors import (
    AmountOverflow,
    LotNotActive,
    UnknownAsset,
    UnknownCustomer,
    UnknownLot,
)
from creditgate.http import schemas
from creditgate.http.answers import (
    AssetQuery,
    CustomerPath,
    RequiredIdempotencyKey,
    answer,
)
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import ID_PATTERN, GrantVoid, LotList, NewGrant
from creditgate.http.reference import errors

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["grants"])


@router.post(
    "/customers/{customer}/grants",
    status_code=201,
    response_model=schemas.Lot,
    summary="Grant credit",
    responses=errors(UnknownCustomer, UnknownAsset, AmountOverflow),
)
def create_grant(
    customer: CustomerPath, body: NewGrant, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """Add credit to the customer's wallet as a lot of its own: its kind, priority, when it
    takes effect and expires, and what it cost (for revenue recognition). Credit granted
    pays back any debt first. Use it for purchases you take payment for yourself,
    promotions and adjustments."""
    lot = t.grant(
        customer,
        body.asset,
        body.amount,
        kind=body.kind.value,
        priority=body.priority,
        effective_at=body.effective_at,
        expires_at=body.expires_at,
        cost_basis=body.cost_basis,
        currency=body.currency,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
    )
    return answer(lot, 201)


@router.get(
    "/customers/{customer}/grants",
    response_model=schemas.LotListAnswer,
    summary="List a customer's grants",
    responses=errors(UnknownCustomer, UnknownAsset),
)
def list_grants(
    customer: CustomerPath,
    t: Ledger,
    asset: AssetQuery = None,
    include_closed: Annotated[
        bool, Query(description="Also expired, voided and used-up lots")
    ] = False,
) -> Response:
    """The customer's lots in burn order (the order charges use them): lower priority first,
    then the soonest to expire, then the oldest. Open lots (active or scheduled, with credit
    left) only; with `include_closed`, the closed ones (expired, voided, used up) too, last."""
    lots = t.lots(customer, asset=asset, include_closed=include_closed)
    return answer(LotList(data=lots))


@router.post(
    "/grants/{grant}/void",
    response_model=schemas.Lot,
    summary="Void a grant",
    responses=errors(UnknownLot, LotNotActive),
)
def void_grant(
    grant: Annotated[str, Path(pattern=ID_PATTERN, description="The lot's id (`lot_…`)")],
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
    body: GrantVoid | None = None,
) -> Response:
    """Take back what remains of a lot (`lot_…`), e.g. credit granted by mistake; what was
    already used stays charged. The body is optional."""
    reason = body.reason if body is not None else ""
    return answer(t.void_lot(grant, reason=reason, idempotency_key=idempotency_key))
