"""Reads that are not about the whole ledger go down an index, on PostgreSQL.

Each test runs the product's own call, keeps the statements it sent, and asks PostgreSQL
for their plans with sequential scans priced out (`enable_seqscan = off`): a plan that still
scans a table in full has no index to go down, and its cost grows with every tenant's
history, however small the test's tables are.

- a refund's read of what its charge drew (`services.ledger.refunds._drawn`), by the
  charge's ledger transaction (`ix_ledger_transactions_reference`);
- the posted balance before a billing cycle (`storage.collection.posted_before`), from the
  wallet's own transactions (`ix_ledger_transactions_wallet`);
- the webhook fan-out's undispatched events (`storage.webhooks.undispatched_events`), down
  an index of those rows alone, in id order (`ix_events_undispatched`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from creditgate.api import Creditgate, TenantLedger
from creditgate.storage import collection, webhooks
from tests.conftest import FakeClock

# Tables every tenant's every call writes to: a full scan of one grows with all of them.
WHOLE_LEDGER = {"ledger_transactions", "ledger_entries", "events", "charges", "lots"}
# Partial indexes of rows waiting for work, which leave them once it is done: read whole,
# one of these is the backlog, not the history.
BACKLOGS = {"ix_events_undispatched"}


@pytest.fixture
def db_url(postgres_url: str) -> str:
    """PostgreSQL only: the plans are its."""
    return postgres_url


@contextmanager
def sent(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and their parameters) sent through `engine` in the block."""
    seen: list[tuple[str, Any]] = []

    def note(_c: Any, _cur: Any, statement: str, parameters: Any, _x: Any, many: bool) -> None:
        if not many and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def plan_of(engine: Engine, statement: str, parameters: Any) -> dict[str, Any]:
    """The statement's plan when every index is on offer (sequential scans priced out)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        (plan,) = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).one()
        conn.rollback()
    found: dict[str, Any] = plan[0]["Plan"]
    return found


def read_whole(engine: Engine, plan: dict[str, Any]) -> set[str]:
    """The tables of `WHOLE_LEDGER` the plan reads in full: by a sequential scan, or down a
    whole index (an index scan with no condition) other than one of `BACKLOGS`."""
    with engine.connect() as conn:
        table_of = dict(conn.exec_driver_sql("SELECT indexname, tablename FROM pg_indexes").all())
    whole = set()
    for node in _nodes(plan):
        if node["Node Type"] == "Seq Scan":
            whole.add(node["Relation Name"])
        elif "Index Cond" not in node and node.get("Index Name") not in {None, *BACKLOGS}:
            whole.add(table_of[node["Index Name"]])
    return whole & WHOLE_LEDGER


def full_reads(engine: Engine, statements: list[tuple[str, Any]]) -> dict[str, set[str]]:
    """The statements that read a whole table of the ledger, and which."""
    found = {s: read_whole(engine, plan_of(engine, s, p)) for s, p in statements}
    return {" ".join(s.split())[:160]: tables for s, tables in found.items() if tables}


def test_a_refund_reads_its_charges_draws_without_scanning_the_ledger(
    cg: Creditgate, ledger: TenantLedger
) -> None:
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 5_000)
    charges = [ledger.charge("c1", "credits", 10 + n) for n in range(5)]
    with sent(cg.db.engine) as statements:
        refund = ledger.refund_charge(charges[2].id, reason="the answer was cut off")
    assert refund.amount == 12 and [line.amount for line in refund.lines] == [12]
    drawn = [s for s in statements if "ledger_transactions.reference_id" in s[0]]
    assert drawn, "the refund read what the charge drew from the ledger"
    assert full_reads(cg.db.engine, statements) == {}


def test_the_balance_before_a_cycle_is_read_from_the_wallets_own_transactions(
    cg: Creditgate, ledger: TenantLedger, clock: FakeClock
) -> None:
    for customer in ("c1", "c2"):
        ledger.create_customer(customer)
        ledger.grant(customer, "credits", 1_000)
        ledger.charge(customer, "credits", 300)
    cut = clock.now + timedelta(seconds=1)
    clock.advance(seconds=2)
    ledger.charge("c1", "credits", 200)
    wallet_id = ledger.wallet("c1").wallet_id
    with sent(cg.db.engine) as statements, cg.db.engine.connect() as conn:
        before = collection.posted_before(conn, wallet_id, "credits", cut)
        now = collection.posted_before(conn, wallet_id, "credits", clock.now + timedelta(1))
    assert (before, now) == (700, 500)
    assert full_reads(cg.db.engine, statements) == {}


def test_the_fan_out_reads_undispatched_events_without_scanning_every_event(
    cg: Creditgate, ledger: TenantLedger
) -> None:
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 1_000)
    with sent(cg.db.engine) as statements, cg.db.engine.connect() as conn:
        waiting = webhooks.undispatched_events(conn, 50)
        conn.rollback()
    assert waiting, "the grant's events wait for the fan-out"
    assert [row.id for row in waiting] == sorted(row.id for row in waiting)
    assert full_reads(cg.db.engine, statements) == {}
    (read,) = statements
    nodes = list(_nodes(plan_of(cg.db.engine, *read)))
    assert "ix_events_undispatched" in {node.get("Index Name") for node in nodes}
    assert "Sort" not in {node["Node Type"] for node in nodes}, "read in id order, not sorted"
