"""Budgets: what fits a hard cap, which thresholds a period crosses, and bad definitions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditgate.domain.amounts import MAX_BALANCE
from creditgate.domain.balances import check_balance_thresholds, thresholds_crossed
from creditgate.domain.budgets import (
    Budget,
    BudgetMode,
    check_budget_amount,
    check_mode,
    check_thresholds,
    crossed,
    fits,
    most_chargeable,
    quiet,
)
from creditgate.domain.errors import InvalidInput
from creditgate.domain.periods import CALENDAR, Period


def budget(amount: int, thresholds: tuple[int, ...] = (), mode: str = "hard") -> Budget:
    return Budget(
        "bdg_1", "alice", "credits", amount, Period.MONTH, CALENDAR, BudgetMode(mode), thresholds
    )


def test_a_hard_budget_caps_held_plus_spent_and_a_soft_one_does_not() -> None:
    assert fits(300, held=100, spent=100, asked=100)
    assert not fits(300, held=100, spent=100, asked=101)
    assert fits(None, held=10**9, spent=10**9, asked=1)
    assert budget(300).cap == 300 and budget(300, mode="soft").cap is None


def test_a_settle_may_charge_its_hold_and_what_the_period_has_left() -> None:
    # A hold of 100 in a period that holds it and has spent 150 of 300: 50 are left.
    assert most_chargeable(100, cap=300, held=100, spent=150) == 150
    # Over the cap already (the amount was lowered since): the hold, no more.
    assert most_chargeable(100, cap=200, held=100, spent=150) == 100


def test_thresholds_are_reached_at_the_least_amount_that_makes_the_percentage() -> None:
    assert budget(1_000, (50, 80)).levels() == [(50, 500), (80, 800), (100, 1_000)]
    # 33% of 10 is 3.3: reached at 4 (4 * 100 >= 33 * 10), never at 3.
    assert budget(10, (33,)).levels()[0] == (33, 4)


def test_each_threshold_is_crossed_once_per_period_and_several_at_once() -> None:
    levels = budget(1_000, (50, 80)).levels()
    assert crossed(levels, alerted=0, used=499) == []
    assert crossed(levels, alerted=0, used=500) == [50]
    assert crossed(levels, alerted=0, used=1_000) == [50, 80, 100]
    # Already raised up to 50 this period: back under it and over again raises nothing.
    assert crossed(levels, alerted=50, used=600) == []
    assert crossed(levels, alerted=50, used=850) == [80]
    assert quiet(levels, alerted=100, used=5_000)


@given(
    amount=st.integers(1, 10_000),
    thresholds=st.lists(st.integers(1, 100), max_size=10),
    alerted=st.sampled_from([0, 10, 50, 100]),
    used=st.integers(0, 20_000),
)
def test_a_crossed_threshold_is_one_the_usage_reaches_and_was_not_raised(
    amount: int, thresholds: list[int], alerted: int, used: int
) -> None:
    b = budget(amount, tuple(sorted(set(thresholds))))
    for percent in crossed(b.levels(), alerted, used):
        assert percent > alerted and used * 100 >= percent * amount
    for percent, reached_at in b.levels():
        if percent > alerted and used * 100 >= percent * amount:
            assert percent in crossed(b.levels(), alerted, used)
            assert used >= reached_at


def test_a_wallet_threshold_fires_on_each_fall_below_it_and_not_on_a_rise() -> None:
    assert thresholds_crossed((500, 100), before=600, after=450) == [500]
    assert thresholds_crossed((500, 100), before=600, after=50) == [500, 100]
    assert thresholds_crossed((500, 100), before=450, after=600) == []  # re-armed
    assert thresholds_crossed((500,), before=500, after=499) == [500]
    assert thresholds_crossed((500,), before=499, after=400) == []


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ([0], "hard"),
        ([-5], "hard"),
        ([101], "hard"),  # a hard budget never passes 100
        ([1_001], "soft"),
        ([50.0], "hard"),
        ([True], "hard"),
        ("50", "hard"),
        (list(range(1, 12)), "hard"),  # too many
    ],
)
def test_thresholds_out_of_range_are_refused_naming_the_field(value: object, mode: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_thresholds(value, BudgetMode(mode))
    assert caught.value.field == "thresholds"


def test_thresholds_are_kept_once_each_in_order() -> None:
    assert check_thresholds([80, 50, 80], BudgetMode.HARD) == (50, 80)
    assert check_thresholds([150], BudgetMode.SOFT) == (150,)
    assert check_balance_thresholds([100, -50, 500, 100]) == (500, 100, -50)


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True, MAX_BALANCE + 1])
def test_a_budget_amount_is_a_positive_whole_number_of_minor_units(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_budget_amount(value)
    assert caught.value.field == "amount"


@pytest.mark.parametrize("value", [[MAX_BALANCE + 1], [1.5], ["10"], list(range(11))])
def test_wallet_thresholds_out_of_range_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_balance_thresholds(value)
    assert caught.value.field == "thresholds"


def test_a_budget_mode_is_hard_or_soft() -> None:
    assert check_mode("soft") is BudgetMode.SOFT
    with pytest.raises(InvalidInput) as caught:
        check_mode("strict")
    assert caught.value.field == "mode"


def test_a_budget_counts_in_the_period_of_the_moment() -> None:
    b = budget(100)
    assert b.span(datetime(2026, 2, 14, tzinfo=UTC)).start == datetime(2026, 2, 1, tzinfo=UTC)
