"""Members in the reports: the margin report `by=member`, in-process and from the command
line, on both backends (over HTTP: tests/http/test_members.py)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

from creditgate.api import TenantLedger
from tests.conftest import FakeClock
from tests.integration.test_margin_reports import run


def organizations(ledger: TenantLedger) -> None:
    """Two customers with a member of the same name each, and calls with and without one."""
    for customer in ("acme", "globex"):
        ledger.create_customer(customer)
        ledger.grant(customer, "credits", 10_000, kind="purchased", cost_basis="0.01")
        ledger.create_member(customer, "ada")
    ledger.create_member("acme", "bob")
    ledger.charge("acme", "credits", 300, member="ada")
    ledger.charge("acme", "credits", 200, member="ada")
    ledger.charge("acme", "credits", 50, member="bob")
    ledger.charge("globex", "credits", 700, member="ada")
    ledger.charge("globex", "credits", 11)  # no member


def test_the_margin_report_totals_each_member_of_each_customer(
    ledger: TenantLedger, clock: FakeClock
) -> None:
    organizations(ledger)
    now = clock.now
    report = ledger.margin_report(
        start=now - timedelta(days=1), end=now + timedelta(seconds=1), by="member"
    ).report
    rows = [(r.customer, r.key, r.charges, r.amount, r.revenue) for r in report.rows]
    # Members are told apart by customer (both have an "ada"); calls without one come last.
    assert rows == [
        ("acme", "ada", 2, 500, Decimal("0.05")),  # 5 credits at $0.01
        ("acme", "bob", 1, 50, Decimal("0.005")),
        ("globex", "ada", 1, 700, Decimal("0.07")),
        (None, None, 1, 11, Decimal("0.0011")),
    ]
    assert report.by == "member" and report.total.amount == 1_261
    # Other groupings name no customer on their rows.
    by_action = ledger.margin_report(start=now - timedelta(days=1), end=now + timedelta(seconds=1))
    assert all(r.customer is None for r in by_action.report.rows)


def test_report_margin_by_member_from_the_command_line(
    ledger: TenantLedger, db_url: str, clock: FakeClock
) -> None:
    organizations(ledger)
    period = ("--from", (clock.now - timedelta(days=1)).isoformat(),
              "--to", (clock.now + timedelta(seconds=1)).isoformat())  # fmt: skip
    table = run(ledger, db_url, "report", "margin", "--by", "member", *period).output
    assert "acme / ada" in table and "globex / ada" in table and "margin by member" in table
    as_csv = run(ledger, db_url, "report", "margin", "--by", "member", "--csv", *period).output
    lines = list(csv.reader(io.StringIO(as_csv)))
    assert lines[0][:3] == ["customer", "member", "charges"]
    assert [line[:3] for line in lines[1:]] == [
        ["acme", "ada", "2"],
        ["acme", "bob", "1"],
        ["globex", "ada", "1"],
        ["", "", "1"],
        ["", "total", "5"],
    ]
    dumped = json.loads(
        run(ledger, db_url, "report", "margin", "--by", "member", "--json", *period).output
    )
    assert (
        dumped["report"]["rows"][0] | {"customer": "acme", "key": "ada", "amount": 500}
        == (dumped["report"]["rows"][0])
    )
