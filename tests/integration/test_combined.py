"""Concurrent calls on one wallet share a transaction (`Database.run_combined`).

Each call keeps its own answer and its own errors; a batch is all or nothing; calls with one
idempotency key never share a transaction; and the gate's counts stay exact.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Connection, text

from creditgate.api import Creditgate, TenantLedger
from creditgate.domain.errors import IdempotencyConflict
from creditgate.storage.database import Database
from creditgate.storage.members import SCOPE_ROWS
from tests.integration.test_concurrency import balance, fund, no_errors, race


def _marker_table(db: Database, name: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {name} (n INTEGER NOT NULL)"))


def _queued_behind(db: Database, key: Any, works: list[Any], tokens: list[Any]) -> list[Any]:
    """Run `works` while a first unit of work on `key` holds it: they queue, then run."""
    pairs = zip(works, tokens, strict=True)
    return _calls_queued_behind(
        db, key, [lambda w=w, t=t: db.run_combined(key, w, token=t) for w, t in pairs]
    )


def _calls_queued_behind(db: Database, key: Any, calls: list[Any]) -> list[Any]:
    """Make `calls` (each ending in `run_combined` on `key`) while a first unit of work on
    `key` holds it: they queue up one by one, in order, then run as a batch."""
    entered, release = threading.Event(), threading.Event()

    def first(conn: Connection) -> str:
        entered.set()
        release.wait(10)
        return "first"

    results: list[Any] = [None] * len(calls)

    def call(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    lead = threading.Thread(target=lambda: db.run_combined(key, first, token=object()))
    lead.start()
    assert entered.wait(10)
    threads = []
    deadline = time.monotonic() + 10
    for i in range(len(calls)):  # one at a time, so that they queue in this order
        threads.append(threading.Thread(target=call, args=(i,)))
        threads[-1].start()
        while len(db._busy.get(key, [])) < i + 1 and time.monotonic() < deadline:
            time.sleep(0.002)
    assert len(db._busy[key]) == len(calls)  # every one is waiting behind the first
    release.set()
    lead.join()
    for t in threads:
        t.join()
    return results


def test_waiting_calls_run_in_one_transaction_each_with_its_answer(cg: Creditgate) -> None:
    db = cg.db
    table = "combined_probe_a"
    _marker_table(db, table)

    def work(n: int) -> Any:
        def run(conn: Connection) -> tuple[int, Any]:
            conn.execute(text(f"INSERT INTO {table} (n) VALUES (:n)"), {"n": n})
            return n, conn.get_transaction()  # kept alive, so no two share an id()

        return run

    results = _queued_behind(db, "probe-a", [work(n) for n in range(6)], list(range(6)))
    assert [r[0] for r in results] == list(range(6))
    assert len({id(r[1]) for r in results}) == 1  # one transaction for all six
    with db.engine.connect() as conn:
        stored = sorted(conn.execute(text(f"SELECT n FROM {table}")).scalars())
    assert stored == list(range(6))


def test_one_failing_call_costs_the_others_nothing(cg: Creditgate) -> None:
    db = cg.db
    table = "combined_probe_b"
    _marker_table(db, table)

    def work(n: int) -> Any:
        def run(conn: Connection) -> int:
            conn.execute(text(f"INSERT INTO {table} (n) VALUES (:n)"), {"n": n})
            if n == 2:
                raise ValueError("call 2 is refused")
            return n

        return run

    batches = db.stats["combined_batches"]
    results = _queued_behind(db, "probe-b", [work(n) for n in range(5)], list(range(5)))
    assert [r if not isinstance(r, Exception) else "error" for r in results] == [
        0,
        1,
        "error",
        3,
        4,
    ]
    assert isinstance(results[2], ValueError)
    with db.engine.connect() as conn:
        stored = sorted(conn.execute(text(f"SELECT n FROM {table}")).scalars())
    assert stored == [0, 1, 3, 4]  # the refused call's insert was rolled back, nothing twice
    assert db.stats["combined_batches"] == batches + 1  # the other four, still together


def test_one_token_never_shares_a_transaction(cg: Creditgate) -> None:
    db = cg.db

    def work(conn: Connection) -> Any:
        return conn.get_transaction()  # kept alive, so no two share an id()

    results = _queued_behind(db, "probe-c", [work, work, work], ["k", "k", "k"])
    assert not [r for r in results if isinstance(r, Exception)]
    assert len({id(r) for r in results}) == 3


def test_combined_charges_debit_exactly_what_the_wallet_holds(ledger: TenantLedger) -> None:
    fund(ledger, [1_000])
    results = no_errors(
        race(24, lambda i: ledger.charge("c1", "credits", 70, idempotency_key=f"hot-{i}"))
    )
    posted = [r for r in results if r.status == "posted"]
    assert len(posted) == 1_000 // 70
    assert balance(ledger) == (1_000 - 70 * len(posted), 0, 1_000 - 70 * len(posted), 0)
    # Every answer carries the balance its own debit left, and no two are the same.
    left = sorted(r.available for r in posted)
    assert left == sorted(1_000 - 70 * k for k in range(1, len(posted) + 1))
    # Each replays its own first answer.
    for i, first in enumerate(results):
        again = ledger.charge("c1", "credits", 70, idempotency_key=f"hot-{i}")
        assert again == first


def test_combined_authorizations_hold_exactly_what_the_wallet_holds(
    ledger: TenantLedger,
) -> None:
    fund(ledger, [500], policy="overdraft", overdraft_limit=200)
    results = no_errors(
        race(
            20,
            lambda i: ledger.authorize("c1", "credits", 100, idempotency_key=f"auth-{i}"),
        )
    )
    approved = [r for r in results if r.approved]
    assert len(approved) == 7  # floor((500 + 200) / 100)
    assert balance(ledger) == (500, 700, -200, 0)
    for r in approved:
        ledger.void(r.id, idempotency_key=f"void-{r.id}")
    assert balance(ledger) == (500, 0, 500, 0)


def test_a_replay_racing_its_first_call_gets_the_same_answer(ledger: TenantLedger) -> None:
    fund(ledger, [1_000])
    results = no_errors(
        race(8, lambda i: ledger.charge("c1", "credits", 10, idempotency_key="same"))
    )
    assert len({r.id for r in results}) == 1
    assert balance(ledger)[0] == 990
    with pytest.raises(IdempotencyConflict):
        ledger.charge("c1", "credits", 11, idempotency_key="same")


def _wallet_key(ledger: TenantLedger) -> tuple[str, str, str]:
    return (ledger.tenant_id, "c1", "credits")


def test_a_batch_of_debits_draws_lots_in_burn_order_as_if_one_by_one(
    ledger: TenantLedger,
) -> None:
    """Later debits of a batch plan from the rows as the earlier ones leave them."""
    fund(ledger, [30, 30, 30])
    calls = [
        lambda i=i: ledger.charge("c1", "credits", 20, idempotency_key=f"draw-{i}")
        for i in range(5)
    ]
    stats = ledger.cg.db.stats
    reruns, batches = stats["careful_reruns"], stats["combined_batches"]
    results = _calls_queued_behind(ledger.cg.db, _wallet_key(ledger), calls)
    assert stats["combined_batches"] == batches + 1
    # Each planned from the rows the earlier ones left: no guard missed, nothing ran twice.
    assert stats["careful_reruns"] == reruns
    assert [r.status for r in results] == ["posted"] * 4 + ["declined"]
    assert [r.available for r in results] == [70, 50, 30, 10, 10]
    assert [[d.amount for d in r.draws] for r in results[:4]] == [[20], [10, 10], [20], [20]]
    assert [lot.remaining for lot in ledger.lots("c1")] == [10]  # the third lot's rest
    assert balance(ledger) == (10, 0, 10, 0)


def test_a_batch_with_an_old_key_replays_it_and_applies_the_rest(ledger: TenantLedger) -> None:
    fund(ledger, [1_000])
    first = ledger.charge("c1", "credits", 100, idempotency_key="old")
    calls = [
        lambda: ledger.charge("c1", "credits", 10, idempotency_key="new-1"),
        lambda: ledger.charge("c1", "credits", 100, idempotency_key="old"),  # a replay
        lambda: ledger.charge("c1", "credits", 10, idempotency_key="new-2"),
        lambda: ledger.charge("c1", "credits", 55, idempotency_key="old"),  # another body
        lambda: ledger.authorize("c1", "credits", 30, idempotency_key="new-3"),
        lambda: ledger.charge("c1", "credits", 10, idempotency_key="new-4"),
    ]
    results = _calls_queued_behind(ledger.cg.db, _wallet_key(ledger), calls)
    assert results[1] == first
    assert isinstance(results[3], IdempotencyConflict)
    assert [results[i].status for i in (0, 2, 5)] == ["posted"] * 3
    assert results[4].approved
    assert balance(ledger) == (870, 30, 840, 0)
    assert [r.available for r in (results[0], results[2], results[4], results[5])] == [
        890,
        880,
        850,
        840,
    ]


def test_authorizations_and_debits_mixed_in_a_batch_stay_exact(ledger: TenantLedger) -> None:
    fund(ledger, [100])
    calls: list[Any] = []
    for i in range(6):
        calls.append(lambda i=i: ledger.charge("c1", "credits", 15, idempotency_key=f"c{i}"))
        calls.append(lambda i=i: ledger.authorize("c1", "credits", 15, idempotency_key=f"a{i}"))
    results = _calls_queued_behind(ledger.cg.db, _wallet_key(ledger), calls)
    approved = [
        r for r in results if getattr(r, "approved", False) or getattr(r, "status", "") == "posted"
    ]
    assert len(approved) == 6  # floor(100 / 15), in arrival order
    assert results[:6] == approved
    posted, held, available, _ = balance(ledger)
    assert (posted, held, available) == (55, 45, 10)


def test_writes_deferred_as_last_go_after_the_others(cg: Creditgate) -> None:
    """Idempotency records go after the balance moves: one lock order for every batch."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, insert

    from creditgate.storage.prepared import Prepared
    from creditgate.storage.unit_of_work import UnitOfWork

    table = Table(
        "combined_probe_order",
        MetaData(),
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("name", String(10), nullable=False),
    )
    table.create(cg.db.engine, checkfirst=True)
    write = Prepared(insert(table))

    def work(conn: Connection) -> None:
        uow = UnitOfWork.of(conn)
        uow.defer(write, {"name": "key"}, last=True)
        uow.defer(write, {"name": "move-1"})
        uow.defer(write, {"name": "move-2"})

    cg.db.run(work)
    with cg.db.engine.connect() as conn:
        names = list(conn.execute(text("SELECT name FROM combined_probe_order ORDER BY seq")))
    assert [n for (n,) in names][-3:] == ["move-1", "move-2", "key"]


