"""One path per backend for each gate call, and the one fallback PostgreSQL's path has.

On PostgreSQL a hold or a debit is sent with the commit, guarded (`storage.balances`
`move_at_commit`). When a guard misses — the wallet cannot pay, or the move needs a
reaction (a balance event, an auto top-up) — the commit fails, and the call runs once more
on the locking path, SQLite's only path, which answers with the reason or raises the events
(`Database.run`, counted in `stats["careful_reruns"]`). Each test forces such a miss, or
shows a call that needs none, and checks that both backends give the same answers and that
only PostgreSQL ran a call twice.
"""

from __future__ import annotations

import pytest

from creditgate.api import TenantLedger
from creditgate.domain.errors import IdempotencyConflict
from tests.integration.test_combined import _calls_queued_behind, _wallet_key
from tests.integration.test_concurrency import balance, fund
from tests.integration.test_grants_and_expiry import events_of


def reruns(ledger: TenantLedger) -> int:
    return int(ledger.cg.db.stats["careful_reruns"])


def on_postgres(backend: str, n: int) -> int:
    """`n` careful reruns on PostgreSQL; SQLite's only path never runs a call twice."""
    return n if backend == "postgres" else 0


def test_calls_that_need_no_reaction_run_once(ledger: TenantLedger, backend: str) -> None:
    fund(ledger, [10_000])
    before = reruns(ledger)
    auth = ledger.authorize("c1", "credits", 1_000, idempotency_key="a")
    assert (auth.approved, auth.available) == (True, 9_000)
    settled = ledger.settle(auth.id, 800, idempotency_key="s")
    assert (settled.charge.amount, settled.charge.available) == (800, 9_200)
    other = ledger.authorize("c1", "credits", 500, idempotency_key="b")
    assert ledger.void(other.id, idempotency_key="v").available == 9_200
    charged = ledger.charge("c1", "credits", 300, idempotency_key="c")
    assert (charged.status, charged.available) == ("posted", 8_900)
    assert reruns(ledger) == before
    assert balance(ledger) == (8_900, 0, 8_900, 0)


def test_a_hold_the_wallet_cannot_pay_misses_its_guard_and_is_declined_with_the_reason(
    ledger: TenantLedger, backend: str
) -> None:
    fund(ledger, [1_000])
    before = reruns(ledger)
    declined = ledger.authorize("c1", "credits", 1_001, idempotency_key="too-much")
    assert (declined.approved, declined.decline_reason) == (False, "insufficient_funds")
    assert declined.available == 1_000
    assert reruns(ledger) == before + on_postgres(backend, 1)
    assert [e["reason"] for e in events_of(ledger, "authorization.declined")] == [
        "insufficient_funds"
    ]
    # The replay answers from the record the rerun wrote. On PostgreSQL a hold takes its
    # key as new and runs once more when it is not (here its guard misses first): a retry
    # costs a second run, so that a first call saves the key's lookup.
    assert ledger.authorize("c1", "credits", 1_001, idempotency_key="too-much") == declined
    assert reruns(ledger) == before + on_postgres(backend, 2)
    assert balance(ledger) == (1_000, 0, 1_000, 0)


def test_a_hold_takes_its_key_as_new_and_runs_again_when_the_key_was_used(
    ledger: TenantLedger, backend: str
) -> None:
    """On PostgreSQL a hold looks nothing up before its commit; a key already used conflicts
    there, and the careful run looks it up: the replay answers as the first call did, and
    another request under the key is refused, whichever operation used it."""
    fund(ledger, [10_000])
    before = reruns(ledger)
    held = ledger.authorize("c1", "credits", 1_000, idempotency_key="h")
    assert reruns(ledger) == before
    assert ledger.authorize("c1", "credits", 1_000, idempotency_key="h") == held
    assert reruns(ledger) == before + on_postgres(backend, 1)
    with pytest.raises(IdempotencyConflict):
        ledger.authorize("c1", "credits", 2_000, idempotency_key="h")
    ledger.charge("c1", "credits", 100, idempotency_key="c")
    with pytest.raises(IdempotencyConflict):
        ledger.authorize("c1", "credits", 100, idempotency_key="c")
    assert reruns(ledger) == before + on_postgres(backend, 3)
    # One hold and one charge: the replay and the refusals moved nothing.
    assert balance(ledger) == (9_900, 1_000, 8_900, 0)
    assert ledger.void(held.id, idempotency_key="v").available == 9_900


