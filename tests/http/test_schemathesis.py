"""Schemathesis over the app's own OpenAPI document: every operation, no 5xx, and every
response valid against the document (status, content type, body schema)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode

from creditgate.api import Creditgate, TenantLedger
from creditgate.server.app import Settings, create_app

CARD = {
    "asset": "credits",
    "credit_value_usd": "0.01",
    "actions": {
        "chat.completion": {
            "prices": [
                {
                    "per_unit": {"input_tokens": "0.002", "output_tokens": "0.008"},
                    "vendor": {"llm": {"provider": "openai"}},
                }
            ]
        }
    },
}


@dataclass
class Target:
    app: FastAPI
    key: str
    backend: str  # the dialect's name


@pytest.fixture
def target(cg: Creditgate) -> Target:
    tenant, key = cg.create_tenant_with_key(f"schemathesis {uuid.uuid4().hex[:8]}")
    t = TenantLedger(cg, tenant.id)
    t.create_asset("credits", 2)
    # The customer and asset the document's examples name.
    t.create_customer("cust_42")
    t.grant("cust_42", "credits", 10**9, kind="purchased", cost_basis="0.01")
    # The card the examples price by (chat.completion on gpt-4.1), so priced requests succeed.
    t.publish_rate_card(CARD)
    assert key.key is not None
    # Its invalid-key probes (one per accepted case) would pass the failed-authentication
    # limit, whose 429 the check does not expect; the limiter has tests of its own.
    app = create_app(cg, Settings(auth_failures_per_minute=0))
    return Target(app, key.key, cg.db.dialect)


@pytest.fixture
def api_schema(target: Target) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", target.app)
    if target.backend == "postgresql":
        # The coverage phase's negative cases (wrong types, missing or extra fields, values
        # out of range: three in five of all cases) are refused by the request models before
        # any storage is reached, the same on both backends; they run on SQLite, as do the
        # random cases of the fuzzing phase (6 an operation: about 600 of PostgreSQL's 2,200
        # cases, and a third of its time). PostgreSQL runs the coverage phase's valid
        # boundary values (the largest integers and longest strings a field takes, which
        # only PostgreSQL's columns could refuse) and every example the document gives.
        schema.config.phases.coverage.generation.modes = [GenerationMode.POSITIVE]
        schema.config.phases.fuzzing.enabled = False

    # Through Schemathesis's auth hook, so that cases testing a missing key go without one.
    @schema.auth()
    class BearerKey:
        def get(self, case: Any, context: Any) -> str:
            return target.key

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


schema = schemathesis.pytest.from_fixture("api_schema")

# Generated cases per operation and backend, beside every example the document gives (the
# explicit phase); CREDITGATE_SCHEMATHESIS_EXAMPLES=N for a longer run.
EXAMPLES = int(os.environ.get("CREDITGATE_SCHEMATHESIS_EXAMPLES", "6"))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: Any) -> None:
    # Every check but one: "schema-valid data is accepted" cannot hold for rules that span
    # fields (overdraft_limit only with the overdraft policy, expiry after effect, ...) or
    # that JSON Schema cannot state (printable text); those answer 422 naming the field.
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])
