"""`creditgate members` and `creditgate budgets`: an organization from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from creditgate.api import Creditgate
from creditgate.cli import app
from creditgate.cli.main import run

runner = CliRunner()


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, result.output
    return result.output


def test_members_budgets_and_usage_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    with Creditgate(db) as cg:
        t = cg.tenant(cg.create_tenant("CLI AI").id)
        t.create_asset("credits", 2)
        t.create_customer("acme")
        t.grant("acme", "credits", 10_000)
        base = ("--db", db)
        made = json.loads(
            cli("members", "create", "acme", "alice", "--name", "Alice", "--json", *base)
        )
        assert made["status"] == "active"
        budget = json.loads(
            cli("budgets", "set", "acme", "credits", "500", "--period", "week",
                "--member", "alice", "--threshold", "50", "--threshold", "80", "--json", *base)
        )  # fmt: skip
        assert (budget["member"], budget["thresholds"]) == ("alice", [50, 80])
        assert t.charge("acme", "credits", 300, member="alice").status == "posted"
        usage = json.loads(cli("members", "usage", "acme", "alice", "--json", *base))
        assert [(p["spent"], p["remaining"]) for p in usage["data"]] == [(300, 200)]
        assert "alice" in cli("members", "list", "acme", *base)
        assert "week" in cli("budgets", "list", "acme", "--member", "alice", *base)
        off = json.loads(cli("members", "update", "acme", "alice", "--inactive", "--json", *base))
        assert off["status"] == "inactive"
        gone = json.loads(cli("budgets", "delete", "acme", "credits", "--member", "alice",
                              "--json", *base))  # fmt: skip
        assert gone["id"] == budget["id"]
        removed = json.loads(cli("members", "remove", "acme", "alice", "--json", *base))
        assert removed["status"] == "removed"

    for bad, field in (("0", "(amount)"), ("-5", "(amount)")):
        code = run(["budgets", "set", "acme", "credits", bad, "--period", "day", *base])
        assert code == 1 and field in capsys.readouterr().err
    assert run(["budgets", "set", "acme", "credits", "5", "--period", "hour", *base]) == 1
    assert "(period)" in capsys.readouterr().err


def test_a_wallet_policy_and_its_thresholds_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    with Creditgate(db) as cg:
        t = cg.tenant(cg.create_tenant("CLI AI").id)
        t.create_asset("credits", 2)
        t.create_customer("acme")
        t.grant("acme", "credits", 10_000)
        base = ("--db", db)
        policy = json.loads(
            cli("customers", "policy", "acme", "credits", "--policy", "overdraft",
                "--overdraft-limit", "500", "--low-balance", "2000",
                "--threshold", "5000", "--threshold", "1000", "--json", *base)
        )  # fmt: skip
        assert (policy["policy"], policy["overdraft_limit"], policy["thresholds"]) == (
            "overdraft",
            500,
            [5000, 1000],
        )
        assert "5000" in cli("customers", "policy", "acme", "credits", "--threshold", "5000",
                             *base)  # fmt: skip
        assert t.wallet("acme").balance("credits").policy == "block"  # back to the default

        eleven = [a for n in range(11) for a in ("--threshold", str(1_000 + n))]
        code = run(["customers", "policy", "acme", "credits", *eleven, *base])
        assert code == 1 and "(thresholds)" in capsys.readouterr().err
        code = run(["customers", "policy", "acme", "credits", "--policy", "lenient", *base])
        assert code == 1 and "(policy)" in capsys.readouterr().err
        # Nothing the refused ones asked for was set.
        balance = t.wallet("acme").balance("credits")
        assert (balance.policy, balance.thresholds) == ("block", [5000])
