"""Steps shared by the use cases that move credit: balance rows, lots, postings, events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from creditgate.domain.amounts import MAX_BALANCE
from creditgate.domain.errors import AmountOverflow
from creditgate.domain.ledger import Entry, is_balanced
from creditgate.domain.lots import LotBalance, LotStatus
from creditgate.domain.policy import PolicyMode, WalletPolicy
from creditgate.ids import new_id
from creditgate.services.context import Tx
from creditgate.services.results import AssetBalance
from creditgate.storage.tables import (
    customers,
    events,
    ledger_entries,
    ledger_transactions,
    lots,
    wallet_balances,
)


@dataclass(frozen=True, slots=True)
class BalanceRow:
    wallet_id: str
    asset: str
    posted: int
    held: int
    debt: int
    policy: WalletPolicy
    low_balance_alerted: bool

    @property
    def available(self) -> int:
        return self.posted - self.held


def _policy_of(row: Any) -> WalletPolicy:
    mode = PolicyMode(row.policy)
    return WalletPolicy(mode, row.overdraft_limit, row.low_balance_threshold)


def ensure_balance_row(tx: Tx, wallet_id: str, asset: str) -> None:
    """Create the wallet's row for this asset (with the wallet's default policy) if missing."""
    default = tx.conn.execute(
        select(customers.c.policy, customers.c.overdraft_limit).where(
            customers.c.wallet_id == wallet_id
        )
    ).one()
    ins = postgresql.insert if tx.conn.dialect.name == "postgresql" else sqlite.insert
    tx.conn.execute(
        ins(wallet_balances)
        .values(
            tenant_id=tx.tenant_id,
            wallet_id=wallet_id,
            asset=asset,
            posted=0,
            held=0,
            debt=0,
            policy=default.policy,
            overdraft_limit=default.overdraft_limit,
            low_balance_threshold=None,
            low_balance_alerted=0,
            updated_at=tx.now,
        )
        .on_conflict_do_nothing()
    )


_LOCK_BALANCE = (
    select(
        wallet_balances.c.posted,
        wallet_balances.c.held,
        wallet_balances.c.debt,
        wallet_balances.c.policy,
        wallet_balances.c.overdraft_limit,
        wallet_balances.c.low_balance_threshold,
        wallet_balances.c.low_balance_alerted,
    )
    .where(
        wallet_balances.c.wallet_id == bindparam("wallet_id"),
        wallet_balances.c.asset == bindparam("asset"),
    )
    .with_for_update()
)


def lock_balance(tx: Tx, wallet_id: str, asset: str, *, create: bool = True) -> BalanceRow:
    """Lock the wallet's balance row for this asset; every credit movement takes it first."""
    params = {"wallet_id": wallet_id, "asset": asset}
    row = tx.conn.execute(_LOCK_BALANCE, params).first()
    if row is None:
        if not create:
            raise LookupError(asset)
        ensure_balance_row(tx, wallet_id, asset)
        row = tx.conn.execute(_LOCK_BALANCE, params).one()
    return BalanceRow(
        wallet_id,
        asset,
        row.posted,
        row.held,
        row.debt,
        _policy_of(row),
        bool(row.low_balance_alerted),
    )


def write_balance(tx: Tx, before: BalanceRow, *, posted: int, held: int, debt: int) -> None:
    """Store new totals for a locked row, raising `balance.low` once per downward crossing."""
    if not -MAX_BALANCE <= posted <= MAX_BALANCE or not 0 <= held <= 2 * MAX_BALANCE:
        raise AmountOverflow(
            f"this would take the {before.asset} balance past the largest supported value",
            field="amount",
        )
    available = posted - held
    policy = before.policy
    alerted = before.low_balance_alerted
    if policy.is_low(available) and not alerted:
        alerted = True
        emit(
            tx,
            "balance.low",
            before.wallet_id,
            {
                "asset": before.asset,
                "available": available,
                "threshold": policy.low_balance_threshold,
            },
        )
    elif not policy.is_low(available):
        alerted = False
    if available <= 0 < before.available:
        emit(
            tx,
            "balance.depleted",
            before.wallet_id,
            {"asset": before.asset, "available": available},
        )
    tx.conn.execute(
        _WRITE_BALANCE,
        {
            "w": before.wallet_id,
            "a": before.asset,
            "posted": posted,
            "held": held,
            "debt": debt,
            "alerted": int(alerted),
            "now": tx.now,
        },
    )