def test_a_batch_of_members_charges_keeps_each_member_budget_and_state(
    ledger: TenantLedger,
) -> None:
    """Later calls of a batch find their member as the first call's read left it (members are
    read with the wallet's other members): budgets, an inactive member and an unknown one each
    answered as one by one."""
    fund(ledger, [10_000])
    for member, amount in (("ada", 50), ("bob", 30), ("cy", 1_000)):
        ledger.create_member("c1", member)
        ledger.set_budget("c1", "credits", amount, period="day", member=member)
    ledger.update_member("c1", "cy", active=False)
    asked = ["ada", "bob", "ada", "bob", "cy", "nobody", "ada", "bob"]
    calls = [
        lambda i=i, m=m: ledger.charge("c1", "credits", 20, member=m, idempotency_key=f"m{i}")
        for i, m in enumerate(asked)
    ]
    batches = ledger.cg.db.stats["combined_batches"]
    results = _calls_queued_behind(ledger.cg.db, _wallet_key(ledger), calls)
    assert ledger.cg.db.stats["combined_batches"] > batches
    answers = [getattr(r, "decline_reason", None) or getattr(r, "status", None) for r in results]
    assert answers[:5] == ["posted", "posted", "posted", "budget_exceeded", "member_inactive"]
    assert type(results[5]).__name__ == "UnknownMember"
    assert answers[6:] == ["budget_exceeded", "budget_exceeded"]
    spent = {m: ledger.usage("c1", member=m).data[0].spent for m in ("ada", "bob", "cy")}
    assert spent == {"ada": 40, "bob": 20, "cy": 0}
    assert balance(ledger)[0] == 10_000 - 60


