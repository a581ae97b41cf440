"""Every domain rule the gate restates in SQL agrees with its domain function.

The conditional writes of the hot path check rules against the balance row as it is at the
moment of the write, so they restate them in SQL (`storage/balances.py`):

- the policy's floor, `available + FLOOR >= need`, in the guarded move, the reservation and
  the move sent with the commit: `WalletPolicy.allows` (and, for a positive need, the
  `WalletPolicy.capacity` the careful path plans with);
- that a move sent with the commit needs no reaction (`MOVES_QUIETLY`):
  `domain.balances.moves_quietly`, the balance's alert thresholds included;
- that a hold fits its spend limit's period, and that a settle charges no more than the
  period has left (`storage/spend_limits.py` `FITS`, `SETTLE_FITS`):
  `domain.spend_limits.fits` and `most_chargeable`;
- a budget's cap and alerts over its usage row (`storage/budgets.py`): `ADD_FITS` and
  `SETTLE_FITS` are `domain.budgets.fits` and `settle_fits`, `add_quiet` and `settle_quiet`
  are `domain.budgets.quiet`.

Each is evaluated by the database on the same generated cases as its domain function, on
both backends. Burn order's sort keys (`storage/lots.py` `burn_keys`) are pinned to
`domain.lots.burn_order` by
`tests/integration/test_gate.py::test_the_first_lots_a_debit_reads_are_the_start_of_the_burn_order`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, insert, select, update

from creditgate.api import TenantLedger
from creditgate.domain import spend_limits
from creditgate.domain.amounts import MAX_BALANCE
from creditgate.domain.balances import WalletBalance, moves_quietly
from creditgate.domain.budgets import fits, quiet, settle_fits
from creditgate.domain.policy import PolicyMode, WalletPolicy
from creditgate.storage import spend_limits as limit_sql
from creditgate.storage.balances import MOVES_QUIETLY, ROOM_FOR_NEED
from creditgate.storage.budgets import ADD_FITS, SETTLE_FITS, add_quiet, settle_quiet
from creditgate.storage.tables import budget_usage, customers, spend_periods, wallet_balances

RULES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

modes = st.sampled_from(list(PolicyMode))
amounts = st.integers(-MAX_BALANCE, MAX_BALANCE)
limits = st.integers(0, MAX_BALANCE)
# Small figures meet the boundaries (zero, a threshold, the floor) often.
small = st.integers(-40, 40)
thresholds = st.none() | st.integers(-10, 40)


@pytest.fixture
def row(ledger: TenantLedger) -> Iterator[tuple[Connection, str]]:
    """A customer's balance row in `credits`, in a transaction that is rolled back at the
    end: each case rewrites the row's columns, then asks the database."""
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 1)
    with ledger.cg.db.engine.connect() as conn:
        trans = conn.begin()
        try:
            wallet_id = conn.execute(
                select(customers.c.wallet_id).where(
                    customers.c.tenant_id == ledger.tenant_id, customers.c.external_id == "c1"
                )
            ).scalar_one()
            yield conn, str(wallet_id)
        finally:
            trans.rollback()


def evaluate(
    conn: Connection, wallet_id: str, rule: Any, values: dict[str, Any], **params: Any
) -> bool:
    """The SQL rule over the row set to `values`, as the database evaluates it."""
    this_row = (wallet_balances.c.wallet_id == wallet_id, wallet_balances.c.asset == "credits")
    conn.execute(update(wallet_balances).where(*this_row).values(**values))
    return bool(conn.execute(select(rule).where(*this_row), params).scalar_one())


@RULES
@given(
    mode=modes,
    limit=limits,
    posted=amounts,
    held=amounts,
    need=st.integers(-2 * MAX_BALANCE, 2 * MAX_BALANCE),
)
@example(mode=PolicyMode.BLOCK, limit=0, posted=10, held=0, need=10)
@example(mode=PolicyMode.BLOCK, limit=0, posted=10, held=0, need=11)
@example(mode=PolicyMode.OVERDRAFT, limit=5, posted=0, held=0, need=5)
@example(mode=PolicyMode.OVERDRAFT, limit=5, posted=0, held=0, need=6)
@example(mode=PolicyMode.ALLOW, limit=3, posted=-MAX_BALANCE, held=0, need=0)
@example(mode=PolicyMode.ALLOW, limit=3, posted=-MAX_BALANCE, held=0, need=1)
@example(mode=PolicyMode.OVERDRAFT, limit=5, posted=-20, held=0, need=-3)
@example(mode=PolicyMode.SOFT_CAP, limit=5, posted=0, held=0, need=5)
@example(mode=PolicyMode.SOFT_CAP, limit=5, posted=0, held=0, need=6)
def test_the_floor_guard_is_the_policy_allowing_the_move(
    row: tuple[Connection, str], mode: PolicyMode, limit: int, posted: int, held: int, need: int
) -> None:
    conn, wallet_id = row
    policy = WalletPolicy(mode, limit)
    expected = policy.allows(posted - held, need)
    if need > 0:  # what the careful path plans with says the same
        assert expected == (policy.capacity(posted - held) >= need)
    values = {"policy": mode.value, "overdraft_limit": limit, "posted": posted, "held": held}
    assert evaluate(conn, wallet_id, ROOM_FOR_NEED, values, need=need) == expected


