"""`creditgate billing`: plans, packs, invoices and campaigns from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from creditgate.api import Creditgate
from creditgate.cli import app

runner = CliRunner()


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_billing_commands_from_plan_to_paid_invoice(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    with Creditgate(db) as cg:
        t = cg.tenant(cg.create_tenant("CLI AI").id)
        t.create_asset("credits", 2)
        t.create_customer("c1")
    base = ("--db", db)
    cli("billing", "plans", "create", "pro", "--asset", "credits", "--included", "1000",
        "--fee", "10", "--rollover-cap", "200", *base)  # fmt: skip
    assert "pro" in cli("billing", "plans", "list", *base)
    sub = json.loads(cli("billing", "plans", "subscribe", "c1", "pro", "--json", *base))
    assert sub["status"] == "active"
    assert json.loads(cli("billing", "plans", "renew", "--json", *base))["renewed"] == 0
    cli("billing", "packs", "create", "starter", "--asset", "credits", "--amount", "500",
        "--price", "5", "--expires-after-days", "30", *base)  # fmt: skip
    purchase = json.loads(cli("billing", "packs", "buy", "c1", "starter", "--json", *base))
    assert purchase["status"] == "pending"
    paid = json.loads(cli("billing", "packs", "mark-paid", purchase["id"], "--json", *base))
    assert paid["status"] == "paid" and paid["lot_id"]
    assert purchase["id"] in cli("billing", "packs", "purchases", "c1", *base)
    cli("billing", "campaigns", "create", "hello", "--asset", "credits", "--amount", "50", *base)
    assert (
        json.loads(cli("billing", "campaigns", "redeem", "c1", "HELLO", "--json", *base))["seq"]
        == 1
    )
    order = json.loads(
        cli(
            "billing",
            "consumption-order",
            "--kind",
            "purchased",
            "--priority",
            "5",
            "--json",
            *base,
        )
    )
    assert order["data"][-1] == {"kind": "purchased", "priority": 5, "is_default": False}
    with Creditgate(db) as cg:
        t = cg.tenant(cg.tenants()[0].id)
        assert t.wallet("c1").balance("credits").posted == 1_550
        assert cg.verify().ok


def test_collecting_a_manual_plan_and_overage_on_a_test_mode_tenant(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'collect.db'}"
    base = ("--db", db)
    made = json.loads(cli("tenants", "create", "Sandbox AI", "--mode", "test", "--json", *base))
    assert made["tenant"]["mode"] == "test"
    tenant = made["tenant"]["id"]
    with Creditgate(db) as cg:
        t = cg.tenant(tenant)
        t.create_asset("credits", 2)
        t.create_customer("c1")
    base = (*base, "--tenant", tenant)
    cli("billing", "plans", "create", "team", "--asset", "credits", "--included", "1000",
        "--fee", "10", "--collection", "manual", "--overage-policy", "allow", *base)  # fmt: skip
    cli("billing", "overage", "set", "credits", "--price", "0.10", *base)
    sub = json.loads(cli("billing", "plans", "subscribe", "c1", "team", "--json", *base))
    (invoice,) = json.loads(cli("billing", "invoices", "list", "c1", "--json", *base))["data"]
    assert (invoice["status"], invoice["amount"]) == ("open", "10")
    paid = json.loads(cli("billing", "invoices", "mark-paid", invoice["id"], "--json", *base))
    assert paid["status"] == "paid"
    with Creditgate(db) as cg:
        cg.tenant(tenant).charge("c1", "credits", 1_500, idempotency_key="use")
    moved = json.loads(
        cli("billing", "test-clock", "advance", sub["current_period_end"], "--json", *base)
    )
    assert moved["billing"]["overage"]["billed"] == 1
    assert moved["billing"]["renewals"]["renewed"] == 1
    kinds = [(i["kind"], i["status"]) for i in json.loads(
        cli("billing", "invoices", "list", "c1", "--json", *base)
    )["data"]]  # fmt: skip
    assert sorted(kinds) == [("overage", "open"), ("plan_fee", "open"), ("plan_fee", "paid")]
