"""What the billing portal and the dashboard read beyond the ledger: branding, usage and margin
per day, and whether a dashboard session is still open."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import delete, insert, select, update

from creditgate.domain.errors import InvalidInput
from creditgate.services.billing._shared import insert_if_new
from creditgate.services.catalog.catalog import check_external_id
from creditgate.services.context import Tx
from creditgate.services.pricing.margin import margin_rate
from creditgate.services.results import DecimalString, Result
from creditgate.storage.tables import (
    api_keys,
    charges,
    dashboard_sign_outs,
    lots,
    tenant_branding,
    tenants,
)

DEFAULT_ACCENT = "#4f46e5"
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_URL = re.compile(r"^https?://[!-~]{1,1990}$")
MAX_USAGE_DAYS = 366


class Branding(Result):
    name: str
    logo_url: str | None
    accent_color: str
    customers_manage_auto_top_up: bool = False  # the portal offers the auto top-up form
    # Without Stripe, a portal purchase counts as paid at once: a demo, nothing is collected.
    # Off, such a purchase is a manual invoice, pending until someone marks it paid.
    portal_demo_payments: bool = False


class DailyUsage(Result):
    day: date
    action: str  # "other" for charges without an action
    amount: int  # minor units of the asset charged


def get_branding(tx: Tx) -> Branding:
    row = tx.conn.execute(
        select(tenant_branding).where(tenant_branding.c.tenant_id == tx.tenant_id)
    ).first()
    if row is not None:
        return Branding(
            name=row.display_name,
            logo_url=row.logo_url,
            accent_color=row.accent_color,
            customers_manage_auto_top_up=bool(row.customers_manage_auto_top_up),
            portal_demo_payments=bool(row.portal_demo_payments),
        )
    name = tx.conn.execute(select(tenants.c.name).where(tenants.c.id == tx.tenant_id)).scalar_one()
    return Branding(name=name, logo_url=None, accent_color=DEFAULT_ACCENT)


def set_branding(
    tx: Tx,
    *,
    name: str,
    logo_url: str | None = None,
    accent_color: str = DEFAULT_ACCENT,
    customers_manage_auto_top_up: bool | None = None,
    portal_demo_payments: bool | None = None,
) -> Branding:
    """Set how the portal looks and what it lets customers do; a switch left None keeps what
    was set."""
    if not name.strip() or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters", field="name")
    if logo_url is not None and not _URL.match(logo_url):
        raise InvalidInput("logo_url must be an http(s) URL", field="logo_url")
    if not _COLOUR.match(accent_color):
        raise InvalidInput("accent_color must look like #1a2b3c", field="accent_color")
    values: dict[str, Any] = {
        "display_name": name,
        "logo_url": logo_url,
        "accent_color": accent_color.lower(),
        "updated_at": tx.now,
    }
    switches = {
        "customers_manage_auto_top_up": customers_manage_auto_top_up,
        "portal_demo_payments": portal_demo_payments,
    }
    for name, value in switches.items():
        if value is None:
            continue
        if not isinstance(value, bool):
            raise InvalidInput(f"{name} must be true or false", field=name)
        values[name] = int(value)
    changed = tx.conn.execute(
        update(tenant_branding).where(tenant_branding.c.tenant_id == tx.tenant_id).values(values)
    ).rowcount
    if not changed:
        tx.conn.execute(insert(tenant_branding).values(tenant_id=tx.tenant_id, **values))
    return get_branding(tx)


def usage_by_day(
    tx: Tx, *, customer: str, asset: str, days: int = 30, member: str | None = None
) -> list[DailyUsage]:
    """What charges debited from one customer and asset per UTC day and action, oldest first
    (with `member`, only that member's charges)."""
    if not 1 <= days <= MAX_USAGE_DAYS:
        raise InvalidInput(f"days must be from 1 to {MAX_USAGE_DAYS}", field="days")
    wallet_id = tx.wallet_id(check_external_id(customer))
    since: datetime = tx.now - timedelta(days=days)
    query = select(charges.c.created_at, charges.c.action, charges.c.amount).where(
        charges.c.wallet_id == wallet_id,
        charges.c.asset == tx.asset(asset).code,
        charges.c.amount > 0,
        charges.c.created_at >= since,
    )
    if member is not None:
        query = query.where(charges.c.member == check_external_id(member, "member"))
    totals: dict[tuple[date, str], int] = {}
    for row in tx.conn.execute(query):
        key = (row.created_at.date(), row.action or "other")
        totals[key] = totals.get(key, 0) + row.amount
    return [
        DailyUsage(day=day, action=act, amount=amount)
        for (day, act), amount in sorted(totals.items())
    ]


class LedgerReference(Result):
    """What a ledger row refers to, as a person names it: a charge's action and model, or
    the kind of the lot a grant, an expiry or a void moved."""

    action: str | None = None
    model: str | None = None
    lot_kind: str | None = None


MAX_REFERENCES = 200


def ledger_references(
    tx: Tx, *, customer: str, references: list[str]
) -> dict[str, LedgerReference]:
    """The charges and lots that ledger rows of one customer refer to, by id; an id of
    another customer's (or tenant's) row is not found."""
    if len(references) > MAX_REFERENCES:
        raise InvalidInput(f"at most {MAX_REFERENCES} references at a time", field="references")
    wallet_id = tx.wallet_id(check_external_id(customer))
    found: dict[str, LedgerReference] = {}
    if not references:
        return found
    for charge in tx.conn.execute(
        select(charges.c.id, charges.c.action, charges.c.model).where(
            charges.c.wallet_id == wallet_id, charges.c.id.in_(references)
        )
    ):
        found[charge.id] = LedgerReference(action=charge.action, model=charge.model)
    for lot in tx.conn.execute(
        select(lots.c.id, lots.c.kind).where(
            lots.c.wallet_id == wallet_id, lots.c.id.in_(references)
        )
    ):
        found[lot.id] = LedgerReference(lot_kind=lot.kind)
    return found


class MarginPoint(Result):
    """One day's margin of one action and model (None: not recorded on the charges)."""

    day: date
    action: str | None
    model: str | None
    charges: int
    revenue: DecimalString
    vendor_cost: DecimalString  # of the charges whose cost is known
    cost_unknown: int
    gross_margin: DecimalString
    margin: DecimalString | None  # gross_margin / revenue; None without revenue


def margin_over_time(
    tx: Tx, *, start: datetime, end: datetime, asset: str = "credits"
) -> list[MarginPoint]:
    """Margin per UTC day and (action, model) of one asset's charges in [start, end).

    The same sums as the margin report (`services.margin`): revenue from the lots' cost basis,
    vendor cost where known; ordered by day, then action, then model.
    """
    if not (start.tzinfo and end.tzinfo) or not start < end:
        raise InvalidInput("start must be a timezone-aware time before end", field="start")
    if end - start > timedelta(days=MAX_USAGE_DAYS):
        raise InvalidInput(f"at most {MAX_USAGE_DAYS} days at a time", field="start")
    query = select(
        charges.c.created_at,
        charges.c.action,
        charges.c.model,
        charges.c.revenue,
        charges.c.vendor_cost,
    ).where(
        charges.c.tenant_id == tx.tenant_id,
        charges.c.asset == tx.asset(asset).code,
        charges.c.created_at >= start,
        charges.c.created_at < end,
    )
    totals: dict[tuple[date, str | None, str | None], list[Any]] = {}
    with localcontext() as ctx:
        ctx.prec = 100  # sums of NUMERIC(38, 18) values stay exact
        for row in tx.conn.execute(query.execution_options(yield_per=2_000)):
            key = (row.created_at.date(), row.action, row.model)
            sums = totals.setdefault(key, [0, Decimal(0), Decimal(0), 0])
            sums[0] += 1
            sums[1] += row.revenue or 0
            if row.vendor_cost is None:
                sums[3] += 1
            else:
                sums[2] += row.vendor_cost
    return [
        MarginPoint(
            day=day,
            action=action,
            model=model,
            charges=count,
            revenue=revenue,
            vendor_cost=cost,
            cost_unknown=unknown,
            gross_margin=revenue - cost,
            margin=margin_rate(revenue, cost),
        )
        for (day, action, model), (count, revenue, cost, unknown) in sorted(
            totals.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2] or "")
        )
    ]