@RULES
@given(
    posted=small,
    held=st.integers(0, 20),
    change=small,
    low=thresholds,
    alerted=st.booleans(),
    top_up=thresholds,
    alerts=st.none() | st.lists(st.integers(-10, 40), max_size=4),
)
@example(posted=5, held=0, change=-5, low=None, alerted=False, top_up=None, alerts=None)  # depletes
@example(
    posted=0, held=0, change=-5, low=None, alerted=False, top_up=None, alerts=None
)  # already at 0
@example(
    posted=10, held=0, change=-1, low=10, alerted=False, top_up=None, alerts=None
)  # falls below
@example(posted=8, held=0, change=-1, low=10, alerted=True, top_up=None, alerts=None)  # stays below
@example(posted=8, held=0, change=5, low=10, alerted=True, top_up=None, alerts=None)  # rises to it
@example(
    posted=8, held=0, change=1, low=None, alerted=True, top_up=None, alerts=None
)  # a stale flag
@example(
    posted=10, held=0, change=-1, low=None, alerted=False, top_up=10, alerts=None
)  # top-up fires
@example(
    posted=9, held=0, change=1, low=None, alerted=False, top_up=10, alerts=None
)  # top-up re-arms
@example(posted=10, held=0, change=-1, low=None, alerted=False, top_up=None, alerts=[10])
@example(posted=10, held=0, change=-1, low=None, alerted=False, top_up=None, alerts=[9])
@example(posted=9, held=0, change=5, low=None, alerted=False, top_up=None, alerts=[10, -3])
@example(posted=0, held=0, change=-5, low=None, alerted=False, top_up=None, alerts=[-3])
def test_a_quiet_move_is_one_that_needs_no_reaction(
    row: tuple[Connection, str],
    posted: int,
    held: int,
    change: int,
    low: int | None,
    alerted: bool,
    top_up: int | None,
    alerts: list[int] | None,
) -> None:
    conn, wallet_id = row
    policy = WalletPolicy(PolicyMode.BLOCK, 0, low)
    levels = tuple(sorted(set(alerts or ()), reverse=True))
    balance = WalletBalance(wallet_id, "credits", posted, held, 0, policy, alerted, top_up, levels)
    expected = moves_quietly(balance, change)
    values = {
        "policy": PolicyMode.BLOCK.value,
        "overdraft_limit": 0,
        "posted": posted,
        "held": held,
        "low_balance_threshold": low,
        "low_balance_alerted": int(alerted),
        "top_up_threshold": top_up,
        "thresholds": list(levels) or None,
    }
    assert evaluate(conn, wallet_id, MOVES_QUIETLY, values, change=change) == expected


@pytest.fixture
def usage_row(ledger: TenantLedger) -> Iterator[Connection]:
    """A budget's usage row, in a transaction rolled back at the end (see `row`)."""
    with ledger.cg.db.engine.connect() as conn:
        trans = conn.begin()
        try:
            conn.execute(
                budget_usage.insert().values(
                    tenant_id=ledger.tenant_id,
                    wallet_id="wal_rules",
                    budget_id="bdg_rules",
                    period_start=datetime(2026, 1, 1, tzinfo=UTC),
                    asset="credits",
                    cap=None,
                    held=0,
                    spent=0,
                    alerted=0,
                )
            )
            yield conn
        finally:
            trans.rollback()


def on_usage_row(conn: Connection, rule: Any, values: dict[str, Any], **params: Any) -> bool:
    this_row = (budget_usage.c.budget_id == "bdg_rules",)
    conn.execute(update(budget_usage).where(*this_row).values(**values))
    return bool(conn.execute(select(rule).where(*this_row), params).scalar_one())


caps = st.none() | st.integers(0, 60)
usages = st.integers(0, 40)


@RULES
@given(cap=caps, held=usages, spent=usages, dh=usages, ds=usages)
@example(cap=30, held=10, spent=10, dh=10, ds=0)
@example(cap=30, held=10, spent=10, dh=11, ds=0)
def test_a_budget_write_fits_as_the_domain_says(
    usage_row: Connection, cap: int | None, held: int, spent: int, dh: int, ds: int
) -> None:
    expected = fits(cap, held, spent, dh + ds)
    values = {"held": held, "spent": spent}
    assert on_usage_row(usage_row, ADD_FITS, values, cap=cap, dh=dh, ds=ds) == expected


