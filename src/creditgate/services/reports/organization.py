"""An organization at a glance, for the dashboard and the billing portal: each member with its
budgets' current periods and what its charges used lately."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from creditgate.domain.errors import InvalidInput
from creditgate.services.catalog import members
from creditgate.services.catalog.catalog import check_external_id
from creditgate.services.context import Tx
from creditgate.services.reports.portal import MAX_USAGE_DAYS
from creditgate.services.results import BudgetPeriod, Member, Result
from creditgate.storage.tables import charges

# The most members one overview shows (the first, by id): a page of the members list.
MAX_MEMBERS = 100


class MemberUse(Result):
    """What a member's charges used of one asset in the overview's days."""

    asset: str
    charges: int
    amount: int  # minor units of the asset


class MemberOverview(Result):
    member: Member
    budgets: list[BudgetPeriod]  # each budget's current period
    used: list[MemberUse]  # per asset, by code


class OrganizationOverview(Result):
    customer: str
    days: int
    members: list[MemberOverview]
    more: bool  # members past the first MAX_MEMBERS, not shown


def overview(
    tx: Tx, *, customer: str, member: str | None = None, days: int = 30
) -> OrganizationOverview:
    """The customer's members (or only `member`, for a portal session of that member): their
    budgets' current periods, and what their charges used in the last `days`."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_USAGE_DAYS:
        raise InvalidInput(f"days must be from 1 to {MAX_USAGE_DAYS}", field="days")
    wallet_id = tx.wallet_id(check_external_id(customer))
    if member is None:
        found = members.list_members(tx, customer=customer, limit=MAX_MEMBERS + 1).data
    else:
        found = [members.get_member(tx, customer=customer, member=member)]
    shown = found[:MAX_MEMBERS]
    names = [m.external_id for m in shown]
    used: dict[str, list[MemberUse]] = {name: [] for name in names}
    if names:
        query = (
            select(
                charges.c.member,
                charges.c.asset,
                func.count().label("charges"),
                func.sum(charges.c.amount).label("amount"),
            )
            .where(
                charges.c.wallet_id == wallet_id,
                charges.c.member.in_(names),
                charges.c.amount > 0,
                charges.c.created_at >= tx.now - timedelta(days=days),
            )
            .group_by(charges.c.member, charges.c.asset)
            .order_by(charges.c.member, charges.c.asset)
        )
        for row in tx.conn.execute(query):
            used[row.member].append(
                MemberUse(asset=row.asset, charges=row.charges, amount=int(row.amount))
            )
    periods = members.budget_periods_of(tx, wallet_id, names)
    return OrganizationOverview(
        customer=customer,
        days=days,
        members=[
            MemberOverview(member=m, budgets=periods[m.external_id], used=used[m.external_id])
            for m in shown
        ],
        more=len(found) > MAX_MEMBERS,
    )
