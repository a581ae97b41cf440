"""Wallet policies: building them from input, and how much each lets a wallet spend."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditgate.domain.amounts import MAX_BALANCE
from creditgate.domain.errors import InvalidInput
from creditgate.domain.policy import DeclineReason, PolicyMode, WalletPolicy


def test_the_default_is_block_with_no_overdraft() -> None:
    policy = WalletPolicy.build()
    assert policy == WalletPolicy(PolicyMode.BLOCK, 0, None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "credit"}, "policy"),
        ({"mode": ""}, "policy"),
        ({"mode": "BLOCK"}, "policy"),
        ({"mode": "overdraft"}, "overdraft_limit"),  # the limit is required
        ({"mode": "overdraft", "overdraft_limit": -1}, "overdraft_limit"),
        ({"mode": "overdraft", "overdraft_limit": 10.0}, "overdraft_limit"),
        ({"mode": "overdraft", "overdraft_limit": True}, "overdraft_limit"),
        ({"mode": "overdraft", "overdraft_limit": MAX_BALANCE + 1}, "overdraft_limit"),
        ({"mode": "overdraft", "overdraft_limit": 2**63}, "overdraft_limit"),
        ({"mode": "block", "overdraft_limit": 500}, "overdraft_limit"),
        ({"mode": "allow", "overdraft_limit": 500}, "overdraft_limit"),
        ({"low_balance_threshold": -1}, "low_balance_threshold"),
        ({"low_balance_threshold": 1.5}, "low_balance_threshold"),
        ({"low_balance_threshold": MAX_BALANCE + 1}, "low_balance_threshold"),
    ],
)
def test_bad_policies_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        WalletPolicy.build(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_good_policies() -> None:
    assert WalletPolicy.build("overdraft", 500) == WalletPolicy(PolicyMode.OVERDRAFT, 500)
    assert WalletPolicy.build("overdraft", 0).overdraft_limit == 0
    assert WalletPolicy.build("overdraft", MAX_BALANCE).overdraft_limit == MAX_BALANCE
    assert WalletPolicy.build(PolicyMode.ALLOW).mode is PolicyMode.ALLOW
    assert WalletPolicy.build("block", 0).overdraft_limit == 0
    assert WalletPolicy.build("block", low_balance_threshold=0).low_balance_threshold == 0


def test_capacity_per_mode() -> None:
    block = WalletPolicy.build("block")
    assert block.capacity(1_000) == 1_000
    assert block.capacity(0) == 0
    assert block.capacity(-50) == 0

    overdraft = WalletPolicy.build("overdraft", 500)
    assert overdraft.capacity(1_000) == 1_500
    assert overdraft.capacity(-200) == 300
    assert overdraft.capacity(-500) == 0
    assert overdraft.capacity(-900) == 0

    allow = WalletPolicy.build("allow")
    assert allow.capacity(-(10**15)) > 10**15
    assert allow.capacity(0) == MAX_BALANCE


@given(
    mode=st.sampled_from(["block", "overdraft"]),
    limit=st.integers(min_value=0, max_value=10**9),
    available=st.integers(min_value=-(10**9), max_value=10**9),
)
def test_spending_the_capacity_lands_exactly_on_the_floor(
    mode: str, limit: int, available: int
) -> None:
    policy = WalletPolicy.build(mode, limit if mode == "overdraft" else None)
    floor = -policy.overdraft_limit
    capacity = policy.capacity(available)
    assert capacity >= 0
    if available >= floor:
        assert available - capacity == floor
    else:
        assert capacity == 0


def test_decline_reasons_name_the_policy() -> None:
    assert WalletPolicy.build("block").decline_reason() is DeclineReason.INSUFFICIENT_FUNDS
    assert (
        WalletPolicy.build("overdraft", 1).decline_reason() is DeclineReason.OVERDRAFT_LIMIT_REACHED
    )
    assert WalletPolicy.build("allow").decline_reason() is DeclineReason.BALANCE_LIMIT_REACHED


def test_low_balance_is_strictly_below_the_threshold() -> None:
    policy = WalletPolicy.build("block", low_balance_threshold=500)
    assert not policy.is_low(500)
    assert policy.is_low(499)
    assert policy.is_low(-10)
    assert not WalletPolicy.build("block").is_low(-(10**9))


def test_a_soft_cap_floors_like_overdraft_and_is_reached_once_per_crossing() -> None:
    soft = WalletPolicy.build("soft_cap", 500)
    assert (soft.effective_limit, soft.capacity(0)) == (500, 500)
    assert soft.decline_reason().value == "overdraft_limit_reached"
    assert soft.soft_cap_reached(100, 0) and soft.soft_cap_reached(1, -499)
    assert not soft.soft_cap_reached(0, -100)  # already at or below zero: no new crossing
    assert not soft.soft_cap_reached(200, 100)
    assert not WalletPolicy.build("overdraft", 500).soft_cap_reached(100, -1)
    with pytest.raises(InvalidInput) as missing:
        WalletPolicy.build("soft_cap")
    assert missing.value.field == "overdraft_limit"
