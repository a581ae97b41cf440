"""Routes that open the billing portal for a customer and set how it looks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictBool
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from creditgate.domain.budgets import UnknownMember
from creditgate.domain.errors import UnknownCustomer
from creditgate.http import schemas
from creditgate.http.answers import IdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.examples import ANSWERS
from creditgate.http.models import Body, CustomerId, MemberRef, Text, example
from creditgate.http.reference import errors
from creditgate.portal.reads import branding, save_branding
from creditgate.portal.tokens import Tokens

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute, tags=["portal"])

Url = Annotated[
    str, Field(pattern=r"^https?://[!-~]{1,2000}$", examples=["https://example.com/account"])
]
Colour = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#4f46e5"])]


class NewPortalSession(Body):
    model_config = example({"customer": "cust_42", "return_url": "https://example.com/account"})

    customer: CustomerId = Field(description="Your own id for the customer (its `external_id`)")
    return_url: Url | None = Field(None, description="Where the portal's back link goes")
    member: MemberRef | None = Field(
        None,
        description="A member of the customer (an organization): the session shows only that "
        "member's own budgets and usage, never the wallet or the other members",
    )


class PortalSession(BaseModel):
    model_config = example(ANSWERS["portal"])

    url: str = Field(description="Open it in the customer's browser; it works once per hour")
    expires_at: datetime = Field(
        description="When the link stops working; ISO 8601 date and time, UTC"
    )


class BrandingUpdate(Body):
    model_config = example(
        {
            "name": "Acme AI",
            "logo_url": "https://example.com/logo.png",
            "accent_color": "#4f46e5",
        }
    )

    name: Annotated[Text, Field(min_length=1, max_length=200)] = Field(
        description="The product's name, shown in the portal"
    )
    logo_url: Url | None = Field(None, description="The logo shown; left out: none")
    accent_color: Colour = Field("#4f46e5", description="The accent colour, `#rrggbb`")
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


@router.post(
    "/portal/sessions",
    status_code=201,
    response_model=PortalSession,
    summary="Open a billing portal session",
    responses=errors(UnknownCustomer, UnknownMember),
)
async def create_portal_session(
    body: NewPortalSession,
    ledger: Ledger,
    request: Request,
    idempotency_key: IdempotencyKey = None,  # a session changes nothing: replays are harmless
) -> Response:
    """A link that signs the customer into their billing portal (balance, usage, packs to
    buy, auto top-up, and an organization's members with their budgets): create it
    server-side when the customer asks for it, and redirect them to `url`. With `member`,
    the link is that member's: it shows only the member's own budgets and usage. It changes
    nothing, so a repeated request is harmless."""
    customer = await run_in_threadpool(ledger.customer, body.customer)
    if body.member is not None:
        await run_in_threadpool(ledger.member, customer.external_id, body.member)
    tokens: Tokens = request.app.state.portal_tokens
    token, expires_at = tokens.portal_token(
        ledger.tenant_id,
        customer.external_id,
        now=ledger.cg.clock(),
        return_url=body.return_url,
        member=body.member,
    )
    url = str(request.base_url).rstrip("/") + "/portal?" + urlencode({"token": token})
    return answer(PortalSession(url=url, expires_at=expires_at), 201)


@router.get(
    "/portal/branding",
    response_model=schemas.Branding,
    summary="Get the portal's branding",
    responses=errors(),
)
async def get_branding(ledger: Ledger) -> Response:
    """How the billing portal looks and what it lets customers do."""
    return answer(await run_in_threadpool(branding, ledger.cg, ledger.tenant_id))


@router.put(
    "/portal/branding",
    response_model=schemas.Branding,
    summary="Set the portal's branding",
    responses=errors(),
)
async def put_branding(
    body: BrandingUpdate, ledger: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Set the portal's name, logo and accent colour, and its switches: customers managing
    their own auto top-up, and demo payments."""
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
