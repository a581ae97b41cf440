"""Customer gateway keys with the real openai and anthropic clients: a `cgk_…` key is all a
customer's client needs; it fixes the tenant and the customer, is refused once revoked, keeps
to its models and its spend limit — each refusal in the provider's own shape, before anything
is held or sent upstream."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate
from creditgate.api.gateway import UnknownGatewayKey
from creditgate.bench.standin import StandIn
from creditgate.cli import app
from creditgate.domain.gateway import estimate_input_tokens
from creditgate.storage.tables import gateway_keys
from tests.gateway.conftest import CUSTOMER, FUNDS, Tenant, new_tenant, wait_for

MESSAGES = [{"role": "user", "content": "Say hello to the world, please."}]
MAX_TOKENS = 40
runner = CliRunner()


def _api(tenant: Tenant, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key or tenant.key}"}
    return httpx.Client(
        verify=tls_context(), base_url=tenant.gateway_url, headers=headers, timeout=10
    )


def create_key(tenant: Tenant, customer: str = CUSTOMER, **body: Any) -> dict[str, Any]:
    with _api(tenant) as api:
        created = api.post(f"/v1/customers/{customer}/gateway-keys", json=body)
    assert created.status_code == 201, created.text
    doc: dict[str, Any] = created.json()
    return doc


def keys_of(tenant: Tenant, customer: str = CUSTOMER) -> list[dict[str, Any]]:
    with _api(tenant) as api:
        listed = api.get(f"/v1/customers/{customer}/gateway-keys")
    assert listed.status_code == 200, listed.text
    found: list[dict[str, Any]] = listed.json()["data"]
    return found


def openai_client(tenant: Tenant, key: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{tenant.gateway_url}/gateway/openai/v1",
        api_key=key,
        default_headers=headers or None,
        max_retries=0,
    )


def anthropic_client(tenant: Tenant, key: str, *, bearer: bool = False) -> anthropic.Anthropic:
    base = f"{tenant.gateway_url}/gateway/anthropic"
    if bearer:  # Authorization: Bearer, as Anthropic's client sends an auth token
        return anthropic.Anthropic(base_url=base, auth_token=key, api_key=None, max_retries=0)
    return anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)


def chat(client: openai.OpenAI, model: str = "gpt-test") -> Any:
    return client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS)


def exact_usage(standin: StandIn) -> None:
    """The stand-in reports what the gateway estimated: each call is settled at its hold."""
    sent = {"messages": MESSAGES}
    standin.chat_usage = {
        "prompt_tokens": estimate_input_tokens(sent),
        "completion_tokens": MAX_TOKENS,
        "total_tokens": estimate_input_tokens(sent) + MAX_TOKENS,
    }
    standin.anthropic_usage = {
        "input_tokens": estimate_input_tokens(sent),
        "output_tokens": MAX_TOKENS,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_a_customer_key_is_all_a_client_needs(tenant: Tenant, standin: StandIn) -> None:
    created = create_key(tenant, name="their app")
    key = created["key"]
    assert key.startswith(f"cgk_{created['prefix']}_") and created["customer"] == CUSTOMER

    # No tenant key, no customer header: the key says whose wallet pays.
    completion = chat(openai_client(tenant, key))
    assert completion.choices[0].message.content == "Hello, world!"
    message = anthropic_client(tenant, key).messages.create(
        model="claude-test", max_tokens=MAX_TOKENS, messages=MESSAGES
    )
    assert message.content[0].type == "text"
    anthropic_client(tenant, key, bearer=True).messages.create(
        model="claude-test", max_tokens=MAX_TOKENS, messages=MESSAGES
    )

    each_openai = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    each_anthropic = tenant.price("claude-test", input_tokens=700, output_tokens=150)
    # Settles follow the answers.
    wait_for(lambda: tenant.available() == FUNDS - each_openai - 2 * each_anthropic)
    charges = tenant.charges()
    assert [c.amount for c in charges] == [each_openai, each_anthropic, each_anthropic]
    assert {c.metadata["gateway_key"] for c in charges} == {created["id"]}
    # The provider got the tenant's keys, never the customer's.
    assert len(standin.received) == 3
    assert key not in str([r.headers for r in standin.received])

    # Listed by its prefix: the secret is never shown again.
    with _api(tenant) as api:
        listed = api.get(f"/v1/customers/{CUSTOMER}/gateway-keys")
    assert key.split("_", 2)[2] not in listed.text
    (shown,) = listed.json()["data"]
    assert "key" not in shown and shown["prefix"] == created["prefix"]
    assert shown["name"] == "their app" and shown["last_used_at"] is not None
    assert shown["spend_limit"] is None and shown["usage"] is None and shown["models"] is None


def test_a_key_fixes_its_tenant_and_customer(
    cg: Creditgate, tenant: Tenant, gateway_url: str, standin: StandIn
) -> None:
    other = new_tenant(cg, gateway_url)  # has a customer of the same id, with its own wallet
    tenant.ledger.create_customer("cust_2")
    tenant.ledger.grant("cust_2", "credits", 5_000)
    mine = create_key(tenant)
    theirs = create_key(other)

    chat(openai_client(tenant, mine["key"]))
    chat(openai_client(other, theirs["key"]))
    each = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    wait_for(lambda: tenant.available() == FUNDS - each and other.available() == FUNDS - each)

    # Naming another customer (of its own tenant, or none) is refused; naming its own is fine.
    for named in ("cust_2", "nobody"):
        with pytest.raises(openai.PermissionDeniedError) as raised:
            chat(openai_client(tenant, mine["key"], **{"X-Creditgate-Customer": named}))
        error = raised.value.body
        assert isinstance(error, dict) and error["code"] == "customer_not_of_key"
        assert raised.value.response.json()["error"]["type"] == "permission_error"
    chat(openai_client(tenant, mine["key"], **{"X-Creditgate-Customer": CUSTOMER}))
    assert len(standin.received) == 3
    assert tenant.available("cust_2") == 5_000

    # A customer key is no tenant key: the JSON API refuses it.
    with _api(tenant, mine["key"]) as api:
        assert api.get(f"/v1/customers/{CUSTOMER}/wallet").status_code == 401
        assert api.get(f"/v1/customers/{CUSTOMER}/gateway-keys").status_code == 401

    # Each tenant sees and revokes only its own customers' keys.
    assert [k["id"] for k in keys_of(other)] == [theirs["id"]]
    with _api(other) as api:
        refused = api.delete(f"/v1/customers/{CUSTOMER}/gateway-keys/{mine['id']}")
    assert refused.status_code == 404 and refused.json()["code"] == "unknown_gateway_key"
    with _api(tenant) as api:
        elsewhere = api.delete(f"/v1/customers/cust_2/gateway-keys/{mine['id']}")
        assert elsewhere.status_code == 404
        assert api.get("/v1/customers/nobody/gateway-keys").status_code == 404
        assert api.post("/v1/customers/nobody/gateway-keys", json={}).status_code == 404
    chat(openai_client(tenant, mine["key"]))  # still works
    report = cg.verify(other.ledger.tenant_id)
    assert report.ok, report.violations


def test_a_revoked_key_is_refused_in_the_providers_shape(tenant: Tenant, standin: StandIn) -> None:
    created = create_key(tenant)
    chat(openai_client(tenant, created["key"]))
    path = f"/v1/customers/{CUSTOMER}/gateway-keys/{created['id']}"
    with _api(tenant) as api:
        revoked = api.delete(path, headers={"Idempotency-Key": "revoke-1"})
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        again = api.delete(path)
        assert again.status_code == 200
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]

    with pytest.raises(openai.AuthenticationError) as raised:
        chat(openai_client(tenant, created["key"]))
    error = raised.value.response.json()["error"]
    assert error["type"] == "authentication_error" and "has been revoked" in error["message"]
    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic_client(tenant, created["key"]).messages.create(
            model="claude-test", max_tokens=MAX_TOKENS, messages=MESSAGES
        )
    assert refused.value.response.json()["error"]["type"] == "authentication_error"
    # A key that never was is refused alike.
    with pytest.raises(openai.AuthenticationError):
        chat(openai_client(tenant, created["key"][:-4] + "AAAA"))
    assert len(standin.received) == 1
    wait_for(lambda: len(tenant.charges()) == 1)


def test_create_is_idempotent_and_shows_the_secret_once(tenant: Tenant) -> None:
    body = {"spend_limit": {"asset": "credits", "amount": 5_000, "period": "week"}}
    with _api(tenant) as api:
        url = f"/v1/customers/{CUSTOMER}/gateway-keys"
        first = api.post(url, json=body, headers={"Idempotency-Key": "key-1"})
        replay = api.post(url, json=body, headers={"Idempotency-Key": "key-1"})
        conflict = api.post(url, json={}, headers={"Idempotency-Key": "key-1"})
        bad_period = api.post(url, json={"spend_limit": {**body["spend_limit"], "period": "hour"}})
        bad_amount = api.post(url, json={"spend_limit": {**body["spend_limit"], "amount": -1}})
        bad_asset = api.post(url, json={"spend_limit": {"asset": "gems", "amount": 1}})
        bad_models = api.post(url, json={"models": "gpt-test"})
        twice = api.post(url, json={"models": ["gpt-test", "gpt-test"]})
        none = api.post(url, json={"models": []})
    assert first.status_code == 201 and first.json()["key"]
    assert replay.status_code == 201 and replay.json()["key"] is None
    assert replay.json()["id"] == first.json()["id"]
    assert first.json()["usage"]["remaining"] == 5_000
    assert first.json()["usage"]["period_start"] == "2025-12-29T00:00:00Z"  # that Monday
    assert conflict.status_code == 409
    assert bad_period.status_code == 422 and "period" in bad_period.text
    assert bad_amount.status_code == 422 and "amount" in bad_amount.text
    assert bad_asset.status_code == 404 and bad_asset.json()["code"] == "unknown_asset"
    assert bad_models.status_code == 422 and "models" in bad_models.text
    assert twice.status_code == 422 and twice.json()["field"] == "models"
    assert none.status_code == 422 and "models" in none.text
    assert len(keys_of(tenant)) == 1


def test_a_model_outside_the_keys_list_is_never_held_nor_sent(
    tenant: Tenant, standin: StandIn
) -> None:
    key = create_key(tenant, models=["gpt-test"])["key"]
    with pytest.raises(openai.PermissionDeniedError) as raised:
        chat(openai_client(tenant, key), model="gpt-other")
    error = raised.value.response.json()["error"]
    assert error["code"] == "model_not_allowed" and "'gpt-other'" in error["message"]
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        anthropic_client(tenant, key).messages.create(
            model="claude-test", max_tokens=MAX_TOKENS, messages=MESSAGES
        )
    assert refused.value.response.json()["error"]["type"] == "permission_error"
    assert standin.received == [] and tenant.available() == FUNDS
    assert tenant.ledger.wallet(CUSTOMER).balance("credits").held == 0
    chat(openai_client(tenant, key))
    assert len(standin.received) == 1


def test_the_spend_limit_declines_past_it_in_the_providers_shape(
    tenant: Tenant, standin: StandIn
) -> None:
    exact_usage(standin)
    sent = {"messages": MESSAGES}
    each = tenant.price(
        "gpt-test", input_tokens=estimate_input_tokens(sent), output_tokens=MAX_TOKENS
    )
    limit = {"asset": "credits", "amount": 3 * each - 1, "period": "month"}
    created = create_key(tenant, spend_limit=limit)
    client = openai_client(tenant, created["key"])

    chat(client)
    standin.fail = (500, {"error": {"message": "boom", "type": "server_error"}})
    with pytest.raises(openai.InternalServerError):
        chat(client)  # voided: the limit gets it back
    standin.fail = None
    chat(client)
    with pytest.raises(openai.APIStatusError) as raised:
        chat(client)
    assert raised.value.status_code == 402
    error = raised.value.response.json()["error"]
    assert error["code"] == "spend_limit_reached" and error["type"] == "insufficient_credits"
    message = error["message"]
    assert f"cgk_{created['prefix']}_…" in message
    assert f"has {each - 1} of {3 * each - 1} credits left this month" in message
    with pytest.raises(anthropic.APIStatusError) as refused:
        anthropic_client(tenant, created["key"]).messages.create(
            model="claude-test", max_tokens=MAX_TOKENS, messages=MESSAGES
        )
    assert refused.value.status_code == 402
    assert refused.value.response.json()["error"]["type"] == "billing_error"

    assert len(standin.received) == 3  # two served, one failed upstream; none declined
    wait_for(lambda: tenant.available() == FUNDS - 2 * each)
    (shown,) = keys_of(tenant)
    usage = shown["usage"]
    assert (usage["held"], usage["spent"], usage["remaining"]) == (0, 2 * each, each - 1)
    assert usage["period_start"] == "2026-01-01T00:00:00Z"
    assert usage["period_end"] == "2026-02-01T00:00:00Z"


def test_a_member_calling_under_a_limited_key_must_fit_its_budget_and_the_limit(
    tenant: Tenant, standin: StandIn
) -> None:
    exact_usage(standin)
    each = tenant.price(
        "gpt-test",
        input_tokens=estimate_input_tokens({"messages": MESSAGES}),
        output_tokens=MAX_TOKENS,
    )
    ledger = tenant.ledger
    ledger.create_member(CUSTOMER, "alice")
    ledger.set_budget(CUSTOMER, "credits", 2 * each, period="day", member="alice")
    created = create_key(tenant, spend_limit={"asset": "credits", "amount": 3 * each})
    client = openai_client(tenant, created["key"], **{"X-Creditgate-Member": "alice"})

    def refused() -> str:
        with pytest.raises(openai.APIStatusError) as raised:
            chat(client)
        assert raised.value.status_code == 402
        return str(raised.value.response.json()["error"]["code"])

    chat(client)
    chat(client)
    wait_for(lambda: tenant.available() == FUNDS - 2 * each)  # both settled
    assert refused() == "budget_exceeded"  # the key's limit has one call left, alice none
    ledger.set_budget(CUSTOMER, "credits", 10 * each, period="day", member="alice")
    chat(client)
    wait_for(lambda: tenant.available() == FUNDS - 3 * each)
    assert refused() == "spend_limit_reached"  # alice has 7 calls left, the key none
    assert len(standin.received) == 3  # the declines never reached the provider
    assert {c.member for c in tenant.charges()} == {"alice"}
    (shown,) = keys_of(tenant)
    usage = shown["usage"]
    assert (usage["held"], usage["spent"], usage["remaining"]) == (0, 3 * each, 0)
    (period,) = ledger.usage(CUSTOMER, member="alice").data
    assert (period.held, period.spent) == (0, 3 * each)


def test_keys_are_kept_as_a_prefix_and_a_hash(cg: Creditgate, tenant: Tenant) -> None:
    created = create_key(tenant)
    secret = created["key"].split("_", 2)[2]
    row = cg.db.run(
        lambda conn: conn.execute(
            select(gateway_keys).where(gateway_keys.c.id == created["id"])
        ).one(),
        read_only=True,
    )
    assert row.prefix == created["prefix"] and row.customer == CUSTOMER
    assert row.hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(tuple(row))


def test_the_cli_creates_lists_and_revokes(
    cg: Creditgate, tenant: Tenant, standin: StandIn
) -> None:
    exact_usage(standin)
    url = str(cg.db.engine.url.render_as_string(hide_password=False))
    common = ["--db", url, "--tenant", tenant.ledger.tenant_id]
    command = ["gateway", "customer-keys"]
    limited = ["--limit", "5000", "--period", "day", "--model", "gpt-test"]
    made = runner.invoke(app, [*command, "create", CUSTOMER, *limited, *common, "--json"])
    assert made.exit_code == 0, made.output
    created = json.loads(made.output)
    assert created["spend_limit"] == {"asset": "credits", "amount": 5_000, "period": "day"}
    chat(openai_client(tenant, created["key"]))

    listed = runner.invoke(app, [*command, "list", CUSTOMER, *common])
    assert listed.exit_code == 0, listed.output
    assert f"cgk_{created['prefix']}_…" in listed.output and created["key"] not in listed.output
    assert "50.00 credits / day" in listed.output and "gpt-test" in listed.output

    revoked = runner.invoke(app, [*command, "revoke", CUSTOMER, created["id"], *common, "--json"])
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.output)["revoked_at"] is not None
    # Revoked elsewhere than through the server: refused once its key cache lets it go.
    deadline = time.monotonic() + 10
    while True:
        try:
            chat(openai_client(tenant, created["key"]))
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.2)
    missing = runner.invoke(app, [*command, "revoke", CUSTOMER, "gwk_none", *common])
    assert isinstance(missing.exception, UnknownGatewayKey)  # `creditgate` prints it, exit 1
