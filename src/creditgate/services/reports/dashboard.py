"""What the dashboard's landing page reads: customers with their balances, found by their id
or name, and the tenant's totals per asset (credit outstanding, and this period's usage,
revenue and margin)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select

from creditgate.domain.errors import InvalidInput
from creditgate.services.catalog.catalog import customer_result
from creditgate.services.context import Tx
from creditgate.services.pricing import margin
from creditgate.services.results import AssetBalance, Customer, DecimalString, Result
from creditgate.services.wallet import balance_result
from creditgate.storage.tables import assets, customers, wallet_balances

MAX_SEARCH = 200
MAX_PAGE = 100


class CustomerBalances(Result):
    customer: Customer
    balances: list[AssetBalance]  # by asset code


class AssetTotals(Result):
    """One asset across the tenant's wallets now, and its charges in [start, end)."""

    asset: str
    scale: int
    wallets: int  # wallets holding the asset
    outstanding: int  # credit customers hold (their lots' remaining), minor units
    owed: int  # debt customers owe, minor units
    below_zero: int  # wallets whose available is below zero
    used: int  # charged in the period, minor units
    charges: int
    revenue: DecimalString  # of the period's charges, money (USD)
    vendor_cost: DecimalString  # of those whose cost is known
    gross_margin: DecimalString
    margin: DecimalString | None  # gross_margin / revenue; None without revenue
    loss: bool


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def customer_balances(
    tx: Tx, *, search: str | None = None, after: str | None = None, limit: int = 50
) -> list[CustomerBalances]:
    """Customers by external id, from after `after`, whose external id or name contains
    `search` (any case), each with its balance per asset; two statements for the page."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", field="limit")
    query = select(customers).where(customers.c.tenant_id == tx.tenant_id)
    text = (search or "").strip()
    if len(text) > MAX_SEARCH:
        raise InvalidInput(f"search must be at most {MAX_SEARCH} characters", field="search")
    if text:
        pattern = _like(text)
        query = query.where(
            or_(
                customers.c.external_id.ilike(pattern, escape="\\"),
                customers.c.name.ilike(pattern, escape="\\"),
            )
        )
    if after is not None:
        query = query.where(customers.c.external_id > after)
    found = tx.conn.execute(query.order_by(customers.c.external_id).limit(limit)).all()
    by_wallet: dict[str, list[AssetBalance]] = {row.wallet_id: [] for row in found}
    if found:
        rows = tx.conn.execute(
            select(wallet_balances, assets.c.scale)
            .join(
                assets,
                (assets.c.tenant_id == wallet_balances.c.tenant_id)
                & (assets.c.code == wallet_balances.c.asset),
            )
            .where(
                wallet_balances.c.tenant_id == tx.tenant_id,
                wallet_balances.c.wallet_id.in_(list(by_wallet)),
            )
            .order_by(wallet_balances.c.wallet_id, wallet_balances.c.asset)
        )
        for row in rows:
            by_wallet[row.wallet_id].append(balance_result(row.asset, row.scale, row))
    return [
        CustomerBalances(
            customer=customer_result(row),
            balances=by_wallet[row.wallet_id],
        )
        for row in found
    ]


def totals(tx: Tx, *, start: datetime, end: datetime) -> list[AssetTotals]:
    """Per asset: what the tenant's wallets hold and owe now, and the usage, revenue and
    margin of the charges created in [start, end) (the margin report's sums)."""
    b = wallet_balances.c
    held = {
        row.asset: row
        for row in tx.conn.execute(
            select(
                b.asset,
                func.count().label("wallets"),
                func.coalesce(func.sum(b.posted + b.debt), 0).label("outstanding"),
                func.coalesce(func.sum(b.debt), 0).label("owed"),
                func.count().filter(b.posted - b.held < 0).label("below_zero"),
            )
            .where(b.tenant_id == tx.tenant_id)
            .group_by(b.asset)
        )
    }
    out = []
    for asset in tx.conn.execute(
        select(assets.c.code, assets.c.scale)
        .where(assets.c.tenant_id == tx.tenant_id)
        .order_by(assets.c.code)
    ):
        now = held.get(asset.code)
        period = margin.margin_by(tx, start=start, end=end, by="action", asset=asset.code).total
        out.append(
            AssetTotals(
                asset=asset.code,
                scale=asset.scale,
                wallets=int(now.wallets) if now else 0,
                outstanding=int(now.outstanding) if now else 0,
                owed=int(now.owed) if now else 0,
                below_zero=int(now.below_zero) if now else 0,
                used=period.amount,
                charges=period.charges,
                revenue=period.revenue,
                vendor_cost=period.vendor_cost,
                gross_margin=period.gross_margin,
                margin=period.margin,
                loss=period.loss,
            )
        )
    return out
