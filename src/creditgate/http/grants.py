"""Routes for grants (lots of credit): add, list in burn order, void."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from creditgate.http.answers import (
    AssetQuery,
    CustomerPath,
    ObjectPath,
    RequiredIdempotencyKey,
    answer,
)
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import GrantVoid, LotList, NewGrant
from creditgate.services.results import Lot

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["grants"])


@router.post("/customers/{customer}/grants", status_code=201, response_model=Lot)
def create_grant(
    customer: CustomerPath, body: NewGrant, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
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


@router.get("/customers/{customer}/grants", response_model=LotList)
def list_grants(
    customer: CustomerPath, t: Ledger, asset: AssetQuery = None, include_closed: bool = False
) -> Response:
    lots = t.lots(customer, asset=asset, include_closed=include_closed)
    return answer(LotList(data=lots))


@router.post("/grants/{grant}/void", response_model=Lot)
def void_grant(
    grant: ObjectPath,
    t: Ledger,
    idempotency_key: RequiredIdempotencyKey,
    body: GrantVoid | None = None,
) -> Response:
    reason = body.reason if body is not None else ""
    return answer(t.void_lot(grant, reason=reason, idempotency_key=idempotency_key))
