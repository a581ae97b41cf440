"""The purchase refund plan: what a refund takes back, from which credit, and its money."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditgate.domain.amounts import Asset
from creditgate.domain.billing import refunded_money
from creditgate.domain.billing_errors import RefundNotCovered
from creditgate.domain.errors import InvalidInput
from creditgate.domain.ledger import Account, Entry
from creditgate.domain.lots import Draw, LotBalance
from creditgate.domain.policy import WalletPolicy
from creditgate.domain.refunds import (
    ConsumedDebit,
    RefundablePurchase,
    RefundPlan,
    check_consumed_covered,
    consumed_debit_entries,
    consumed_still_held,
    debit_consumed,
    plan_purchase_refund,
    refund_entries,
    unused_credit,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CREDITS = Asset("credits", 2)


def bought(
    *,
    amount: int = 10_000,
    refunded: int = 0,
    price: str = "25.00",
    refunded_money: str = "0",
    unused: int = 10_000,
    consumed: int = 0,
    digits: int = 2,
) -> RefundablePurchase:
    return RefundablePurchase(
        id="pur_1",
        asset=CREDITS,
        amount=amount,
        refunded=refunded,
        price=Decimal(price),
        refunded_money=Decimal(refunded_money),
        currency="USD",
        digits=digits,
        unused=unused,
        consumed=consumed,
    )


def test_by_default_all_the_unused_credit_is_refunded_for_its_share_of_the_price() -> None:
    plan = plan_purchase_refund(bought(unused=4_000), None, False)
    assert plan == RefundPlan(4_000, 4_000, 0, Decimal("10.00"), Decimal("10.00"))


def test_consumed_credit_comes_after_the_unused_and_only_on_request() -> None:
    purchase = bought(unused=3_000, consumed=7_000)
    plan = plan_purchase_refund(purchase, 5_000, True)
    assert (plan.amount, plan.from_unused, plan.from_consumed) == (5_000, 3_000, 2_000)
    assert plan.money == Decimal("12.50")
    with pytest.raises(InvalidInput, match="pass include_consumed") as info:
        plan_purchase_refund(bought(unused=3_000), 5_000, False)
    assert info.value.field == "amount"


def test_nothing_to_refund_and_more_than_is_left_are_refused() -> None:
    with pytest.raises(InvalidInput, match="has no credit to refund"):
        plan_purchase_refund(bought(unused=0), None, False)
    # Amounts in the asset's units, as a person reads them: 6,000 minor units are 60.00.
    with pytest.raises(InvalidInput, match=r"has 60\.00 credits to refund, not 70\.00 credits"):
        plan_purchase_refund(bought(refunded=4_000, unused=10_000), 7_000, False)


def test_refunds_in_parts_pay_what_one_refund_would() -> None:
    # 3 credits of 7 bought for $1.00, one at a time: 0.14, 0.15, 0.14 (the running total
    # 0.14, 0.29, 0.43 rounded half to even), the same 0.43 as refunding 3 at once.
    paid = Decimal(0)
    for n in range(3):
        purchase = bought(amount=7, refunded=n, price="1.00", refunded_money=str(paid), unused=7)
        plan = plan_purchase_refund(purchase, 1, False)
        assert plan.money_total - paid == plan.money
        paid = plan.money_total
    assert paid == plan_purchase_refund(bought(amount=7, price="1.00", unused=7), 3, False).money


def test_a_refund_worth_less_than_a_minor_unit_is_refused() -> None:
    with pytest.raises(
        InvalidInput,
        match=r"0\.01 credits of 100\.00 credits are worth less than one minor unit of USD",
    ):
        plan_purchase_refund(bought(amount=10_000, price="0.01", unused=10_000), 1, False)


def test_consumed_credit_is_debited_again_within_the_policy() -> None:
    plan = plan_purchase_refund(bought(unused=1_000, consumed=9_000), 3_000, True)
    block = WalletPolicy.build("block", None)
    check_consumed_covered(plan, block, 3_000, CREDITS)  # 2,000 left after the unused
    with pytest.raises(
        RefundNotCovered, match=r"20\.00 credits of consumed .* allows 10\.00 credits"
    ):
        check_consumed_covered(plan, block, 2_000, CREDITS)
    check_consumed_covered(plan, WalletPolicy.build("overdraft", 1_000), 2_000, CREDITS)


def test_the_debit_draws_other_lots_in_burn_order_and_the_rest_is_debt() -> None:
    plan = RefundPlan(3_000, 1_000, 2_000, Decimal("7.50"), Decimal("7.50"))
    soon = LotBalance("lot_a", 500, 0, NOW + timedelta(days=1), NOW, Decimal("0.01"))
    later = LotBalance("lot_b", 1_000, 0, None, NOW, Decimal("0.02"))
    debit = debit_consumed(plan, [later, soon], NOW)
    assert debit == ConsumedDebit(
        [Draw("lot_a", 500, Decimal("0.01")), Draw("lot_b", 1_000, Decimal("0.02"))], 500
    )
    entries = consumed_debit_entries(debit)
    assert sum(e.amount for e in entries) == 0


def test_the_refund_entries_balance_and_take_consumed_usage_off_the_lot_first() -> None:
    unused_only = RefundPlan(400, 400, 0, Decimal(1), Decimal(1))
    assert refund_entries(unused_only, "lot_p") == [
        Entry(Account.WALLET, -400, "lot_p"),
        Entry(Account.REFUNDED, 400, "lot_p"),
    ]
    both = RefundPlan(400, 100, 300, Decimal(1), Decimal(1))
    entries = refund_entries(both, "lot_p")
    assert entries[:2] == [Entry(Account.USAGE, -300), Entry(Account.WALLET, 300, "lot_p")]
    assert sum(e.amount for e in entries) == 0


def test_what_a_lot_can_give_back() -> None:
    assert unused_credit(1_000, 300) == 700
    assert unused_credit(100, 300) == 0
    assert consumed_still_held(900, 100, 50) == 750
    assert consumed_still_held(100, 100, 50) == 0


@given(
    amount=st.integers(1, 10**6),
    data=st.data(),
)
def test_a_plan_never_refunds_more_credit_or_money_than_is_left(
    amount: int, data: st.DataObject
) -> None:
    refunded = data.draw(st.integers(0, amount - 1))
    unused = data.draw(st.integers(0, amount - refunded))
    consumed = data.draw(st.integers(0, amount - refunded - unused))
    cents = data.draw(st.integers(1, 10**7))
    price = Decimal(cents).scaleb(-2)
    before = refunded_money(price, amount, refunded, 2)
    purchase = bought(
        amount=amount,
        refunded=refunded,
        price=str(price),
        refunded_money=str(before),
        unused=unused,
        consumed=consumed,
    )
    try:
        plan = plan_purchase_refund(purchase, None, True)
    except InvalidInput:
        return
    assert plan.amount == plan.from_unused + plan.from_consumed <= amount - refunded
    assert plan.from_unused <= unused and plan.from_consumed <= consumed
    assert plan.money > 0 and plan.money_total <= price
    assert plan.money_total - before == plan.money
