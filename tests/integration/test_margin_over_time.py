"""Margin per day and action and model, as the dashboard's chart draws it: exact sums, the
same revenue and cost as the margin report, unknown costs counted apart, other tenants and
assets left out."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from creditgate.api import TenantLedger
from creditgate.domain.errors import InvalidInput
from creditgate.portal.reads import margin_over_time
from tests.conftest import FakeClock


def test_margin_per_day_action_and_model(ledger: TenantLedger, clock: FakeClock) -> None:
    start = clock.now
    ledger.create_customer("ann")
    ledger.grant("ann", "credits", 100_000, kind="purchased", cost_basis="0.01")
    for day, cost in enumerate(("0.03", "0.05")):
        clock.set(start + timedelta(days=day, hours=1))
        chat = {"action": "chat.completion", "dimensions": {"model": "gpt-4o"}}
        ledger.charge("ann", "credits", 1_000, **chat, vendor_cost=cost)
        ledger.charge("ann", "credits", 1_000, **chat, vendor_cost="0.01")
        ledger.charge("ann", "credits", 500, action="tts.speak")  # cost unknown
    end = clock.advance(hours=1)
    other = ledger.cg.tenant(ledger.cg.create_tenant("other").id)
    other.create_asset("credits", 2, "Credits")
    other.create_customer("ann")
    other.grant("ann", "credits", 1_000, kind="purchased", cost_basis="1")
    other.charge("ann", "credits", 1_000, action="chat.completion", vendor_cost="5")

    points = margin_over_time(ledger.cg, ledger.tenant_id, start=start, end=end)
    seen = [(p.day.isoformat(), p.action, p.model, p.charges) for p in points]
    day1, day2 = start.date().isoformat(), (start + timedelta(days=1)).date().isoformat()
    assert seen == [
        (day1, "chat.completion", "gpt-4o", 2),
        (day1, "tts.speak", None, 1),
        (day2, "chat.completion", "gpt-4o", 2),
        (day2, "tts.speak", None, 1),
    ]
    first = points[0]
    # Two charges of 10 credits bought at $0.01 each: $0.20 of revenue, $0.04 of cost.
    assert first.revenue == Decimal("0.20") == points[2].revenue
    assert first.vendor_cost == Decimal("0.04")
    assert first.gross_margin == first.revenue - first.vendor_cost
    assert points[1].cost_unknown == 1 and points[1].vendor_cost == 0
    # The same totals as the margin report of the period.
    report = ledger.margin_report(start=start, end=end, by="action").report.total
    assert sum(p.revenue for p in points) == report.revenue
    assert sum(p.vendor_cost for p in points) == report.vendor_cost
    assert sum(p.charges for p in points) == report.charges


def test_a_period_is_checked(ledger: TenantLedger, clock: FakeClock) -> None:
    now = clock.now
    with pytest.raises(InvalidInput):
        margin_over_time(ledger.cg, ledger.tenant_id, start=now, end=now)
    with pytest.raises(InvalidInput):
        margin_over_time(ledger.cg, ledger.tenant_id, start=now - timedelta(days=400), end=now)
