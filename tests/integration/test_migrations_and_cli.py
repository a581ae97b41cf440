"""Migrations from an empty database, and the `creditgate` command line on both backends."""

from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text, update
from typer.testing import CliRunner

from creditgate.api import Creditgate
from creditgate.cli import app
from creditgate.server.demo import DEMO_TENANT_ID
from creditgate.storage.database import Database
from creditgate.storage.migrate import HEAD, at_head, current_revision, head_revision, upgrade
from creditgate.storage.tables import (
    ledger_entries,
    ledger_transactions,
    lots,
    metadata,
    wallet_balances,
)

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


# SQLite's reflection cannot read expression indexes back, so the comparison skips them there;
# the test then looks the burn-order index up by name.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_migrations_build_the_whole_schema_from_empty(empty_db: str) -> None:
    db = Database(empty_db)
    try:
        assert current_revision(db) is None
        assert inspect(db.engine).get_table_names() == []
        assert not at_head(db)
        upgrade(db)
        assert current_revision(db) == head_revision(db) == HEAD
        assert at_head(db)
        tables = set(inspect(db.engine).get_table_names())
        assert set(metadata.tables) | {"alembic_version"} == tables
        # The migrations produce exactly the schema the code is written against.
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            indexes = (
                "SELECT name FROM sqlite_master WHERE type = 'index'"
                if db.is_sqlite
                else "SELECT indexname FROM pg_indexes WHERE tablename = 'lots'"
            )
            assert "ix_lots_burn_order" in set(conn.execute(text(indexes)).scalars())
        upgrade(db)  # already at head: nothing to do, nothing breaks
        assert current_revision(db) == head_revision(db)
    finally:
        db.dispose()


def test_a_migrated_database_works_with_a_second_handle(empty_db: str) -> None:
    with Creditgate(empty_db) as cg:
        tenant = cg.create_tenant("Fresh AI")
        t = cg.tenant(tenant.id)
        t.create_asset("credits", 2)
        t.create_customer("c1")
        t.grant("c1", "credits", 1_000)
    # Another process on the same database does not migrate, and sees the same data.
    with Creditgate(empty_db, migrate=False) as again:
        balance = again.tenant(tenant.id).wallet("c1").balance("credits")
        assert (balance.posted, balance.available) == (1_000, 1_000)
        assert again.verify().ok


def test_cli_migrate_reports_the_revision_and_is_repeatable(empty_db: str) -> None:
    code, out = cli("migrate", "--db", empty_db)
    assert code == 0, out
    db = Database(empty_db)
    try:
        head = head_revision(db)
        assert head is not None and head in out
        assert current_revision(db) == head
    finally:
        db.dispose()
    code, out = cli("migrate", "--db", empty_db)
    assert code == 0 and head in out


def _demo_state(url: str) -> dict[str, object]:
    with Creditgate(url, migrate=False) as cg:
        t = cg.tenant(DEMO_TENANT_ID)
        wallets = {c.external_id: t.wallet(c.external_id) for c in t.customers()}
        with cg.db.engine.connect() as conn:
            counts = {
                table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (lots, ledger_transactions, ledger_entries)
            }
        return {"tenants": [x.id for x in cg.tenants()], "wallets": wallets, "counts": counts}


