"""Secrets over HTTP: stored sealed, shown once when made (or rotated) and never after, and
refused, not stored in plain text, when the operator set no key."""

from __future__ import annotations

import os
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import select

from creditgate.api import Creditgate
from creditgate.storage.secret_keys import ENV_KEYS, SEALED_PREFIX, SecretKeys
from creditgate.storage.tables import payment_providers, webhook_endpoints
from tests.conftest import operator_settings
from tests.http.conftest import Api

STRIPE = {"api_key": "sk_test_sealed_0123456789", "webhook_secret": "whsec_sealed_0123456789"}


def _opened(stored: str) -> str:
    assert stored.startswith(SEALED_PREFIX)
    keys = os.environ[ENV_KEYS].split(",")
    return Fernet(keys[0]).decrypt(stored.removeprefix(SEALED_PREFIX).encode()).decode()


def _stored_endpoint_secret(cg: Creditgate, endpoint: str) -> str:
    with cg.db.engine.connect() as conn:
        return str(
            conn.execute(
                select(webhook_endpoints.c.secret).where(webhook_endpoints.c.id == endpoint)
            ).scalar_one()
        )


def _stored_provider_config(cg: Creditgate, tenant: str) -> dict[str, Any]:
    with cg.db.engine.connect() as conn:
        return dict(
            conn.execute(
                select(payment_providers.c.config).where(payment_providers.c.tenant_id == tenant)
            ).scalar_one()
        )


def test_a_webhook_secret_is_stored_sealed_and_shown_only_when_made(
    api: Api, cg: Creditgate
) -> None:
    body = {"url": "https://hooks.example.com/a"}
    made = api.post("/v1/webhook-endpoints", body, headers={"Idempotency-Key": "mk"}).json()
    secret = made["secret"]
    assert secret.startswith("whsec_")
    stored = _stored_endpoint_secret(cg, made["id"])
    assert secret not in stored and _opened(stored) == secret

    replayed = api.post("/v1/webhook-endpoints", body, headers={"Idempotency-Key": "mk"})
    assert replayed.json()["id"] == made["id"] and replayed.json()["secret"] is None
    answers = [
        replayed,
        api.get("/v1/webhook-endpoints"),
        api.get(f"/v1/webhook-endpoints/{made['id']}"),
        api.post(f"/v1/webhook-endpoints/{made['id']}", {"description": "renamed"}),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        assert secret not in answer.text and SEALED_PREFIX not in answer.text

    rotated = api.post(f"/v1/webhook-endpoints/{made['id']}/rotate-secret").json()
    assert rotated["secret"] not in (None, secret)
    assert _opened(_stored_endpoint_secret(cg, made["id"])) == rotated["secret"]
    assert rotated["secret"] not in api.get(f"/v1/webhook-endpoints/{made['id']}").text


def test_provider_secrets_are_stored_sealed_and_never_shown(api: Api, cg: Creditgate) -> None:
    put = api.put("/v1/payment-providers/stripe", STRIPE)
    listed = api.get("/v1/payment-providers")
    for answer in (put, listed):
        assert answer.status_code == 200, answer.text
        for secret in STRIPE.values():
            assert secret not in answer.text
        assert SEALED_PREFIX not in answer.text
    assert listed.json()["data"][0]["api_key_set"] is True
    stored = _stored_provider_config(cg, api.tenant_id)
    assert {name: _opened(value) for name, value in stored.items() if value} == STRIPE


def test_without_a_key_secrets_are_refused_not_stored_in_plain_text(
    api: Api, cg: Creditgate
) -> None:
    # PostgreSQL with no CREDITGATE_SECRET_KEYS (an SQLite file would make its key file).
    with operator_settings(cg, secret_keys=SecretKeys()):
        made = api.post("/v1/webhook-endpoints", {"url": "https://hooks.example.com/a"})
        put = api.put("/v1/payment-providers/stripe", STRIPE)
    for answer in (made, put):
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "secret_keys_missing"
        assert "CREDITGATE_SECRET_KEYS" in answer.json()["detail"]
    assert api.get("/v1/webhook-endpoints").json()["data"] == []
    assert api.get("/v1/payment-providers").json()["data"] == []
