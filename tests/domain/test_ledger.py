"""Double-entry postings: every builder yields balanced entries on the right accounts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditgate.domain.ledger import (
    Account,
    Entry,
    charge_entries,
    debt_repayment_entries,
    grant_entries,
    is_balanced,
    removal_entries,
)
from creditgate.domain.lots import Draw, LotKind


def wallet_change(entries: list[Entry]) -> int:
    return sum(e.amount for e in entries if e.account == Account.WALLET)


@pytest.mark.parametrize("kind", list(LotKind))
def test_a_grant_moves_credit_from_the_kinds_issued_account_into_the_lot(kind: LotKind) -> None:
    entries = grant_entries(kind, "lot_1", 1_000)
    assert is_balanced(entries)
    assert entries == [
        Entry(f"issued:{kind.value}", -1_000),
        Entry(Account.WALLET, 1_000, "lot_1"),
    ]


def test_a_charge_debits_each_lot_drawn_and_credits_usage() -> None:
    draws = [Draw("lot_a", 300, Decimal(0)), Draw("lot_b", 200, Decimal("0.25"))]
    entries = charge_entries(draws, 0)
    assert is_balanced(entries)
    assert entries == [
        Entry(Account.WALLET, -300, "lot_a"),
        Entry(Account.WALLET, -200, "lot_b"),
        Entry(Account.USAGE, 500),
    ]


def test_a_charge_past_the_lots_records_debt_on_the_wallet_without_a_lot() -> None:
    entries = charge_entries([Draw("lot_a", 100, Decimal(0))], 400)
    assert is_balanced(entries)
    assert Entry(Account.WALLET, -400) in entries
    assert wallet_change(entries) == -500
    assert Entry(Account.USAGE, 500) in entries


@given(
    draws=st.lists(st.integers(min_value=1, max_value=10**12), max_size=6),
    debt=st.integers(min_value=0, max_value=10**12),
)
def test_charges_are_balanced_and_usage_gets_everything_debited(
    draws: list[int], debt: int
) -> None:
    entries = charge_entries(
        [Draw(f"lot_{i}", amount, Decimal(0)) for i, amount in enumerate(draws)], debt
    )
    assert is_balanced(entries)
    assert -wallet_change(entries) == sum(draws) + debt
    assert [e.amount for e in entries if e.account == Account.USAGE] == [sum(draws) + debt]
    assert all(e.amount != 0 for e in entries if e.account == Account.WALLET)


@pytest.mark.parametrize("sink", [Account.EXPIRED, Account.VOIDED])
def test_removals_take_credit_from_the_lot_into_the_sink(sink: Account) -> None:
    entries = removal_entries(sink, "lot_1", 700)
    assert is_balanced(entries)
    assert entries == [Entry(Account.WALLET, -700, "lot_1"), Entry(sink, 700)]


def test_debt_repayment_moves_lot_credit_onto_the_debt_without_changing_posted() -> None:
    entries = debt_repayment_entries("lot_1", 250)
    assert is_balanced(entries)
    assert wallet_change(entries) == 0
    lot_side = [e for e in entries if e.lot_id == "lot_1"]
    assert lot_side == [Entry(Account.WALLET, -250, "lot_1")]


def test_unbalanced_entries_are_detected() -> None:
    assert not is_balanced([Entry(Account.WALLET, 10, "lot_1"), Entry(Account.USAGE, -9)])
    assert is_balanced([])
