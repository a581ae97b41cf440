"""What the reports read: the verifier's sums over the ledger, lots, balances, holds and
purchases, and the charges of a period for the margin reports.

Each function takes a connection and plain values and returns rows or plain values; with
`tenant_id` None the verifier's reads cover every tenant.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, func, select

from creditgate.domain.holds import HoldStatus
from creditgate.domain.ledger import Account
from creditgate.storage.tables import (
    assets,
    auto_top_ups,
    budget_usage,
    budgets,
    charges,
    holds,
    ledger_entries,
    ledger_transactions,
    lots,
    purchase_refunds,
    purchases,
    spend_periods,
    wallet_balances,
)


def one_snapshot(conn: Connection) -> None:
    """Make every read of this transaction see the same committed state. Call it first.

    On PostgreSQL a read-committed transaction sees each statement's own snapshot, so a
    commit landing between two reads of a live ledger (a settle between the lots and the
    ledger sums) would look like a disagreement; repeatable read takes one snapshot at the
    first read. A SQLite read transaction already reads one snapshot in WAL mode.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")


def _scoped(query: Select[Any], table: Table, tenant_id: str | None) -> Select[Any]:
    return query if tenant_id is None else query.where(table.c.tenant_id == tenant_id)


# The verifier


def ledger_sums_per_asset(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    """Per tenant and asset: the sum of the ledger's entries (`total`) and their count (`n`)."""
    e = ledger_entries.c
    query = select(
        e.tenant_id, e.asset, func.sum(e.amount).label("total"), func.count().label("n")
    ).group_by(e.tenant_id, e.asset)
    return conn.execute(_scoped(query, ledger_entries, tenant_id)).all()


def unbalanced_transactions(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    """Transactions whose entries do not sum to zero (transaction_id, off_by)."""
    e = ledger_entries.c
    query = (
        select(e.transaction_id, func.sum(e.amount).label("off_by"))
        .group_by(e.transaction_id)
        .having(func.sum(e.amount) != 0)
    )
    return conn.execute(_scoped(query, ledger_entries, tenant_id)).all()


def transactions_without_entries(conn: Connection, tenant_id: str | None) -> int:
    query = (
        select(func.count())
        .select_from(ledger_transactions)
        .where(
            ~select(ledger_entries.c.seq)
            .where(ledger_entries.c.transaction_id == ledger_transactions.c.id)
            .exists()
        )
    )
    return int(conn.execute(_scoped(query, ledger_transactions, tenant_id)).scalar_one())


def _per_lot(conn: Connection, tenant_id: str | None, account: Account) -> dict[str, int]:
    e = ledger_entries.c
    query = (
        select(e.lot_id, func.sum(e.amount))
        .where(e.account == account.value, e.lot_id.is_not(None))
        .group_by(e.lot_id)
    )
    return {
        lot_id: int(total)
        for lot_id, total in conn.execute(_scoped(query, ledger_entries, tenant_id))
    }


def wallet_ledger_per_lot(conn: Connection, tenant_id: str | None) -> dict[str, int]:
    """The wallet account's entries summed per lot: what the ledger says each lot holds."""
    return _per_lot(conn, tenant_id, Account.WALLET)


def refunded_ledger_per_lot(conn: Connection, tenant_id: str | None) -> dict[str, int]:
    """The refunded account's entries summed per lot: the credit refunded from each lot."""
    return _per_lot(conn, tenant_id, Account.REFUNDED)


def all_lots(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    return conn.execute(_scoped(select(lots), lots, tenant_id)).all()


def wallet_ledger_per_balance(
    conn: Connection, tenant_id: str | None
) -> dict[tuple[str, str], int]:
    """The wallet account's entries summed per (wallet, asset)."""
    e = ledger_entries.c
    query = (
        select(e.wallet_id, e.asset, func.sum(e.amount).label("total"))
        .where(e.account == Account.WALLET.value)
        .group_by(e.wallet_id, e.asset)
    )
    rows = conn.execute(_scoped(query, ledger_entries, tenant_id))
    return {(r.wallet_id, r.asset): r.total for r in rows}


def open_holds_per_balance(conn: Connection, tenant_id: str | None) -> dict[tuple[str, str], int]:
    """The amount of pending holds per (wallet, asset)."""
    query = (
        select(holds.c.wallet_id, holds.c.asset, func.sum(holds.c.amount).label("total"))
        .where(holds.c.status == HoldStatus.PENDING.value)
        .group_by(holds.c.wallet_id, holds.c.asset)
    )
    rows = conn.execute(_scoped(query, holds, tenant_id))
    return {(r.wallet_id, r.asset): r.total for r in rows}


def budget_counts(conn: Connection, tenant_id: str | None) -> tuple[list[Any], list[Any]]:
    """What counts in budgets: the pending holds (`amount`) and the charges (`amount`,
    `refunded`) that recorded budgets, with their `budgets` column."""
    pending = select(holds.c.amount, holds.c.budgets).where(
        holds.c.status == HoldStatus.PENDING.value, holds.c.budgets.is_not(None)
    )
    spent = select(charges.c.amount, charges.c.refunded, charges.c.budgets).where(
        charges.c.budgets.is_not(None)
    )
    return (
        list(conn.execute(_scoped(pending, holds, tenant_id))),
        list(conn.execute(_scoped(spent, charges, tenant_id))),
    )


def all_budget_usage(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    return conn.execute(_scoped(select(budget_usage), budget_usage, tenant_id)).all()


def customer_budget_assets(conn: Connection, tenant_id: str | None) -> set[tuple[str, str]]:
    """The (wallet, asset) of every budget of a customer as a whole."""
    query = select(budgets.c.wallet_id, budgets.c.asset).where(budgets.c.member == "")
    return {(r.wallet_id, r.asset) for r in conn.execute(_scoped(query, budgets, tenant_id))}


def spend_period_rows(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    return conn.execute(_scoped(select(spend_periods), spend_periods, tenant_id)).all()


def held_and_spent_per_period(
    conn: Connection, tenant_id: str | None
) -> dict[tuple[str, datetime], tuple[int, int]]:
    """Per spend limit and period, from the holds: the pending holds' amounts, and the
    charges of the settled ones."""
    query = (
        select(
            holds.c.spend_limit_id,
            holds.c.spend_period,
            holds.c.status,
            func.sum(holds.c.amount).label("held"),
            func.sum(charges.c.amount).label("charged"),
        )
        .select_from(holds.outerjoin(charges, charges.c.id == holds.c.charge_id))
        .where(
            holds.c.spend_limit_id.is_not(None),
            holds.c.status.in_([HoldStatus.PENDING.value, HoldStatus.SETTLED.value]),
        )
        .group_by(holds.c.spend_limit_id, holds.c.spend_period, holds.c.status)
    )
    totals: dict[tuple[str, datetime], tuple[int, int]] = {}
    for row in conn.execute(_scoped(query, holds, tenant_id)):
        held, spent = totals.get((row.spend_limit_id, row.spend_period), (0, 0))
        if row.status == HoldStatus.PENDING.value:
            held += int(row.held or 0)
        else:
            spent += int(row.charged or 0)
        totals[(row.spend_limit_id, row.spend_period)] = (held, spent)
    return totals


def all_balances(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    return conn.execute(_scoped(select(wallet_balances), wallet_balances, tenant_id)).all()


def charges_per_hold(conn: Connection, tenant_id: str | None) -> dict[str, int]:
    query = (
        select(charges.c.hold_id, func.count())
        .where(charges.c.hold_id.is_not(None))
        .group_by(charges.c.hold_id)
    )
    return {hold_id: int(n) for hold_id, n in conn.execute(_scoped(query, charges, tenant_id))}


def hold_states(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    """Every hold's id, status, charge_id and resolved_at."""
    query = select(holds.c.id, holds.c.status, holds.c.charge_id, holds.c.resolved_at)
    return conn.execute(_scoped(query, holds, tenant_id)).all()


def asset_scales(conn: Connection, tenant_id: str | None) -> dict[tuple[str, str], int]:
    """Each asset's scale by (tenant, code)."""
    query = select(assets.c.tenant_id, assets.c.code, assets.c.scale)
    return {(r.tenant_id, r.code): r.scale for r in conn.execute(_scoped(query, assets, tenant_id))}


def refunds_not_failed(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    """Purchase refunds other than failed ones: purchase_id, amount, money."""
    r = purchase_refunds.c
    query = select(r.purchase_id, r.amount, r.money).where(r.status != "failed")
    return conn.execute(_scoped(query, purchase_refunds, tenant_id)).all()


def paid_purchases(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    query = select(purchases).where(purchases.c.status == "paid")
    return conn.execute(_scoped(query, purchases, tenant_id)).all()


def auto_top_up_settings(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    return conn.execute(_scoped(select(auto_top_ups), auto_top_ups, tenant_id)).all()


def balance_thresholds(conn: Connection, tenant_id: str | None) -> Sequence[Any]:
    """Every balance row's tenant_id, wallet_id, asset, posted, held and top_up_threshold."""
    b = wallet_balances.c
    query = select(b.tenant_id, b.wallet_id, b.asset, b.posted, b.held, b.top_up_threshold)
    return conn.execute(_scoped(query, wallet_balances, tenant_id)).all()


# The margin reports


def charges_in_period(
    conn: Connection, tenant_id: str, asset: str, start: datetime, end: datetime
) -> Iterator[Any]:
    """The tenant's charges of `asset` created in [start, end), streamed: customer, member,
    action, model, created_at, amount, revenue, vendor_cost, shortfall."""
    query = (
        select(
            charges.c.customer,
            charges.c.member,
            charges.c.action,
            charges.c.model,
            charges.c.created_at,
            charges.c.amount,
            charges.c.revenue,
            charges.c.vendor_cost,
            charges.c.shortfall,
        )
        .where(
            charges.c.tenant_id == tenant_id,
            charges.c.asset == asset,
            charges.c.created_at >= start,
            charges.c.created_at < end,
        )
        .execution_options(yield_per=2_000)
    )
    yield from conn.execute(query)
