"""Authorize, settle, void and charge on both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from creditgate.api import TenantLedger
from creditgate.domain.errors import (
    AmountOverflow,
    HoldAlreadySettled,
    HoldAlreadyVoided,
    HoldExpired,
    IdempotencyConflict,
    InvalidInput,
    UnknownAsset,
    UnknownCustomer,
    UnknownHold,
)
from tests.conftest import FakeClock


def funded(ledger: TenantLedger, amount: int = 10_000, **customer: object) -> str:
    ledger.create_customer("c1", **customer)  # type: ignore[arg-type]
    ledger.grant("c1", "credits", amount, kind="purchased", cost_basis="0.01")
    return "c1"


def test_authorize_reserves_and_settle_releases_the_rest(ledger: TenantLedger) -> None:
    funded(ledger)
    auth = ledger.authorize("c1", "credits", 3_000)
    assert auth.status == "pending" and auth.approved and auth.available == 7_000
    balance = ledger.wallet("c1").balance("credits")
    assert (balance.posted, balance.held, balance.available) == (10_000, 3_000, 7_000)

    settled = ledger.settle(auth.id, 2_200, action="chat.completion")
    assert settled.charge.amount == 2_200 and settled.charge.shortfall == 0
    assert settled.authorization.status == "settled"
    balance = ledger.wallet("c1").balance("credits")
    assert (balance.posted, balance.held, balance.available) == (7_800, 0, 7_800)


def test_block_declines_with_reason_and_available(ledger: TenantLedger) -> None:
    funded(ledger, 1_000)
    auth = ledger.authorize("c1", "credits", 1_001)
    assert not auth.approved and auth.status == "declined"
    assert auth.decline_reason == "insufficient_funds" and auth.available == 1_000
    assert ledger.wallet("c1").balance("credits").held == 0
    assert ledger.authorize("c1", "credits", 1_000).approved


def test_overdraft_goes_to_the_limit_and_no_further(ledger: TenantLedger) -> None:
    funded(ledger, 1_000, policy="overdraft", overdraft_limit=500)
    assert ledger.authorize("c1", "credits", 1_500).approved
    declined = ledger.authorize("c1", "credits", 1)
    assert declined.decline_reason == "overdraft_limit_reached"


def test_allow_never_declines_and_records_debt(ledger: TenantLedger) -> None:
    funded(ledger, 1_000, policy="allow")
    auth = ledger.authorize("c1", "credits", 5_000)
    assert auth.approved
    charge = ledger.settle(auth.id, 5_000).charge
    assert charge.amount == 5_000 and charge.debt == 4_000
    balance = ledger.wallet("c1").balance("credits")
    assert balance.posted == -4_000 and balance.debt == 4_000
    # New credit pays the debt first.
    ledger.grant("c1", "credits", 6_000, kind="purchased", cost_basis="0.01")
    balance = ledger.wallet("c1").balance("credits")
    assert balance.posted == 2_000 and balance.debt == 0


def test_settle_more_than_held_takes_what_the_policy_allows(ledger: TenantLedger) -> None:
    funded(ledger, 1_000)
    auth = ledger.authorize("c1", "credits", 800)
    charge = ledger.settle(auth.id, 1_200).charge
    assert (charge.requested, charge.amount, charge.shortfall) == (1_200, 1_000, 200)
    assert ledger.wallet("c1").balance("credits").available == 0


def test_a_hold_resolves_exactly_once(ledger: TenantLedger, clock: FakeClock) -> None:
    funded(ledger)
    auth = ledger.authorize("c1", "credits", 100)
    ledger.settle(auth.id, 50)
    with pytest.raises(HoldAlreadySettled):
        ledger.settle(auth.id, 50)
    with pytest.raises(HoldAlreadySettled):
        ledger.void(auth.id)
    voided = ledger.authorize("c1", "credits", 100)
    ledger.void(voided.id)
    with pytest.raises(HoldAlreadyVoided):
        ledger.settle(voided.id, 10)
    late = ledger.authorize("c1", "credits", 100, ttl_seconds=60)
    clock.advance(seconds=61)
    with pytest.raises(HoldExpired):
        ledger.settle(late.id, 10)
    assert ledger.expire_holds() == 1
    with pytest.raises(HoldExpired):
        ledger.void(late.id)
    assert ledger.wallet("c1").balance("credits").held == 0
    with pytest.raises(UnknownHold):
        ledger.settle("hld_nope", 1)


def test_charge_in_one_step_and_declines_under_block(ledger: TenantLedger) -> None:
    funded(ledger, 1_000)
    assert ledger.charge("c1", "credits", 600, action="image.generate").status == "posted"
    declined = ledger.charge("c1", "credits", 600)
    assert declined.status == "declined" and declined.amount == 0
    assert ledger.wallet("c1").balance("credits").posted == 400


def test_idempotent_replay_and_conflict(ledger: TenantLedger) -> None:
    funded(ledger)
    first = ledger.authorize("c1", "credits", 100, idempotency_key="req-1")
    again = ledger.authorize("c1", "credits", 100, idempotency_key="req-1")
    assert again == first
    assert ledger.wallet("c1").balance("credits").held == 100
    with pytest.raises(IdempotencyConflict):
        ledger.authorize("c1", "credits", 101, idempotency_key="req-1")
    settled = ledger.settle(first.id, 80, idempotency_key="set-1")
    assert ledger.settle(first.id, 80, idempotency_key="set-1") == settled
    assert ledger.wallet("c1").balance("credits").posted == 10_000 - 80


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        (0, InvalidInput),
        (-5, InvalidInput),
        (1.5, InvalidInput),
        ("10", InvalidInput),
        (2**63, AmountOverflow),
        (True, InvalidInput),
    ],
)
def test_bad_amounts_are_named_and_change_nothing(
    ledger: TenantLedger, amount: object, error: type[Exception]
) -> None:
    funded(ledger)
    with pytest.raises(error) as info:
        ledger.authorize("c1", "credits", amount)  # type: ignore[arg-type]
    assert info.value.field == "amount"  # type: ignore[attr-defined]
    assert ledger.wallet("c1").balance("credits").held == 0


def test_unknown_customer_and_asset(ledger: TenantLedger) -> None:
    funded(ledger)
    with pytest.raises(UnknownCustomer):
        ledger.authorize("nobody", "credits", 1)
    with pytest.raises(UnknownAsset):
        ledger.authorize("c1", "gold", 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_first_lots_a_debit_reads_are_the_start_of_the_burn_order(
    ledger: TenantLedger, clock: FakeClock, seed: int
) -> None:
    """The window of lots a debit plans from (read down `ix_lots_burn_order`, lots kept back
    for holds first) is exactly the first `LOT_WINDOW` lots of the burn order, whatever mix
    of priorities, expiries, used-up lots and lots kept past their expiry the wallet has."""
    import random

    from sqlalchemy import select

    from creditgate.domain.lots import LotBalance, burn_order
    from creditgate.services.wallet import LOT_WINDOW, read_balance_and_lots, where
    from creditgate.storage.balances import submit_balance_and_lots_of_hold
    from creditgate.storage.prepared import pipeline
    from creditgate.storage.tables import lots as lots_table

    rng = random.Random(seed)
    ledger.create_customer("mix")
    for n in range(LOT_WINDOW + 40):
        expires = rng.choice([None, None, rng.randint(1, 600), rng.randint(3_600, 90_000)])
        ledger.grant(
            "mix",
            "credits",
            rng.randint(1, 50),
            kind=rng.choice(["promotional", "purchased", "included"]),
            priority=rng.choice([None, None, 1, 5]),
            expires_at=clock.now + timedelta(seconds=expires) if expires else None,
        )
        clock.advance(seconds=rng.choice([0, 1]))  # some lots share a creation time
        if n % 9 == 0:
            ledger.authorize("mix", "credits", rng.randint(1, 60), ttl_seconds=86_400)
        if n % 7 == 0:
            ledger.charge("mix", "credits", rng.randint(1, 80))  # uses lots up
    for _ in range(3):  # first in burn order, and drawn on by the holds when they expire
        expires = clock.now + timedelta(seconds=rng.randint(60, 300))
        ledger.grant("mix", "credits", 20, priority=0, expires_at=expires)
    last = ledger.authorize("mix", "credits", 50, ttl_seconds=86_400)
    clock.advance(seconds=700)
    ledger.run_sweeps()  # short-lived lots expire, but for the credit the holds keep

    def window(tx: Any) -> tuple[list[str], list[str]]:
        wallet_id = tx.conn.execute(
            select(lots_table.c.wallet_id).where(lots_table.c.tenant_id == tx.tenant_id)
        ).scalar()
        _, first = read_balance_and_lots(tx, wallet_id, "credits")
        if tx.conn.dialect.name == "postgresql":  # a settle's read, found through its hold
            with pipeline(tx.conn):
                sent = submit_balance_and_lots_of_hold(tx.uow, tx.tenant_id, last.id, tx.now)
            _, through_hold = sent.of(where(tx, wallet_id, "credits")).result()
            assert through_hold == first
        every = [
            LotBalance(
                lot.id, lot.remaining, lot.priority, lot.expires_at, lot.created_at, lot.cost_basis
            )
            for lot in ledger.lots("mix")
        ]
        expected = [lot.id for lot in burn_order(every, tx.now)[:LOT_WINDOW]]
        return [lot.id for lot in first], expected

    read, expected = ledger._run(window)
    kept = [lot for lot in ledger.lots("mix") if lot.expires_at and lot.expires_at <= clock.now]
    assert kept, "the case needs lots kept back for holds past their expiry"
    assert len(expected) == LOT_WINDOW
    assert read == expected


def test_a_wallet_of_many_small_lots_is_drawn_in_burn_order(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    # More lots than a debit reads at first (LOT_WINDOW): a debit the first lots cannot
    # cover reads them all, and every debit draws in burn order (oldest first here).
    from creditgate.services.wallet import LOT_WINDOW

    ledger.create_customer("many")
    granted = []
    for _ in range(LOT_WINDOW + 6):
        granted.append(ledger.grant("many", "credits", 1, kind="promotional").id)
        clock.advance(seconds=1)
    charge = ledger.charge("many", "credits", 3)
    assert [d.lot_id for d in charge.draws] == granted[:3]
    charge = ledger.charge("many", "credits", LOT_WINDOW + 1)
    assert charge.status == "posted" and charge.debt == 0
    assert [d.lot_id for d in charge.draws] == granted[3 : LOT_WINDOW + 4]
    assert ledger.charge("many", "credits", 3).status == "declined"
    assert ledger.wallet("many").balance("credits").available == 2
    hold = ledger.authorize("many", "credits", 2)
    settled = ledger.settle(hold.id, amount=2)
    assert [d.lot_id for d in settled.charge.draws] == granted[LOT_WINDOW + 4 :]


def test_an_answer_sent_before_its_balance_is_known_gets_it_at_every_depth(
    ledger: TenantLedger,
) -> None:
    from creditgate.storage.balance_at_commit import AVAILABLE_PENDING, fill_available

    customer = funded(ledger, 1_000)
    # The placeholder cannot come from a caller: metadata numbers stay within I-JSON's range.
    with pytest.raises(InvalidInput) as refused:
        ledger.authorize(customer, "credits", 100, metadata={"available": AVAILABLE_PENDING})
    assert refused.value.field == "metadata"
    metadata = {"available": 2**53 - 1, "nested": [{"n": -(2**53 - 1)}]}
    auth = ledger.authorize(customer, "credits", 100, metadata=metadata)
    settled = ledger.settle(auth.id, 60)
    pending = settled.model_copy(
        update={
            "authorization": settled.authorization.model_copy(
                update={"available": AVAILABLE_PENDING}
            ),
            "charge": settled.charge.model_copy(update={"available": AVAILABLE_PENDING}),
        }
    )
    filled = fill_available(pending, 940)
    assert filled.authorization.available == filled.charge.available == 940
    assert filled.authorization.metadata == metadata
    assert filled.model_dump() == settled.model_dump() | {
        "authorization": settled.authorization.model_dump() | {"available": 940},
        "charge": settled.charge.model_dump() | {"available": 940},
    }
    assert fill_available(settled, 1) is settled  # nothing pending: the same answer


def test_the_balance_is_filled_in_wherever_a_model_field_may_carry_it() -> None:
    from typing import Annotated, Generic, Optional, TypeVar

    from pydantic import BaseModel, Field

    from creditgate.services import results
    from creditgate.storage.balance_at_commit import AVAILABLE_PENDING, fill_available

    T = TypeVar("T")

    class Inner(BaseModel):
        available: int

    class Outer(BaseModel, Generic[T]):
        optional: Inner | None = None
        annotated: Optional[Annotated[Inner, Field(description="d")]] = None  # noqa: UP045
        anything: Any = None
        an_object: object = None
        generic: T | None = None
        listed: list[Inner] = []  # a list is never given the placeholder: left as it is
        available: int = 0

    pending = Inner(available=AVAILABLE_PENDING)
    outer = Outer(  # T left open: the field is declared as a type variable
        optional=pending,
        annotated=pending,
        anything=pending,
        an_object=pending,
        generic=pending,
        listed=[pending],
        available=5,
    )
    filled = fill_available(outer, 7)
    for name in ("optional", "annotated", "anything", "an_object", "generic"):
        assert getattr(filled, name) == Inner(available=7), name
    assert filled.available == 5 and filled.listed == [pending]
    assert fill_available(Outer(), 7) == Outer()
    # Every answer model: each field declared as a model (or a union naming one) is visited.
    for model in vars(results).values():
        if isinstance(model, type) and issubclass(model, results.Result):
            for name, field in model.model_fields.items():
                if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                    assert name in balance_at_commit_carriers(model), (model, name)


def balance_at_commit_carriers(model: type[Any]) -> tuple[str, ...]:
    from creditgate.storage.balance_at_commit import _carriers

    return _carriers(model)[1]


def _three_costly_lots(ledger: TenantLedger) -> int:
    """Three lots each worth 9.8 * 10^19 (under the 10^20 a grant allows), 2.94 * 10^20
    together; returns the credit they hold."""
    ledger.create_customer("c1")
    lot = 7 * 10**17  # minor units (scale 2)
    for _ in range(3):
        ledger.grant("c1", "credits", lot, kind="purchased", cost_basis="14000")
    return 3 * lot


def test_a_charge_whose_revenue_a_charge_cannot_record_is_refused_and_changes_nothing(
    ledger: TenantLedger,
) -> None:
    total = _three_costly_lots(ledger)
    with pytest.raises(AmountOverflow) as info:
        ledger.charge("c1", "credits", total, idempotency_key="too-much")
    assert info.value.field == "amount"
    assert "294000000000000000000" in str(info.value)
    balance = ledger.wallet("c1").balance("credits")
    assert (balance.posted, balance.held) == (total, 0)
    # One lot's worth is recorded, its revenue exact.
    charge = ledger.charge("c1", "credits", total // 3, idempotency_key="one-lot")
    assert charge.revenue == 98 * 10**18


def test_a_settle_whose_revenue_a_charge_cannot_record_is_refused_and_the_hold_stays(
    ledger: TenantLedger,
) -> None:
    total = _three_costly_lots(ledger)
    hold = ledger.authorize("c1", "credits", total)
    assert hold.approved
    with pytest.raises(AmountOverflow) as info:
        ledger.settle(hold.id, total)
    assert info.value.field == "amount"
    balance = ledger.wallet("c1").balance("credits")
    assert (balance.posted, balance.held) == (total, total)
    # The hold is still pending: settled for less, it releases the rest.
    settled = ledger.settle(hold.id, total // 3)
    assert settled.authorization.status == "settled"
    assert settled.charge.amount == total // 3 and settled.charge.revenue == 98 * 10**18
    balance = ledger.wallet("c1").balance("credits")
    assert (balance.posted, balance.held) == (total - total // 3, 0)
