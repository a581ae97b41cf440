"""The short CI profile of `creditgate chaos`, on each backend: real server processes
killed with SIGKILL under load, connections cut (PostgreSQL), the clock moving both ways,
overspend races across processes (a member's budget too), hostile input, money collected on
a test-mode tenant, organizations' members calling under hard budgets; zero violations,
nothing lost or doubled, no budget passed."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from creditgate.chaos.runner import ChaosOptions, ChaosReport, run_chaos
from tests.databases import create_database, drop_database

SECONDS = float(os.environ.get("CREDITGATE_CHAOS_SECONDS", "20"))
# A failing run prints its seed; CREDITGATE_CHAOS_SEED=N reruns it.
SEED = int(os.environ["CREDITGATE_CHAOS_SEED"]) if os.environ.get("CREDITGATE_CHAOS_SEED") else None


@pytest.fixture(params=["sqlite", "postgres"])
def chaos_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    # A database of its own: the servers this starts sweep every tenant of theirs.
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chaos.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"creditgate_chaos_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name)
    try:
        yield url
    finally:
        drop_database(server, name)


def test_short_profile(chaos_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The servers' working folders (their logs), to see that a passing run removes them.
    folders: list[Path] = []
    make_folder = tempfile.mkdtemp

    def recorded(*args: Any, **kwargs: Any) -> str:
        folder = make_folder(*args, **kwargs)
        folders.append(Path(folder))
        return folder

    monkeypatch.setattr(tempfile, "mkdtemp", recorded)
    backend = "sqlite" if chaos_db.startswith("sqlite") else "postgres"
    options = ChaosOptions(
        backend=backend,
        seconds=SECONDS,
        seed=SEED,
        clients=8,
        crash_every=(2.0, 5.0),
        cut_every=(1.0, 3.0),
        race_balance=100,  # 10 approvals a race: the check, not a long queue
        hostile_share=0.2,
        # Each party's aimed crash (the collection's, the members') within the short run.
        aimed_crash_every=4.0,
        db=chaos_db,
    )
    report: ChaosReport = run_chaos(options, print)
    print(report.line())
    assert report.failures == [], report.line() + "\n" + "\n".join(report.failures[:30])
    assert report.ok, report.line()
    # A passing run keeps no logs: its servers' folder is gone.
    assert report.server_logs is None
    assert folders and not [folder for folder in folders if folder.exists()]
    # The run did what it claims: faults happened and were survived.
    assert report.operations_acknowledged > 300
    # The bank workload's own figures: its time, its rate, and every answer in its minutes.
    assert 0 < report.bank_seconds <= report.seconds
    answered = report.operations_acknowledged + sum(report.rejected_by_kind.values())
    assert sum(report.bank_operations_by_minute) == answered
    assert report.bank_operations_per_second == round(answered / report.bank_seconds, 1)
    assert report.crashes_survived >= 2
    assert report.indefinite_outcomes > 0
    assert report.races == report.races_exact == 8
    assert report.bad_inputs_tried > 50
    assert report.clock_jumps_back > 0
    if backend == "postgres":
        assert report.connections_cut > 0
    assert report.checked["lots"] > 0 and report.checked["holds"] > 0
    # The collection tenant: invoices paid (duplicates too) and failed, debt billed at period
    # ends and paid, the test clock moved; a crash aimed at the server in the middle of one.
    done = report.collection
    assert done["advance"] > 0 and done["invoice_paid"] > 0 and done["charge"] > 0
    assert report.checked["collect_invoices"] > 0 and report.checked["collect_overage_bills"] > 0
    assert report.checked["collect_included_granted"] > 0
    # The first aimed crash freezes its server first (Crasher): its operation is surely cut,
    # whether its retry is then acknowledged or refused.
    assert done["aimed_crashes"] > 0
    assert sum(n for kind, n in done.items() if kind.endswith("_indefinite")) > 0, done
    # The organizations: members' calls held, settled and charged under their hard budgets
    # (some declined for them), a crash aimed at one; every budget period checked against the
    # history, the usage routes and the ledger.
    members = report.members
    assert members["authorize_member"] > 0 and members["charge_member"] > 0
    assert members["settle"] > 0 and members["declined_budget_exceeded"] > 0
    assert members["aimed_crashes"] > 0
    assert sum(n for kind, n in members.items() if kind.endswith("_indefinite")) > 0, members
    assert report.checked["budget_periods"] >= members["budgets"] == 7
    assert report.checked["budget_usage_read"] > 0 and report.checked["budget_rows"] > 0
    assert report.checked["budget_ledger_periods"] > 0
