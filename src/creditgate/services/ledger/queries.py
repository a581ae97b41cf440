"""Reading a wallet: balances per asset, lots in burn order, and the ledger history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from creditgate.domain.errors import InvalidInput
from creditgate.domain.lots import LotBalance, LotStatus, burn_key
from creditgate.domain.pages import DEFAULT_PAGE, MAX_PAGE
from creditgate.services.catalog.catalog import check_external_id
from creditgate.services.context import Tx
from creditgate.services.ledger.grants import lot_result
from creditgate.services.results import LedgerEntry, LedgerPage, LedgerTransaction, Lot, Wallet
from creditgate.services.wallet import balance_result
from creditgate.storage.tables import (
    assets,
    ledger_entries,
    ledger_transactions,
    lots,
    wallet_balances,
)


def get_wallet(tx: Tx, *, customer: str) -> Wallet:
    wallet_id = tx.wallet_id(check_external_id(customer))
    rows = tx.conn.execute(
        select(wallet_balances, assets.c.scale)
        .join(
            assets,
            (assets.c.tenant_id == wallet_balances.c.tenant_id)
            & (assets.c.code == wallet_balances.c.asset),
        )
        .where(wallet_balances.c.wallet_id == wallet_id)
        .order_by(wallet_balances.c.asset)
    )
    return Wallet(
        customer=customer,
        wallet_id=wallet_id,
        balances=[balance_result(r.asset, r.scale, r) for r in rows],
    )


def list_lots(
    tx: Tx, *, customer: str, asset: str | None = None, include_closed: bool = False
) -> list[Lot]:
    """Lots in the order they will be used; closed (expired, voided, used up) ones last."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    query = select(lots).where(lots.c.wallet_id == wallet_id)
    if asset is not None:
        query = query.where(lots.c.asset == tx.asset(asset).code)
    if not include_closed:
        query = query.where(
            lots.c.status.in_([LotStatus.ACTIVE.value, LotStatus.SCHEDULED.value]),
            lots.c.remaining > 0,
        )
    rows = tx.conn.execute(query).all()

    def order(row: Any) -> tuple[Any, ...]:
        # Open lots in burn order, then scheduled ones by start, then closed ones.
        group = (
            0
            if row.status == LotStatus.ACTIVE and row.remaining > 0
            else 1
            if row.status == LotStatus.SCHEDULED
            else 2
        )
        lot = LotBalance(row.id, row.remaining, row.priority, row.expires_at, row.created_at)
        return (group, row.effective_at if group == 1 else tx.now, burn_key(lot, tx.now))

    return [lot_result(r, customer) for r in sorted(rows, key=order)]


def ledger_history(
    tx: Tx,
    *,
    customer: str,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
    asset: str | None = None,
) -> LedgerPage:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", field="limit")
    wallet_id = tx.wallet_id(check_external_id(customer))
    query = select(ledger_transactions).where(ledger_transactions.c.wallet_id == wallet_id)
    if asset is not None:
        query = query.where(ledger_transactions.c.asset == tx.asset(asset).code)
    if cursor is not None:
        if not isinstance(cursor, str) or not cursor.startswith("txn_"):
            raise InvalidInput("cursor must be a next_cursor from an earlier page", field="cursor")
        query = query.where(ledger_transactions.c.id < cursor)
    rows = tx.conn.execute(query.order_by(ledger_transactions.c.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    entries: dict[str, list[LedgerEntry]] = {r.id: [] for r in page}
    if page:
        for e in tx.conn.execute(
            select(ledger_entries)
            .where(ledger_entries.c.transaction_id.in_(list(entries)))
            .order_by(ledger_entries.c.transaction_id, ledger_entries.c.seq)
        ):
            entries[e.transaction_id].append(
                LedgerEntry(account=e.account, asset=e.asset, amount=e.amount, lot_id=e.lot_id)
            )
    data = [
        LedgerTransaction(
            id=r.id,
            kind=r.kind,
            asset=r.asset,
            reference_id=r.reference_id,
            created_at=r.created_at,
            entries=entries[r.id],
            wallet_change=sum(e.amount for e in entries[r.id] if e.account == "wallet"),
        )
        for r in page
    ]
    return LedgerPage(data=data, next_cursor=page[-1].id if len(rows) > limit else None)