_WRITE_BALANCE = (
    update(wallet_balances)
    .where(
        wallet_balances.c.wallet_id == bindparam("w"),
        wallet_balances.c.asset == bindparam("a"),
    )
    .values(
        posted=bindparam("posted"),
        held=bindparam("held"),
        debt=bindparam("debt"),
        low_balance_alerted=bindparam("alerted"),
        updated_at=bindparam("now"),
    )
)


def open_lots(tx: Tx, wallet_id: str, asset: str) -> list[LotBalance]:
    rows = tx.conn.execute(
        _OPEN_LOTS, {"wallet_id": wallet_id, "asset": asset, "status": LotStatus.ACTIVE.value}
    )
    return [
        LotBalance(r.id, r.remaining, r.priority, r.expires_at, r.created_at, r.cost_basis)
        for r in rows
    ]


_OPEN_LOTS = select(
    lots.c.id,
    lots.c.remaining,
    lots.c.priority,
    lots.c.expires_at,
    lots.c.created_at,
    lots.c.cost_basis,
).where(
    lots.c.wallet_id == bindparam("wallet_id"),
    lots.c.asset == bindparam("asset"),
    lots.c.status == bindparam("status"),
    lots.c.remaining > 0,
)

_CONSUME_LOT = (
    update(lots)
    .where(lots.c.id == bindparam("lot_id"))
    .values(
        remaining=lots.c.remaining - bindparam("take"),
        consumed=lots.c.consumed + bindparam("take"),
    )
)


def consume_lots(tx: Tx, draws: Sequence[tuple[str, int]]) -> None:
    if draws:
        tx.conn.execute(_CONSUME_LOT, [{"lot_id": lot_id, "take": take} for lot_id, take in draws])


def post(
    tx: Tx,
    *,
    wallet_id: str,
    asset: str,
    kind: str,
    entries: Sequence[Entry],
    reference_id: str | None,
) -> str:
    """Write one balanced ledger transaction."""
    if not is_balanced(entries):
        raise AssertionError(f"unbalanced ledger transaction: {entries}")
    tx_id = new_id("txn")
    tx.conn.execute(
        insert(ledger_transactions).values(
            tenant_id=tx.tenant_id,
            wallet_id=wallet_id,
            id=tx_id,
            kind=kind,
            asset=asset,
            reference_id=reference_id,
            created_at=tx.now,
        )
    )
    tx.conn.execute(
        insert(ledger_entries),
        [
            {
                "tenant_id": tx.tenant_id,
                "wallet_id": wallet_id,
                "transaction_id": tx_id,
                "seq": seq,
                "asset": asset,
                "account": entry.account,
                "lot_id": entry.lot_id,
                "amount": entry.amount,
            }
            for seq, entry in enumerate(entries)
        ],
    )
    return tx_id


def emit(tx: Tx, event_type: str, wallet_id: str | None, payload: dict[str, Any]) -> None:
    """Write an event to the outbox in the same transaction as its cause."""
    tx.conn.execute(
        insert(events).values(
            tenant_id=tx.tenant_id,
            id=new_id("evt"),
            type=event_type,
            wallet_id=wallet_id,
            payload=payload,
            created_at=tx.now,
        )
    )


def balance_result(asset: str, scale: int, row: Any) -> AssetBalance:
    return AssetBalance(
        asset=asset,
        scale=scale,
        posted=row.posted,
        held=row.held,
        available=row.posted - row.held,
        debt=row.debt,
        policy=row.policy,
        overdraft_limit=row.overdraft_limit,
        low_balance_threshold=row.low_balance_threshold,
    )
