"""Bad input over every operation: Schemathesis in stateful mode (requests chained through
the ids earlier answers handed out), and the hostile generator against a served creditgate.

No 5xx, every answer as the document says, every 422 naming its field, and no change to the
tenant's state from a refused request.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from creditgate.api import Creditgate, TenantLedger
from creditgate.chaos import hostile
from creditgate.server.app import Settings, create_app
from tests.chaos.live import live_server

# Sequences of up to 8 calls each (CREDITGATE_STATEFUL_EXAMPLES=N for a longer run).
EXAMPLES = int(os.environ.get("CREDITGATE_STATEFUL_EXAMPLES", "20"))

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

# Never sent: configuring a payment provider would let a purchase call it over the network,
# and revoking or rotating the test's own key would leave every later request a 401.
EXCLUDED = [
    ("PUT", "/v1/payment-providers/{provider}"),
    ("POST", "/v1/api-keys/{id}/revoke"),
    ("POST", "/v1/api-keys/{id}/rotate"),
]


def _seeded_tenant(cg: Creditgate) -> tuple[str, str]:
    tenant, key = cg.create_tenant_with_key(f"stateful {uuid.uuid4().hex[:8]}")
    t = TenantLedger(cg, tenant.id)
    t.create_asset("credits", 2)
    t.create_customer("cust_42")  # the customer and asset the document's examples name
    t.grant("cust_42", "credits", 10**9, kind="purchased", cost_basis="0.01")
    t.publish_rate_card(CARD)
    assert key.key is not None
    return tenant.id, key.key


def test_stateful_api_keeps_its_promises(cg: Creditgate) -> None:
    # The limiter would answer Schemathesis's invalid-key probes 429 (tested on its own).
    app = create_app(cg, Settings(auth_failures_per_minute=0))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    for method, path in EXCLUDED:
        schema = schema.exclude(method=method, path=path)
    # Each scenario on a tenant of its own, so that replaying one gives the same answers.
    tenants: list[str] = []
    current = {"key": ""}

    @schema.auth(refresh_interval=None)
    class BearerKey:
        def get(self, case: Any, context: Any) -> str:
            return current["key"]

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    seen: dict[str, int] = {"steps": 0, "refused": 0}

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        before: object = None
        tenant_id = ""

        def setup(self) -> None:
            self.tenant_id, current["key"] = _seeded_tenant(cg)
            tenants.append(self.tenant_id)

        def before_call(self, case: Any) -> None:
            self.before = hostile.fingerprint(cg, self.tenant_id)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            seen["steps"] += 1
            status = response.status_code
            assert status < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
            if 400 <= status < 500:
                seen["refused"] += 1
                after = hostile.fingerprint(cg, self.tenant_id)
                assert after == self.before, (
                    f"refused {case.method} {case.formatted_path} ({status}) changed the "
                    f"tenant's state: {response.text[:300]}"
                )
            if status == 422:
                problem = response.json()
                assert problem.get("field"), f"422 names no field: {response.text[:300]}"
            # "Schema-valid data is accepted" cannot hold for rules that span fields or that
            # JSON Schema cannot state (see tests/http/test_schemathesis.py).
            case.validate_response(
                response,
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
                transport_kwargs=kwargs or None,
            )

    Machine.run(
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=8,
            deadline=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    assert seen["steps"] > 50 and seen["refused"] > 0, seen
    for tenant_id in tenants:
        report = cg.verify(tenant_id)
        assert report.ok, report.violations


HOSTILE_REQUESTS = 150


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_hostile_input_against_a_served_creditgate(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    with live_server(request, backend, tmp_path) as live:
        hostile.prepare_tenant(live.base, live.key)
        hostile.prepare_tenant(live.base, live.key)  # idempotent
        report = hostile.run_hostile(
            live.base,
            live.key,
            lambda: hostile.fingerprint(live.cg, live.tenant_id),
            random.Random(f"hostile:{backend}"),
            # A fixed number of requests, not a time: a loaded machine takes longer, not fewer.
            # No seconds of its own: what it must try at the least is all it sends.
            seconds=0,
            max_requests=HOSTILE_REQUESTS,
            at_least=HOSTILE_REQUESTS,
        )
        assert live.process.poll() is None, live.log()[-3000:]
        verified = live.cg.verify(live.tenant_id)
    summary = (
        f"tried {report.tried}, 5xx {report.server_errors}, unnamed {report.unnamed}, "
        f"changed on reject {report.changed_on_reject}"
    )
    print(summary)
    assert report.server_errors == 0, (summary, report.failures)
    assert report.unnamed == 0, (summary, report.failures)
    assert report.changed_on_reject == 0, (summary, report.failures)
    assert report.tried == HOSTILE_REQUESTS, summary
    assert verified.ok, verified.violations
