"""Secrets at rest on both backends: the key file beside an SQLite database, rotation under a
new key with `creditgate secrets rotate`, and the migration that seals secrets stored before."""

from __future__ import annotations

import json
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import insert, inspect, select, text
from typer.testing import CliRunner

from creditgate.api import Creditgate
from creditgate.cli import app
from creditgate.cli._shared import CliError
from creditgate.storage.database import Database
from creditgate.storage.migrate import downgrade, upgrade
from creditgate.storage.secret_keys import (
    ENV_KEYS,
    SEALED_PREFIX,
    SecretKeys,
    SecretUnreadable,
    generate_key,
)
from creditgate.storage.tables import payment_providers, tenants, webhook_endpoints
from tests.databases import create_database, drop_database

runner = CliRunner()
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _raw(db: Database) -> tuple[str, dict[str, str]]:
    with db.engine.connect() as conn:
        secret = conn.execute(select(webhook_endpoints.c.secret)).scalar_one()
        config = conn.execute(select(payment_providers.c.config)).scalar_one()
    return str(secret), dict(config)


def _opens_with(key: str, stored: str) -> str:
    assert stored.startswith(SEALED_PREFIX)
    return Fernet(key).decrypt(stored.removeprefix(SEALED_PREFIX).encode()).decode()


def _shop(cg: Creditgate) -> str:
    t = cg.tenant(cg.create_tenant(f"shop {uuid.uuid4().hex[:6]}").id)
    t.set_provider_account("stripe", api_key="sk_test_rotate", webhook_secret="whsec_rotate")
    secret = t.create_webhook_endpoint("https://hooks.example.com/a").secret
    assert secret is not None
    return secret


def test_rotation_reseals_every_secret_under_the_newest_key(
    empty_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = generate_key(), generate_key()
    monkeypatch.setenv(ENV_KEYS, old)
    with Creditgate(empty_db) as cg:
        secret = _shop(cg)
    monkeypatch.setenv(ENV_KEYS, f"{new},{old}")
    result = runner.invoke(app, ["secrets", "rotate", "--db", empty_db, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"webhook_secrets": 1, "provider_secrets": 2}

    db = Database(empty_db)
    try:
        stored, config = _raw(db)
        # The newest key alone opens everything now: the old one may be dropped.
        assert _opens_with(new, stored) == secret
        assert _opens_with(new, config["api_key"]) == "sk_test_rotate"
        assert _opens_with(new, config["webhook_secret"]) == "whsec_rotate"
        with pytest.raises(SecretUnreadable):
            SecretKeys([old]).open(stored)
    finally:
        db.dispose()
    monkeypatch.setenv(ENV_KEYS, new)
    with Creditgate(empty_db) as cg:
        assert cg.db.secret_keys.open(stored) == secret


def test_an_sqlite_file_keeps_its_key_beside_it_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_KEYS, raising=False)
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    key_file = tmp_path / "embedded.db.keys"
    with Creditgate(url) as cg:
        assert not key_file.exists()  # made only once there is a secret to keep
        secret = _shop(cg)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    (first,) = [line for line in key_file.read_text().splitlines() if not line.startswith("#")]
    db = Database(url)
    try:
        stored, _ = _raw(db)
        assert secret not in stored and _opens_with(first, stored) == secret
    finally:
        db.dispose()

    result = runner.invoke(app, ["secrets", "rotate", "--new-key", "--db", url])
    assert result.exit_code == 0, result.output
    newest, older = [line for line in key_file.read_text().splitlines() if line[:1] != "#"]
    assert older == first and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    db = Database(url)
    try:
        assert _opens_with(newest, _raw(db)[0]) == secret
    finally:
        db.dispose()


def test_new_key_needs_a_key_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"  # the tests' CREDITGATE_SECRET_KEYS is set
    result = runner.invoke(app, ["secrets", "rotate", "--new-key", "--db", url])
    assert isinstance(result.exception, CliError) and ENV_KEYS in str(result.exception)


def _plain_rows(db: Database) -> None:
    """What a database held before secrets were sealed, in the schema of then."""
    with db.engine.begin() as conn:
        conn.execute(insert(tenants).values(id="ten_old", name="old", created_at=NOW))
        conn.execute(
            insert(webhook_endpoints).values(
                tenant_id="ten_old",
                id="whe_old",
                url="https://hooks.example.com/old",
                description="",
                event_types=[],
                secret="whsec_plain_old",
                enabled=True,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        config = {"api_key": "sk_plain", "webhook_secret": "whsec_plain", "api_base": "http://x"}
        conn.execute(
            insert(payment_providers).values(
                tenant_id="ten_old", provider="stripe", config=config, updated_at=NOW
            )
        )
        for n, (error, status) in enumerate(
            (
                ("ConnectError: [Errno 111] Connection refused", None),
                ("the endpoint answered 500", 500),
            )
        ):
            conn.execute(
                text(
                    "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, "
                    "event_type, status, attempts, last_error, last_status_code, "
                    "response_excerpt, created_at) VALUES ('ten_old', :id, 'whe_old', :event, "
                    "'balance.low', 'failed', 1, :error, :status, 'internal: db=10.0.0.5', :now)"
                ),
                {
                    "id": f"whd_{n}",
                    "event": f"evt_{n}",
                    "error": error,
                    "status": status,
                    "now": NOW,
                },
            )


def test_the_migration_seals_secrets_stored_in_plain_text(
    empty_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    monkeypatch.setenv(ENV_KEYS, key)
    db = Database(empty_db)
    try:
        upgrade(db, "0012")
        _plain_rows(db)
        upgrade(db)
        stored, config = _raw(db)
        assert _opens_with(key, stored) == "whsec_plain_old"
        assert set(config) == {"api_key", "webhook_secret"}  # a tenant's api_base is gone
        assert _opens_with(key, config["api_key"]) == "sk_plain"
        assert _opens_with(key, config["webhook_secret"]) == "whsec_plain"
        columns = {c["name"] for c in inspect(db.engine).get_columns("webhook_deliveries")}
        assert "response_excerpt" not in columns
        with db.engine.connect() as conn:
            errors = conn.execute(
                text("SELECT last_error FROM webhook_deliveries ORDER BY id")
            ).scalars()
            assert list(errors) == ["connection_error", "http_status"]

        # And back: the secrets in plain text again, as the older code reads them.
        downgrade(db, "0012")
        stored, config = _raw(db)
        assert stored == "whsec_plain_old" and config["api_key"] == "sk_plain"
    finally:
        db.dispose()


@pytest.mark.postgres
def test_postgresql_with_plain_secrets_and_no_key_stops_the_migration(
    postgres_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_KEYS, raising=False)
    name = f"creditgate_nokey_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server, name)
    db = Database(url)
    try:
        upgrade(db, "0012")
        _plain_rows(db)
        with pytest.raises(RuntimeError, match=ENV_KEYS):
            upgrade(db)
        assert _raw(db)[0] == "whsec_plain_old"  # nothing half-done
    finally:
        db.dispose()
        drop_database(postgres_server, name)


def test_a_running_server_opens_what_a_rotation_with_a_new_key_sealed(tmp_path: Path) -> None:
    key_file = tmp_path / "served.db.keys"
    running, rotating = SecretKeys(key_file=key_file), SecretKeys(key_file=key_file)
    sealed = running.seal("whsec_live")
    rotating.add_key()
    resealed = rotating.reseal(sealed)
    assert resealed != sealed
    # The running one read the file before the new key was put in front: it reads it again.
    assert running.open(resealed) == "whsec_live"
    with pytest.raises(SecretUnreadable):
        SecretKeys([generate_key()]).open(resealed)