def test_cli_demo_seeds_once_and_verify_passes(empty_db: str) -> None:
    code, out = cli("demo", "--db", empty_db)
    assert code == 0, out
    assert "cust_alice" in out and "cust_bob" in out and "cust_carol" in out
    first = _demo_state(empty_db)
    assert first["tenants"] == [DEMO_TENANT_ID]
    wallets = first["wallets"]
    assert isinstance(wallets, dict) and set(wallets) == {"cust_alice", "cust_bob", "cust_carol"}
    bob = wallets["cust_bob"].balance("credits")
    # 20 credits bought, 22 spent on images: 2 credits of debt under the overdraft.
    assert (bob.posted, bob.debt, bob.policy) == (-200, 200, "overdraft")
    carol = wallets["cust_carol"].balance("credits")
    # A 30-credit trial, 0.5 + 1.2 credits of app changes, and a 10-credit hold open.
    assert (carol.posted, carol.held, carol.available) == (2_830, 1_000, 1_830)

    code, out = cli("demo", "--db", empty_db)
    assert code == 0, out
    assert _demo_state(empty_db) == first

    code, out = cli("verify", "--db", empty_db)
    assert code == 0, out
    assert "all invariants hold" in out
    code, out = cli("verify", "--db", empty_db, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert all(c["violations"] == [] for c in report["checks"])
    # The invariants are numbered 1..n in the order they are reported.
    numbers = [c["name"].split()[0] for c in report["checks"]]
    assert numbers == [str(n) for n in range(1, 13)]
    assert sum(c["checked"] for c in report["checks"]) > 0


@pytest.mark.parametrize("corruption", ["posted", "held", "entry"])
def test_cli_verify_exits_1_when_the_books_disagree(empty_db: str, corruption: str) -> None:
    assert cli("demo", "--db", empty_db)[0] == 0
    db = Database(empty_db)
    try:
        with db.engine.begin() as conn:
            if corruption == "entry":
                conn.execute(
                    text(
                        "UPDATE ledger_entries SET amount = amount + 1"
                        " WHERE transaction_id = (SELECT min(transaction_id) FROM ledger_entries)"
                        " AND seq = 0"
                    )
                )
            else:
                column = wallet_balances.c[corruption]
                changed = conn.execute(
                    update(wallet_balances)
                    .where(
                        wallet_balances.c.tenant_id == DEMO_TENANT_ID,
                        wallet_balances.c.asset == "credits",
                        wallet_balances.c.held == 0,
                    )
                    .values({column: column + 7})
                ).rowcount
                assert changed > 0
    finally:
        db.dispose()

    code, out = cli("verify", "--db", empty_db)
    assert code == 1, out
    assert "violations found" in out
    code, out = cli("verify", "--db", empty_db, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    broken = {c["name"][0] for c in report["checks"] if c["violations"]}
    expected = {"posted": {"3"}, "held": {"3"}, "entry": {"1"}}[corruption]
    assert expected <= broken, report


def test_cli_verify_one_tenant_only(empty_db: str) -> None:
    assert cli("demo", "--db", empty_db)[0] == 0
    with Creditgate(empty_db, migrate=False) as cg:
        other = cg.create_tenant("Other AI")
        t = cg.tenant(other.id)
        t.create_asset("credits", 2)
        t.create_customer("c1")
        t.grant("c1", "credits", 100)
        with cg.db.engine.begin() as conn:
            conn.execute(
                update(wallet_balances)
                .where(wallet_balances.c.tenant_id == other.id)
                .values(posted=wallet_balances.c.posted + 1)
            )
    assert cli("verify", "--db", empty_db, "--tenant", DEMO_TENANT_ID)[0] == 0
    assert cli("verify", "--db", empty_db, "--tenant", other.id)[0] == 1
    assert cli("verify", "--db", empty_db)[0] == 1


def test_cli_verify_names_how_far_a_transaction_is_out(empty_db: str) -> None:
    assert cli("demo", "--db", empty_db)[0] == 0
    db = Database(empty_db)
    try:
        with db.engine.begin() as conn:
            txn = conn.execute(select(func.min(ledger_entries.c.transaction_id))).scalar_one()
            conn.execute(
                update(ledger_entries)
                .where(ledger_entries.c.transaction_id == txn, ledger_entries.c.seq == 0)
                .values(amount=ledger_entries.c.amount + 1)
            )
    finally:
        db.dispose()
    code, out = cli("verify", "--db", empty_db, "--json")
    assert code == 1
    violations = [v for c in json.loads(out)["checks"] for v in c["violations"]]
    assert f"transaction {txn} is unbalanced by 1" in violations, violations
