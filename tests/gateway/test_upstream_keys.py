"""A tenant's upstream provider keys: stored sealed, shown by prefix only, set and cleared
through the in-process API, the HTTP API and the CLI, and re-sealed by `secrets rotate`."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate
from creditgate.api.gateway import TenantGateway, UpstreamKeyNotSet
from creditgate.bench.standin import StandIn
from creditgate.cli import app
from creditgate.domain.errors import InvalidInput
from creditgate.gateway.settings import GatewaySettings
from creditgate.server.app import Settings, create_app
from creditgate.services.sealed_secrets import reseal_all
from creditgate.storage.secret_keys import SEALED_PREFIX
from creditgate.storage.tables import gateway_upstream_keys
from tests.gateway.conftest import OPENAI_KEY, Server, Tenant, new_tenant

runner = CliRunner()


def _stored(cg: Creditgate, tenant_id: str) -> dict[str, str]:
    rows = cg.db.run(
        lambda conn: conn.execute(
            select(gateway_upstream_keys.c.provider, gateway_upstream_keys.c.secret).where(
                gateway_upstream_keys.c.tenant_id == tenant_id
            )
        ).all(),
        read_only=True,
    )
    return {row.provider: row.secret for row in rows}


def test_keys_are_sealed_at_rest_and_shown_by_prefix(tenant: Tenant) -> None:
    gw = TenantGateway(tenant.ledger)
    stored = _stored(tenant.ledger.cg, tenant.ledger.tenant_id)
    assert set(stored) == {"openai", "anthropic"}
    assert all(s.startswith(SEALED_PREFIX) and OPENAI_KEY not in s for s in stored.values())
    listed = {k.provider: k.prefix for k in gw.upstream_keys()}
    assert listed["openai"] == OPENAI_KEY[:8] + "…"
    assert gw.open_upstream_key("openai") == OPENAI_KEY
    with pytest.raises(InvalidInput):
        gw.set_upstream_key("mistral", "key")
    with pytest.raises(InvalidInput):
        gw.set_upstream_key("openai", " padded ")
    cleared = gw.clear_upstream_key("anthropic")
    assert cleared.provider == "anthropic"
    with pytest.raises(UpstreamKeyNotSet):
        gw.clear_upstream_key("anthropic")
    assert [k.provider for k in gw.upstream_keys()] == ["openai"]


def test_the_http_api_sets_lists_and_clears_without_echoing_a_key(
    tenant: Tenant, standin: StandIn
) -> None:
    headers = {"Authorization": f"Bearer {tenant.key}"}
    base = f"{tenant.gateway_url}/v1/gateway/upstream-keys"
    with httpx.Client(verify=tls_context(), headers=headers) as http:
        new_key = "sk-replaced-0123456789abcdef"
        put = http.put(f"{base}/openai", json={"api_key": new_key})
        assert put.status_code == 200, put.text
        assert put.json()["prefix"] == new_key[:8] + "…"
        assert new_key not in put.text
        listed = http.get(base)
        assert listed.status_code == 200 and new_key not in listed.text
        assert {k["provider"] for k in listed.json()["data"]} == {"openai", "anthropic"}
        # The gateway calls with the new key at once (this server forgets the old one).
        tenant.openai().chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
        assert standin.received[-1].headers["authorization"] == f"Bearer {new_key}"

        assert http.put(f"{base}/mistral", json={"api_key": "x"}).status_code == 422
        assert http.put(f"{base}/openai", json={"api_key": ""}).status_code == 422
        deleted = http.delete(f"{base}/openai")
        assert deleted.status_code == 200 and deleted.json()["provider"] == "openai"
        assert http.delete(f"{base}/openai").status_code == 404
    # Without a key the gateway refuses the call, in the provider's shape, and sends nothing.
    before = len(standin.received)
    with pytest.raises(openai.NotFoundError) as refused:
        tenant.openai().chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.code == "upstream_key_not_set"
    assert len(standin.received) == before


def test_the_cli_sets_lists_and_clears(cg: Creditgate, gateway_url: str) -> None:
    t = new_tenant(cg, gateway_url, keys=False)
    url = str(cg.db.engine.url.render_as_string(hide_password=False))
    common = ["--db", url, "--tenant", t.ledger.tenant_id]
    secret = f"sk-cli-{uuid.uuid4().hex}"
    done = runner.invoke(app, ["gateway", "set-key", "openai", *common], input=f"{secret}\n")
    assert done.exit_code == 0, done.output
    assert secret not in done.output and secret[:8] + "…" in done.output
    listed = runner.invoke(app, ["gateway", "keys", *common, "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["data"][0]["prefix"] == secret[:8] + "…"
    assert TenantGateway(t.ledger).open_upstream_key("openai") == secret
    cleared = runner.invoke(app, ["gateway", "clear-key", "openai", *common, "--json"])
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.output)["provider"] == "openai"
    assert TenantGateway(t.ledger).upstream_keys() == []


def test_secrets_rotate_reseals_upstream_keys(tenant: Tenant) -> None:
    cg = tenant.ledger.cg
    before = _stored(cg, tenant.ledger.tenant_id)
    report = reseal_all(cg.db)
    assert report.provider_secrets >= 2
    after = _stored(cg, tenant.ledger.tenant_id)
    assert after["openai"] != before["openai"]
    assert TenantGateway(tenant.ledger).open_upstream_key("openai") == OPENAI_KEY


def test_a_cookie_a_provider_sets_for_one_tenant_never_goes_with_another_tenants_call(
    cg: Creditgate, standin: StandIn
) -> None:
    """Every tenant's calls share the gateway's one pool of upstream connections: a cookie a
    provider answers one tenant's call with (a session, a load balancer's) is not kept, so
    it can never go with another tenant's call, nor back to the first. The provider is named
    by host name, as a real one is (a cookie jar keeps no cookie from a bare address)."""
    base = standin.url.replace("127.0.0.1", "localhost")
    gateway = GatewaySettings(openai_base=base, anthropic_base=base, timeout_seconds=10)
    server = Server(create_app(cg, Settings(gateway=gateway))).start()
    try:
        first, other = new_tenant(cg, server.url), new_tenant(cg, server.url)
        messages = [{"role": "user", "content": "hi"}]
        standin.set_cookie = "session=tenant-a-secret; Path=/"
        first.openai().chat.completions.create(model="gpt-test", messages=messages)
        standin.set_cookie = None
        other.openai().chat.completions.create(model="gpt-test", messages=messages)
        first.openai().chat.completions.create(model="gpt-test", messages=messages)
    finally:
        server.stop()
    assert len(standin.received) == 3
    assert [r.headers.get("cookie") for r in standin.received] == [None, None, None]
