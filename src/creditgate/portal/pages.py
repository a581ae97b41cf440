"""The customer's billing portal: balance, lots, usage, top-ups, an organization's members;
everything keyed by the token (a member's token: that member's own budgets and usage)."""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from creditgate.api import Creditgate, TenantLedger
from creditgate.domain.errors import CreditgateError, NotFound
from creditgate.http.load import in_flight_slot
from creditgate.http.threads import waiting_on_a_provider
from creditgate.portal import charts
from creditgate.portal.history import rows as history_rows
from creditgate.portal.reads import branding, organization_overview, usage_by_day
from creditgate.portal.tokens import PortalSession, TokenRefused
from creditgate.portal.web import SECURITY_HEADERS, form_fields, page, refused, tokens_of
from creditgate.services.billing.results import Purchase

# Each page holds an in-flight slot while it is served (its body already read).
router = APIRouter(include_in_schema=False, dependencies=[Depends(in_flight_slot)])

COOKIE = "cg_portal"
PAGE_SIZE = 20
CHART_DAYS = (7, 30, 90)  # the periods a customer can pick; the longest caps the fitted one
FIT_LEAST_DAYS = 7  # a chart fitted to the usage shows at least a week


@dataclass(frozen=True, slots=True)
class Visit:
    session: PortalSession
    token: str
    ledger: TenantLedger


def visit_of(request: Request, *, member_ok: bool = False) -> Visit | str:
    """The session of this request's cookie, or why there is none. A member's session
    (`PortalSession.member`) is refused, `member`, unless the page is one a member sees
    (`member_ok`): the wallet, purchases and top-ups are the organization's."""
    token = request.cookies.get(COOKIE)
    cg: Creditgate = request.app.state.cg
    try:
        session = tokens_of(request).portal_session(token, now=cg.clock())
    except TokenRefused as exc:
        return exc.reason
    assert token is not None
    if session.member is not None and not member_ok:
        return "member"
    return Visit(session, token, TenantLedger(cg, session.tenant_id))


def portal_context(visit: Visit, current: str) -> dict[str, Any]:
    """What every portal page shows around its content: branding, the navigation, the session."""
    ledger, customer, member = visit.ledger, visit.session.customer, visit.session.member
    brand = branding(ledger.cg, ledger.tenant_id)
    offered = member is None and (
        brand.customers_manage_auto_top_up or bool(ledger.auto_top_ups(customer))
    )
    # The footer names the customer (or the member) by the name the product gave, never by
    # an id.
    name = ledger.customer(customer).name
    if member is not None:
        name = ledger.member(customer, member).name or name
    return {
        "brand": brand,
        "customer": customer,
        "member": member,
        "customer_name": name,
        "return_url": visit.session.return_url,
        "expires_at": visit.session.expires_at,
        "current": current,
        "auto_top_up_link": offered,
    }


