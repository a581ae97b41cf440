"""The budget checks of the chaos run catch what they are there to catch: a member's budget
passed (in the history, at one moment, in its usage route, in its rows or in the ledger), a
decline for budget where there was room or under no budget, a call past a budget's whole
amount let through, a charge or its ledger naming another member."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from creditgate.chaos.budgets import BudgetDef, BudgetModel, BudgetRows, UsageRead, member_counts
from creditgate.chaos.history import OK, REJECTED, UNRESOLVED, History, Op
from creditgate.chaos.model import Findings
from creditgate.domain.periods import TOTAL_START

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
FINAL = T0 + timedelta(days=2)
ADA = BudgetDef("bgt_a", "org", "ada", 1_000, "total", T0)
DAY = BudgetDef("bgt_d", "org", None, 5_000, "day", T0 - timedelta(hours=6))  # the org's own
KEY = ("bgt_a", TOTAL_START)
DAY_KEY = ("bgt_d", T0 - timedelta(hours=6))


def _op(kind: str, path: str, body: dict[str, Any], at: float, answer: dict[str, Any]) -> Op:
    op = Op(kind, f"k{at}", "org", path, body, OK, 200, answer)
    op.started_at, op.finished_at = at, at + 0.1
    return op


def _authorize(at: float, amount: int, hold: str, member: str | None = "ada") -> Op:
    body: dict[str, Any] = {"customer": "org", "asset": "credits", "amount": amount}
    if member:
        body["member"] = member
    answer = {
        "id": hold,
        "approved": True,
        "amount": amount,
        "member": member,
        "created_at": T0.isoformat(),
        "expires_at": (T0 + timedelta(hours=3)).isoformat(),
    }
    return _op("authorize", "/v1/authorizations", body, at, answer)


def _declined(at: float, amount: int, named: str | None = "bgt_a", kind: str = "authorize") -> Op:
    body = {"customer": "org", "asset": "credits", "amount": amount, "member": "ada"}
    answer: dict[str, Any] = {
        "id": f"x{at}",
        "member": "ada",
        "created_at": T0.isoformat(),
        "decline_reason": "budget_exceeded",
        "warnings": [f"member ada's budget has 0 left in total (budget {named})"] if named else [],
    }
    answer |= {"approved": False} if kind == "authorize" else {"status": "declined"}
    return _op(
        kind, "/v1/authorizations" if kind == "authorize" else "/v1/charges", body, at, answer
    )


def _settle(at: float, hold: str, charge: str, amount: int, member: str = "ada") -> Op:
    made = {"id": charge, "amount": amount, "member": member}
    answer = {"authorization": {"id": hold}, "charge": made}
    return _op("settle", f"/v1/authorizations/{hold}/settle", {"amount": amount}, at, answer)


def _void(at: float, hold: str) -> Op:
    return _op("void", f"/v1/authorizations/{hold}/void", {}, at, {"id": hold})


def _charge(at: float, charge: str, amount: int) -> Op:
    body = {"customer": "org", "asset": "credits", "amount": amount, "member": "ada"}
    answer = {
        "id": charge,
        "status": "posted",
        "amount": amount,
        "member": "ada",
        "created_at": T0.isoformat(),
    }
    return _op("charge", "/v1/charges", body, at, answer)


def _refund(at: float, charge: str, amount: int) -> Op:
    answer = {"id": f"rfd{at}", "charge_id": charge, "amount": amount}
    return _op("refund", f"/v1/charges/{charge}/refunds", {"amount": amount}, at, answer)


def _history() -> list[Op]:
    """ada (1_000 in total): 600 held then 500 spent; 400 held and voided; 700 declined
    (500 spent, 500 left); 300 charged, 100 of it refunded: 700 spent."""
    return [
        _authorize(1, 600, "h1"),
        _settle(2, "h1", "c1", 500),
        _authorize(3, 400, "h2"),
        _void(4, "h2"),
        _declined(5, 700),
        _charge(6, "c2", 300),
        _refund(7, "c2", 100),
    ]


def _recorded(*keys: tuple[str, datetime]) -> list[list[str]]:
    return [[budget, start.isoformat()] for budget, start in keys]


def _rows() -> BudgetRows:
    settled = {"member": "ada", "budgets": _recorded(KEY), "status": "settled"}
    return BudgetRows(
        usage={KEY: {"held": 0, "spent": 700, "cap": 1_000}},
        holds={
            "h1": settled | {"resolved_at": T0},
            "h2": settled | {"status": "voided", "resolved_at": T0},
        },
        charges={
            "c1": {"member": "ada", "budgets": _recorded(KEY), "amount": 500, "refunded": 0},
            "c2": {"member": "ada", "budgets": _recorded(KEY), "amount": 300, "refunded": 100},
        },
        ledger_usage={"c1": 500, "c2": 200},
        ledger_members={"c1": {"ada"}, "c2": {"ada"}},
    )


def _usage(spent: int = 700, held: int = 0) -> dict[Any, UsageRead]:
    return {KEY: UsageRead(spent, held, max(1_000 - spent - held, 0), 1_000)}


def _check(
    ops: list[Op],
    usage: dict[Any, UsageRead] | None = None,
    rows: BudgetRows | None = None,
    defs: tuple[BudgetDef, ...] = (ADA,),
) -> Findings:
    model = BudgetModel(list(defs), ops, customers=("org",))
    usage = _usage() if usage is None else usage
    rows = _rows() if rows is None else rows
    return model.check(usage, T0 + timedelta(hours=1), rows, final_clock=FINAL)


def test_a_consistent_history_passes() -> None:
    findings = _check(_history())
    assert findings.violations == []
    assert findings.checked["budget_periods"] == 1
    assert findings.checked["budget_declines"] == 1
    assert findings.checked["budget_usage_read"] == findings.checked["budget_rows"] == 1
    assert findings.checked["budget_ledger_periods"] == 1


def test_spent_past_the_budget_in_the_history_is_found() -> None:
    """Two charges of 600 acknowledged under 1_000: the model's spent passes the budget."""
    ops = [_charge(1, "c1", 600), _charge(2, "c2", 600)]
    recorded = {"member": "ada", "budgets": _recorded(KEY), "refunded": 0}
    rows = BudgetRows(
        usage={KEY: {"held": 0, "spent": 1_200, "cap": 1_000}},
        holds={},
        charges={"c1": recorded | {"amount": 600}, "c2": recorded | {"amount": 600}},
        ledger_usage={"c1": 600, "c2": 600},
        ledger_members={"c1": {"ada"}, "c2": {"ada"}},
    )
    usage = {KEY: UsageRead(1_200, 0, 0, 1_000)}
    violations = _check(ops, usage, rows).violations
    assert any("spent 1200, past its 1000" in v for v in violations)
    assert any("1200 held and spent at once" in v for v in violations)
    assert any("held 0 + spent 1200 of 1000" in v for v in violations)
    assert any("row has held 0 + spent 1200 of cap 1000" in v for v in violations)
    assert any("the ledger records 1200, past its 1000" in v for v in violations)