def test_a_charge_the_wallet_cannot_pay_is_declined_from_its_read(
    ledger: TenantLedger, backend: str
) -> None:
    """A debit plans from the rows it read: one it cannot pay is declined without a write,
    so no guard is sent to miss."""
    fund(ledger, [1_000])
    before = reruns(ledger)
    declined = ledger.charge("c1", "credits", 1_001, idempotency_key="too-much")
    assert (declined.status, declined.decline_reason, declined.available) == (
        "declined",
        "insufficient_funds",
        1_000,
    )
    assert reruns(ledger) == before


def test_moves_that_raise_events_miss_their_guard_and_raise_them_on_the_locking_path(
    ledger: TenantLedger, backend: str
) -> None:
    fund(ledger, [1_000])
    ledger.set_policy("c1", "credits", "block", low_balance_threshold=300)
    before = reruns(ledger)
    ledger.charge("c1", "credits", 600, idempotency_key="c1")  # 400: quiet
    assert reruns(ledger) == before
    auth = ledger.authorize("c1", "credits", 200, idempotency_key="a1")  # 200: low
    assert reruns(ledger) == before + on_postgres(backend, 1)
    assert events_of(ledger, "balance.low") == [
        {"asset": "credits", "available": 200, "threshold": 300}
    ]
    ledger.settle(auth.id, 150, idempotency_key="s1")  # 250: still low, quiet
    assert reruns(ledger) == before + on_postgres(backend, 1)
    ledger.charge("c1", "credits", 250, idempotency_key="c2")  # 0: depleted
    assert reruns(ledger) == before + on_postgres(backend, 2)
    assert [e["available"] for e in events_of(ledger, "balance.depleted")] == [0]
    assert len(events_of(ledger, "balance.low")) == 1
    assert balance(ledger) == (0, 0, 0, 0)


def test_a_batch_trusting_a_key_already_recorded_runs_again_looking_every_key_up(
    ledger: TenantLedger, backend: str
) -> None:
    """A later debit of a combined batch on PostgreSQL skips its key's lookup and trusts the
    record's insert at the commit; a key already recorded makes that insert conflict, and
    the batch runs again on the locking path, which looks every key up and replays it."""
    fund(ledger, [1_000])
    first = ledger.charge("c1", "credits", 100, idempotency_key="old")
    before = reruns(ledger)
    calls = [
        lambda: ledger.charge("c1", "credits", 10, idempotency_key="new-1"),
        lambda: ledger.charge("c1", "credits", 100, idempotency_key="old"),
        lambda: ledger.charge("c1", "credits", 10, idempotency_key="new-2"),
    ]
    results = _calls_queued_behind(ledger.cg.db, _wallet_key(ledger), calls)
    assert results[1] == first
    assert [r.available for r in (results[0], results[2])] == [890, 880]
    assert reruns(ledger) == before + on_postgres(backend, 1)
    assert balance(ledger) == (880, 0, 880, 0)


@pytest.mark.parametrize("policy", ["block", "overdraft"])
def test_debt_is_planned_on_the_locking_path_without_a_rerun(
    ledger: TenantLedger, backend: str, policy: str
) -> None:
    """A settle past the lots plans debt with the balance row locked, on both backends: the
    path decides it before sending anything, so nothing misses."""
    limit = 500 if policy == "overdraft" else None
    fund(ledger, [1_000], policy=policy, overdraft_limit=limit)
    auth = ledger.authorize("c1", "credits", 1_000, idempotency_key="a")
    before = reruns(ledger)
    settled = ledger.settle(auth.id, 1_200, idempotency_key="s")
    if policy == "block":
        assert (settled.charge.amount, settled.charge.shortfall) == (1_000, 200)
        assert balance(ledger) == (0, 0, 0, 0)
    else:
        assert (settled.charge.amount, settled.charge.debt) == (1_200, 200)
        assert balance(ledger) == (-200, 0, -200, 200)
    # The hold had already taken `available` to zero: nothing to raise, nothing ran twice.
    assert reruns(ledger) == before
