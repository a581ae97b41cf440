"""The everyday CLI verbs over the database: Rich tables by default, JSON with --json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from creditgate.api import Creditgate
from creditgate.cli import main


class Cli:
    def __init__(self, db: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
        self.db, self.capsys, self.monkeypatch = db, capsys, monkeypatch

    def run(self, *args: str) -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "argv", ["creditgate", *args, "--db", self.db])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        code, out, err = self.run(*args)
        assert code == 0, err
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'cli.db'}", capsys, monkeypatch)


def test_verbs_need_a_tenant_and_take_the_only_one(cli: Cli) -> None:
    code, _, err = cli.run("customers", "list")
    assert code == 2 and "tenants create" in err
    created = cli.json("tenants", "create", "Acme AI")
    assert created["api_key"]["key"].startswith("cg_")
    assert cli.json("customers", "list") == {"data": []}
    other = cli.json("tenants", "create", "Other")
    code, _, err = cli.run("customers", "list")
    assert code == 2 and "--tenant" in err
    assert cli.json("customers", "list", "--tenant", other["tenant"]["id"]) == {"data": []}


def test_customers_grants_balance_and_ledger(cli: Cli) -> None:
    text = cli.ok("tenants", "create", "Acme AI")
    assert "api key cg_" in text and "shown this once" in text
    cli.ok("assets", "create", "credits", "2", "--name", "Credits")
    customer = cli.json(
        "customers", "create", "c1", "--name", "Ada", "--metadata", '{"plan": "pro"}'
    )
    assert customer["external_id"] == "c1" and customer["metadata"] == {"plan": "pro"}
    lot = cli.json(
        "grants",
        "create",
        "c1",
        "credits",
        "1000",
        "--kind",
        "purchased",
        "--cost-basis",
        "0.25",
        "--expires-at",
        "2099-01-01T00:00:00Z",
    )
    assert lot["amount"] == 1000 and lot["cost_basis"] == "0.25"
    promo = cli.json("grants", "create", "c1", "credits", "300")
    assert [g["id"] for g in cli.json("grants", "list", "c1")["data"]] == [lot["id"], promo["id"]]
    assert "lots of c1 in burn order" in cli.ok("grants", "list", "c1")
    assert cli.json("grants", "void", promo["id"], "--reason", "oops")["status"] == "voided"
    wallet = cli.json("balance", "c1")
    assert wallet["balances"][0]["available"] == 1000
    table = cli.ok("balance", "c1")
    assert "credits" in table and "10.00" in table  # 1000 minor units at scale 2
    shown = cli.json("customers", "show", "c1")
    assert shown["customer"]["name"] == "Ada" and shown["wallet"]["balances"][0]["posted"] == 1000
    page = cli.json("ledger", "c1", "--limit", "1")
    assert len(page["data"]) == 1 and page["next_cursor"]
    assert "more: --cursor" in cli.ok("ledger", "c1", "--limit", "1")
    code, _, err = cli.run("balance", "nobody")
    assert code == 1 and "does not exist" in err


def test_authorizations_show_settle_and_void(cli: Cli) -> None:
    tenant = cli.json("tenants", "create", "Acme AI")["tenant"]["id"]
    with Creditgate(cli.db) as cg:
        t = cg.tenant(tenant)
        t.create_asset("credits", 2)
        t.create_customer("c1")
        t.grant("c1", "credits", 1_000)
        first = t.authorize("c1", "credits", 400).id
        second = t.authorize("c1", "credits", 400).id
    assert cli.json("authorizations", "show", first)["status"] == "pending"
    settled = cli.json("authorizations", "settle", first, "300", "--action", "chat")
    assert settled["charge"]["amount"] == 300
    assert cli.json("authorizations", "void", second)["status"] == "voided"
    code, _, err = cli.run("authorizations", "void", second)
    assert code == 1 and "already voided" in err
    assert cli.json("balance", "c1")["balances"][0]["available"] == 700


def test_keys_list_create_revoke_rotate(cli: Cli) -> None:
    first = cli.json("tenants", "create", "Acme AI")["api_key"]
    created = cli.json("keys", "create", "--name", "ci")
    assert created["key"].startswith(f"cg_{created['prefix']}_")
    listed = cli.ok("keys", "list")
    assert f"cg_{created['prefix']}_…" in listed and created["key"] not in listed
    rotated = cli.json("keys", "rotate", created["id"])
    assert rotated["name"] == "ci" and rotated["key"] != created["key"]
    revoked = cli.json("keys", "revoke", first["id"])
    assert revoked["revoked_at"] is not None
    active = {k["id"]: k["revoked_at"] is None for k in cli.json("keys", "list")["data"]}
    assert active == {first["id"]: False, created["id"]: False, rotated["id"]: True}
