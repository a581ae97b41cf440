"""What the portal and the dashboard share: templates, static files, refusal pages, cookies."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from creditgate.domain.amounts import money_text, rounded_text, units_text
from creditgate.portal.tokens import Tokens

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

STATIC = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
    "print.js": "text/javascript; charset=utf-8",
}
# Pages may load only our own scripts and styles; images (a tenant's logo) from anywhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self' https:"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def units(amount: int, scale: int) -> str:
    """Minor units as the asset's units: 123456 at scale 2 is 1,234.56."""
    return units_text(amount, scale, grouped=True)


def plain_units(amount: int, scale: int) -> str:
    """Minor units as a form field's value: 150000 at scale 2 is 1500.00 (no separators)."""
    return units_text(amount, scale)


def parse_units(text: str, scale: int) -> int:
    """What a customer typed (12.5, 1,000) as minor units of an asset of `scale` decimals.

    Exact: a value with more decimals than the asset has, or not a plain non-negative
    number, raises ValueError rather than being rounded.
    """
    cleaned = text.strip().replace(",", "")
    if not cleaned or len(cleaned) > 40 or not all(c.isdigit() or c == "." for c in cleaned):
        raise ValueError("not a number")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("not a number") from None
    minor = value.scaleb(scale)
    if minor != minor.to_integral_value():
        raise ValueError(f"at most {scale} decimal places")
    return int(minor)


def money(value: Decimal | str, currency: str = "USD") -> str:
    """A price or a sum of money in its currency's minor unit, rounded half to even (the
    domain's rule): 9 USD is 9.00, 1234.5 is 1,234.50."""
    return money_text(Decimal(value), currency, grouped=True)


def usd(value: Decimal | str) -> str:
    """Dollars with the sign before the symbol, to the cent, rounded half to even: -$0.07."""
    return money_text(Decimal(value), "USD", symbol=True, grouped=True)


def ratio(value: Decimal | str, places: int = 2) -> str:
    """A ratio to `places` decimals, rounded half to even: 2.5 is 2.50."""
    return rounded_text(Decimal(value), places)


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours (4.5 is the bar for body text)."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def accent_colours(accent: str) -> dict[str, str]:
    """Text on the tenant's accent, and links in it, kept readable whatever colour it is."""
    on_accent = "#ffffff" if contrast(accent, "#ffffff") >= 4.5 else "#111111"
    link = accent if contrast(accent, "#ffffff") >= 4.5 else "#1f2430"
    return {"on_accent": on_accent, "link": link}


templates.env.filters["units"] = units
templates.env.filters["plain_units"] = plain_units
templates.env.globals["accent_colours"] = accent_colours
templates.env.filters["money"] = money
templates.env.filters["usd"] = usd
templates.env.filters["ratio"] = ratio

static_router = APIRouter(include_in_schema=False)


@static_router.get("/portal/static/{name}")
async def static_file(name: str) -> Response:
    media_type = STATIC.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    body = (HERE / "static" / name).read_bytes()
    return Response(body, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})


def tokens_of(request: Request) -> Tokens:
    tokens: Tokens = request.app.state.portal_tokens
    return tokens


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


REFUSALS = {
    "missing": (401, "Sign-in needed", "Open the billing link you were given again."),
    "expired": (401, "This link has expired", "Ask for a new billing link; links last an hour."),
    "invalid": (403, "This link is not valid", "The link was changed or is not one of ours."),
    "csrf": (403, "Form expired", "Reload the page and try again."),
    "not_allowed": (403, "Not available here", "Ask the product's support team to change it."),
    "not_found": (404, "Not found", "There is nothing at this address for your account."),
    "member": (
        403,
        "Not available to members",
        "This page is for your organization's billing contacts; yours is the overview.",
    ),
    "malformed": (400, "This form could not be read", "Reload the page and try again."),
}


def refused(request: Request, reason: str, *, sign_in: str | None = None) -> Response:
    status, title, detail = REFUSALS.get(reason, REFUSALS["invalid"])
    context = {"title": title, "detail": detail, "sign_in": sign_in}
    return page(request, "refused.html", context, status=status)


MAX_FORM_BYTES = 8_192
MAX_FORM_FIELDS = 20


class MalformedForm(Exception):
    """A form none of ours would send (more fields than any has): 400, the refusal page."""


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (first value of each); our forms are small and flat."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # more than MAX_FORM_FIELDS fields
        raise MalformedForm() from None
    return {name: values[0][:4096] for name, values in fields.items()}


async def malformed_form(request: Request, _exc: Exception) -> Response:
    return refused(request, "malformed")
