"""Burn order, planning draws from lots, and how much of an expiring lot may expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from creditgate.domain.lots import LotBalance, burn_order, expirable, held_shares, plan_draws

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def lot(
    lot_id: str,
    remaining: int = 100,
    *,
    priority: int = 0,
    expires_in: timedelta | None = None,
    age: timedelta = timedelta(days=1),
    cost_basis: str = "0",
) -> LotBalance:
    return LotBalance(
        id=lot_id,
        remaining=remaining,
        priority=priority,
        expires_at=None if expires_in is None else NOW + expires_in,
        created_at=NOW - age,
        cost_basis=Decimal(cost_basis),
    )


def ids(lots: list[LotBalance]) -> list[str]:
    return [x.id for x in lots]


def test_lower_priority_number_burns_first_whatever_the_expiry() -> None:
    lots = [
        lot("soon_p5", priority=5, expires_in=timedelta(hours=1)),
        lot("never_p0", priority=0),
        lot("later_p1", priority=1, expires_in=timedelta(days=30)),
    ]
    assert ids(burn_order(lots, NOW)) == ["never_p0", "later_p1", "soon_p5"]


def test_within_a_priority_soonest_expiry_first_and_no_expiry_last() -> None:
    lots = [
        lot("never", age=timedelta(days=90)),
        lot("month", expires_in=timedelta(days=30)),
        lot("week", expires_in=timedelta(days=7)),
        lot("hour", expires_in=timedelta(hours=1), age=timedelta(seconds=1)),
    ]
    assert ids(burn_order(lots, NOW)) == ["hour", "week", "month", "never"]


def test_same_priority_and_expiry_burns_the_oldest_first() -> None:
    week = timedelta(days=7)
    lots = [
        lot("new", expires_in=week, age=timedelta(hours=1)),
        lot("old", expires_in=week, age=timedelta(days=3)),
        lot("new_forever", age=timedelta(hours=1)),
        lot("old_forever", age=timedelta(days=3)),
    ]
    assert ids(burn_order(lots, NOW)) == ["old", "new", "old_forever", "new_forever"]


def test_overdue_lots_burn_before_everything_else() -> None:
    # An overdue lot still holding credit is what the sweep kept back for open holds.
    lots = [
        lot("p0_soon", priority=0, expires_in=timedelta(minutes=5)),
        lot("overdue_p9", priority=9, expires_in=timedelta(minutes=-5)),
        lot("overdue_exactly_now", priority=3, expires_in=timedelta(0)),
    ]
    # Among overdue lots the usual order still applies (priority 3 before 9).
    assert ids(burn_order(lots, NOW)) == ["overdue_exactly_now", "overdue_p9", "p0_soon"]
    # An hour earlier, nothing was overdue and priority decided.
    earlier = NOW - timedelta(hours=1)
    assert ids(burn_order(lots, earlier)) == ["p0_soon", "overdue_exactly_now", "overdue_p9"]


def test_empty_lots_are_not_in_the_burn_order() -> None:
    lots = [lot("empty", 0, expires_in=timedelta(hours=1)), lot("full", 5)]
    assert ids(burn_order(lots, NOW)) == ["full"]


def test_plan_draws_takes_lots_in_burn_order_and_reports_the_shortfall() -> None:
    lots = [
        lot("purchased", 500, priority=10, cost_basis="0.25"),
        lot("promo", 300, expires_in=timedelta(days=7)),
        lot("included", 1_000, expires_in=timedelta(days=30), cost_basis="0.01"),
    ]
    draws, short = plan_draws(lots, 1_500, NOW)
    assert [(d.lot_id, d.amount, d.cost_basis) for d in draws] == [
        ("promo", 300, Decimal(0)),
        ("included", 1_000, Decimal("0.01")),
        ("purchased", 200, Decimal("0.25")),
    ]
    assert short == 0

    draws, short = plan_draws(lots, 2_000, NOW)
    assert sum(d.amount for d in draws) == 1_800 and short == 200


def test_plan_draws_of_nothing_draws_nothing() -> None:
    assert plan_draws([lot("a")], 0, NOW) == ([], 0)
    assert plan_draws([], 50, NOW) == ([], 50)


lot_strategy = st.builds(
    lot,
    lot_id=st.uuids().map(str),
    remaining=st.integers(min_value=0, max_value=10_000),
    priority=st.integers(min_value=0, max_value=3),
    expires_in=st.none() | st.integers(min_value=-3, max_value=5).map(lambda d: timedelta(days=d)),
    age=st.integers(min_value=0, max_value=5).map(lambda d: timedelta(days=d)),
)


@given(lots=st.lists(lot_strategy, max_size=8), amount=st.integers(min_value=0, max_value=60_000))
def test_plan_draws_conserves_the_amount(lots: list[LotBalance], amount: int) -> None:
    draws, short = plan_draws(lots, amount, NOW)
    total = sum(x.remaining for x in lots)
    by_id = {x.id: x for x in lots}
    assert sum(d.amount for d in draws) + short == amount
    assert short == max(0, amount - total)
    assert all(0 < d.amount <= by_id[d.lot_id].remaining for d in draws)
    assert len({d.lot_id for d in draws}) == len(draws)
    # Draws follow the burn order, and only the last lot drawn may be left partly full.
    order = ids(burn_order(lots, NOW))
    assert [d.lot_id for d in draws] == order[: len(draws)]
    assert all(d.amount == by_id[d.lot_id].remaining for d in draws[:-1])
    assert all(d.cost_basis == by_id[d.lot_id].cost_basis for d in draws)


@given(lots=st.lists(lot_strategy, max_size=8))
def test_burn_order_is_a_total_order_independent_of_input_order(lots: list[LotBalance]) -> None:
    assert ids(burn_order(lots, NOW)) == ids(burn_order(list(reversed(lots)), NOW))


def test_expiry_keeps_the_expiring_lot_s_share_of_open_holds() -> None:
    expiring = lot("promo", 1_000, expires_in=timedelta(hours=1))
    paid = lot("paid", 500, priority=5)
    # A 600 hold draws on the promo lot first (same priority order puts it first).
    shares = held_shares([expiring, paid], 600)
    assert shares == {"promo": 600}
    assert expirable(expiring, shares) == 400
    # Nothing held: everything goes.
    assert expirable(expiring, held_shares([expiring, paid], 0)) == 1_000
    # Held more than the lots hold (overdraft): the expiring lot keeps everything.
    assert expirable(expiring, held_shares([expiring, paid], 2_000)) == 0
    # Another lot earlier in burn order covers the hold: the expiring lot goes in full.
    first = lot("first", 700, priority=0, expires_in=timedelta(minutes=5))
    later = lot("later", 300, priority=9, expires_in=timedelta(minutes=1))
    assert expirable(later, held_shares([first, later], 600)) == 300


@given(
    lots=st.lists(lot_strategy, max_size=8, unique_by=lambda x: x.id),
    held=st.integers(min_value=0, max_value=10**13),
)
def test_expiry_never_uncovers_held_credit(lots: list[LotBalance], held: int) -> None:
    shares = held_shares(lots, held)
    assert sum(shares.values()) == min(held, sum(x.remaining for x in lots))
    for x in lots:
        gone = expirable(x, shares)
        assert 0 <= gone <= x.remaining
    # Expiring every lot at once still leaves what the holds need, as far as lots can.
    left = sum(x.remaining - expirable(x, shares) for x in lots)
    assert left == min(held, sum(x.remaining for x in lots))
