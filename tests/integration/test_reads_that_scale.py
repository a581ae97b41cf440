"""Reads that are not about the whole ledger go down an index, on PostgreSQL.

Each test runs the product's own call, keeps the statements it sent, and asks PostgreSQL
for their plans with sequential scans priced out (`enable_seqscan = off`): a plan that still
scans a table in full has no index to go down, and its cost grows with every tenant's
history, however small the test's tables are. Where an index is there but could still be
walked over a wallet's whole history, the rows the read visits are counted (`EXPLAIN
ANALYZE`) against a history of `HISTORY` transactions.

- a refund's read of what its charge drew (`services.ledger.refunds._drawn`): the wallet's
  transactions at the charge's time (`ix_ledger_transactions_wallet_time`);
- the posted balance before a billing cycle (`storage.collection.posted_before`): the
  balance less the wallet's transactions since (`ix_ledger_transactions_wallet_time`);
- the webhook fan-out's undispatched events (`storage.webhooks.undispatched_events`), down
  an index of those rows alone, in id order (`ix_events_undispatched`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update

from creditgate.api import Creditgate, TenantLedger
from creditgate.storage import collection, webhooks
from creditgate.storage.tables import ledger_transactions
from tests.conftest import FakeClock

# Tables every tenant's every call writes to: a full scan of one grows with all of them.
WHOLE_LEDGER = {"ledger_transactions", "ledger_entries", "events", "charges", "lots"}
# Partial indexes of rows waiting for work, which leave them once it is done: read whole,
# one of these is the backlog, not the history.
BACKLOGS = {"ix_events_undispatched"}
HISTORY = 100  # grants, each voided: a wallet's transactions before those a test reads


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


def plan_of(
    engine: Engine, statement: str, parameters: Any, *, run_on: str | None = None
) -> dict[str, Any]:
    """The statement's plan when every index is on offer (sequential scans priced out);
    with `run_on`, a table analyzed first (the planner's figures, as in service), the plan
    as run (`EXPLAIN ANALYZE`)."""
    explain = "EXPLAIN (ANALYZE, FORMAT JSON) " if run_on else "EXPLAIN (FORMAT JSON) "
    with engine.connect() as conn:
        if run_on:
            conn.exec_driver_sql(f"ANALYZE {run_on}")
        conn.exec_driver_sql("SET enable_seqscan = off")
        (plan,) = conn.exec_driver_sql(explain + statement, parameters).one()
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


def rows_visited(engine: Engine, statement: str, parameters: Any, table: str) -> int:
    """How many rows of `table` the statement visits, run with every index on offer: rows a
    scan returned plus those its filters removed, over its loops."""
    return sum(
        (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        for node in _nodes(plan_of(engine, statement, parameters, run_on=table))
        if node.get("Relation Name") == table
    )


def full_reads(engine: Engine, statements: list[tuple[str, Any]]) -> dict[str, set[str]]:
    """The statements that read a whole table of the ledger, and which."""
    found = {s: read_whole(engine, plan_of(engine, s, p)) for s, p in statements}
    return {" ".join(s.split())[:160]: tables for s, tables in found.items() if tables}


def test_a_refund_reads_its_charges_draws_without_scanning_the_ledger(
    cg: Creditgate, ledger: TenantLedger, clock: FakeClock
) -> None:
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 5_000)
    for _ in range(HISTORY):
        ledger.void_lot(ledger.grant("c1", "credits", 10).id)
    charges = []
    for n in range(5):
        clock.advance(seconds=1)
        charges.append(ledger.charge("c1", "credits", 10 + n))
    with sent(cg.db.engine) as statements:
        refund = ledger.refund_charge(charges[2].id, reason="the answer was cut off")
    assert refund.amount == 12 and [line.amount for line in refund.lines] == [12]
    drawn = [s for s in statements if "ledger_transactions.reference_id" in s[0]]
    assert len(drawn) == 1, "the charge's draws, read once"
    assert full_reads(cg.db.engine, statements) == {}
    assert rows_visited(cg.db.engine, *drawn[0], "ledger_transactions") == 1


def test_a_refund_finds_its_charges_draws_whatever_the_transactions_time(
    cg: Creditgate, ledger: TenantLedger
) -> None:
    """The draws are read again from every transaction of the wallet that names the charge
    when those at the charge's time do not add up to what it took from lots."""
    ledger.create_customer("c1")
    first = ledger.grant("c1", "credits", 100)
    second = ledger.grant("c1", "credits", 500, priority=5)
    charge = ledger.charge("c1", "credits", 300)
    its_own = ledger_transactions.c.reference_id == charge.id
    with cg.db.engine.begin() as conn:
        at = conn.execute(select(ledger_transactions.c.created_at).where(its_own)).scalar_one()
        moved = at - timedelta(microseconds=1)
        conn.execute(update(ledger_transactions).where(its_own).values(created_at=moved))
    refund = ledger.refund_charge(charge.id, reason="the answer was wrong")
    assert [(line.lot_id, line.amount) for line in refund.lines] == [
        (second.id, 200),
        (first.id, 100),
    ]


def test_the_balance_before_a_cycle_is_read_from_the_wallets_transactions_since(
    cg: Creditgate, ledger: TenantLedger, clock: FakeClock
) -> None:
    cuts = [clock.now - timedelta(seconds=1)]  # before anything: nothing was posted
    for customer in ("c1", "c2"):
        ledger.create_customer(customer)
    ledger.grant("c1", "credits", 1_000)
    for _ in range(HISTORY):
        ledger.void_lot(ledger.grant("c1", "credits", 10).id)
    clock.advance(seconds=2)
    cuts.append(clock.now)  # at a transaction: it is not before
    ledger.charge("c1", "credits", 300)
    ledger.grant("c2", "credits", 5_000)
    ledger.charge("c2", "credits", 4_000)
    clock.advance(seconds=2)
    cuts.append(clock.now - timedelta(seconds=1))
    ledger.set_policy("c1", "credits", "overdraft", overdraft_limit=500)
    ledger.charge("c1", "credits", 900)  # 200 into debt
    clock.advance(days=30)  # a cycle later: past the times of every other test's rows
    cuts.append(clock.now)
    wallet_id = ledger.wallet("c1").wallet_id
    unused = ledger.wallet("c2").wallet_id
    with sent(cg.db.engine) as statements, cg.db.engine.connect() as conn:
        before = [collection.posted_before(conn, wallet_id, "credits", cut) for cut in cuts]
        other_asset = collection.posted_before(conn, unused, "usd", cuts[-1])
    assert before == [0, 1_000, 700, -200]
    assert other_asset == 0
    assert full_reads(cg.db.engine, statements) == {}
    # The last cut is after every transaction of the wallet: none is read, however long
    # its history (HISTORY grants and voids, two charges before it).
    last = statements[len(cuts) - 1]
    assert rows_visited(cg.db.engine, *last, "ledger_transactions") == 0


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
    used = {node.get("Index Name") for node in _nodes(plan_of(cg.db.engine, *read))}
    assert "ix_events_undispatched" in used
    with cg.db.engine.connect() as conn:
        rows_alone = conn.exec_driver_sql(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index"
            " WHERE indexrelid = 'ix_events_undispatched'::regclass"
        ).scalar_one()
    assert rows_alone == "(dispatched_at IS NULL)", "an index of the undispatched rows alone"