def test_holds_past_the_budget_at_one_moment_are_found() -> None:
    """600 and 500 held at once under 1_000 (both voided later): nothing was spent, but the
    budget was passed while both were open."""
    ops = [_authorize(1, 600, "h1"), _authorize(2, 500, "h2"), _void(3, "h1"), _void(4, "h2")]
    voided = {"member": "ada", "budgets": _recorded(KEY), "status": "voided", "resolved_at": T0}
    rows = BudgetRows(
        {KEY: {"held": 0, "spent": 0, "cap": 1_000}}, {"h1": voided, "h2": voided}, {}
    )
    findings = _check(ops, _usage(spent=0), rows)
    assert findings.violations == [
        "violation: budget bgt_a of org/ada (total, in total): 1100 held and spent at once, "
        "past its 1000"
    ]
    # Had the first been voided before the second was approved, both fit.
    ops = [_authorize(1, 600, "h1"), _void(2, "h1"), _authorize(3, 500, "h2"), _void(4, "h2")]
    assert _check(ops, _usage(spent=0), rows).violations == []


def test_a_hold_open_until_the_final_sweep_counts_to_the_end() -> None:
    """A hold the clients never resolved, expired by the final sweep, was open while a later
    charge was spent: together past the budget."""
    ops = [_authorize(1, 600, "h1"), _charge(5, "c1", 500)]
    expired = {"member": "ada", "budgets": _recorded(KEY), "status": "expired"}
    charge = {"member": "ada", "budgets": _recorded(KEY), "amount": 500, "refunded": 0}
    rows = BudgetRows(
        usage={KEY: {"held": 0, "spent": 500, "cap": 1_000}},
        holds={"h1": expired | {"resolved_at": FINAL}},
        charges={"c1": charge},
        ledger_usage={"c1": 500},
        ledger_members={"c1": {"ada"}},
    )
    usage = {KEY: UsageRead(500, 600, 0, 1_000)}
    assert any("1100 held and spent at once" in v for v in _check(ops, usage, rows).violations)
    # Expired while the run went on (before the final sweep, and before the usage was
    # read): it may have gone before the charge.
    assert ops[0].answer is not None
    ops[0].answer["expires_at"] = (T0 + timedelta(minutes=30)).isoformat()
    rows.holds["h1"]["resolved_at"] = T0 + timedelta(minutes=30)
    usage = {KEY: UsageRead(500, 0, 500, 1_000)}
    assert _check(ops, usage, rows).violations == []


