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
from creditgate.chaos.runner import ChaosOptions, ChaosReport, run_chaos

SECONDS = float(os.environ.get("CREDITGATE_PATRONI_SECONDS", "70"))
SEED = int(os.environ["CREDITGATE_CHAOS_SEED"]) if os.environ.get("CREDITGATE_CHAOS_SEED") else None

pytestmark = pytest.mark.patroni


@pytest.fixture(autouse=True)
def _installed() -> None:
    lacking = patroni.missing()
    if not lacking:
        return
    message = f"{', '.join(lacking)} missing (apt-get install {patroni.PACKAGES})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"a Patroni cluster is required under CI=true: {message}")
    pytest.skip(message)


def test_a_primary_killed_and_a_switchover_lose_nothing_acknowledged() -> None:
    options = ChaosOptions(
        cluster="patroni",
        backend="postgres",
        seconds=SECONDS,
        seed=SEED,
        clients=8,
        crash_every=(8.0, 12.0),
        race_balance=200,
        hostile_share=0.1,
        failover_every=(3.0, 5.0),
        failover_kinds=("primary_killed", "switchover"),
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
    assert report.races == report.races_exact == 6
    assert report.checked["lots"] > 0 and report.checked["holds"] > 0
