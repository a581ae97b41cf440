"""Members of one organization racing from several processes: each member's hard budget and
the organization's balance hold exactly, on SQLite (processes sharing the file) and on
PostgreSQL. The `ledger` fixture verifies the books, the budgets included, afterwards."""

from __future__ import annotations

import queue
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from creditgate.api import Creditgate, TenantLedger
from tests.conftest import FakeClock
from tests.integration.test_concurrency import assert_verified, no_errors, race
from tests.processes import worker_context

PROCESSES = 8
THREADS = 2
PER_THREAD = 8
AMOUNT = 30
MEMBERS = ["m0", "m1", "m2", "m3"]
# The organization with credit to spare: each member gets exactly what its budget allows
# (10, 7, 8 and 5 holds of 30; 900 in all, under the balance of 10,000).
BUDGETS = {"m0": 300, "m1": 210, "m2": 240, "m3": 150}
# The organization short of credit: budgets of 300 each would allow 40 charges of 30, the
# balance of 600 allows 20.
TIGHT_BALANCE = 600


def _worker(url: str, tenant_id: str, now: datetime, index: int, start: Any, out: Any) -> None:
    try:
        cg = Creditgate(url, migrate=False, clock=FakeClock(now), pool_size=THREADS)
        ledger = cg.tenant(tenant_id)
        no_errors(race(THREADS, lambda _: cg.db.run(lambda c: c.exec_driver_sql("SELECT 1"))))

        def calls(thread: int) -> list[tuple[str, str, bool]]:
            done = []
            for n in range(PER_THREAD):
                member = MEMBERS[(index + thread + n) % len(MEMBERS)]
                auth = ledger.authorize(
                    "ample", "credits", AMOUNT, member=member, idempotency_key=uuid.uuid4().hex
                )
                done.append(("ample", member, auth.approved))
                charge = ledger.charge(
                    "tight", "credits", AMOUNT, member=member, idempotency_key=uuid.uuid4().hex
                )
                done.append(("tight", member, charge.status == "posted"))
            return done

        start.wait(timeout=120)
        out.put(("ok", no_errors(race(THREADS, calls))))
        cg.close()
    except BaseException as exc:  # reported to the test, which fails on it
        out.put(("error", repr(exc)))


def _organization(ledger: TenantLedger, name: str, credit: int, budgets: dict[str, int]) -> None:
    ledger.create_customer(name)
    ledger.grant(name, "credits", credit, kind="purchased", cost_basis="0.01")
    for member, amount in budgets.items():
        ledger.create_member(name, member)
        ledger.set_budget(name, "credits", amount, period="day", member=member)


def test_eight_processes_keep_each_member_budget_and_the_balance_exact(
    ledger: TenantLedger, db_url: str, clock: FakeClock
) -> None:
    _organization(ledger, "ample", 10_000, BUDGETS)
    _organization(ledger, "tight", TIGHT_BALANCE, dict.fromkeys(MEMBERS, 300))
    ctx = worker_context()
    start = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(db_url, ledger.tenant_id, clock.now, i, start, out))
        for i in range(PROCESSES)
    ]
    for w in workers:
        w.start()
    try:
        answers = [out.get(timeout=240) for _ in workers]
    except queue.Empty:
        pytest.fail("a worker process did not answer")
    finally:
        for w in workers:
            w.join(timeout=30)
    assert all(a[0] == "ok" for a in answers), answers
    calls = [call for _, done in answers for call in done]
    tries = Counter((org, member) for org, member, _ in calls)
    approved = Counter((org, member) for org, member, ok in calls if ok)

    for member, budget in BUDGETS.items():
        assert tries[("ample", member)] > budget // AMOUNT  # every member asked for more
        assert approved[("ample", member)] == budget // AMOUNT
        spent, held = _usage(ledger, "ample", member)
        assert (spent, held) == (0, approved[("ample", member)] * AMOUNT)
    ample = ledger.wallet("ample").balance("credits")
    assert (ample.posted, ample.held) == (10_000, 900)

    charged = sum(approved[("tight", m)] for m in MEMBERS)
    assert charged == TIGHT_BALANCE // AMOUNT
    for member in MEMBERS:
        assert approved[("tight", member)] <= 300 // AMOUNT
        assert _usage(ledger, "tight", member) == (approved[("tight", member)] * AMOUNT, 0)
    tight = ledger.wallet("tight").balance("credits")
    assert (tight.posted, tight.held, tight.debt) == (0, 0, 0)
    assert_verified(ledger)


def _usage(ledger: TenantLedger, customer: str, member: str) -> tuple[int, int]:
    period = ledger.usage(customer, member=member).data[0]
    return period.spent, period.held
