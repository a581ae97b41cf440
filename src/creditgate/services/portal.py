"""What the billing portal and the dashboard read beyond the ledger: branding, usage per day."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from sqlalchemy import insert, select, update

from creditgate.domain.errors import InvalidInput
from creditgate.services.catalog import check_external_id
from creditgate.services.context import Tx
from creditgate.services.results import Result
from creditgate.storage.tables import charges, tenant_branding, tenants

DEFAULT_ACCENT = "#4f46e5"
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_URL = re.compile(r"^https?://[!-~]{1,1990}$")
MAX_USAGE_DAYS = 366


class Branding(Result):
    name: str
    logo_url: str | None
    accent_color: str


class DailyUsage(Result):
    day: date
    action: str  # "other" for charges without an action
    amount: int  # minor units of the asset charged


def get_branding(tx: Tx) -> Branding:
    row = tx.conn.execute(
        select(tenant_branding).where(tenant_branding.c.tenant_id == tx.tenant_id)
    ).first()
    if row is not None:
        return Branding(name=row.display_name, logo_url=row.logo_url, accent_color=row.accent_color)
    name = tx.conn.execute(select(tenants.c.name).where(tenants.c.id == tx.tenant_id)).scalar_one()
    return Branding(name=name, logo_url=None, accent_color=DEFAULT_ACCENT)


def set_branding(
    tx: Tx, *, name: str, logo_url: str | None = None, accent_color: str = DEFAULT_ACCENT
) -> Branding:
    if not name.strip() or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters", field="name")
    if logo_url is not None and not _URL.match(logo_url):
        raise InvalidInput("logo_url must be an http(s) URL", field="logo_url")
    if not _COLOUR.match(accent_color):
        raise InvalidInput("accent_color must look like #1a2b3c", field="accent_color")
    values = {
        "display_name": name,
        "logo_url": logo_url,
        "accent_color": accent_color.lower(),
        "updated_at": tx.now,
    }
    changed = tx.conn.execute(
        update(tenant_branding).where(tenant_branding.c.tenant_id == tx.tenant_id).values(values)
    ).rowcount
    if not changed:
        tx.conn.execute(insert(tenant_branding).values(tenant_id=tx.tenant_id, **values))
    return get_branding(tx)


def usage_by_day(tx: Tx, *, customer: str, asset: str, days: int = 30) -> list[DailyUsage]:
    """What charges debited from one customer and asset per UTC day and action, oldest first."""
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
    totals: dict[tuple[date, str], int] = {}
    for row in tx.conn.execute(query):
        key = (row.created_at.date(), row.action or "other")
        totals[key] = totals.get(key, 0) + row.amount
    return [
        DailyUsage(day=day, action=act, amount=amount)
        for (day, act), amount in sorted(totals.items())
    ]