@router.get("/portal")
async def portal_home(
    request: Request,
    token: Annotated[str | None, Query(max_length=4096)] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    bought: Annotated[str | None, Query(max_length=64)] = None,
    days: Annotated[str | None, Query(max_length=4)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    paid: Annotated[str | None, Query(max_length=4)] = None,  # back from Stripe Checkout
) -> Response:
    cg: Creditgate = request.app.state.cg
    if token is not None:
        # First visit: keep the token in a cookie and take it out of the address bar.
        try:
            session = tokens_of(request).portal_session(token, now=cg.clock())
        except TokenRefused as exc:
            return refused(request, exc.reason)
        response = RedirectResponse("/portal", status_code=303)
        max_age = int((session.expires_at - cg.clock()).total_seconds())
        response.set_cookie(
            COOKIE,
            token,
            max_age=max_age,
            path="/portal",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    visit = visit_of(request, member_ok=True)
    if isinstance(visit, str):
        return refused(request, visit)
    usage = Usage(
        days=int(days) if days in {str(d) for d in CHART_DAYS} else None,
        action=action or None,
    )
    if visit.session.member is not None:
        try:
            member_page = await run_in_threadpool(_member_context, visit, usage)
        except NotFound:
            return refused(request, "invalid")
        return page(request, "portal_member.html", member_page)
    try:
        context = await run_in_threadpool(_home_context, visit, cursor, bought, usage)
    except NotFound:
        return refused(request, "invalid")
    context["csrf"] = tokens_of(request).csrf(visit.token)
    context["checked_out"] = paid == "1"
    context["nonce"] = secrets.token_urlsafe(12)
    return page(request, "portal.html", context)


@dataclass(frozen=True, slots=True)
class Usage:
    """The usage chart's filter: how many days back (None: from the first day with usage,
    at least a week and at most the longest period), and one action or all."""

    days: int | None
    action: str | None


def _home_context(
    visit: Visit, cursor: str | None, bought: str | None, usage: Usage
) -> dict[str, object]:
    ledger, customer = visit.ledger, visit.session.customer
    wallet = ledger.wallet(customer)
    assets = {a.code: a for a in ledger.assets()}
    lots = ledger.lots(customer)
    history = ledger.ledger(customer, limit=PAGE_SIZE, cursor=_cursor(cursor))
    purchases = ledger.purchases(customer)
    packs = ledger.packs()
    stripe = any(a.provider == "stripe" and a.api_key_set for a in ledger.provider_accounts())
    charts_by_asset = {
        b.asset: _usage_chart(ledger, customer, b.asset, b.scale, usage) for b in wallet.balances
    }
    actions = sorted({a for chart in charts_by_asset.values() for a in chart[1]})
    subscription = next((s for s in ledger.subscriptions(customer) if s.status == "active"), None)
    plans = {p.id: p for p in ledger.plans()}
    invoices = ledger.invoices(customer)
    return {
        "subscription": subscription,
        "plan": plans.get(subscription.plan_id) if subscription else None,
        "unpaid": [i for i in invoices if i.status in ("open", "failed")],
        "debts": [b for b in wallet.balances if b.debt > 0],
        **portal_context(visit, "overview"),
        "organization": organization_overview(ledger.cg, ledger.tenant_id, customer=customer),
        "wallet": wallet,
        "scales": {code: a.scale for code, a in assets.items()},
        "lots": lots,
        "history": history,
        "history_rows": history_rows(ledger, customer, history),
        "cursor": cursor,
        "purchases": purchases,
        "packs": packs,
        "packs_by_id": {p.id: p for p in ledger.packs(include_inactive=True)},
        "stripe": stripe,
        "usage_charts": {asset: chart[0] for asset, chart in charts_by_asset.items()},
        "usage": usage,
        "actions": actions,
        "day_choices": CHART_DAYS,
        "bought": next((p for p in purchases if p.id == bought), None),
    }


def _member_context(visit: Visit, usage: Usage) -> dict[str, object]:
    """A member's own page: its budgets' current periods and its own usage, nothing of the
    wallet or of the other members."""
    ledger, customer, member = visit.ledger, visit.session.customer, visit.session.member
    assert member is not None
    overview = organization_overview(ledger.cg, ledger.tenant_id, customer=customer, member=member)
    scales = {a.code: a.scale for a in ledger.assets()}
    (row,) = overview.members
    assets = sorted({b.asset for b in row.budgets} | {u.asset for u in row.used})
    charts_by_asset = {
        asset: _usage_chart(ledger, customer, asset, scales.get(asset, 0), usage, member=member)
        for asset in assets
    }
    return {
        **portal_context(visit, "overview"),
        "member_name": row.member.name or row.member.external_id,
        "overview": overview,
        "scales": scales,
        "usage_charts": {asset: chart[0] for asset, chart in charts_by_asset.items()},
    }


def _cursor(cursor: str | None) -> str | None:
    return cursor if cursor and cursor.startswith("txn_") else None


def _usage_chart(
    ledger: TenantLedger,
    customer: str,
    asset: str,
    scale: int,
    usage: Usage,
    *,
    member: str | None = None,
) -> tuple[Markup | None, set[str]]:
    """The chart of one asset's usage per day by action, and every action seen in the period.

    Without a chosen period it starts on the first day with usage (of the action shown), so
    one charge yesterday is a week of bars rather than a month of empty days."""
    today = ledger.cg.clock().date()
    longest = usage.days or max(CHART_DAYS)
    rows = usage_by_day(
        ledger.cg, ledger.tenant_id, customer=customer, asset=asset, days=longest, member=member
    )
    seen = {row.action for row in rows}
    rows = [row for row in rows if usage.action in (None, row.action)]
    if not rows:
        return None, seen
    if usage.days is None:
        first = min(row.day for row in rows)
        count = min(max((today - first).days + 1, FIT_LEAST_DAYS), longest)
        period = f"since {first.isoformat()}" if count > FIT_LEAST_DAYS else "last 7 days"
    else:
        count, period = usage.days, f"last {usage.days} days"
    days = [today - timedelta(days=count - 1 - i) for i in range(count)]
    series: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(days))
    index = {d: i for i, d in enumerate(days)}
    for row in rows:
        if row.day in index:
            series[row.action][index[row.day]] += Decimal(row.amount).scaleb(-scale)
    what = usage.action or "all actions"
    chart = charts.stacked_days(
        [d.isoformat() for d in days],
        dict(series),
        title=f"{asset} used per day, {what}, {period}",
        unit=f"{asset} per day",
        least=Decimal(1).scaleb(-scale),
    )
    return chart, seen


@router.get("/portal/fragments/balance")
async def balance_fragment(request: Request) -> Response:
    visit = visit_of(request)
    if isinstance(visit, str):
        # htmx stops polling on 286: the session ended, say so in place of the balance.
        return Response(
            '<p role="alert">This page has expired. Open a new billing link.</p>',
            status_code=286,
            media_type="text/html",
            headers=SECURITY_HEADERS,
        )
    wallet = await run_in_threadpool(visit.ledger.wallet, visit.session.customer)
    return page(request, "_balance.html", {"wallet": wallet})


@router.post("/portal/purchases")
async def buy_pack(request: Request) -> Response:
    visit = visit_of(request)
    if isinstance(visit, str):
        return refused(request, visit)
    form = await form_fields(request)
    if not tokens_of(request).csrf_ok(visit.token, form.get("csrf")):
        return refused(request, "csrf")
    pack, nonce = form.get("pack", ""), form.get("nonce") or secrets.token_urlsafe(12)
    base = str(request.base_url).rstrip("/") + "/portal"
    try:
        purchase = await waiting_on_a_provider(request, _buy, visit, pack, nonce, base)
    except CreditgateError as exc:
        return refused(request, "invalid") if isinstance(exc, NotFound) else _failed(request, exc)
    if purchase.checkout_url:
        return RedirectResponse(purchase.checkout_url, status_code=303)
    return RedirectResponse(f"/portal?bought={purchase.id}#topup", status_code=303)


def _buy(visit: Visit, pack: str, nonce: str, base: str) -> Purchase:
    ledger, customer = visit.ledger, visit.session.customer
    stripe = any(a.provider == "stripe" and a.api_key_set for a in ledger.provider_accounts())
    # One form shown once buys once, however often it is submitted.
    key = f"portal:{customer}:{nonce}"
    if stripe:
        return ledger.buy(
            customer,
            pack=pack,
            provider="stripe",
            success_url=f"{base}?paid=1",
            cancel_url=base,
            idempotency_key=key,
        )
    purchase = ledger.buy(customer, pack=pack, provider="manual", idempotency_key=key)
    if purchase.status == "pending" and branding(ledger.cg, ledger.tenant_id).portal_demo_payments:
        # Demo mode, which the tenant turned on: nothing is collected, it counts as paid.
        purchase = ledger.mark_paid(purchase.id, idempotency_key=f"{key}:paid")
    # Otherwise a manual invoice: pending, and no credit, until the tenant marks it paid.
    return purchase


def _failed(request: Request, exc: CreditgateError) -> Response:
    context = {"title": "The purchase did not go through", "detail": str(exc), "sign_in": None}
    return page(request, "refused.html", context, status=409)
