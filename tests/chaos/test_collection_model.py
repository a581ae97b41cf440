"""The collection checks of the chaos run catch what they are there to catch: an invoice's credit
granted twice or without payment, a paid invoice lost, a cycle billed twice, more debt billed
than was charged, a bill's payment lost, a soft cap crossed in silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from creditgate.chaos.collection import CollectionModel, CollectionState, counts_by_outcome
from creditgate.chaos.history import OK, REJECTED, UNRESOLVED, History, Op
from creditgate.chaos.model import Findings, ServerState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
END = T0 + timedelta(days=31)
LATEST = T0 + timedelta(days=5)


def _op(kind: str, key: str, wallet: str, answer: dict[str, Any], seq: int) -> Op:
    op = Op(kind, key, wallet, "/", {}, OK, 200, seq=seq)
    op.answer = answer
    return op


def _lot(kind: str, amount: int, consumed: int, **metadata: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "amount": amount,
        "consumed": consumed,
        "refunded": 0,
        "expired": 0,
        "voided": 0,
        "remaining": amount - consumed,
        "expires_at": END if kind == "included" else None,
        "metadata": metadata,
    }


def _history() -> list[Op]:
    """a0 pays its first invoice (2_000 included), uses 2_500 (500 of debt), its bill of
    the debt is paid."""
    paid = _op("invoice_paid", "k1", "a0", {"id": "inv_1", "status": "paid"}, 0)
    draws = [{"lot_id": "lot_inc", "amount": 2_000, "cost_basis": "0"}]
    charge = {"id": "chg_1", "amount": 2_500, "debt": 500, "draws": draws, "status": "posted"}
    used = _op("charge", "k2", "a0", charge, 1)
    bill = _op("bill_paid", "k3", "a0", {"id": "pur_1", "status": "paid", "lot_id": "lot_p"}, 2)
    return [paid, used, bill]


def _states() -> tuple[CollectionState, ServerState]:
    period = {
        "subscription_id": "sub_1",
        "period_index": 0,
        "wallet_id": "wal_a0",
        "invoice_id": "inv_1",
        "period_start": T0,
        "period_end": END,
        "fee_status": "paid",
        "paid_at": T0 + timedelta(hours=1),
        "lot_id": "lot_inc",
    }
    bill = {"wallet_id": "wal_a0", "cycle": f"period:{T0.isoformat()}", "debt": 500}
    purchase = {"customer": "a0", "amount": 500, "status": "paid", "lot_id": "lot_p"}
    collection = CollectionState(
        periods=[period],
        bills={"pur_1": bill},
        purchases={"pur_1": purchase},
        customers={"wal_a0": "a0"},
        soft_cap_events={},
    )
    lots = {
        "lot_inc": {**_lot("included", 2_000, 2_000, subscription="sub_1", period=0)},
        "lot_p": _lot("purchased", 500, 500),
    }
    lots["lot_inc"]["id"], lots["lot_p"]["id"] = "lot_inc", "lot_p"
    server = ServerState(
        lots=lots,
        holds={},
        charges={"chg_1": {"amount": 2_500, "debt": 500, "refunded": 0}},
        balances={"a0": {"posted": 0, "held": 0, "debt": 0}},
        expired_by_lot={},
        repaid_by_lot={"lot_p": 500},
        keys={"k1", "k2", "k3"},
    )
    return collection, server


def _check(ops: list[Op], collection: CollectionState, server: ServerState) -> Findings:
    model = CollectionModel(ops)
    return model.check(collection, server, latest_clock=LATEST, final_clock=LATEST)


def test_a_consistent_collection_history_passes() -> None:
    findings = _check(_history(), *_states())
    assert findings.violations == []
    assert findings.checked["included_granted"] == findings.checked["overage_bills"] == 1


def test_an_invoice_acknowledged_paid_but_open_is_lost() -> None:
    collection, server = _states()
    collection.periods[0].update(fee_status="open", paid_at=None, lot_id=None)
    del server.lots["lot_inc"]
    assert _check(_history(), collection, server).lost >= 1


def test_an_invoice_paid_without_an_acknowledged_request_is_found() -> None:
    ops = _history()[1:]
    findings = _check(ops, *_states())
    assert any("without an acknowledged mark-paid" in v for v in findings.violations)


def test_included_credit_granted_twice_is_found() -> None:
    collection, server = _states()
    server.lots["lot_inc2"] = {**_lot("included", 2_000, 0, subscription="sub_1", period=0)}
    server.lots["lot_inc2"]["id"] = "lot_inc2"
    server.balances["a0"]["posted"] = 2_000
    findings = _check(_history(), collection, server)
    assert findings.duplicated >= 1


def test_a_cycle_billed_twice_or_beyond_the_debt_is_found() -> None:
    collection, server = _states()
    collection.bills["pur_2"] = dict(collection.bills["pur_1"])
    collection.purchases["pur_2"] = {"customer": "a0", "amount": 500, "status": "pending"}
    collection.purchases["pur_2"]["lot_id"] = None
    findings = _check(_history(), collection, server)
    assert any("billed twice" in v for v in findings.violations)
    assert any("charged only 500" in v for v in findings.violations)


def test_an_overage_purchase_without_its_cycle_is_found() -> None:
    collection, server = _states()
    collection.purchases["pur_3"] = {"customer": "a0", "amount": 100, "status": "pending"}
    assert _check(_history(), collection, server).duplicated >= 1


def test_a_bill_acknowledged_paid_but_pending_is_lost() -> None:
    collection, server = _states()
    collection.purchases["pur_1"].update(status="pending", lot_id=None)
    del server.lots["lot_p"]
    server.repaid_by_lot = {}
    server.balances["a0"].update(posted=-500, debt=500)
    assert _check(_history(), collection, server).lost >= 1


def test_a_soft_cap_crossed_without_its_event_is_found() -> None:
    grant = _op("grant", "g1", "s0", {"id": "lot_s", "amount": 100, "expires_at": None}, 0)
    grant.body = {"amount": 100}
    draws = [{"lot_id": "lot_s", "amount": 100, "cost_basis": "0"}]
    charge = {"id": "chg_s", "amount": 300, "debt": 200, "draws": draws, "status": "posted"}
    used = _op("charge", "g2", "s0", charge, 1)
    collection = CollectionState([], {}, {}, {}, {})
    server = ServerState(
        lots={"lot_s": {**_lot("promotional", 100, 100), "id": "lot_s"}},
        holds={},
        charges={"chg_s": {"amount": 300, "debt": 200, "refunded": 0}},
        balances={"s0": {"posted": -200, "held": 0, "debt": 200}},
        expired_by_lot={},
        repaid_by_lot={},
        keys={"g1", "g2"},
    )
    findings = _check([grant, used], collection, server)
    assert any("no soft_cap_reached" in v for v in findings.violations)
    collection.soft_cap_events["s0"] = 1
    assert _check([grant, used], collection, server).violations == []


def test_an_operation_cut_then_refused_or_never_answered_is_counted_as_cut() -> None:
    """A clock advance cut by an aimed crash may be refused when it is sent again (another
    client moved the clock past its time meanwhile), and an operation cut late may have no
    answer by the run's end: each was cut all the same."""
    history = History()
    cut_then_refused = Op("advance", "k1", "-", "/", {}, REJECTED, 409, indefinite=True)
    cut_then_acknowledged = Op("invoice_paid", "k2", "c", "/", {}, OK, 200, indefinite=True)
    never_answered = Op("charge", "k3", "c", "/", {}, UNRESOLVED, indefinite=True)
    for op in (
        cut_then_refused,
        cut_then_acknowledged,
        never_answered,
        _op("grant", "k4", "c", {}, 3),
    ):
        history.finish(op)
    assert counts_by_outcome(history) == {
        "advance_rejected": 1,
        "advance_rejected_indefinite": 1,
        "charge_unresolved": 1,
        "charge_unresolved_indefinite": 1,
        "grant": 1,
        "invoice_paid": 1,
        "invoice_paid_indefinite": 1,
    }
