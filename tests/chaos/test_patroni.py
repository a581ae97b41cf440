"""The short profile of `creditgate chaos --cluster patroni`: the bank workload through two
server processes on a 3-node Patroni cluster (synchronous replication, a 3-member etcd)
whose primary's PostgreSQL is SIGKILLed and which is then switched over; nothing
acknowledged is lost or doubled, no invariant breaks, no request ends as a 500.

The cluster runs on Debian's `patroni` and `etcd-server`, which `scripts/test` installs when
they are missing; under CI=true their absence fails the run rather than skipping it.
"""

from __future__ import annotations

import os

import pytest

from creditgate.chaos import patroni
from creditgate.chaos.history import OK, REJECTED, UNRESOLVED, History, Op
from creditgate.chaos.patroni import Failover
from creditgate.chaos.runner import ChaosOptions, ChaosReport, _unavailability, run_chaos

SECONDS = float(os.environ.get("CREDITGATE_PATRONI_SECONDS", "30"))
SEED = int(os.environ["CREDITGATE_CHAOS_SEED"]) if os.environ.get("CREDITGATE_CHAOS_SEED") else None


@pytest.fixture
def installed() -> None:
    lacking = patroni.missing()
    if not lacking:
        return
    message = f"{', '.join(lacking)} missing (apt-get install {patroni.PACKAGES})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"a Patroni cluster is required under CI=true: {message}")
    pytest.skip(message)


@pytest.mark.patroni
@pytest.mark.usefixtures("installed")
def test_a_primary_killed_and_a_switchover_lose_nothing_acknowledged() -> None:
    options = ChaosOptions(
        cluster="patroni",
        backend="postgres",
        seconds=SECONDS,
        seed=SEED,
        clients=8,
        crash_every=(8.0, 12.0),
        race_balance=100,  # 10 approvals a race: the check, not a long queue
        hostile_share=0.1,
        failover_every=(2.0, 3.0),
        failover_kinds=("primary_killed", "switchover"),
        min_failovers=2,  # the workload runs on until both have settled, however slow
    )
    report: ChaosReport = run_chaos(options, print)
    print(report.line())
    assert report.failures == [], report.line() + "\n" + "\n".join(report.failures[:30])
    assert report.ok, report.line()
    assert report.lost_effects == report.duplicated_effects == report.invariant_violations == 0
    # Both faults happened, each with a new primary, and the service came back after each.
    assert report.failovers_by_kind.get("primary_killed", 0) >= 1, report.failovers_by_kind
    assert report.failovers_by_kind.get("switchover", 0) >= 1, report.failovers_by_kind
    assert len(report.unavailable_seconds) == report.failovers
    assert 0 < report.unavailable_max_seconds < 30, report.unavailable_seconds
    # Requests that met a failover ended as 503 (or a cut connection), and were retried.
    assert report.server_errors == 0
    assert report.indefinite_outcomes > 0
    assert report.operations_acknowledged > 300
    assert report.races == report.races_exact == 8  # the members' two races too
    assert report.checked["lots"] > 0 and report.checked["holds"] > 0


def _answered(history: History, at: float, outcome: str = OK) -> None:
    op = Op("charge", f"k{at}", "w0", "/v1/charges", {})
    op.outcome = outcome
    history.ops.append(op)
    op.finished_at = at


def test_unavailability_is_the_longest_silence_from_the_fault_until_it_settled() -> None:
    history = History()
    # Answers every 0.1 s, but none from 10.3 to 12.8 (the first failover) nor from 30.0 to
    # 31.0 (the second); a 4xx is an answer too; an unresolved operation is not.
    for n in range(0, 500):
        at = n / 10
        if not (10.3 < at < 12.8 or 30.0 < at < 31.0):
            _answered(history, at, REJECTED if n % 7 == 0 else OK)
    _answered(history, 11.0, UNRESOLVED)
    failovers = [
        Failover("primary_killed", "pg0", "pg1", started_at=10.0, settled_at=20.0),
        Failover("switchover", "pg1", "pg0", started_at=29.95, settled_at=33.0),
        # Late: the clients stopped at 45 s, its window ends there.
        Failover("switchover", "pg0", "pg1", started_at=44.0, settled_at=52.0),
    ]
    report = ChaosReport("patroni", seed=1, seconds=60)
    _unavailability(failovers, history, 45.0, report)
    assert report.unavailable_seconds == [2.5, 1.0, 0.1]
    assert report.failovers == 3
    assert report.failovers_by_kind == {"primary_killed": 1, "switchover": 2}
    assert report.unavailable_p50_seconds == 1.0 and report.unavailable_max_seconds == 2.5
    assert report.failover_log[0] == "primary_killed pg0->pg1: unavailable 2.50s, settled in 10.0s"
