"""The gate under concurrency: many threads (and, on PostgreSQL, processes) on one wallet.

Correctness must come from the database, so every test here races real transactions and
then checks exact counts and the verifier (the `ledger` fixture verifies on teardown too).
"""

from __future__ import annotations

import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import pytest

from creditgate.api import Creditgate, TenantLedger
from creditgate.domain.errors import HoldNotPending, IdempotencyConflict
from tests.conftest import FakeClock
from tests.processes import worker_context

T = TypeVar("T")

THREADS = 12


def race(n: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run `work(i)` for i in range(n) on n threads released at the same moment."""
    gate = threading.Barrier(n)

    def run(i: int) -> T | BaseException:
        gate.wait()
        try:
            return work(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def no_errors(results: list[Any]) -> list[Any]:
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return [x for r in results for x in (r if isinstance(r, list) else [r])]


def fund(ledger: TenantLedger, amounts: list[int], **customer: Any) -> None:
    ledger.create_customer("c1", **customer)
    for amount in amounts:
        ledger.grant("c1", "credits", amount, kind="purchased", cost_basis="0.01")


def balance(ledger: TenantLedger) -> tuple[int, int, int, int]:
    b = ledger.wallet("c1").balance("credits")
    return b.posted, b.held, b.available, b.debt


def assert_verified(ledger: TenantLedger) -> None:
    report = ledger.cg.verify(ledger.tenant_id)
    assert report.ok, report.violations


@pytest.mark.parametrize(
    ("policy", "limit"), [("block", None), ("overdraft", 500)], ids=["block", "overdraft"]
)
def test_concurrent_authorizations_approve_exactly_what_fits(
    ledger: TenantLedger, policy: str, limit: int | None
) -> None:
    fund(ledger, [400, 350, 250], policy=policy, overdraft_limit=limit)
    balance_, amount, per_thread = 1_000, 70, 3
    expected = (balance_ + (limit or 0)) // amount  # 14 under block, 21 with overdraft

    def work(_: int) -> list[bool]:
        return [ledger.authorize("c1", "credits", amount).approved for _ in range(per_thread)]

    approvals = no_errors(race(THREADS, work))
    assert len(approvals) == THREADS * per_thread > expected
    assert sum(approvals) == expected
    assert balance(ledger) == (1_000, expected * amount, 1_000 - expected * amount, 0)
    assert_verified(ledger)


@pytest.mark.parametrize(
    ("policy", "limit"), [("block", None), ("overdraft", 500)], ids=["block", "overdraft"]
)
def test_concurrent_charges_debit_exactly_what_fits(
    ledger: TenantLedger, policy: str, limit: int | None
) -> None:
    fund(ledger, [400, 350, 250], policy=policy, overdraft_limit=limit)
    amount, per_thread = 70, 3
    expected = (1_000 + (limit or 0)) // amount

    def work(_: int) -> list[str]:
        return [ledger.charge("c1", "credits", amount).status for _ in range(per_thread)]

    statuses = no_errors(race(THREADS, work))
    assert statuses.count("posted") == expected
    assert statuses.count("declined") == THREADS * per_thread - expected
    debited = expected * amount
    assert balance(ledger) == (1_000 - debited, 0, 1_000 - debited, max(0, debited - 1_000))
    assert sum(lot.remaining for lot in ledger.lots("c1")) == max(0, 1_000 - debited)
    assert_verified(ledger)


def test_concurrent_first_use_of_a_wallet_under_allow(ledger: TenantLedger) -> None:
    # No grant yet, so no balance row: every racer has to create it (or find it created).
    ledger.create_customer("c1", policy="allow")

    def work(_: int) -> bool:
        return ledger.authorize("c1", "credits", 25).approved

    assert no_errors(race(THREADS, work)) == [True] * THREADS
    assert balance(ledger) == (0, 25 * THREADS, -25 * THREADS, 0)
    assert_verified(ledger)


def test_a_hold_raced_by_settles_and_voids_resolves_once(ledger: TenantLedger) -> None:
    fund(ledger, [10_000])
    posted = 10_000
    for round_ in range(4):
        auth = ledger.authorize("c1", "credits", 500)

        def work(i: int, auth_id: str = auth.id) -> str:
            if i % 2:
                ledger.void(auth_id)
                return "voided"
            ledger.settle(auth_id, 400)
            return "settled"

        results = race(8, work)
        wins = [r for r in results if isinstance(r, str)]
        losses = [r for r in results if not isinstance(r, str)]
        assert len(wins) == 1, results
        assert all(isinstance(e, HoldNotPending) for e in losses), losses
        assert ledger.authorization(auth.id).status == wins[0]
        posted -= 400 if wins[0] == "settled" else 0
        assert balance(ledger) == (posted, 0, posted, 0), round_
    assert_verified(ledger)


def test_concurrent_requests_with_one_key_have_one_effect(ledger: TenantLedger) -> None:
    fund(ledger, [10_000])

    def authorize(_: int) -> Any:
        return ledger.authorize("c1", "credits", 300, idempotency_key="auth-1")

    auths = no_errors(race(THREADS, authorize))
    assert len({a.id for a in auths}) == 1 and all(a == auths[0] for a in auths)
    assert balance(ledger)[:2] == (10_000, 300)

    def settle(_: int) -> Any:
        return ledger.settle(auths[0].id, 250, idempotency_key="settle-1")

    # One effect. (Whether every racer also gets the first answer is the next test's concern.)
    results = race(THREADS, settle)
    settlements = [r for r in results if not isinstance(r, BaseException)]
    assert settlements and all(s == settlements[0] for s in settlements)
    assert all(isinstance(r, HoldNotPending) for r in results if r not in settlements), results
    assert balance(ledger) == (9_750, 0, 9_750, 0)

    def charge(_: int) -> Any:
        return ledger.charge("c1", "credits", 100, idempotency_key="charge-1")

    charges = no_errors(race(THREADS, charge))
    assert len({c.id for c in charges}) == 1
    assert balance(ledger) == (9_650, 0, 9_650, 0)

    def grant(_: int) -> Any:
        return ledger.grant("c1", "credits", 1_000, idempotency_key="grant-1")

    grants = no_errors(race(THREADS, grant))
    assert len({g.id for g in grants}) == 1
    assert balance(ledger) == (10_650, 0, 10_650, 0)
    assert len(ledger.lots("c1")) == 2
    assert_verified(ledger)


def test_one_key_raced_with_two_bodies_applies_exactly_one(ledger: TenantLedger) -> None:
    fund(ledger, [10_000])

    def work(i: int) -> Any:
        return ledger.authorize("c1", "credits", 100 + 100 * (i % 2), idempotency_key="k")

    results = race(THREADS, work)
    answers = [r for r in results if not isinstance(r, BaseException)]
    conflicts = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, IdempotencyConflict) for e in conflicts), conflicts
    assert len(answers) == THREADS // 2 and len(conflicts) == THREADS // 2
    assert len({a.id for a in answers}) == 1
    assert balance(ledger)[1] == answers[0].amount
    assert_verified(ledger)


def test_a_mixed_workload_keeps_the_books_exact(ledger: TenantLedger) -> None:
    fund(ledger, [3_000, 2_000])

    def work(i: int) -> list[int]:
        rng = random.Random(i)
        used = []
        for _ in range(6):
            auth = ledger.authorize("c1", "credits", 150)
            if not auth.approved:
                continue
            if rng.random() < 0.3:
                ledger.void(auth.id)
            else:
                used.append(ledger.settle(auth.id, rng.randint(0, 200)).charge.amount)
        return used

    spent = sum(no_errors(race(THREADS, work)))
    assert spent > 0
    posted, held, available, debt = balance(ledger)
    assert (posted, held, debt) == (5_000 - spent, 0, 0)
    assert available >= 0
    assert_verified(ledger)


# A retry racing the first request -------------------------------------------------------


def _lock_waiters(cg: Creditgate) -> int:
    with cg.db.engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).scalar_one()
        )


def _wait_for_waiters(cg: Creditgate, n: int) -> None:
    deadline = time.monotonic() + 10
    while _lock_waiters(cg) < n:
        assert time.monotonic() < deadline, f"never saw {n} transactions waiting on a lock"
        time.sleep(0.01)


@pytest.mark.parametrize("late", [False, True], ids=["in-time", "past-the-ttl"])
@pytest.mark.parametrize("operation", ["settle", "void"])
def test_a_retry_racing_the_first_request_gets_the_first_answer(
    ledger: TenantLedger, backend: str, operation: str, late: bool, clock: FakeClock
) -> None:
    """A retry that arrives while the first attempt is still in flight answers what the first
    one did; also when it arrives after the hold's TTL, where on its own it would be refused
    as expired (the first attempt, started in time, still commits)."""
    if backend != "postgres":
        pytest.skip("SQLite runs write transactions one at a time; the two cannot overlap")
    fund(ledger, [1_000])
    auth = ledger.authorize("c1", "credits", 500)
    wallet_id = ledger.customer("c1").wallet_id

    def request(_: int) -> Any:
        if operation == "settle":
            return ledger.settle(auth.id, 400, idempotency_key="retry-1")
        return ledger.void(auth.id, idempotency_key="retry-1")

    cg = ledger.cg
    with ThreadPoolExecutor(2) as pool, cg.db.engine.connect() as blocker:
        # Hold the wallet's balance row so the first request stops right after claiming the
        # hold; the retry then arrives while the first is in flight, as a client retry does.
        with blocker.begin():
            blocker.exec_driver_sql(
                "SELECT 1 FROM wallet_balances WHERE wallet_id = %(w)s FOR UPDATE",
                {"w": wallet_id},
            )
            first = pool.submit(request, 0)
            _wait_for_waiters(cg, 1)
            if late:
                clock.advance(seconds=601)  # past the hold's 600 s TTL
            retry = pool.submit(request, 1)
            _wait_for_waiters(cg, 2)
        answers = [first.result(timeout=30), retry.result(timeout=30)]
    assert answers[0] == answers[1]
    posted = 600 if operation == "settle" else 1_000
    assert balance(ledger) == (posted, 0, posted, 0)


# Several processes, each with its own Creditgate on the same PostgreSQL database ------------


def _process_worker(
    url: str,
    tenant_id: str,
    now: datetime,
    threads: int,
    per_thread: int,
    start: Any,
    out: Any,
    keyed: bool = False,
) -> None:
    def key(kind: str) -> str | None:  # with a key, calls on one wallet share transactions
        return f"{kind}-{uuid.uuid4().hex}" if keyed else None

    try:
        cg = Creditgate(url, migrate=False, clock=FakeClock(now), pool_size=threads)
        ledger = cg.tenant(tenant_id)
        # Warm the connection pool so the race is between transactions, not connects.
        no_errors(race(threads, lambda _: cg.db.run(lambda c: c.exec_driver_sql("SELECT 1"))))
        start.wait(timeout=60)
        authorized = race(
            threads,
            lambda _: [
                ledger.authorize("blocked", "credits", 30, idempotency_key=key("a")).approved
                for _ in range(per_thread)
            ],
        )
        start.wait(timeout=60)
        charged = race(
            threads,
            lambda _: [
                ledger.charge("overdrawn", "credits", 30, idempotency_key=key("c")).status
                == "posted"
                for _ in range(per_thread)
            ],
        )
        cg.close()
        out.put(("ok", sum(no_errors(authorized)), sum(no_errors(charged))))
    except BaseException as exc:
        out.put(("error", repr(exc), None))


@pytest.mark.postgres
@pytest.mark.parametrize("keyed", [False, True], ids=["alone", "combined"])
def test_several_processes_never_approve_one_too_many(
    ledger: TenantLedger, backend: str, db_url: str, clock: FakeClock, keyed: bool
) -> None:
    if backend != "postgres":
        pytest.skip("several server processes share one database only on PostgreSQL")
    ledger.create_customer("blocked")
    ledger.create_customer("overdrawn", policy="overdraft", overdraft_limit=300)
    for name in ("blocked", "overdrawn"):
        ledger.grant(name, "credits", 600, kind="purchased", cost_basis="0.01")
        ledger.grant(name, "credits", 400)
    processes, threads, per_thread = 3, 4, 4
    assert processes * threads * per_thread > (1_000 + 300) // 30

    ctx = worker_context()
    start = ctx.Barrier(processes)
    out = ctx.Queue()
    args = (db_url, ledger.tenant_id, clock.now, threads, per_thread, start, out, keyed)
    workers = [ctx.Process(target=_process_worker, args=args) for _ in range(processes)]
    for w in workers:
        w.start()
    try:
        answers = [out.get(timeout=90) for _ in workers]
    except queue.Empty:
        pytest.fail("a worker process did not answer")
    finally:
        for w in workers:
            w.join(timeout=30)
    assert all(a[0] == "ok" for a in answers), answers

    assert sum(a[1] for a in answers) == 1_000 // 30
    blocked = ledger.wallet("blocked").balance("credits")
    assert (blocked.posted, blocked.held) == (1_000, 30 * (1_000 // 30))

    assert sum(a[2] for a in answers) == 1_300 // 30
    overdrawn = ledger.wallet("overdrawn").balance("credits")
    assert (overdrawn.posted, overdrawn.held) == (1_000 - 30 * (1_300 // 30), 0)
    assert overdrawn.available >= -300
    assert_verified(ledger)


def test_verify_on_a_busy_ledger_sees_one_committed_state(
    cg: Creditgate, ledger: TenantLedger
) -> None:
    """`verify` while charges commit beside it: every check reads the same snapshot, so a
    commit between two of its reads (a lot consumed after the ledger's sums were read) is
    never reported as a disagreement."""
    fund(ledger, [1_000_000] * 4)
    done = threading.Event()
    charged = [0]

    def charge_on() -> None:
        while not done.is_set():
            ledger.charge("c1", "credits", 7, idempotency_key=uuid.uuid4().hex)
            charged[0] += 1

    workers = [threading.Thread(target=charge_on) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        reports = [cg.verify(ledger.tenant_id) for _ in range(25)]
    finally:
        done.set()
        for worker in workers:
            worker.join()
    assert charged[0] > 0
    for report in reports:
        assert report.ok, report.violations