def test_a_readback_past_the_budget_is_found() -> None:
    """The history fits; the usage route and the row say more was spent than acknowledged
    (a doubled charge), past the budget."""
    rows = _rows()
    rows.usage[KEY]["spent"] = 1_100
    findings = _check(_history(), _usage(spent=1_100), rows)
    assert findings.duplicated == 2
    assert any("usage says spent 1100, acknowledged 700" in v for v in findings.violations)
    assert any("held 0 + spent 1100 of 1000" in v for v in findings.violations)
    assert any("row has held 0 + spent 1100 of cap 1000" in v for v in findings.violations)


def test_a_lost_charge_in_the_usage_is_found() -> None:
    assert _check(_history(), _usage(spent=500)).lost == 1


def test_a_decline_for_budget_with_room_is_found() -> None:
    """300 declined while at most 500 of 1_000 was used."""
    ops = [*_history()[:4], _declined(5, 300)]
    rows = _rows()
    del rows.charges["c2"]
    rows.usage[KEY]["spent"] = 500
    findings = _check(ops, _usage(spent=500), rows)
    assert findings.violations == [
        "violation: authorize of 300 declined by budget bgt_a of org/ada (total, in total), "
        "which held and spent at most 500 while it ran (it said: member ada's budget has 0 "
        "left in total (budget bgt_a))"
    ]


def test_a_decline_for_budget_overlapping_a_hold_is_justified() -> None:
    """500 declined while a hold of 600 may still have been open (its void was under way)."""
    ops = [_authorize(1, 600, "h1"), _void(4, "h1"), _declined(4.05, 500, kind="charge")]
    voided = {"member": "ada", "budgets": _recorded(KEY), "status": "voided", "resolved_at": T0}
    rows = BudgetRows({KEY: {"held": 0, "spent": 0, "cap": 1_000}}, {"h1": voided}, {})
    findings = _check(ops, _usage(spent=0), rows)
    assert findings.violations == []
    assert findings.checked["budget_declines"] == 1


def test_a_decline_for_budget_without_one_or_naming_none_is_found() -> None:
    assert any(
        "under no budget, declined budget_exceeded" in v
        for v in _check(_history(), defs=()).violations
    )
    ops = [*_history()[:4], _declined(5, 700, named=None), *_history()[5:]]
    assert any("names no budget" in v for v in _check(ops).violations)
    ops = [*_history()[:4], _declined(5, 700, named="bgt_other"), *_history()[5:]]
    assert any("which it does not count against" in v for v in _check(ops).violations)


def test_a_call_past_the_whole_budget_must_be_declined_for_it() -> None:
    past = _authorize(8, 1_200, "h9")
    assert any(
        "went through past its budget's whole amount" in v for v in _check([past]).violations
    )
    refused = _declined(8, 1_200)
    assert refused.answer is not None
    refused.answer.update(decline_reason="insufficient_funds", warnings=[])
    assert any("declined insufficient_funds" in v for v in _check([refused]).violations)


def test_a_member_recorded_wrong_is_found() -> None:
    rows = _rows()
    rows.charges["c2"]["member"] = "bob"
    violations = _check(_history(), rows=rows).violations
    assert any("charge c2 of org/ada records member bob" in v for v in violations)
    rows = _rows()
    rows.holds["h1"]["budgets"] = None
    assert any("hold h1 of org/ada records" in v for v in _check(_history(), rows=rows).violations)
    ops = _history()
    settle = ops[1].answer
    assert settle is not None
    settle["charge"]["member"] = None
    assert any("of member None" in v for v in _check(ops).violations)


