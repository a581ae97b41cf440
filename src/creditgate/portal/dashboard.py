"""The product team's dashboard: customers and balances, a customer's ledger and members,
margin charts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from creditgate.api import Creditgate, TenantLedger
from creditgate.domain.billing import add_months
from creditgate.domain.errors import CreditgateError, IdempotencyConflict, NotFound, RateLimited
from creditgate.http.auth import authenticate
from creditgate.http.load import in_flight_slot
from creditgate.http.problems import status_of
from creditgate.portal import charts
from creditgate.portal.history import rows as history_rows
from creditgate.portal.reads import (
    branding,
    customer_balances,
    dashboard_session_open,
    dashboard_totals,
    end_dashboard_session,
    margin_over_time,
    organization_overview,
)
from creditgate.portal.tokens import DASHBOARD_TTL, DashboardSession, TokenRefused
from creditgate.portal.web import (
    form_fields,
    page,
    parse_units,
    ratio,
    refused,
    tokens_of,
    usd,
)
from creditgate.services.pricing.margin import is_loss, margin_rate
from creditgate.services.results import Lot

# Each page holds an in-flight slot while it is served (its body already read).
router = APIRouter(include_in_schema=False, dependencies=[Depends(in_flight_slot)])

COOKIE = "cg_dashboard"
LOGIN_CSRF = "cg_dashboard_csrf"
MARGIN_DAYS = (7, 30, 90)
PRICE_CHANGES = (-20, 10, 20, 50, 100)  # what-if choices, percent on every vendor price
MAX_SERIES = 6  # lines in the margin-over-time chart; the rest are summed into one
CENT = Decimal("0.01")  # the finest step of a dollar axis


@dataclass(frozen=True, slots=True)
class Visit:
    session: DashboardSession
    token: str
    ledger: TenantLedger


def _visit(request: Request) -> Visit | str:
    cg: Creditgate = request.app.state.cg
    token = request.cookies.get(COOKIE)
    try:
        session = tokens_of(request).dashboard_session(token, now=cg.clock())
    except TokenRefused as exc:
        return exc.reason
    assert token is not None
    return Visit(session, token, TenantLedger(cg, session.tenant_id))


def _still_open(visit: Visit) -> bool:
    # A session lasts until it is signed out, or the key it was made from is revoked.
    ledger, session = visit.ledger, visit.session
    return dashboard_session_open(
        ledger.cg, ledger.tenant_id, session_id=session.session_id, key_id=session.key_id
    )


async def _signed_in(request: Request) -> Visit | Response:
    visit = _visit(request)
    if isinstance(visit, str):
        if visit == "missing":
            return RedirectResponse("/dashboard/login", status_code=303)
        return refused(request, visit, sign_in="/dashboard/login")
    if not await run_in_threadpool(_still_open, visit):
        return refused(request, "expired", sign_in="/dashboard/login")
    return visit


@router.get("/dashboard/login")
async def login_form(request: Request) -> Response:
    csrf = secrets.token_urlsafe(24)
    response = page(request, "login.html", {"csrf": csrf, "error": None})
    response.set_cookie(LOGIN_CSRF, csrf, path="/dashboard", httponly=True, samesite="strict")
    return response


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    form = await form_fields(request)
    api_key, csrf = form.get("api_key", ""), form.get("csrf", "")
    expected = request.cookies.get(LOGIN_CSRF)
    if not expected or not secrets.compare_digest(expected, csrf):
        return refused(request, "csrf", sign_in="/dashboard/login")
    try:  # failed sign-ins count against the address, as failed API calls do
        principal = await authenticate(request, api_key.strip())
    except CreditgateError as exc:
        fresh = secrets.token_urlsafe(24)
        error = exc.message if isinstance(exc, RateLimited) else "That API key is not valid."
        context = {"csrf": fresh, "error": error}
        response = page(request, "login.html", context, status=status_of(exc))
        response.set_cookie(LOGIN_CSRF, fresh, path="/dashboard", httponly=True, samesite="strict")
        return response
    cg: Creditgate = request.app.state.cg
    token = tokens_of(request).dashboard_token(
        principal.tenant_id, principal.key_id, now=cg.clock()
    )
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(DASHBOARD_TTL.total_seconds()),
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_CSRF, path="/dashboard")
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    visit = _visit(request)
    csrf = (await form_fields(request)).get("csrf")
    if isinstance(visit, Visit):
        if not tokens_of(request).csrf_ok(visit.token, csrf):
            return refused(request, "csrf", sign_in="/dashboard/login")
        # Ended on the server too: the cookie, kept or copied, no longer works anywhere.
        session, ledger = visit.session, visit.ledger
        await run_in_threadpool(
            end_dashboard_session,
            ledger.cg,
            ledger.tenant_id,
            session_id=session.session_id,
            expires_at=session.expires_at,
        )
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


def _base(request: Request, visit: Visit) -> dict[str, Any]:
    return {
        "brand": branding(visit.ledger.cg, visit.ledger.tenant_id),
        "csrf": tokens_of(request).csrf(visit.token),
    }


CUSTOMER_PAGE = 50
GRANT_KINDS = ("promotional", "adjustment")  # what the dashboard grants: no money changes hands


def _this_month(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) that the landing page's totals cover."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, add_months(start, 1)


def _customer_rows(visit: Visit, q: str | None, after: str | None) -> dict[str, Any]:
    ledger = visit.ledger
    found = customer_balances(
        ledger.cg, ledger.tenant_id, search=q, after=after, limit=CUSTOMER_PAGE
    )
    return {
        "rows": found,
        "q": q or "",
        "next": found[-1].customer.external_id if len(found) == CUSTOMER_PAGE else None,
    }


Search = Annotated[str | None, Query(max_length=200)]


@router.get("/dashboard")
async def customers(request: Request, q: Search = None, after: Search = None) -> Response:
    visit = await _signed_in(request)
    if not isinstance(visit, Visit):
        return visit

    def read() -> dict[str, Any]:
        ledger = visit.ledger
        start, end = _this_month(ledger.cg.clock())
        return {
            **_base(request, visit),
            **_customer_rows(visit, q, after),
            "totals": dashboard_totals(ledger.cg, ledger.tenant_id, start=start, end=end),
            "period": start.strftime("%B %Y"),
            "pct": _pct,
        }

    return page(request, "dashboard.html", await run_in_threadpool(read))


@router.get("/dashboard/fragments/customers")
async def customers_fragment(request: Request, q: Search = None, after: Search = None) -> Response:
    """The customers table alone: what the search box swaps in as it is typed in."""
    visit = await _signed_in(request)
    if not isinstance(visit, Visit):
        if request.headers.get("HX-Request") == "true":
            # Signed out while typing: the whole page goes to the sign-in form, rather than
            # the form (or a refusal) being swapped in where the table was.
            return Response(status_code=204, headers={"HX-Redirect": "/dashboard/login"})
        return visit

    def read() -> dict[str, Any]:
        return {**_base(request, visit), **_customer_rows(visit, q, after)}

    return page(request, "_customers.html", await run_in_threadpool(read))


@router.post("/dashboard/customers/{customer}/portal")
async def open_portal(request: Request, customer: str) -> Response:
    """A portal session for one customer (or one member of it, `member` in the form), as
    they would see it, opened from here."""
    visit = await _signed_in(request)
    if not isinstance(visit, Visit):
        return visit
    form = await form_fields(request)
    if not tokens_of(request).csrf_ok(visit.token, form.get("csrf")):
        return refused(request, "csrf", sign_in="/dashboard/login")
    ledger = visit.ledger
    member = form.get("member") or None
    try:
        found = await run_in_threadpool(ledger.customer, customer)
        if member is not None:
            await run_in_threadpool(ledger.member, found.external_id, member)
    except NotFound:
        return _no_such_customer(request)
    base = str(request.base_url).rstrip("/")
    token, _ = tokens_of(request).portal_token(
        ledger.tenant_id,
        found.external_id,
        now=ledger.cg.clock(),
        return_url=f"{base}/dashboard/customers/{quote(found.external_id, safe='')}",
        member=member,
    )
    response = RedirectResponse(f"/portal?{urlencode({'token': token})}", status_code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _no_such_customer(request: Request) -> Response:
    context = {"title": "No such customer", "detail": "Check the id.", "sign_in": None}
    return page(request, "refused.html", context, status=404)


def _grant_form(
    request: Request, visit: Visit, customer: str, values: dict[str, str], error: str | None
) -> dict[str, Any]:
    ledger = visit.ledger
    return {
        **_base(request, visit),
        "customer": ledger.customer(customer),
        "wallet": ledger.wallet(customer),
        "assets": ledger.assets(),
        "kinds": GRANT_KINDS,
        "values": values,
        "error": error,
        "nonce": values.get("nonce") or secrets.token_urlsafe(12),
    }


@router.get("/dashboard/customers/{customer}/grant")
async def grant_form(request: Request, customer: str) -> Response:
    visit = await _signed_in(request)
    if not isinstance(visit, Visit):
        return visit
    try:
        context = await run_in_threadpool(_grant_form, request, visit, customer, {}, None)
    except NotFound:
        return _no_such_customer(request)
    return page(request, "dashboard_grant.html", context)


class GrantRefused(Exception):
    """A grant form filled in wrongly: said above the form, nothing granted."""


def _granted(visit: Visit, customer: str, form: dict[str, str]) -> Lot:
    ledger = visit.ledger
    ledger.customer(customer)  # another tenant's, or no one's: not found, whatever the form says
    scales = {a.code: a.scale for a in ledger.assets()}
    asset, kind = form.get("asset", ""), form.get("kind", "")
    if asset not in scales:
        raise GrantRefused("Choose one of the assets.")
    if kind not in GRANT_KINDS:
        raise GrantRefused("Choose promotional or adjustment.")
    try:
        amount = parse_units(form.get("amount", ""), scales[asset])
    except ValueError as exc:
        raise GrantRefused(f"The amount must be a number of {asset} ({exc}).") from None
    if amount <= 0:
        raise GrantRefused("The amount must be more than 0.")
    expires_at = None
    if expires := form.get("expires", "").strip():
        try:
            expires_at = datetime.combine(date.fromisoformat(expires), time(), UTC)
        except ValueError:
            raise GrantRefused("The expiry must be a date, e.g. 2030-01-31.") from None
        if expires_at <= ledger.cg.clock():
            raise GrantRefused("The expiry must be a day after today.")
    # One form shown once grants once, however often it is submitted.
    return ledger.grant(
        customer,
        asset,
        amount,
        kind=kind,
        expires_at=expires_at,
        metadata={"source": "dashboard"},
        idempotency_key=f"dashboard:grant:{form.get('nonce', '')[:64]}",
    )


@router.post("/dashboard/customers/{customer}/grant")
async def grant(request: Request, customer: str) -> Response:
    visit = await _signed_in(request)
    if not isinstance(visit, Visit):
        return visit
    form = await form_fields(request)
    if not tokens_of(request).csrf_ok(visit.token, form.get("csrf")):
        return refused(request, "csrf", sign_in="/dashboard/login")
    if not form.get("nonce"):
        return refused(request, "malformed")
    try:
        lot = await run_in_threadpool(_granted, visit, customer, form)
    except NotFound:
        return _no_such_customer(request)
    except (GrantRefused, CreditgateError) as exc:
        if isinstance(exc, IdempotencyConflict):
            error = "This form already granted credit with other values: open a new form."
            form = {k: v for k, v in form.items() if k != "nonce"}
        else:
            error = exc.message if isinstance(exc, CreditgateError) else str(exc)
        context = await run_in_threadpool(_grant_form, request, visit, customer, form, error)
        return page(request, "dashboard_grant.html", context, status=400)
    where = f"/dashboard/customers/{quote(customer, safe='')}?granted={quote(lot.id)}"
    return RedirectResponse(where, status_code=303)


@router.get("/dashboard/customers/{customer}")
async def customer(
    request: Request,
    customer: str,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    granted: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    visit = await _signed_in(request)
    if not isinstance(visit, Visit):
        return visit

    def read() -> dict[str, Any]:
        ledger = visit.ledger
        lots = ledger.lots(customer, include_closed=True)
        history = ledger.ledger(
            customer, limit=25, cursor=cursor if cursor and cursor.startswith("txn_") else None
        )
        return {
            **_base(request, visit),
            "customer": ledger.customer(customer),
            "wallet": ledger.wallet(customer),
            "lots": lots,
            "granted": next((lot for lot in lots if lot.id == granted), None),
            "history": history,
            "history_rows": history_rows(ledger, customer, history),
            "purchases": ledger.purchases(customer),
            "scales": {a.code: a.scale for a in ledger.assets()},
            "organization": organization_overview(ledger.cg, ledger.tenant_id, customer=customer),
            "member_portal": f"/dashboard/customers/{quote(customer, safe='')}/portal",
        }

    try:
        context = await run_in_threadpool(read)
    except NotFound:
        return _no_such_customer(request)
    return page(request, "dashboard_customer.html", context)


def _priced_asset(ledger: TenantLedger, now: datetime, assets: list[str]) -> str | None:
    """The asset the margin page opens on: the one the live default rate card charges in
    (where the charges are), else the first asset."""
    live = [v for v in ledger.rate_cards(name="default") if v.effective_at <= now]
    card_asset = live[-1].spec.get("asset") if live else None
    if card_asset in assets:
        return str(card_asset)
    return assets[0] if assets else None


@router.get("/dashboard/margin")
async def margin(
    request: Request,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    asset: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z][a-z0-9_]*$")] = None,
    change: Annotated[int, Query(ge=-90, le=500)] = 20,
) -> Response:
    visit = await _signed_in(request)
    if not isinstance(visit, Visit):
        return visit

    def read() -> dict[str, Any]:
        ledger = visit.ledger
        end = ledger.cg.clock()
        start = end - timedelta(days=days)
        assets = [a.code for a in ledger.assets()]
        chosen = asset if asset in assets else _priced_asset(ledger, end, assets)
        if chosen is None:
            return {**_base(request, visit), "report": None, "days": days, "assets": assets}
        rise = Decimal(change) / 100
        full = ledger.margin_report(start=start, end=end, by="action", asset=chosen, change=rise)
        by_customer = ledger.margin_report(start=start, end=end, by="customer", asset=chosen)
        by_model = ledger.margin_report(start=start, end=end, by="model", asset=chosen)
        by_day = ledger.margin_report(start=start, end=end, by="day", asset=chosen)
        rows = full.report.rows
        margin_chart = charts.bars(
            [(r.key or "other", r.gross_margin, usd(r.gross_margin)) for r in rows],
            title="Gross margin in USD by action",
        )
        model_chart = charts.bars(
            [(r.key or "other", r.gross_margin, usd(r.gross_margin)) for r in by_model.report.rows],
            title="Gross margin in USD by model",
        )
        day_chart = charts.bars(
            [(r.key or "?", r.gross_margin, usd(r.gross_margin)) for r in by_day.report.rows],
            title="Gross margin in USD by day",
        )
        customer_margins = [r.margin for r in by_customer.report.rows if r.margin is not None]
        dist = full.customers
        ratios = full.card.actions if full.card else []
        ratio_chart = charts.bars(
            [
                (a.action, a.worst.ratio, f"{ratio(a.worst.ratio)}x")
                for a in ratios
                if a.worst and a.worst.ratio is not None
            ],
            title="Worst-case credit-to-cost ratio by action",
        )
        return {
            **_base(request, visit),
            "report": full,
            "days": days,
            "day_choices": MARGIN_DAYS,
            "asset": chosen,
            "assets": assets,
            "margin_chart": margin_chart,
            "model_chart": model_chart,
            "day_chart": day_chart,
            "distribution_chart": charts.distribution(
                customer_margins,
                median=dist.median,
                p90=dist.p90,
                title="Margin per customer, with the median and 90th percentile",
            ),
            "ratios": ratios,
            "ratio_chart": ratio_chart,
            "pct": _pct,
            "change": change,
            "change_choices": PRICE_CHANGES,
            "what_if_chart": _what_if_chart(rows, rise),
            **_over_time(ledger, start, end, chosen, days),
        }

    return page(request, "dashboard_margin.html", await run_in_threadpool(read))


def _over_time(
    ledger: TenantLedger, start: datetime, end: datetime, asset: str, days: int
) -> dict[str, Any]:
    """The chart of gross margin per day, one line per action and model, and its totals."""
    points = margin_over_time(ledger.cg, ledger.tenant_id, start=start, end=end, asset=asset)
    if not points:
        return {"over_time_chart": None, "over_time_rows": []}

    def name(action: str | None, model: str | None) -> str:
        return f"{action or 'other'} · {model}" if model else (action or "other")

    totals: dict[str, list[Decimal]] = {}
    for p in points:
        t = totals.setdefault(name(p.action, p.model), [Decimal(0)] * 4)
        t[0] += p.charges
        t[1] += p.revenue
        t[2] += p.vendor_cost
        t[3] += p.gross_margin
    ranked = sorted(totals, key=lambda k: (-abs(totals[k][3]), k))
    shown = set(ranked[:MAX_SERIES]) if len(ranked) > MAX_SERIES + 1 else set(ranked)
    first = end.date() - timedelta(days=days - 1)
    day_list = [first + timedelta(days=i) for i in range(days)]
    index = {d: i for i, d in enumerate(day_list)}
    series: dict[str, list[Decimal | None]] = {}
    for p in points:
        key = name(p.action, p.model)
        key = key if key in shown else "everything else"
        line = series.setdefault(key, [None] * len(day_list))
        if p.day in index:
            i = index[p.day]
            line[i] = (line[i] or Decimal(0)) + p.gross_margin
    ordered = {k: series[k] for k in sorted(series, key=lambda k: (k == "everything else", k))}
    chart = charts.lines(
        [d.isoformat() for d in day_list],
        ordered,
        title="Gross margin in USD per day, by action and model",
        label=usd,
        least=CENT,
    )
    rows = [
        (
            k,
            *totals[k],
            margin_rate(totals[k][1], totals[k][2]),
            is_loss(totals[k][1], totals[k][2]),
        )
        for k in ranked
    ]
    return {"over_time_chart": chart, "over_time_rows": rows}


def _what_if_chart(rows: list[Any], rise: Decimal) -> Markup | None:
    """Margin per action now and with every vendor price changed by `rise`."""
    bars = []
    for r in rows:
        after = margin_rate(r.revenue, r.vendor_cost * (1 + rise))
        if r.margin is not None and after is not None:
            bars.append((r.key or "other", r.margin, after))
    if not bars:
        return None
    sign = "+" if rise >= 0 else ""
    return charts.paired_bars(
        bars,
        names=("margin now", f"vendor prices {sign}{rise * 100:.0f}%"),
        title=f"Margin per action now and if vendor prices change {sign}{rise * 100:.0f}%",
    )


def _pct(value: Decimal | None, loss: bool = False) -> str:
    """A margin as a percentage; with no revenue to divide by, "loss" if it cost something."""
    if value is None:
        return "loss" if loss else "—"
    return f"{value * 100:.1f}%"
