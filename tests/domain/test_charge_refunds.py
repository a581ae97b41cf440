"""The charge refund plan: what a refund gives back to which lot, and to the debt."""

from __future__ import annotations

import pytest

from creditgate.domain.amounts import Asset
from creditgate.domain.charge_refunds import (
    ChargeRefundPlan,
    ChargeTaken,
    LotShare,
    plan_charge_refund,
)
from creditgate.domain.errors import InvalidInput

CREDITS = Asset("credits", 2)


def charge(drawn: list[tuple[str, int]], *, debt: int = 0, refunded: int = 0) -> ChargeTaken:
    return ChargeTaken("chg_1", sum(a for _, a in drawn) + debt, debt, drawn, refunded, CREDITS)


def test_a_full_refund_gives_every_lot_back_last_drawn_first() -> None:
    plan = plan_charge_refund(charge([("promo", 1_000), ("paid", 200)]), None, 0)
    assert plan == ChargeRefundPlan(1_200, 0, 0, (LotShare("paid", 200), LotShare("promo", 1_000)))


def test_a_partial_refund_starts_with_the_lot_drawn_last() -> None:
    plan = plan_charge_refund(charge([("promo", 1_000), ("paid", 200)]), 300, 0)
    assert plan.lots == (LotShare("paid", 200), LotShare("promo", 100))
    assert plan.amount == 300


def test_a_later_refund_continues_where_the_earlier_ones_stopped() -> None:
    taken = charge([("promo", 1_000), ("paid", 200)], refunded=300)
    plan = plan_charge_refund(taken, None, 0)
    assert plan == ChargeRefundPlan(900, 0, 0, (LotShare("promo", 900),))


def test_debt_comes_back_first_and_shrinks_what_the_wallet_owes() -> None:
    plan = plan_charge_refund(charge([("paid", 100)], debt=200), 250, 200)
    assert (plan.debt_back, plan.paid_off, plan.lots) == (200, 0, (LotShare("paid", 50),))


def test_debt_since_paid_off_comes_back_as_new_credit() -> None:
    # The charge made 200 of debt; a later grant paid all of it.
    plan = plan_charge_refund(charge([("paid", 100)], debt=200), None, 0)
    assert (plan.debt_back, plan.paid_off) == (0, 200)
    assert plan.lots == (LotShare("paid", 100),)
    # Paid off in part: the wallet still owes 50 of it.
    part = plan_charge_refund(charge([("paid", 100)], debt=200), None, 50)
    assert (part.debt_back, part.paid_off) == (50, 150)


def test_the_debt_already_refunded_is_skipped() -> None:
    taken = charge([("paid", 100)], debt=200, refunded=150)
    plan = plan_charge_refund(taken, 100, 200)
    assert (plan.debt_back, plan.paid_off, plan.lots) == (50, 0, (LotShare("paid", 50),))


@pytest.mark.parametrize(("refunded", "wanted"), [(0, 1_201), (1_200, None), (1_000, 201)])
def test_a_charge_is_never_refunded_past_what_it_debited(refunded: int, wanted: int | None) -> None:
    taken = charge([("promo", 1_000), ("paid", 200)], refunded=refunded)
    with pytest.raises(InvalidInput, match="left to refund") as refused:
        plan_charge_refund(taken, wanted, 0)
    assert refused.value.field == "amount"


def test_the_refusal_names_amounts_in_the_assets_units() -> None:
    taken = charge([("promo", 1_000), ("paid", 200)], refunded=1_024)
    with pytest.raises(InvalidInput, match=r"has 1\.76 credits left to refund, not 2\.00 credits"):
        plan_charge_refund(taken, 200, 0)


def test_what_the_plan_gives_back_adds_up_to_the_refund() -> None:
    taken = charge([("a", 30), ("b", 40), ("c", 50)], debt=25, refunded=35)
    for wanted in range(1, taken.amount - taken.refunded + 1):
        plan = plan_charge_refund(taken, wanted, 10)
        total = plan.debt_back + plan.paid_off + sum(s.amount for s in plan.lots)
        assert total == plan.amount == wanted
