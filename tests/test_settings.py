"""The server's settings: one typed object, documented by its own fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from creditgate.settings import Settings, env_reference

ROOT = Path(__file__).resolve().parents[1]


def test_the_reference_page_is_generated_from_the_settings() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == env_reference(), (
        "regenerate: python -m creditgate.settings > docs/configuration.md"
    )


def test_every_setting_is_described() -> None:
    assert all(f.description for f in Settings.model_fields.values())


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITGATE_MAX_IN_FLIGHT", "7")
    monkeypatch.setenv("CREDITGATE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "1")
    monkeypatch.setenv("CREDITGATE_PORTAL_SECRET", "s3cret")
    settings = Settings()
    assert settings.max_in_flight == 7
    assert settings.allow_private_webhook_targets is True
    assert settings.portal_secret is not None
    assert "s3cret" not in repr(settings)


def test_a_wrong_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITGATE_MAX_IN_FLIGHT", "many")
    with pytest.raises(ValidationError, match="max_in_flight"):
        Settings()
    monkeypatch.setenv("CREDITGATE_MAX_IN_FLIGHT", "0")
    with pytest.raises(ValidationError, match="max_in_flight"):
        Settings()


def test_only_the_settings_module_reads_creditgate_variables() -> None:
    import re

    # A read of a CREDITGATE_ variable (setting one for a child process is not a read).
    READ = r"(environ\.get\(|getenv\(|environ\[)[\"']CREDITGATE_\w+[\"'](?!\]\s*=)"

    readers = []
    for path in (ROOT / "src" / "creditgate").rglob("*.py"):
        if path.name == "settings.py" or "chaos" in path.parts or "bench" in path.parts:
            continue  # the fault and load harnesses set variables for the servers they start
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(READ, line):
                readers.append(f"{path.relative_to(ROOT)}:{n}")
    assert readers == []


def test_no_setting_chooses_how_the_gate_runs() -> None:
    """The gate has one path per backend: nothing on it reads a setting, and the engine reads
    only where the database is and how SQLite syncs (docs/configuration.md)."""
    import re

    storage = ROOT / "src" / "creditgate" / "storage"
    services = ROOT / "src" / "creditgate" / "services"
    on_the_path = [*(services / "ledger").glob("*.py"), services / "wallet.py"]
    on_the_path += [
        p for p in storage.glob("*.py") if p.name not in ("database.py", "secret_keys.py")
    ]
    reading = [
        p for p in on_the_path if re.search(r"creditgate\.settings|Settings\(", p.read_text())
    ]
    assert [str(p.relative_to(ROOT)) for p in reading] == []
    read = set(re.findall(r"Settings\(\)\.(\w+)", (storage / "database.py").read_text()))
    assert read == {"db", "sqlite_synchronous"}
