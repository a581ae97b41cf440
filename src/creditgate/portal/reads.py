"""The portal's and dashboard's calls into the services, each one transaction of one tenant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from creditgate.api import Creditgate
from creditgate.services.reports import dashboard, organization, portal
from creditgate.services.reports.dashboard import AssetTotals, CustomerBalances
from creditgate.services.reports.organization import OrganizationOverview
from creditgate.services.reports.portal import (
    Branding,
    DailyUsage,
    LedgerReference,
    MarginPoint,
)

T = TypeVar("T")


def _run(
    cg: Creditgate, tenant_id: str, fn: Callable[..., T], *, read_only: bool, **kwargs: Any
) -> T:
    return cg.db.run(lambda conn: fn(cg.tx(conn, tenant_id), **kwargs), read_only=read_only)


def branding(cg: Creditgate, tenant_id: str) -> Branding:
    return _run(cg, tenant_id, portal.get_branding, read_only=True)


def save_branding(cg: Creditgate, tenant_id: str, **fields: Any) -> Branding:
    return _run(cg, tenant_id, portal.set_branding, read_only=False, **fields)


def usage_by_day(cg: Creditgate, tenant_id: str, **kwargs: Any) -> list[DailyUsage]:
    return _run(cg, tenant_id, portal.usage_by_day, read_only=True, **kwargs)


def ledger_references(cg: Creditgate, tenant_id: str, **kwargs: Any) -> dict[str, LedgerReference]:
    return _run(cg, tenant_id, portal.ledger_references, read_only=True, **kwargs)


def margin_over_time(cg: Creditgate, tenant_id: str, **kwargs: Any) -> list[MarginPoint]:
    return _run(cg, tenant_id, portal.margin_over_time, read_only=True, **kwargs)


def dashboard_session_open(cg: Creditgate, tenant_id: str, **kwargs: Any) -> bool:
    return _run(cg, tenant_id, portal.dashboard_session_open, read_only=True, **kwargs)


def end_dashboard_session(cg: Creditgate, tenant_id: str, **kwargs: Any) -> None:
    _run(cg, tenant_id, portal.end_dashboard_session, read_only=False, **kwargs)


def customer_balances(cg: Creditgate, tenant_id: str, **kwargs: Any) -> list[CustomerBalances]:
    return _run(cg, tenant_id, dashboard.customer_balances, read_only=True, **kwargs)


def dashboard_totals(cg: Creditgate, tenant_id: str, **kwargs: Any) -> list[AssetTotals]:
    return _run(cg, tenant_id, dashboard.totals, read_only=True, **kwargs)


def organization_overview(cg: Creditgate, tenant_id: str, **kwargs: Any) -> OrganizationOverview:
    return _run(cg, tenant_id, organization.overview, read_only=True, **kwargs)
