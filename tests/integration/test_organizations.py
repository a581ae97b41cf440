"""Organizations: members drawing on one wallet, budgets per period, alerts at thresholds.

Every test runs on SQLite and PostgreSQL, and the `ledger` fixture verifies the books (the
budgets' held and spent against their holds and charges included) afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from creditgate.api import TenantLedger
from creditgate.domain.budgets import MemberRemoved, UnknownBudget, UnknownMember
from creditgate.domain.errors import AlreadyExists, InvalidInput, UnknownAsset
from creditgate.portal.reads import organization_overview
from creditgate.services.reports.organization import OrganizationOverview
from creditgate.storage.members import SCOPE_ROWS
from creditgate.storage.tables import budget_usage, budgets, events, ledger_transactions, members
from tests.conftest import FakeClock


def key() -> str:
    return uuid.uuid4().hex


def events_of(ledger: TenantLedger, event_type: str) -> list[dict[str, Any]]:
    with ledger.cg.db.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.payload)
            .where(events.c.tenant_id == ledger.tenant_id, events.c.type == event_type)
            .order_by(events.c.created_at, events.c.id)
        )
        return [r.payload for r in rows]


def org(ledger: TenantLedger, credit: int = 10_000, *names: str) -> None:
    ledger.create_customer("acme")
    if credit:
        ledger.grant("acme", "credits", credit, kind="purchased", cost_basis="0.01")
    for name in names or ("alice",):
        ledger.create_member("acme", name, name=name.title())


def usage(ledger: TenantLedger, member: str | None = "alice") -> tuple[int, int, int]:
    period = ledger.usage("acme", member=member).data[0]
    return period.spent, period.held, period.remaining


# Members ------------------------------------------------------------------------------------


def test_members_are_created_listed_updated_and_removed(ledger: TenantLedger) -> None:
    org(ledger, 0, "alice", "bob")
    listed = ledger.members("acme").data
    assert [(m.external_id, m.name, m.status) for m in listed] == [
        ("alice", "Alice", "active"),
        ("bob", "Bob", "active"),
    ]
    changed = ledger.update_member("acme", "bob", active=False, metadata={"team": "ml"})
    assert (changed.status, changed.metadata, changed.name) == ("inactive", {"team": "ml"}, "Bob")
    removed = ledger.remove_member("acme", "alice", idempotency_key="rm-alice")
    assert removed.status == "removed" and removed.removed_at is not None
    assert ledger.remove_member("acme", "alice", idempotency_key="rm-alice") == removed
    assert [m.external_id for m in ledger.members("acme").data] == ["bob"]
    everyone = ledger.members("acme", include_removed=True).data
    assert [m.external_id for m in everyone] == ["alice", "bob"]
    with pytest.raises(MemberRemoved):
        ledger.update_member("acme", "alice", active=True)
    with pytest.raises(AlreadyExists) as caught:
        ledger.create_member("acme", "alice")
    assert caught.value.field == "external_id"


def test_a_member_names_are_per_customer(ledger: TenantLedger) -> None:
    org(ledger, 0, "alice")
    ledger.create_customer("globex")
    ledger.create_member("globex", "alice")
    with pytest.raises(UnknownMember):
        ledger.authorize("globex", "credits", 1, member="bob")


def test_holds_charges_and_ledger_entries_record_the_member(ledger: TenantLedger) -> None:
    org(ledger)
    auth = ledger.authorize("acme", "credits", 500, member="alice", idempotency_key=key())
    assert auth.approved and auth.member == "alice"
    settled = ledger.settle(auth.id, 400)
    assert settled.charge.member == settled.authorization.member == "alice"
    charge = ledger.charge("acme", "credits", 100, member="alice", idempotency_key=key())
    assert charge.member == "alice"
    plain = ledger.charge("acme", "credits", 100)
    assert plain.member is None
    with ledger.cg.db.engine.connect() as conn:
        recorded = conn.execute(
            select(ledger_transactions.c.reference_id, ledger_transactions.c.member).where(
                ledger_transactions.c.tenant_id == ledger.tenant_id,
                ledger_transactions.c.kind == "charge",
            )
        ).all()
    assert dict(recorded) == {settled.charge.id: "alice", charge.id: "alice", plain.id: None}
    declined = events_of(ledger, "authorization.declined")
    assert declined == []


def test_an_inactive_or_removed_member_is_declined_with_its_own_reason(
    ledger: TenantLedger,
) -> None:
    org(ledger, 10_000, "alice", "bob")
    ledger.update_member("acme", "alice", active=False)
    ledger.remove_member("acme", "bob")
    inactive = ledger.authorize("acme", "credits", 100, member="alice")
    removed = ledger.charge("acme", "credits", 100, member="bob")
    assert (inactive.status, inactive.decline_reason) == ("declined", "member_inactive")
    assert (removed.status, removed.decline_reason) == ("declined", "member_removed")
    assert ledger.wallet("acme").balance("credits").available == 10_000
    reasons = [(e["member"], e["reason"]) for e in events_of(ledger, "authorization.declined")]
    assert reasons == [("alice", "member_inactive"), ("bob", "member_removed")]
    ledger.update_member("acme", "alice", active=True)
    assert ledger.authorize("acme", "credits", 100, member="alice").approved


def test_an_unknown_member_is_not_found_and_changes_nothing(ledger: TenantLedger) -> None:
    org(ledger)
    for call in (
        lambda: ledger.authorize("acme", "credits", 100, member="mallory"),
        lambda: ledger.charge("acme", "credits", 100, member="mallory", idempotency_key=key()),
        lambda: ledger.set_budget("acme", "credits", 100, period="day", member="mallory"),
        lambda: ledger.usage("acme", member="mallory"),
        lambda: ledger.update_member("acme", "mallory", active=False),
    ):
        with pytest.raises(UnknownMember) as caught:
            call()
        assert caught.value.field == "member"
    balance = ledger.wallet("acme").balance("credits")
    assert (balance.posted, balance.held) == (10_000, 0)
    assert events_of(ledger, "authorization.declined") == []


# Hard budgets -------------------------------------------------------------------------------


def test_a_hard_budget_declines_past_its_amount_and_counts_holds_while_open(
    ledger: TenantLedger,
) -> None:
    org(ledger)
    ledger.set_budget("acme", "credits", 300, period="month", member="alice")
    holds = [ledger.authorize("acme", "credits", 100, member="alice") for _ in range(4)]
    assert [h.approved for h in holds] == [True, True, True, False]
    refused = holds[3]
    assert refused.decline_reason == "budget_exceeded"
    assert "0 of 300 credits left this month" in refused.warnings[0]
    assert usage(ledger) == (0, 300, 0)
    # The wallet was not touched by the declined one.
    assert ledger.wallet("acme").balance("credits").held == 300
    ledger.void(holds[0].id)  # gives it back
    assert usage(ledger) == (0, 200, 100)
    ledger.settle(holds[1].id, 60)  # held -> spent, the rest released
    assert usage(ledger) == (60, 100, 140)
    assert ledger.authorize("acme", "credits", 140, member="alice").approved
    assert not ledger.authorize("acme", "credits", 1, member="alice").approved


def test_a_settle_past_its_hold_charges_only_what_the_budget_has_left(
    ledger: TenantLedger,
) -> None:
    org(ledger)
    ledger.set_budget("acme", "credits", 300, period="day", member="alice")
    first = ledger.authorize("acme", "credits", 100, member="alice")
    ledger.authorize("acme", "credits", 150, member="alice")  # 50 left
    settled = ledger.settle(first.id, 180)
    assert (settled.charge.amount, settled.charge.shortfall) == (150, 30)
    assert usage(ledger) == (150, 150, 0)
    shortfall = events_of(ledger, "charge.shortfall")
    assert [(e["shortfall"], e["limited_by"], e["member"]) for e in shortfall] == [
        (30, "budget", "alice")
    ]


def test_a_charge_counts_as_spent_and_is_declined_past_a_hard_budget(
    ledger: TenantLedger,
) -> None:
    org(ledger)
    ledger.set_budget("acme", "credits", 250, period="week", member="alice")
    results = [
        ledger.charge("acme", "credits", 100, member="alice", idempotency_key=key())
        for _ in range(3)
    ]
    assert [r.status for r in results] == ["posted", "posted", "declined"]
    assert results[2].decline_reason == "budget_exceeded"
    assert usage(ledger) == (200, 0, 50)
    assert ledger.wallet("acme").balance("credits").posted == 9_800


def test_a_refund_gives_back_to_the_period_its_charge_was_spent_in(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    org(ledger)
    ledger.set_budget("acme", "credits", 300, period="day", member="alice")
    charge = ledger.charge("acme", "credits", 300, member="alice", idempotency_key=key())
    assert not ledger.authorize("acme", "credits", 1, member="alice").approved
    ledger.refund_charge(charge.id, reason="bad answer", amount=120)
    assert usage(ledger) == (180, 0, 120)
    assert ledger.authorize("acme", "credits", 120, member="alice").approved
    clock.advance(days=1)
    ledger.refund_charge(charge.id, reason="the rest")  # yesterday's period gets it
    assert usage(ledger) == (0, 0, 300)
    earlier = ledger.usage("acme", member="alice", periods=2).data[1]
    assert (earlier.spent, earlier.held) == (0, 120)


def test_an_expired_hold_gives_its_budget_back(ledger: TenantLedger, clock: FakeClock) -> None:
    org(ledger)
    ledger.set_budget("acme", "credits", 100, period="total", member="alice")
    ledger.authorize("acme", "credits", 100, member="alice", ttl_seconds=60)
    assert usage(ledger) == (0, 100, 0)
    clock.advance(seconds=61)
    assert ledger.expire_holds() == 1
    assert usage(ledger) == (0, 0, 100)
    total = ledger.usage("acme", member="alice").data[0]
    assert (total.period, total.period_start, total.period_end) == ("total", None, None)


def test_the_customer_budget_caps_every_call_of_the_customer(ledger: TenantLedger) -> None:
    org(ledger, 10_000, "alice")
    ledger.set_budget("acme", "credits", 500, period="month")  # the customer as a whole
    ledger.set_budget("acme", "credits", 1_000, period="month", member="alice")
    assert ledger.charge("acme", "credits", 200, idempotency_key=key()).status == "posted"
    assert ledger.authorize("acme", "credits", 200, member="alice").approved
    # 400 of the customer's 500 used, alice's own budget has 800 left: the customer's decides.
    refused = ledger.authorize("acme", "credits", 150, member="alice")
    assert refused.decline_reason == "budget_exceeded"
    assert "the customer's budget has 100 of 500" in refused.warnings[0]
    refused = ledger.authorize("acme", "credits", 150)  # no member: still the customer's
    assert refused.decline_reason == "budget_exceeded"
    assert usage(ledger, None) == (200, 200, 100)
    assert usage(ledger, "alice") == (0, 200, 800)
    ledger.delete_budget("acme", "credits")
    assert ledger.authorize("acme", "credits", 150).approved
    with pytest.raises(UnknownBudget):
        ledger.delete_budget("acme", "credits")


def test_a_call_past_the_customer_budget_in_a_new_period_is_declined(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    org(ledger)
    ledger.set_budget("acme", "credits", 500, period="day")
    clock.advance(days=1)  # no call yet this period: its row is still to be made
    assert ledger.authorize("acme", "credits", 600).decline_reason == "budget_exceeded"
    charged = ledger.charge("acme", "credits", 600, idempotency_key=key())
    assert charged.decline_reason == "budget_exceeded"
    assert usage(ledger, None) == (0, 0, 500)
    assert ledger.wallet("acme").balance("credits").available == 10_000


def test_a_soft_budget_lets_calls_past_it_and_raises_its_alerts(ledger: TenantLedger) -> None:
    org(ledger)
    ledger.set_budget(
        "acme", "credits", 100, period="day", member="alice", mode="soft", thresholds=[150]
    )
    assert all(
        ledger.charge("acme", "credits", 60, member="alice", idempotency_key=key()).status
        == "posted"
        for _ in range(3)
    )
    assert usage(ledger) == (180, 0, 0)
    crossed = [e["threshold"] for e in events_of(ledger, "budget.threshold_crossed")]
    assert sorted(crossed) == [100, 150]


def test_changing_the_amount_keeps_the_count_and_a_new_period_starts_over(
    ledger: TenantLedger,
) -> None:
    org(ledger)
    first = ledger.set_budget("acme", "credits", 300, period="month", member="alice")
    ledger.charge("acme", "credits", 200, member="alice", idempotency_key=key())
    raised = ledger.set_budget("acme", "credits", 500, period="month", member="alice")
    assert raised.id == first.id and usage(ledger) == (200, 0, 300)
    weekly = ledger.set_budget("acme", "credits", 500, period="week", member="alice")
    assert weekly.id != first.id and usage(ledger) == (0, 0, 500)
    assert [b.period for b in ledger.budgets("acme", member="alice").data] == ["week"]


# Periods ------------------------------------------------------------------------------------


def test_a_budget_resets_at_the_period_start_exactly_once(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC))
    org(ledger)
    ledger.set_budget("acme", "credits", 100, period="day", member="alice")
    assert ledger.charge("acme", "credits", 100, member="alice", idempotency_key=key()).amount
    assert not ledger.authorize("acme", "credits", 1, member="alice").approved
    clock.set(datetime(2026, 3, 15, 0, 0, tzinfo=UTC))  # the next day, by the clock alone
    assert ledger.charge("acme", "credits", 100, member="alice", idempotency_key=key()).amount
    clock.advance(hours=23, minutes=59)  # still the same day: no second reset
    assert not ledger.authorize("acme", "credits", 1, member="alice").approved
    periods = ledger.usage("acme", member="alice", periods=3).data
    assert [(p.period_start.day, p.spent) for p in periods if p.period_start] == [
        (15, 100),
        (14, 100),
    ]


def test_a_hold_counts_in_the_period_it_was_opened(ledger: TenantLedger, clock: FakeClock) -> None:
    anchor = datetime(2026, 1, 10, 9, tzinfo=UTC)
    clock.set(datetime(2026, 2, 10, 8, 30, tzinfo=UTC))  # the last half hour of a period
    org(ledger)
    ledger.set_budget("acme", "credits", 1_000, period="month", anchor=anchor, member="alice")
    hold = ledger.authorize("acme", "credits", 400, member="alice", ttl_seconds=7_200)
    clock.set(datetime(2026, 2, 10, 9, 30, tzinfo=UTC))  # the next period has begun
    assert usage(ledger) == (0, 0, 1_000)  # the new period: nothing of the hold
    ledger.settle(hold.id, 300)
    current, earlier = ledger.usage("acme", member="alice", periods=2).data
    assert current.period_start == datetime(2026, 2, 10, 9, tzinfo=UTC)
    assert (current.spent, current.held) == (0, 0)
    assert earlier.period_start == datetime(2026, 1, 10, 9, tzinfo=UTC)
    assert (earlier.spent, earlier.held, earlier.remaining) == (300, 0, 700)


# Thresholds ---------------------------------------------------------------------------------


def test_each_budget_threshold_raises_one_event_per_period(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    org(ledger)
    ledger.set_budget("acme", "credits", 1_000, period="day", member="alice", thresholds=[50, 80])
    first = ledger.authorize("acme", "credits", 600, member="alice", idempotency_key=key())
    assert [e["threshold"] for e in events_of(ledger, "budget.threshold_crossed")] == [50]
    ledger.void(first.id)  # back under 50% ...
    ledger.authorize("acme", "credits", 700, member="alice", idempotency_key=key())
    # ... and over it again in the same period: 50 does not fire again, 80 does not yet.
    assert [e["threshold"] for e in events_of(ledger, "budget.threshold_crossed")] == [50]
    assert not ledger.authorize("acme", "credits", 400, member="alice").approved  # declined
    assert len(events_of(ledger, "budget.threshold_crossed")) == 1  # no event for a decline
    ledger.charge("acme", "credits", 300, member="alice", idempotency_key=key())
    fired = events_of(ledger, "budget.threshold_crossed")
    assert sorted(e["threshold"] for e in fired) == [50, 80, 100]
    assert {e["member"] for e in fired} == {"alice"} and fired[-1]["amount"] == 1_000
    clock.advance(days=1)  # a new period: each may fire once more
    ledger.charge("acme", "credits", 500, member="alice", idempotency_key=key())
    fired = events_of(ledger, "budget.threshold_crossed")
    assert sorted(e["threshold"] for e in fired) == [50, 50, 80, 100]
    assert usage(ledger)[0] == 500
    assert ledger.usage("acme", member="alice").data[0].thresholds_crossed == [50]


def test_a_wallet_threshold_fires_on_each_fall_below_it(ledger: TenantLedger) -> None:
    org(ledger, 1_000)
    policy = ledger.set_policy("acme", "credits", "block", thresholds=[500, 200])
    assert policy.thresholds == [500, 200]
    assert ledger.wallet("acme").balance("credits").thresholds == [500, 200]
    hold = ledger.authorize("acme", "credits", 400, idempotency_key=key())
    assert events_of(ledger, "balance.threshold_crossed") == []
    ledger.charge("acme", "credits", 150, idempotency_key=key())  # 450: below 500
    ledger.void(hold.id)  # 850: back above
    ledger.charge("acme", "credits", 700, idempotency_key=key())  # 150: below both
    assert not ledger.authorize("acme", "credits", 500, idempotency_key=key()).approved
    fired = [
        (e["threshold"], e["available"]) for e in events_of(ledger, "balance.threshold_crossed")
    ]
    assert fired == [(500, 450), (500, 150), (200, 150)]


# Bad input ----------------------------------------------------------------------------------


def _stored(ledger: TenantLedger) -> tuple[int, int, int]:
    with ledger.cg.db.engine.connect() as conn:
        count = [
            len(conn.execute(select(t).where(t.c.tenant_id == ledger.tenant_id)).all())
            for t in (members, budgets, budget_usage)
        ]
    return count[0], count[1], count[2]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -100}, "amount"),
        ({"period": "fortnight"}, "period"),
        ({"mode": "strict"}, "mode"),
        ({"thresholds": [0, 50]}, "thresholds"),
        ({"thresholds": [120]}, "thresholds"),
        ({"anchor": datetime(2026, 1, 1)}, "anchor"),  # no time zone
        ({"asset": "gems"}, "asset"),
    ],
)
def test_a_bad_budget_is_refused_naming_the_field_and_changes_nothing(
    ledger: TenantLedger, change: dict[str, Any], field: str
) -> None:
    org(ledger)
    ledger.set_budget("acme", "credits", 300, period="day", member="alice", thresholds=[50])
    before = (_stored(ledger), ledger.budgets("acme", member="alice"))
    args: dict[str, Any] = {"asset": "credits", "amount": 300, "period": "day"} | change
    with pytest.raises((InvalidInput, UnknownAsset)) as caught:
        ledger.set_budget("acme", member="alice", **args)
    assert caught.value.field == field
    assert (_stored(ledger), ledger.budgets("acme", member="alice")) == before


def test_bad_members_and_wallet_thresholds_are_refused_naming_the_field(
    ledger: TenantLedger,
) -> None:
    org(ledger)
    cases: list[tuple[Any, str]] = [
        (lambda: ledger.create_member("acme", "has space"), "external_id"),
        (lambda: ledger.create_member("acme", "x" * 300), "external_id"),
        (lambda: ledger.create_member("acme", "bob", active="yes"), "active"),
        (lambda: ledger.create_member("acme", "bob", metadata=[1]), "metadata"),
        (lambda: ledger.set_policy("acme", "credits", "block", thresholds=[2**62]), "thresholds"),
        (lambda: ledger.set_policy("acme", "credits", "block", thresholds=[1.5]), "thresholds"),
        (lambda: ledger.usage("acme", member="alice", periods=0), "periods"),
        (lambda: ledger.authorize("acme", "credits", 1, member=""), "member"),
    ]
    before = _stored(ledger)
    for call, field in cases:
        with pytest.raises(InvalidInput) as caught:
            call()
        assert caught.value.field == field, field
    assert _stored(ledger) == before
    assert ledger.wallet("acme").balance("credits").thresholds == []


def test_a_replayed_authorization_answers_as_first_even_after_the_member_changes(
    ledger: TenantLedger,
) -> None:
    org(ledger)
    first = ledger.authorize("acme", "credits", 100, member="alice", idempotency_key="auth-1")
    ledger.update_member("acme", "alice", active=False)
    assert ledger.authorize("acme", "credits", 100, member="alice", idempotency_key="auth-1") == (
        first
    )
    assert ledger.wallet("acme").balance("credits").held == 100


def test_usage_lists_each_budget_current_period(ledger: TenantLedger, clock: FakeClock) -> None:
    org(ledger)
    ledger.create_asset("gpu_minutes", 0)
    ledger.grant("acme", "gpu_minutes", 50)
    ledger.set_budget("acme", "credits", 300, period="month", member="alice")
    ledger.set_budget("acme", "gpu_minutes", 20, period="week", member="alice")
    ledger.charge("acme", "gpu_minutes", 5, member="alice", idempotency_key=key())
    found = ledger.usage("acme", member="alice")
    assert found.member == "alice"
    assert [(p.asset, p.spent, p.remaining) for p in found.data] == [
        ("credits", 0, 300),
        ("gpu_minutes", 5, 15),
    ]
    week = found.data[1]
    assert week.period_end is not None and week.period_start is not None
    assert week.period_end - week.period_start == timedelta(days=7)


def test_earlier_periods_are_each_budgets_own(ledger: TenantLedger, clock: FakeClock) -> None:
    """The usage rows of a member's budgets are read together: each budget's latest periods."""
    org(ledger, 100_000)
    ledger.create_asset("gpu_minutes", 0)
    ledger.grant("acme", "gpu_minutes", 500)
    ledger.set_budget("acme", "credits", 300, period="day", member="alice")
    ledger.set_budget("acme", "gpu_minutes", 50, period="day", member="alice")
    for day in range(1, 6):  # credits every day, GPU minutes every second day
        ledger.charge("acme", "credits", 10 * day, member="alice", idempotency_key=key())
        if day % 2:
            ledger.charge("acme", "gpu_minutes", day, member="alice", idempotency_key=key())
        clock.advance(days=1)
    found = ledger.usage("acme", member="alice", periods=3).data
    assert [(p.asset, p.spent) for p in found] == [
        ("credits", 0),  # today: nothing yet
        ("credits", 50),
        ("credits", 40),
        ("gpu_minutes", 0),
        ("gpu_minutes", 5),  # then the periods it was used in, latest first
        ("gpu_minutes", 3),
    ]


def _statements(ledger: TenantLedger, read: Callable[[], object]) -> int:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    event.listen(ledger.cg.db.engine, "before_cursor_execute", count)
    try:
        read()
    finally:
        event.remove(ledger.cg.db.engine, "before_cursor_execute", count)
    return len(seen)


def test_the_organization_overview_reads_as_much_for_many_members_as_for_few(
    ledger: TenantLedger,
) -> None:
    """The dashboard's and the portal's organization page: its members' budgets and their
    periods are read in one statement each, not one per member and budget."""
    for customer, size in (("few", 2), ("many", 9)):
        ledger.create_customer(customer)
        ledger.grant(customer, "credits", 100_000, kind="purchased", cost_basis="0.01")
        ledger.set_budget(customer, "credits", 5_000, period="month")
        for n in range(size):
            ledger.create_member(customer, f"m{n}")
            ledger.set_budget(customer, "credits", 100 + n, period="day", member=f"m{n}")
            ledger.charge(customer, "credits", 7, member=f"m{n}", idempotency_key=key())

    def overview(customer: str) -> OrganizationOverview:
        return organization_overview(ledger.cg, ledger.tenant_id, customer=customer)

    many = overview("many")
    assert [
        (m.member.external_id, [(b.amount, b.spent) for b in m.budgets]) for m in many.members
    ] == [(f"m{n}", [(100 + n, 7)]) for n in range(9)]
    overview("few")  # each read once before counting: the caches of the pool and the compiler
    assert _statements(ledger, lambda: overview("many")) == _statements(
        ledger, lambda: overview("few")
    )


def test_an_organization_with_more_members_than_one_read_brings_back(
    ledger: TenantLedger,
) -> None:
    """A call reads its member with the wallet's others, up to a limit: a member past it, or
    one whose rows the limit cuts, is read whole all the same."""
    names = [f"m{n:02}" for n in range(SCOPE_ROWS // 2 + 4)]
    org(ledger, 100_000, *names)
    ledger.set_budget("acme", "credits", 90_000, period="month")  # every member's call counts
    for name in names:
        ledger.set_budget("acme", "credits", 100, period="day", member=name)
    for name in (names[0], names[SCOPE_ROWS // 2 - 1], names[-1]):
        assert ledger.charge("acme", "credits", 60, member=name).status == "posted"
        over = ledger.charge("acme", "credits", 60, member=name)
        assert over.decline_reason == "budget_exceeded"
        assert usage(ledger, name)[0] == 60
    assert usage(ledger, None)[0] == 180