def test_the_ledger_must_name_the_member_and_record_what_was_spent() -> None:
    rows = _rows()
    rows.ledger_members["c1"] = {None}
    assert any("its ledger names {None}" in v for v in _check(_history(), rows=rows).violations)
    rows = _rows()
    rows.ledger_usage["c2"] = 300  # the refund's transaction missing
    violations = _check(_history(), rows=rows).violations
    assert any("the ledger used 300, the charge 300 less 100 refunded" in v for v in violations)
    assert any("the ledger records 800, acknowledged 700" in v for v in violations)


def test_the_organizations_own_budget_counts_every_call() -> None:
    """A call naming no member counts in the organization's own day budget only; ada's in
    both, each recorded on the hold."""
    ops = [_authorize(1, 200, "h1", member=None), _authorize(2, 300, "h2"), _void(3, "h1")]
    ops.append(_void(4, "h2"))
    rows = BudgetRows(
        usage={
            DAY_KEY: {"held": 0, "spent": 0, "cap": 5_000},
            KEY: {"held": 0, "spent": 0, "cap": 1_000},
        },
        holds={
            "h1": {"member": None, "budgets": _recorded(DAY_KEY), "status": "voided"},
            "h2": {"member": "ada", "budgets": _recorded(KEY, DAY_KEY), "status": "voided"},
        },
        charges={},
    )
    usage = {DAY_KEY: UsageRead(0, 0, 5_000, 5_000), KEY: UsageRead(0, 0, 1_000, 1_000)}
    findings = _check(ops, usage, rows, defs=(ADA, DAY))
    assert findings.violations == []
    assert findings.checked["budget_periods"] == 2
    rows.holds["h1"]["budgets"] = None  # the org's budget not counted for it
    assert any("hold h1 of org/*" in v for v in _check(ops, usage, rows, (ADA, DAY)).violations)


def test_an_expired_hold_may_hold_its_budget_until_swept() -> None:
    """A settle refused as expired does not give the hold's reservation back (a sweep does,
    some time later): a decline of 500 after it may have met the hold's 600; one of 300
    could not have (600 + 300 fit 1_000)."""
    refused = _op("settle", "/v1/authorizations/h1/settle", {"amount": 1}, 2, {})
    refused.outcome, refused.status = REJECTED, 409
    refused.answer = {"code": "hold_expired"}
    expired = {"member": "ada", "budgets": _recorded(KEY), "status": "expired", "resolved_at": T0}
    rows = BudgetRows({KEY: {"held": 0, "spent": 0, "cap": 1_000}}, {"h1": expired}, {})
    hold = _authorize(1, 600, "h1")
    assert hold.answer is not None
    hold.answer["expires_at"] = (T0 + timedelta(minutes=30)).isoformat()
    assert _check([hold, refused, _declined(3, 500)], _usage(spent=0), rows).violations == []
    ops = [hold, refused, _declined(3, 300)]
    findings = _check(ops, _usage(spent=0), rows)
    assert any("which held and spent at most 600" in v for v in findings.violations)
    # The usage read while it was not swept yet may show it held.
    assert _check(ops[:2], _usage(spent=0, held=600), rows).violations == []


def test_a_member_call_cut_then_refused_or_never_answered_counts_as_cut() -> None:
    """The organizations' counts, as the chaos report gives them: a settle cut by a crash and
    refused on its retry (its hold expired meanwhile), or a charge never answered, was cut
    all the same; another customer's calls are not counted."""
    history = History()
    cut = _authorize(1.0, 100, "hld_1")
    cut.indefinite = True
    refused = _settle(2.0, "hld_2", "chg_2", 50)
    refused.outcome, refused.status, refused.indefinite = REJECTED, 409, True
    unanswered = _charge(3.0, "chg_3", 10)
    unanswered.outcome, unanswered.status, unanswered.indefinite = UNRESOLVED, None, True
    elsewhere = _charge(4.0, "chg_4", 10)
    elsewhere.wallet = "someone-else"
    for op in (cut, refused, unanswered, _declined(5.0, 100), elsewhere):
        history.finish(op)
    assert member_counts(history, {"org"}) == {
        "authorize": 2,
        "authorize_indefinite": 1,
        "authorize_member": 2,
        "charge_unresolved_indefinite": 1,
        "declined_budget_exceeded": 1,
        "settle_rejected_indefinite": 1,
    }
