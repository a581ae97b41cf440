"""Authorize, settle, void and charge on both backends."""

from __future__ import annotations

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


def test_a_wallet_of_many_small_lots_is_drawn_in_burn_order(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    # More lots than a debit reads at first (LOT_WINDOW): a debit the first lots cannot
    # cover reads them all, and every debit draws in burn order (oldest first here).
    from creditgate.services._wallet import LOT_WINDOW

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