@RULES
@given(cap=caps, held=usages, spent=usages, released=usages, charged=usages)
@example(cap=20, held=10, spent=15, released=10, charged=10)  # over the cap, charges its hold
@example(cap=30, held=10, spent=10, released=10, charged=21)
@example(cap=30, held=10, spent=10, released=10, charged=20)
def test_a_settle_fits_a_budget_as_the_domain_says(
    usage_row: Connection, cap: int | None, held: int, spent: int, released: int, charged: int
) -> None:
    expected = settle_fits(cap, held, spent, released, charged)
    values = {"held": held, "spent": spent, "cap": cap}
    got = on_usage_row(usage_row, SETTLE_FITS, values, released=released, charged=charged)
    assert got == expected


def _levels(amount: int, percents: list[int]) -> list[tuple[int, int]]:
    return [(p, -(-p * amount // 100)) for p in sorted({*percents, 100})]


@RULES
@given(
    amount=st.integers(1, 50),
    percents=st.lists(st.integers(1, 150), max_size=4),
    alerted=st.sampled_from([0, 25, 50, 100, 150]),
    held=usages,
    spent=usages,
    dh=usages,
    released=usages,
    charged=usages,
)
@example(amount=10, percents=[50], alerted=0, held=4, spent=0, dh=1, released=0, charged=0)
@example(amount=10, percents=[50], alerted=50, held=4, spent=0, dh=1, released=0, charged=0)
def test_a_budget_write_is_quiet_as_the_domain_says(
    usage_row: Connection,
    amount: int,
    percents: list[int],
    alerted: int,
    held: int,
    spent: int,
    dh: int,
    released: int,
    charged: int,
) -> None:
    levels = _levels(amount, percents)
    params: dict[str, int] = {}
    for i, (percent, reached_at) in enumerate(levels):
        params[f"pct_{i}"], params[f"at_{i}"] = percent, reached_at
    values = {"held": held, "spent": spent, "alerted": alerted}
    added = quiet(levels, alerted, held + spent + dh)
    assert on_usage_row(usage_row, add_quiet(len(levels)), values, dh=dh, ds=0, **params) == added
    settled = quiet(levels, alerted, held - released + spent + charged)
    rule = settle_quiet(len(levels))
    assert on_usage_row(usage_row, rule, values, released=released, charged=charged, **params) == (
        settled
    )


@pytest.fixture
def period(row: tuple[Connection, str]) -> tuple[Connection, Any]:
    """A spend limit's period row beside the balance row, in the same rolled-back
    transaction."""
    conn, wallet_id = row
    start = datetime(2026, 1, 1, tzinfo=UTC)
    conn.execute(
        insert(spend_periods).values(
            tenant_id="t",
            wallet_id=wallet_id,
            limit_id="gwk_rules",
            period_start=start,
            asset="credits",
            cap=0,
            held=0,
            spent=0,
        )
    )
    this_row = (spend_periods.c.limit_id == "gwk_rules", spend_periods.c.period_start == start)
    return conn, this_row


def _over_period(
    period: tuple[Connection, Any], rule: Any, values: dict[str, int], **params: int
) -> bool:
    conn, this_row = period
    conn.execute(update(spend_periods).where(*this_row).values(**values))
    bound = {f"p_{name}": value for name, value in params.items()}
    return bool(conn.execute(select(rule).where(*this_row), bound).scalar_one())


@RULES
@given(
    cap=st.integers(0, 60),
    held=st.integers(0, 40),
    spent=st.integers(0, 40),
    asked=st.integers(0, 60),
)
@example(cap=10, held=4, spent=6, asked=0)
@example(cap=10, held=4, spent=5, asked=1)
@example(cap=10, held=4, spent=5, asked=2)
def test_the_reserve_guard_is_the_hold_fitting_its_limit(
    period: tuple[Connection, Any], cap: int, held: int, spent: int, asked: int
) -> None:
    expected = spend_limits.fits(cap, held, spent, asked)
    values = {"held": held, "spent": spent, "cap": cap}
    assert _over_period(period, limit_sql.FITS, values, asked=asked, cap=cap) == expected


@RULES
@given(
    cap=st.integers(0, 60),
    released=st.integers(0, 20),
    others=st.integers(0, 20),
    spent=st.integers(0, 40),
    charged=st.integers(0, 80),
)
@example(cap=10, released=4, others=0, spent=6, charged=4)
@example(cap=10, released=4, others=0, spent=6, charged=5)
@example(cap=10, released=4, others=0, spent=2, charged=8)
@example(cap=10, released=4, others=0, spent=2, charged=9)
def test_the_settle_guard_is_the_charge_within_what_the_period_has_left(
    period: tuple[Connection, Any], cap: int, released: int, others: int, spent: int, charged: int
) -> None:
    held = released + others  # the hold settled is among the period's open holds
    if held + spent > cap:  # a state the reserve never lets a period reach
        return
    expected = charged <= spend_limits.most_chargeable(released, cap, held, spent)
    values = {"held": held, "spent": spent, "cap": cap}
    got = _over_period(period, limit_sql.SETTLE_FITS, values, released=released, charged=charged)
    assert got == expected
