"""Routes that open the billing portal for a customer and set how it looks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictBool
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from creditgate.http.answers import IdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import Body, CustomerId, Text
from creditgate.portal.reads import branding, save_branding
from creditgate.portal.tokens import Tokens
from creditgate.services.reports.portal import Branding

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["portal"])

Url = Annotated[
    str, Field(pattern=r"^https?://[!-~]{1,2000}$", examples=["https://example.com/account"])
]
Colour = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#4f46e5"])]


class NewPortalSession(Body):
    customer: CustomerId
    return_url: Url | None = Field(None, description="Where the portal's back link goes")


class PortalSession(BaseModel):
    url: str = Field(description="Open it in the customer's browser; it works once per hour")
    expires_at: datetime


class BrandingUpdate(Body):
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    logo_url: Url | None = None
    accent_color: Colour = "#4f46e5"
    customers_manage_auto_top_up: StrictBool | None = Field(
        None,
        description="Let customers change their own auto top-up in the portal; "
        "left out, the current setting stays",
    )
    portal_demo_payments: StrictBool | None = Field(
        None,
        description="Demo mode: without Stripe, a portal purchase counts as paid at once and "
        "no money is collected. Off (the default), it is a manual invoice that stays pending "
        "until marked paid; left out, the current setting stays",
    )


@router.post("/portal/sessions", status_code=201, response_model=PortalSession)
async def create_portal_session(
    body: NewPortalSession,
    ledger: Ledger,
    request: Request,
    idempotency_key: IdempotencyKey = None,  # a session changes nothing: replays are harmless
) -> Response:
    customer = await run_in_threadpool(ledger.customer, body.customer)
    tokens: Tokens = request.app.state.portal_tokens
    token, expires_at = tokens.portal_token(
        ledger.tenant_id, customer.external_id, now=ledger.cg.clock(), return_url=body.return_url
    )
    url = str(request.base_url).rstrip("/") + "/portal?" + urlencode({"token": token})
    return answer(PortalSession(url=url, expires_at=expires_at), 201)


@router.get("/portal/branding", response_model=Branding)
async def get_branding(ledger: Ledger) -> Response:
    return answer(await run_in_threadpool(branding, ledger.cg, ledger.tenant_id))


@router.put("/portal/branding", response_model=Branding)
async def put_branding(
    body: BrandingUpdate, ledger: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    saved = await run_in_threadpool(
        save_branding,
        ledger.cg,
        ledger.tenant_id,
        name=body.name,
        logo_url=body.logo_url,
        accent_color=body.accent_color,
        customers_manage_auto_top_up=body.customers_manage_auto_top_up,
        portal_demo_payments=body.portal_demo_payments,
    )
    return answer(saved)
