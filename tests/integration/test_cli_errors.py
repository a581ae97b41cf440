"""The `creditgate` command line as a person meets it: every error one line on stderr, exit 1
(2 for a mistake in the command line), never a traceback unless asked for; negative numbers
reach validation; `--scale`; a default tenant; tables that fit 80 columns; amounts in the
asset's units; `rate-cards load --dry-run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from creditgate.api import Creditgate
from creditgate.cli import _shared, main
from creditgate.server.demo import seed_demo
from creditgate.storage.throwaway import ENV_URL
from tests.databases import create_database, drop_database

SCRIPT = Path(sys.executable).parent / "creditgate"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CREDITGATE_TENANT", "CREDITGATE_DB")}
    env.pop("CREDITGATE_DEBUG", None)
    return {**env, "CREDITGATE_CONFIG": str(tmp_path / "config.toml"), "COLUMNS": "80", **extra}


def script(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a person runs it."""
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **env),
        cwd=tmp_path,
        timeout=60,
    )


def run(monkeypatch: pytest.MonkeyPatch, capsys: Any, *args: str) -> tuple[int, str, str]:
    """`main()` in this process (faster than the script; the same error handling)."""
    monkeypatch.setattr(sys, "argv", ["creditgate", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, err: str, expected_code: int, says: str) -> None:
    assert "Traceback" not in err, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ") and says in err, err
    assert code == expected_code, (code, err)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "config.toml"
    monkeypatch.setenv("CREDITGATE_CONFIG", str(path))
    monkeypatch.delenv("CREDITGATE_TENANT", raising=False)
    return path


@pytest.fixture
def shop(empty_db: str) -> dict[str, str]:
    """A tenant with credits (scale 2) and a customer, on the test's backend."""
    with Creditgate(empty_db) as cg:
        tenant = cg.create_tenant("Shop")
        t = cg.tenant(tenant.id)
        t.create_asset("credits", 2)
        t.create_customer("c1")
        t.grant("c1", "credits", 1_000)
    return {"db": empty_db, "tenant": tenant.id}


# The table of bad invocations, through the console script.


def _bad_invocations(tmp_path: Path, postgres: str | None) -> list[tuple[list[str], int, str]]:
    (tmp_path / "bad.json").write_text('{"asset": "credits", ')
    db = str(tmp_path / "plain.db")  # a plain path: a SQLite file
    cases: list[tuple[list[str], int, str]] = [
        (["migrate", "--db", "mysql://user@localhost/app"], 2, "PostgreSQL"),
        (["migrate", "--db", str(tmp_path / "no" / "such" / "x.db")], 1, "does not exist"),
        (["migrate", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/x"], 1, "cannot use"),
        (["rate-cards", "load", str(tmp_path / "missing.yaml"), "--db", db], 1, "cannot read"),
        (["rate-cards", "load", str(tmp_path / "bad.json"), "--db", db], 1, "not valid JSON"),
        (["verify", "--db", str(tmp_path / "empty.db")], 1, "creditgate migrate"),
        (["customers", "list", "--db", db], 2, "tenants create"),
        (["grants", "create", "c1", "credits", "10", "--bogus"], 2, "No such option"),
        (["no-such-command"], 2, "No such command"),
        (["assets", "create", "credits", "--db", db], 2, "--scale"),
        (["report", "margin", "--from", "yesterday", "--db", db], 2, "--from"),
        # The benches and chaos read --db as every other command does.
        (["bench", "gate", "--db", str(tmp_path / "no" / "such" / "b.db")], 1, "does not exist"),
        (["chaos", "--db", "mysql://user@localhost/app"], 2, "PostgreSQL"),
    ]
    if postgres is not None:
        base = postgres.rsplit("/", 1)[0]
        cases.append(
            (["migrate", "--db", f"{base}/creditgate_no_such_db_xyz"], 1, "does not exist")
        )
    return cases


def test_bad_invocations_are_one_line_with_an_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, config: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for args, code, says in _bad_invocations(tmp_path, os.environ.get(ENV_URL)):
        found_code, out, err = run(monkeypatch, capsys, *args)
        assert_one_line(found_code, err, code, says)
        assert out == "", (args, out)


def test_the_console_script_prints_one_line_too(tmp_path: Path) -> None:
    cases = [(["migrate", "--db", "mysql://user@localhost/app"], 2, "PostgreSQL")]
    postgres = os.environ.get(ENV_URL)
    if postgres is not None:
        base = postgres.rsplit("/", 1)[0]
        cases.append((["migrate", "--db", f"{base}/creditgate_missing_q"], 1, "does not exist"))
    for args, code, says in cases:
        done = script(tmp_path, *args)
        assert_one_line(done.returncode, done.stderr, code, says)
        assert done.stdout == ""


def test_a_plain_path_is_a_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, config: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(monkeypatch, capsys, "migrate", "--db", "plain.db")
    assert code == 0, err
    assert (tmp_path / "plain.db").exists() and "sqlite" in out
    code, out, err = run(monkeypatch, capsys, "tenants", "list", "--db", "plain.db", "--json")
    assert json.loads(out) == {"data": []}
    monkeypatch.setenv("CREDITGATE_DB", str(tmp_path / "plain.db"))
    assert run(monkeypatch, capsys, "tenants", "list", "--json")[0] == 0


def test_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, config: Path
) -> None:
    bad = ("migrate", "--db", str(tmp_path / "no" / "x.db"))
    code, _, err = run(monkeypatch, capsys, *bad)
    assert code == 1 and "Traceback" not in err
    code, _, err = run(monkeypatch, capsys, "--debug", *bad)
    assert code == 1 and "Traceback" in err and err.splitlines()[-1].startswith("error: ")
    done = script(tmp_path, *bad, CREDITGATE_DEBUG="1")
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_database_and_domain_errors_on_both_backends(
    shop: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any, config: Path
) -> None:
    common = ("--db", shop["db"], "--tenant", shop["tenant"])
    cases = [
        (("grants", "create", "c1", "credits", "-100"), 1, "greater than zero"),
        (("balance", "nobody"), 1, "does not exist"),
        (("customers", "create", "c2", "--metadata", "{bad"), 2, "--metadata"),
        (("authorizations", "settle", "hld_x", "-5"), 1, ""),
    ]
    for args, code, says in cases:
        found_code, _, err = run(monkeypatch, capsys, *args, *common)
        assert_one_line(found_code, err, code, says)
    found_code, _, err = run(
        monkeypatch, capsys, "customers", "list", "--db", shop["db"], "--tenant", "ten_nope"
    )
    assert_one_line(found_code, err, 1, "ten_nope")


# Negative numbers, --scale


def test_negative_numbers_reach_the_validator(
    shop: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any, config: Path
) -> None:
    common = ("--db", shop["db"], "--tenant", shop["tenant"])
    code, _, err = run(monkeypatch, capsys, "grants", "create", "c1", "credits", "-100", *common)
    assert code == 1 and "amount must be greater than zero" in err and "No such option" not in err
    # Options take negative values as before: the validator answers.
    code, _, err = run(
        monkeypatch, capsys, "grants", "create", "c1", "credits", "5", "--priority", "-1", *common
    )
    assert_one_line(code, err, 1, "priority")


def test_assets_create_takes_scale_as_an_option_or_an_argument(
    shop: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any, config: Path
) -> None:
    common = ("--db", shop["db"], "--tenant", shop["tenant"], "--json")
    code, out, err = run(monkeypatch, capsys, "assets", "create", "gems", "--scale", "3", *common)
    assert code == 0, err
    assert json.loads(out)["scale"] == 3
    code, out, err = run(monkeypatch, capsys, "assets", "create", "usd", "2", *common)
    assert code == 0 and json.loads(out)["scale"] == 2, err
    code, _, err = run(monkeypatch, capsys, "assets", "create", "x", "2", "--scale", "3", *common)
    assert_one_line(code, err, 2, "two scales")
    code, _, err = run(monkeypatch, capsys, "assets", "create", "y", "--scale", "-1", *common)
    assert_one_line(code, err, 1, "scale")


# A default tenant


def test_a_default_tenant_from_the_environment_or_the_settings_file(
    empty_db: str, monkeypatch: pytest.MonkeyPatch, capsys: Any, config: Path
) -> None:
    db = ("--db", empty_db)
    code, out, err = run(monkeypatch, capsys, "tenants", "create", "First", "--json", *db)
    first = json.loads(out)["tenant"]["id"]
    code, out, err = run(monkeypatch, capsys, "tenants", "create", "Second", *db)
    assert code == 0 and "creditgate config set tenant ten_" in out
    code, _, err = run(monkeypatch, capsys, "assets", "create", "credits", "--scale", "2", *db)
    assert_one_line(code, err, 2, "config set tenant")

    code, out, err = run(monkeypatch, capsys, "config", "set", "tenant", first)
    assert code == 0 and config.exists(), err
    code, out, _ = run(monkeypatch, capsys, "config", "get", "tenant")
    assert out.strip() == first
    code, out, err = run(monkeypatch, capsys, "assets", "create", "credits", "--scale", "2", *db)
    assert code == 0, err
    code, out, _ = run(monkeypatch, capsys, "assets", "list", "--json", *db)
    assert [a["code"] for a in json.loads(out)["data"]] == ["credits"]

    # The environment overrides the file; --tenant overrides both.
    with Creditgate(empty_db) as cg:
        second = next(t.id for t in cg.tenants() if t.id != first)
    monkeypatch.setenv("CREDITGATE_TENANT", second)
    code, out, _ = run(monkeypatch, capsys, "assets", "list", "--json", *db)
    assert json.loads(out)["data"] == []
    code, out, _ = run(monkeypatch, capsys, "assets", "list", "--json", "--tenant", first, *db)
    assert len(json.loads(out)["data"]) == 1
    monkeypatch.setenv("CREDITGATE_TENANT", "ten_gone")
    code, _, err = run(monkeypatch, capsys, "assets", "list", *db)
    assert_one_line(code, err, 1, "$CREDITGATE_TENANT")
    monkeypatch.delenv("CREDITGATE_TENANT")

    code, _, err = run(monkeypatch, capsys, "config", "set", "colour", "blue")
    assert_one_line(code, err, 2, "unknown setting")
    code, out, _ = run(monkeypatch, capsys, "config", "unset", "tenant")
    code, _, _ = run(monkeypatch, capsys, "config", "get", "tenant")
    assert code == 1


# Tables at 80 columns, amounts in the asset's units


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database seeded as `creditgate demo` seeds it (tests/integration/
    test_migrations_and_cli.py runs the command), one per backend for the module: the tests
    that use it only read."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
        with Creditgate(url) as cg:
            seed_demo(cg)
        yield url
        return
    server = str(request.getfixturevalue("postgres_server"))
    name = f"creditgate_demo_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name)
    try:
        with Creditgate(url) as cg:
            seed_demo(cg)
        yield url
    finally:
        drop_database(server, name)


def _narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_shared.console, "width", 80)


@pytest.mark.parametrize(
    "args",
    [
        ("report", "margin"),
        ("report", "margin", "--by", "customer"),
        ("report", "revenue"),
        ("grants", "list", "cust_alice"),
        ("ledger", "cust_bob"),
        ("balance", "cust_bob"),
        ("rate-cards", "list"),
        ("billing", "packs", "list"),
        ("customers", "list"),
    ],
)
def test_tables_fit_80_columns_without_cutting_words(
    demo: str, monkeypatch: pytest.MonkeyPatch, capsys: Any, args: tuple[str, ...]
) -> None:
    _narrow(monkeypatch)
    code, out, err = run(monkeypatch, capsys, *args, "--db", demo)
    assert code == 0, err
    assert "…" not in out, out
    assert max(len(line) for line in out.splitlines()) <= 80, out


def test_margin_at_80_columns_keeps_whole_names(
    demo: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _narrow(monkeypatch)
    _, out, _ = run(monkeypatch, capsys, "report", "margin", "--db", demo)
    assert "chat.completion" in out and "gross margin" in out and "not shown at this width" in out


def test_revenue_is_money_in_the_currency_minor_unit(
    demo: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _, out, _ = run(monkeypatch, capsys, "report", "revenue", "--json", "--db", demo)
    report = json.loads(out)
    _, text, _ = run(monkeypatch, capsys, "report", "revenue", "--db", demo)
    (line,) = report["lines"]
    for column in ("sold", "recognized", "closing_deferred"):
        exact = Decimal(line[column])
        assert f" {exact.quantize(Decimal('0.01'))} " in text, (column, text)
    assert "56.200020000000" not in text
    assert all(len(word.partition(".")[2]) <= 2 for word in text.split() if word[:1].isdigit())


def test_amounts_are_shown_in_the_asset_units(
    shop: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any, config: Path
) -> None:
    common = ("--db", shop["db"], "--tenant", shop["tenant"])
    _, out, _ = run(monkeypatch, capsys, "balance", "c1", *common)
    assert "10.00" in out and "1000" not in out
    _, out, _ = run(monkeypatch, capsys, "grants", "list", "c1", *common)
    assert "10.00" in out
    _, out, _ = run(monkeypatch, capsys, "balance", "c1", "--json", *common)
    assert json.loads(out)["balances"][0]["posted"] == 1_000  # JSON keeps minor units


# rate-cards load --dry-run


CARD = {
    "asset": "credits",
    "credit_value_usd": "0.01",
    "actions": {
        "chat": {"prices": [{"per_unit": {"input_tokens": "0.5"}}]},
        "image": {"prices": [{"flat": "2"}]},
    },
}


def test_rate_card_dry_run_shows_the_diff_and_publishes_nothing(
    shop: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    config: Path,
    tmp_path: Path,
) -> None:
    common = ("--db", shop["db"], "--tenant", shop["tenant"])
    path = tmp_path / "card.json"
    path.write_text(json.dumps(CARD))
    code, out, err = run(monkeypatch, capsys, "rate-cards", "load", str(path), "--dry-run", *common)
    assert code == 0, err
    assert "would be version 1" in out and "nothing published" in out
    code, _, err = run(monkeypatch, capsys, "rate-cards", "load", str(path), *common)
    assert code == 0, err

    changed = json.loads(json.dumps(CARD))
    changed["credit_value_usd"] = "0.02"
    changed["actions"]["chat"]["prices"][0]["per_unit"]["input_tokens"] = "0.6"
    del changed["actions"]["image"]
    changed["actions"]["speech"] = {"prices": [{"per_unit": {"characters": "0.01"}}]}
    path.write_text(json.dumps(changed))
    code, out, err = run(
        monkeypatch, capsys, "rate-cards", "load", str(path), "--dry-run", "--json", *common
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["dry_run"] is True and plan["version"] == 2 and plan["live"]["version"] == 1
    assert plan["added"] == ["speech"] and plan["removed"] == ["image"]
    assert {
        "component": "chat",
        "path": "prices[0].per_unit.input_tokens",
        "was": "0.5",
        "would_be": "0.6",
    } in plan["changed"]
    assert {"component": "card", "path": "credit_value_usd", "was": "0.01", "would_be": "0.02"} in (
        plan["changed"]
    )
    code, text, _ = run(monkeypatch, capsys, "rate-cards", "load", str(path), "--dry-run", *common)
    assert "added" in text and "removed" in text and "0.6" in text

    code, out, _ = run(monkeypatch, capsys, "rate-cards", "list", "--json", *common)
    assert [v["version"] for v in json.loads(out)["data"]] == [1]  # nothing published

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**CARD, "rounding": "sideways"}))
    code, _, err = run(monkeypatch, capsys, "rate-cards", "load", str(bad), "--dry-run", *common)
    assert_one_line(code, err, 1, "rounding")
