"""The reference model catches what it is there to catch: lost, doubled and early effects."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from creditgate.chaos.history import OK, Op
from creditgate.chaos.model import ReferenceModel, ServerState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATEST = T0 + timedelta(hours=1)


def _ops() -> list[Op]:
    grant = Op("grant", "k1", "w0", "/grants", {"amount": 100}, OK, 201, seq=0)
    grant.answer = {"id": "lot_a", "amount": 100, "expires_at": None}
    auth = Op("authorize", "k2", "w0", "/authorizations", {"amount": 30}, OK, 201, seq=1)
    auth.answer = {"id": "hld_a", "approved": True, "amount": 30}
    draw = {"lot_id": "lot_a", "amount": 25, "cost_basis": "0"}
    charge = {"id": "chg_a", "amount": 25, "debt": 0, "draws": [draw], "status": "posted"}
    settle = Op("settle", "k3", "w0", "/settle", {"amount": 25}, OK, 200, seq=2)
    settle.answer = {"authorization": {"id": "hld_a"}, "charge": charge}
    refund = Op("refund", "k4", "w0", "/refunds", {"amount": 5}, OK, 201, seq=3)
    refund.answer = {
        "id": "rfd_a",
        "charge_id": "chg_a",
        "amount": 5,
        "charge_refunded": 5,
        "lines": [{"lot_id": "lot_a", "amount": 5, "to_lot": "lot_a"}],
    }
    return [grant, auth, settle, refund]


def _state() -> ServerState:
    lot = {
        "amount": 100,
        "consumed": 25,
        "refunded": 5,
        "expired": 0,
        "voided": 0,
        "remaining": 80,
        "expires_at": None,
    }
    return ServerState(
        lots={"lot_a": lot},
        holds={"hld_a": {"status": "settled", "charge_id": "chg_a", "expires_at": LATEST}},
        charges={"chg_a": {"amount": 25, "debt": 0, "refunded": 5}},
        balances={"w0": {"posted": 80, "held": 0, "debt": 0}},
        expired_by_lot={},
        repaid_by_lot={},
        keys={"k1", "k2", "k3", "k4"},
    )


def _check(ops: list[Op], state: ServerState) -> Any:
    model = ReferenceModel({"w0": ("block", 0)})
    model.replay(ops)
    keys = {op.key for op in ops if op.outcome == OK}
    return model.compare(state, acknowledged_keys=keys, latest_clock=LATEST, final_clock=LATEST)


def test_a_consistent_history_passes() -> None:
    findings = _check(_ops(), _state())
    assert findings.violations == []
    assert findings.checked["lots"] == findings.checked["charges"] == 1


def test_a_lost_charge_is_found() -> None:
    state = _state()
    del state.charges["chg_a"]
    findings = _check(_ops(), state)
    assert findings.lost >= 1


def test_an_effect_without_an_acknowledged_request_is_a_duplicate() -> None:
    state = _state()
    state.charges["chg_b"] = {"amount": 10, "debt": 0, "refunded": 0}
    assert _check(_ops(), state).duplicated == 1


def test_a_refund_applied_twice_is_found() -> None:
    state = _state()
    state.charges["chg_a"]["refunded"] = 10
    state.lots["lot_a"].update(refunded=10, remaining=85)
    state.balances["w0"]["posted"] = 85
    findings = _check(_ops(), state)
    assert findings.invariant_violations >= 2


def test_a_hold_acknowledged_voided_but_settled_is_found() -> None:
    ops = _ops()
    void = Op("void", "k5", "w0", "/void", {}, OK, 200, seq=4)
    void.answer = {"id": "hld_a"}
    findings = _check([*ops, void], _state())
    assert any("voided after it was settled" in v for v in findings.violations)


def test_a_lot_expired_before_its_time_is_found() -> None:
    ops = _ops()
    ops[0].answer = {"id": "lot_a", "amount": 100, "expires_at": (LATEST + timedelta(days=1))}
    state = _state()
    state.lots["lot_a"].update(expired=80, remaining=0, expires_at=LATEST + timedelta(days=1))
    state.expired_by_lot = {"lot_a": 80}
    state.balances["w0"]["posted"] = 0
    findings = _check(ops, state)
    assert any("before its time" in v for v in findings.violations)


def test_an_acknowledged_key_missing_is_lost() -> None:
    state = copy.deepcopy(_state())
    state.keys.discard("k4")
    assert _check(_ops(), state).lost == 1


def test_overspend_under_block_is_found() -> None:
    state = _state()
    state.balances["w0"]["posted"] = -5
    findings = _check(_ops(), state)
    assert any("under block" in v for v in findings.violations)
