"""The customer's purchases, receipts and auto top-up setting in the billing portal.

Everything here is keyed by the session's customer, never by a customer named in the URL or
a form: a purchase of another customer answers 404 like one that does not exist, and the
auto top-up form changes only the session customer's own setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from creditgate.domain.errors import CreditgateError
from creditgate.http.load import in_flight_slot
from creditgate.portal.pages import Visit, portal_context, visit_of
from creditgate.portal.reads import branding
from creditgate.portal.web import (
    form_fields,
    page,
    parse_units,
    plain_units,
    refused,
    tokens_of,
)
from creditgate.services.billing.results import AutoTopUp, Pack, Purchase

# Each page holds an in-flight slot while it is served (its body already read).
router = APIRouter(include_in_schema=False, dependencies=[Depends(in_flight_slot)])

MAX_MONTHLY_LIMIT = 1_000  # as services.auto_top_up allows
PROVIDER_NAMES = {"stripe": "Stripe", "manual": "Invoice"}


def _scales(visit: Visit) -> dict[str, int]:
    return {a.code: a.scale for a in visit.ledger.assets()}


# Purchases and receipts


@router.get("/portal/purchases")
async def purchases_page(request: Request) -> Response:
    visit = visit_of(request)
    if isinstance(visit, str):
        return refused(request, visit)

    def read() -> dict[str, Any]:
        ledger = visit.ledger
        packs = {p.id: p for p in ledger.packs(include_inactive=True)}
        return {
            **portal_context(visit, "purchases"),
            "purchases": ledger.purchases(visit.session.customer),
            "packs_by_id": packs,
            "scales": _scales(visit),
            "providers": PROVIDER_NAMES,
        }

    try:
        context = await run_in_threadpool(read)
    except CreditgateError:
        return refused(request, "invalid")
    return page(request, "purchases.html", context)


def _own_paid_purchase(visit: Visit, purchase_id: str) -> Purchase | None:
    """The session customer's purchase if it was ever paid; None for anything else."""
    try:
        purchase = visit.ledger.purchase(purchase_id)
    except CreditgateError:  # malformed or unknown
        return None
    if purchase.customer != visit.session.customer or purchase.paid_at is None:
        return None
    return purchase


@router.get("/portal/purchases/{purchase_id}")
async def receipt(request: Request, purchase_id: str) -> Response:
    visit = visit_of(request)
    if isinstance(visit, str):
        return refused(request, visit)

    def read() -> dict[str, Any] | None:
        purchase = _own_paid_purchase(visit, purchase_id)
        if purchase is None:
            return None
        pack = None
        if purchase.pack_id is not None:
            packs = visit.ledger.packs(include_inactive=True)
            pack = next((p for p in packs if p.id == purchase.pack_id), None)
        return {
            **portal_context(visit, "purchases"),
            "purchase": purchase,
            "pack": pack,
            "scales": _scales(visit),
            "provider": PROVIDER_NAMES.get(purchase.provider, purchase.provider),
        }

    try:
        context = await run_in_threadpool(read)
    except CreditgateError:
        context = None
    if context is None:
        # The same answer for another customer's purchase as for one that does not exist.
        return refused(request, "not_found")
    return page(request, "receipt.html", context)


# Auto top-up


@dataclass(frozen=True, slots=True)
class Choice:
    """What the form shows: the saved setting, or what was typed when it was refused."""

    enabled: bool
    pack: str | None
    threshold: str
    monthly_limit: str


def _provider_for(visit: Visit, asset: str, settings: list[AutoTopUp]) -> str:
    saved = next((s for s in settings if s.asset == asset), None)
    if saved is not None:
        return saved.provider
    accounts = visit.ledger.provider_accounts()
    stripe = any(a.provider == "stripe" and a.api_key_set for a in accounts)
    return "stripe" if stripe else "manual"