def test_a_member_whose_rows_one_read_cut_short_is_read_whole_in_a_batch(
    ledger: TenantLedger,
) -> None:
    """The read of a call's member brings the wallet's other members, up to a limit; the one
    the limit cuts is not kept half-read for the batch's later calls."""
    fund(ledger, [100_000])
    names = [f"m{n:02}" for n in range(SCOPE_ROWS // 2 + 4)]
    ledger.set_budget("c1", "credits", 90_000, period="month")  # a row for every member
    for name in names:
        ledger.create_member("c1", name)
        if name != "m00":  # one row fewer: the limit falls inside the last member read
            ledger.set_budget("c1", "credits", 100, period="day", member=name)
    cut = names[SCOPE_ROWS // 2 - 1]
    calls = [
        lambda m=m, i=i: ledger.charge("c1", "credits", 60, member=m, idempotency_key=f"k{i}")
        for i, m in enumerate([names[-1], cut, cut])
    ]
    results = _calls_queued_behind(ledger.cg.db, _wallet_key(ledger), calls)
    assert [r.status for r in results] == ["posted", "posted", "declined"]
    assert results[2].decline_reason == "budget_exceeded"
    assert ledger.usage("c1", member=cut).data[0].spent == 60


@pytest.mark.parametrize("refusing", ["member", "customer"])
@pytest.mark.parametrize("call", ["authorize", "charge"])
def test_a_call_a_budget_declines_leaves_the_batchs_later_calls_the_room_it_took_back(
    ledger: TenantLedger, call: str, refusing: str
) -> None:
    """A call counts against its member's budget and its customer's, one after the other; when
    the second refuses, what the first counted is given back before the batch's next call
    reads it: that call is answered as it would be alone. (Which budget a call counts against
    first is the database's order: one of the two cases has the refusing budget second.)"""
    fund(ledger, [10_000])
    ledger.set_budget("c1", "credits", 100, period="day")  # the customer's own
    for member in ("ada", "bob"):
        ledger.create_member("c1", member)
    ledger.set_budget("c1", "credits", 60, period="day", member="ada")
    if refusing == "member":
        before = ("ada", 40)  # ada has 20 left, the customer 60
        asked = [("ada", 30), ("bob", 60)]  # ada's budget refuses; bob fits the customer's
    else:
        before = ("bob", 70)  # the customer has 30 left, ada 60
        asked = [("ada", 40), ("ada", 30)]  # the customer's refuses; the second fits both
    ledger.charge("c1", "credits", before[1], member=before[0], idempotency_key="before")

    def ask(i: int, member: str, amount: int) -> Any:
        key = f"{call}{i}"
        return getattr(ledger, call)("c1", "credits", amount, member=member, idempotency_key=key)

    calls = [lambda i=i, m=m, n=n: ask(i, m, n) for i, (m, n) in enumerate(asked)]
    batches = ledger.cg.db.stats["combined_batches"]
    results = _calls_queued_behind(ledger.cg.db, _wallet_key(ledger), calls)
    assert ledger.cg.db.stats["combined_batches"] > batches
    if call == "authorize":
        assert [r.approved for r in results] == [False, True], results
    else:
        assert [r.status for r in results] == ["declined", "posted"], results
    assert results[0].decline_reason == "budget_exceeded"
    usage = ledger.usage("c1").data[0]
    assert usage.held + usage.spent == before[1] + asked[1][1]
