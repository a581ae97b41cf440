"""Routes for the gate: authorize, settle, void; charges, one at a time or in batches."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.responses import Response

from creditgate.api import TenantLedger
from creditgate.domain.errors import CreditgateError
from creditgate.http.answers import ObjectPath, RequiredIdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.metrics import AUTHORIZATIONS, CHARGES
from creditgate.http.models import (
    BatchItem,
    BatchResult,
    ChargeBatch,
    NewAuthorization,
    NewCharge,
    SettlementRequest,
    UsageEvent,
)
from creditgate.http.problems import from_error
from creditgate.services.context import Idempotent
from creditgate.services.results import Authorization, Charge, Settlement

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute)


@router.post(
    "/authorizations", status_code=201, response_model=Authorization, tags=["authorizations"]
)
def authorize(
    body: NewAuthorization, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """Reserve credit before the model call. A decline is an answer (201, `declined`).

    The hold is `amount`, or the rate card's price of `action` for its `dimensions` and
    estimated `quantities` (e.g. input tokens plus `max_tokens` of output).
    """
    auth = t.authorize(
        body.customer,
        body.asset,
        body.amount,
        action=body.action,
        dimensions=body.dimensions,
        quantities=body.quantities,
        rate_card=body.rate_card,
        ttl_seconds=body.ttl_seconds,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
    )
    AUTHORIZATIONS.labels("approved" if auth.approved else "declined").inc()
    return answer(auth, 201)


@router.get("/authorizations/{id}", response_model=Authorization, tags=["authorizations"])
def get_authorization(id: ObjectPath, t: Ledger) -> Response:
    return answer(t.authorization(id))


@router.post("/authorizations/{id}/settle", response_model=Settlement, tags=["authorizations"])
def settle(
    id: ObjectPath, body: SettlementRequest, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """Charge the actual usage against the hold and release the rest.

    A priced hold settles from the actual `quantities`, priced by the same rate card version
    it was authorized with (with neither quantities nor amount, an action that card prices
    flat is charged its flat price); any hold settles from an `amount`.
    """
    settlement = t.settle(
        id,
        body.amount,
        quantities=body.quantities,
        vendor_cost=body.vendor_cost,
        action=body.action,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
    )
    return answer(settlement)


@router.post("/authorizations/{id}/void", response_model=Authorization, tags=["authorizations"])
def void(id: ObjectPath, t: Ledger, idempotency_key: RequiredIdempotencyKey) -> Response:
    """Release the whole hold: the call did not happen."""
    return answer(t.void(id, idempotency_key=idempotency_key))


@router.post("/charges", status_code=201, response_model=Charge, tags=["charges"])
def charge(body: NewCharge, t: Ledger, idempotency_key: RequiredIdempotencyKey) -> Response:
    """Authorize and settle in one step; declined (nothing taken) when the policy says no."""
    result = _charge(t, body, idempotency_key)
    CHARGES.labels(result.status).inc()
    return answer(result, 201)


def _charge(t: TenantLedger, body: NewCharge, idempotency_key: str | None) -> Charge:
    return t.charge(
        body.customer,
        body.asset,
        body.amount,
        action=body.action,
        dimensions=body.dimensions,
        quantities=body.quantities,
        vendor_cost=body.vendor_cost,
        rate_card=body.rate_card,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
    )


def _event(t: TenantLedger, event: UsageEvent) -> BatchItem:
    try:
        result = _charge(t, event, event.idempotency_key)
    except CreditgateError as exc:
        CHARGES.labels("error").inc()
        return BatchItem(
            idempotency_key=event.idempotency_key, status="error", error=from_error(exc)
        )
    CHARGES.labels(result.status).inc()
    status: Literal["posted", "declined"] = "posted" if result.status == "posted" else "declined"
    return BatchItem(idempotency_key=event.idempotency_key, status=status, charge=result)


@router.post("/charges/batch", response_model=BatchResult, tags=["charges"])
def charge_batch(body: ChargeBatch, t: Ledger, idempotency_key: RequiredIdempotencyKey) -> Response:
    """Up to 1,000 usage events, each charged once under its own idempotency key.

    Each event is its own transaction with its own result; one failing event does not
    undo the others, and sending the batch again charges nothing twice.
    """
    request = body.model_dump(mode="json")

    def in_tx(conn: Connection) -> Idempotent:
        return Idempotent(t.cg.tx(conn, t.tenant_id), idempotency_key, "charge.batch", request)

    def replay(conn: Connection) -> BatchResult | None:
        return in_tx(conn).replay(BatchResult)

    replayed = t.cg.db.run(replay, read_only=True)
    if replayed is not None:
        return answer(replayed)
    result = BatchResult(data=[_event(t, e) for e in body.events])

    def record(conn: Connection) -> BatchResult:
        idem = in_tx(conn)
        # A concurrent batch under the same key may have finished first: answer as it did.
        earlier = idem.replay(BatchResult)
        return earlier if earlier is not None else idem.record(result)

    return answer(t.cg.db.run(record))
