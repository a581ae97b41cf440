"""Ledger postings (a transaction and its entries) and outbox events, now or with the commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.dialects import postgresql, sqlite

from creditgate.domain.ledger import Entry
from creditgate.storage.ids import new_id
from creditgate.storage.prepared import Prepared
from creditgate.storage.tables import events, ledger_entries, ledger_transactions
from creditgate.storage.unit_of_work import UnitOfWork

_HEADER_COLUMNS = (
    "tenant_id",
    "wallet_id",
    "id",
    "kind",
    "asset",
    "reference_id",
    "created_at",
    "member",
)
_POSTINGS: dict[tuple[int, str | None, tuple[str, ...]], Prepared] = {}


def _posting(entries: int, table: Table | None = None, columns: tuple[str, ...] = ()) -> Prepared:
    """A ledger transaction and its `entries` lines as one INSERT (the header in a CTE), and
    a row of `table` with `columns` in another CTE."""
    cache_key = (entries, None if table is None else table.name, columns)
    found = _POSTINGS.get(cache_key)
    if found is None:
        header = (
            insert(ledger_transactions)
            .values({column: bindparam(f"p_{column}") for column in _HEADER_COLUMNS})
            .cte("header")
        )
        rows = [
            {
                "tenant_id": bindparam("p_tenant_id"),
                "wallet_id": bindparam("p_wallet_id"),
                "transaction_id": bindparam("p_id"),
                "seq": n,
                "asset": bindparam("p_asset"),
                "account": bindparam(f"account_{n}"),
                "lot_id": bindparam(f"lot_{n}"),
                "amount": bindparam(f"amount_{n}"),
            }
            for n in range(entries)
        ]
        statement = insert(ledger_entries).values(rows).add_cte(header)
        if table is not None:
            extra = insert(table).values({c: bindparam(f"r_{c}") for c in columns}).cte("with_row")
            statement = statement.add_cte(extra)
        found = _POSTINGS.setdefault(cache_key, Prepared(statement))
    return found


_INSERT_TRANSACTION = Prepared(insert(ledger_transactions))
_INSERT_ENTRY = Prepared(insert(ledger_entries))
_INSERT_EVENT = Prepared(insert(events))


@dataclass(frozen=True, slots=True)
class Posting:
    """One ledger transaction of a wallet in one asset, with its (balanced) entries."""

    tenant_id: str
    wallet_id: str
    asset: str
    kind: str
    entries: Sequence[Entry]
    reference_id: str | None
    created_at: datetime
    member: str | None = None  # the member of the customer whose call it records


def write_posting(
    uow: UnitOfWork,
    posting: Posting,
    *,
    at_commit: bool = False,
    with_row: tuple[Table, dict[str, Any]] | None = None,
) -> str:
    """Write the posting (now, or with the commit); returns its transaction's id.

    With the commit, `with_row` (a table and a row: the charge the posting is for) is
    written by the same statement."""
    tx_id = new_id("txn")
    header = {
        "tenant_id": posting.tenant_id,
        "wallet_id": posting.wallet_id,
        "id": tx_id,
        "kind": posting.kind,
        "asset": posting.asset,
        "reference_id": posting.reference_id,
        "created_at": posting.created_at,
        "member": posting.member,
    }
    if at_commit:
        # One statement for the transaction and its entries: fewer statements to send.
        params: dict[str, Any] = {f"p_{k}": v for k, v in header.items()}
        for n, entry in enumerate(posting.entries):
            params[f"account_{n}"] = entry.account
            params[f"lot_{n}"] = entry.lot_id
            params[f"amount_{n}"] = entry.amount
        table = None
        if with_row is not None:
            table, row = with_row
            params.update({f"r_{k}": v for k, v in row.items()})
        columns = tuple(with_row[1]) if with_row else ()
        uow.defer(_posting(len(posting.entries), table, columns), params)
        return tx_id
    lines = [
        {
            "tenant_id": posting.tenant_id,
            "wallet_id": posting.wallet_id,
            "transaction_id": tx_id,
            "seq": seq,
            "asset": posting.asset,
            "account": entry.account,
            "lot_id": entry.lot_id,
            "amount": entry.amount,
        }
        for seq, entry in enumerate(posting.entries)
    ]
    _INSERT_TRANSACTION.submit(uow.conn, header)
    _INSERT_ENTRY.executemany(uow.conn, lines)
    return tx_id


@dataclass(frozen=True, slots=True)
class Event:
    """An event for the outbox, of a tenant (and a wallet, if it concerns one)."""

    tenant_id: str
    type: str
    wallet_id: str | None
    payload: dict[str, Any]
    created_at: datetime
    # Its id when the cause names it (one event per cause, see `write_events_once`).
    id: str | None = None


def _event_row(event: Event) -> dict[str, Any]:
    return {
        "tenant_id": event.tenant_id,
        "id": event.id or new_id("evt"),
        "type": str(event.type),
        "wallet_id": event.wallet_id,
        "payload": event.payload,
        "created_at": event.created_at,
    }


def write_event(uow: UnitOfWork, event: Event, *, at_commit: bool = False) -> str:
    """Write an event to the outbox (now, or with the commit); its id."""
    params = _event_row(event)
    if at_commit:
        uow.defer(_INSERT_EVENT, params)
    else:
        _INSERT_EVENT.execute(uow.conn, params)
    return str(params["id"])


def write_dispatched_event(uow: UnitOfWork, event: Event) -> str:
    """Write an event the fan-out must leave alone (sent to one endpoint by its caller)."""
    row = _event_row(event) | {"dispatched_at": event.created_at}
    uow.conn.execute(insert(events).values(**row))
    return str(row["id"])


def write_events_once(uow: UnitOfWork, batch: Sequence[Event]) -> int:
    """Write the events whose ids are not taken yet (another process may have written the
    same announcement since it was decided); how many were new."""
    if not batch:
        return 0
    insert_once = postgresql.insert if uow.conn.dialect.name == "postgresql" else sqlite.insert
    written = uow.conn.execute(
        insert_once(events)
        .values([_event_row(e) | {"dispatched_at": None} for e in batch])
        .on_conflict_do_nothing()
        .returning(events.c.id)
    ).all()
    return len(written)