def _auto_top_up_context(
    visit: Visit, choice: Choice | None, error: str | None, saved: bool
) -> dict[str, Any]:
    ledger, customer = visit.ledger, visit.session.customer
    settings = ledger.auto_top_ups(customer)
    packs = ledger.packs()
    all_packs = {p.id: p for p in ledger.packs(include_inactive=True)}
    scales = _scales(visit)
    if choice is None:
        current = settings[0] if settings else None
        if current is not None:
            choice = Choice(
                enabled=current.enabled,
                pack=current.pack_id,
                threshold=plain_units(current.threshold, scales.get(current.asset, 0)),
                monthly_limit="" if current.monthly_limit is None else str(current.monthly_limit),
            )
        else:
            choice = Choice(enabled=True, pack=None, threshold="", monthly_limit="")
    providers = {_provider_for(visit, asset, settings) for asset in {p.asset for p in packs}}
    card_needed = "stripe" in providers and not ledger.payment_methods(customer)
    return {
        **portal_context(visit, "auto-top-up"),
        "settings": settings,
        "packs": packs,
        "all_packs": all_packs,
        "scales": scales,
        "choice": choice,
        "error": error,
        "saved": saved,
        "card_needed": card_needed,
        "providers": PROVIDER_NAMES,
    }


@router.get("/portal/auto-top-up")
async def auto_top_up_page(request: Request) -> Response:
    visit = visit_of(request)
    if isinstance(visit, str):
        return refused(request, visit)
    saved = request.query_params.get("saved") == "1"
    try:
        context = await run_in_threadpool(_auto_top_up_context, visit, None, None, saved)
    except CreditgateError:
        return refused(request, "invalid")
    context["csrf"] = tokens_of(request).csrf(visit.token)
    return page(request, "auto_top_up.html", context)


class FormError(Exception):
    """A field the customer filled in wrongly: said on the page next to the form."""


def _save(visit: Visit, form: dict[str, str]) -> None:
    ledger, customer = visit.ledger, visit.session.customer
    if not branding(ledger.cg, ledger.tenant_id).customers_manage_auto_top_up:
        raise PermissionError
    pack_ref = form.get("pack", "")
    pack: Pack | None = next((p for p in ledger.packs() if p.id == pack_ref), None)
    if pack is None:
        raise FormError("Choose one of the packs on sale.")
    scale = _scales(visit).get(pack.asset, 0)
    try:
        threshold = parse_units(form.get("threshold", ""), scale)
    except ValueError:
        raise FormError(
            f"Enter the balance to top up at as a number of {pack.asset}, "
            f"with at most {scale} decimal places."
        ) from None
    limit_text = form.get("monthly_limit", "").strip()
    monthly_limit = None
    if limit_text:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_MONTHLY_LIMIT:
            raise FormError(
                f"The monthly cap is a whole number of top-ups from 1 to {MAX_MONTHLY_LIMIT}, "
                "or empty for no cap."
            )
        monthly_limit = int(limit_text)
    settings = ledger.auto_top_ups(customer)
    try:
        ledger.set_auto_top_up(
            customer,
            pack.asset,
            threshold=threshold,
            pack=pack.id,
            provider=_provider_for(visit, pack.asset, settings),
            monthly_limit=monthly_limit,
            enabled=form.get("enabled") == "1",
        )
    except CreditgateError as exc:
        raise FormError(str(exc)) from exc


@router.post("/portal/auto-top-up")
async def save_auto_top_up(request: Request) -> Response:
    visit = visit_of(request)
    if isinstance(visit, str):
        return refused(request, visit)
    form = await form_fields(request)
    if not tokens_of(request).csrf_ok(visit.token, form.get("csrf")):
        return refused(request, "csrf")
    try:
        await run_in_threadpool(_save, visit, form)
    except PermissionError:
        return refused(request, "not_allowed")
    except FormError as exc:
        choice = Choice(
            enabled=form.get("enabled") == "1",
            pack=form.get("pack"),
            threshold=form.get("threshold", "")[:40],
            monthly_limit=form.get("monthly_limit", "")[:10],
        )
        context = await run_in_threadpool(_auto_top_up_context, visit, choice, str(exc), False)
        context["csrf"] = tokens_of(request).csrf(visit.token)
        return page(request, "auto_top_up.html", context, status=422)
    return RedirectResponse("/portal/auto-top-up?saved=1", status_code=303)
