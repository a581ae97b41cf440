"""Routes for the gate: authorize, settle, void; charges, one at a time or in batches."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from sqlalchemy import Connection
from starlette.responses import Response

from creditgate.api import TenantLedger
from creditgate.domain.budgets import UnknownMember
from creditgate.domain.errors import (
    AmountOverflow,
    CreditgateError,
    HoldAlreadySettled,
    HoldAlreadyVoided,
    HoldExpired,
    HoldNotPending,
    UnknownAsset,
    UnknownCustomer,
    UnknownHold,
)
from creditgate.domain.pricing_errors import NoPrice, VendorCostUnknown
from creditgate.http import schemas
from creditgate.http.answers import RequiredIdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.metrics import AUTHORIZATIONS, CHARGES
from creditgate.http.models import (
    ID_PATTERN,
    BatchItem,
    BatchResult,
    ChargeBatch,
    NewAuthorization,
    NewCharge,
    SettlementRequest,
    UsageEvent,
)
from creditgate.http.problems import from_error
from creditgate.http.reference import errors
from creditgate.services.context import Idempotent
from creditgate.services.results import Charge

_PRICED = (
    UnknownCustomer,
    UnknownMember,
    UnknownAsset,
    NoPrice,
    VendorCostUnknown,
    AmountOverflow,
)
_RESOLVED = (HoldAlreadySettled, HoldAlreadyVoided, HoldExpired, HoldNotPending)
_HOLD_PATH = Annotated[
    str,
    Path(
        pattern=ID_PATTERN,
        description="The authorization's id (`hld_…`)",
        examples=["hld_01m8xedqsa73m7x523ktznxgx3"],
    ),
]

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute)


@router.post(
    "/authorizations",
    status_code=201,
    response_model=schemas.Authorization,
    tags=["authorizations"],
    summary="Authorize: hold credit before a call",
    responses=errors(*_PRICED),
)
def authorize(
    body: NewAuthorization, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """Reserve credit before the model call, then settle the hold with the actual usage (or
    void it). Make the call only if `approved` is true: a decline is an answer, not an error
    (201 with `status: declined` and its `decline_reason`), and reserves nothing.

    The hold is `amount` of `asset`, or the rate card's price of `action` for its
    `dimensions` and estimated `quantities` (e.g. input tokens plus `max_tokens` of output).
    An unsettled hold is released after `ttl_seconds`. With `member`, the hold is that
    member's: declined if it is inactive or removed, or past a hard budget of its own or of
    the customer (`budget_exceeded`).
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
        member=body.member,
    )
    AUTHORIZATIONS.labels("approved" if auth.approved else "declined").inc()
    return answer(auth, 201)


@router.get(
    "/authorizations/{id}",
    response_model=schemas.Authorization,
    tags=["authorizations"],
    summary="Get an authorization",
    responses=errors(UnknownHold),
)
def get_authorization(id: _HOLD_PATH, t: Ledger) -> Response:
    """An authorization and its state: pending, settled (with its `charge_id`), voided,
    expired or declined."""
    return answer(t.authorization(id))


@router.post(
    "/authorizations/{id}/settle",
    response_model=schemas.Settlement,
    tags=["authorizations"],
    summary="Settle an authorization with the actual usage",
    responses=errors(UnknownHold, *_RESOLVED, NoPrice, VendorCostUnknown, AmountOverflow),
)
def settle(
    id: _HOLD_PATH, body: SettlementRequest, t: Ledger, idempotency_key: RequiredIdempotencyKey
) -> Response:
    """Charge the actual usage against the hold and release the rest. Call it once the model
    call is done; a hold resolves once (409 after it is settled, voided or expired).

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


@router.post(
    "/authorizations/{id}/void",
    response_model=schemas.Authorization,
    tags=["authorizations"],
    summary="Void an authorization",
    responses=errors(UnknownHold, *_RESOLVED),
)
def void(id: _HOLD_PATH, t: Ledger, idempotency_key: RequiredIdempotencyKey) -> Response:
    """Release the whole hold: the call did not happen, nothing is charged. A hold resolves
    once (409 after it is settled, voided or expired)."""
    return answer(t.void(id, idempotency_key=idempotency_key))


@router.post(
    "/charges",
    status_code=201,
    response_model=schemas.Charge,
    tags=["charges"],
    summary="Charge usage in one step",
    responses=errors(*_PRICED),
)
def charge(body: NewCharge, t: Ledger, idempotency_key: RequiredIdempotencyKey) -> Response:
    """Authorize and settle in one step, for usage that has already happened or costs too
    little to hold for: `amount` of `asset`, or the rate card's price of `action`. Declined
    (201 with `status: declined`, nothing taken) when the wallet's policy says no."""
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
        member=body.member,
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


@router.post(
    "/charges/batch",
    response_model=schemas.BatchResultAnswer,
    tags=["charges"],
    summary="Charge a batch of usage events",
    responses=errors(),
)
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