def dashboard_session_open(tx: Tx, *, session_id: str, key_id: str) -> bool:
    """Whether a dashboard session still works: not signed out, and the key it was made
    from not revoked (revoking the key ends its sessions)."""
    key_live = tx.conn.execute(
        select(api_keys.c.id).where(
            api_keys.c.tenant_id == tx.tenant_id,
            api_keys.c.id == key_id,
            api_keys.c.revoked_at.is_(None),
        )
    ).first()
    if key_live is None:
        return False
    signed_out = tx.conn.execute(
        select(dashboard_sign_outs.c.session_id).where(
            dashboard_sign_outs.c.tenant_id == tx.tenant_id,
            dashboard_sign_outs.c.session_id == session_id,
        )
    ).first()
    return signed_out is None


def end_dashboard_session(tx: Tx, *, session_id: str, expires_at: datetime) -> None:
    """Sign a dashboard session out, on every server process; forget sign-outs of sessions
    that have expired since."""
    tx.conn.execute(
        delete(dashboard_sign_outs).where(
            dashboard_sign_outs.c.tenant_id == tx.tenant_id,
            dashboard_sign_outs.c.expires_at <= tx.now,
        )
    )
    if expires_at > tx.now:
        insert_if_new(
            tx,
            dashboard_sign_outs,
            {
                "tenant_id": tx.tenant_id,
                "session_id": session_id,
                "signed_out_at": tx.now,
                "expires_at": expires_at,
            },
        )
