"""What the gateway refuses, and what the provider refuses: declines (402) that never reach
the provider, upstream errors passed through with the hold voided, bad requests, and
tenants kept apart — each in the provider's own error shape."""

from __future__ import annotations

import json
import math
import socket

import anthropic
import httpx
import openai
import pytest

from creditgate.api import Creditgate
from creditgate.api.gateway import TenantGateway
from creditgate.bench.standin import StandIn
from creditgate.gateway.settings import GatewaySettings
from creditgate.server.app import Settings, create_app
from tests.gateway.conftest import CUSTOMER, FUNDS, MAX_BODY, Server, Tenant, new_tenant, wait_for

MESSAGES = [{"role": "user", "content": "Say hello"}]


def _openai_error(response: httpx.Response) -> dict[str, object]:
    doc = response.json()
    assert set(doc) == {"error"}
    error = doc["error"]
    assert {"type", "code", "message"} <= set(error)
    return dict(error)


def _anthropic_error(response: httpx.Response) -> dict[str, object]:
    doc = response.json()
    assert doc["type"] == "error" and set(doc["error"]) >= {"type", "message"}
    return dict(doc["error"])


def test_a_decline_is_402_in_the_openai_shape_and_never_reaches_the_provider(
    tenant: Tenant, standin: StandIn
) -> None:
    # 1,000 credits: a cap of 100,000 output tokens at 0.03 is 3,000 credits.
    with pytest.raises(openai.APIStatusError) as raised:
        tenant.openai().chat.completions.create(
            model="gpt-test", messages=MESSAGES, max_tokens=100_000
        )
    response = raised.value.response
    assert response.status_code == 402
    error = _openai_error(response)
    assert error["type"] == "insufficient_credits"
    assert error["code"] == "insufficient_funds"
    assert f"has {FUNDS} available (credits" in str(error["message"])
    assert standin.received == []
    assert tenant.available() == FUNDS and tenant.charges() == []


def test_a_member_past_its_budget_is_declined_and_its_calls_count_against_it(
    tenant: Tenant, standin: StandIn
) -> None:
    ledger = tenant.ledger
    ledger.create_member(CUSTOMER, "alice")
    member = {"X-Creditgate-Customer": CUSTOMER, "X-Creditgate-Member": "alice"}
    client = tenant.openai(default_headers=member)

    def call() -> httpx.Response:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-test", messages=MESSAGES, max_tokens=100
        )
        return raw.http_response

    first = call()  # no budget yet: what one such call holds
    estimate = ledger.authorization(first.headers["x-creditgate-authorization"]).requested
    # Its charge is settled after the answer: wait for it, so that the charges' order below
    # is the calls' order (a loaded machine once settled it after the second call's).
    wait_for(lambda: len(tenant.charges()) == 1)
    ledger.set_budget(CUSTOMER, "credits", estimate, period="day", member="alice")
    call()  # holds all of the budget, then spends what it used (settled after the answer)
    wait_for(lambda: len(tenant.charges()) == 2)
    assert {c.member for c in tenant.charges()} == {"alice"}
    with pytest.raises(openai.APIStatusError) as raised:
        call()
    assert raised.value.response.status_code == 402
    error = _openai_error(raised.value.response)
    assert (error["code"], error["type"]) == ("budget_exceeded", "insufficient_credits")
    assert len(standin.received) == 2  # the decline never reached the provider
    (period,) = ledger.usage(CUSTOMER, member="alice").data
    assert period.spent == tenant.charges()[-1].amount and period.held == 0
    # The message names the budget, its period and what it has left.
    left = estimate - period.spent
    assert str(error["message"]) == (
        f"declined (budget_exceeded): member alice's budget has {left} of {estimate} credits "
        f"left this day (since {period.period_start.isoformat()}); the call needs {estimate} "
        f"(budget {period.budget})"
    )
    # In Anthropic's shape too, and for a member who may not call at all.
    anthropic_client = tenant.anthropic(default_headers=member)
    with pytest.raises(anthropic.APIStatusError) as in_anthropic:
        anthropic_client.messages.create(model="claude-test", max_tokens=100, messages=MESSAGES)
    said = _anthropic_error(in_anthropic.value.response)
    assert said["type"] == "billing_error"
    assert str(said["message"]).startswith("declined (budget_exceeded): member alice's budget")
    ledger.update_member(CUSTOMER, "alice", active=False)
    with pytest.raises(openai.APIStatusError) as inactive:
        call()
    assert _openai_error(inactive.value.response) | {"param": None} == {
        "code": "member_inactive",
        "type": "insufficient_credits",
        "message": f"declined (member_inactive): member alice of {CUSTOMER} is inactive",
        "param": None,
    }
    assert len(standin.received) == 2


def test_a_decline_is_402_in_the_anthropic_shape(tenant: Tenant, standin: StandIn) -> None:
    with pytest.raises(anthropic.APIStatusError) as raised:
        tenant.anthropic().messages.create(
            model="claude-test", max_tokens=20_000, messages=MESSAGES
        )
    response = raised.value.response
    assert response.status_code == 402
    error = _anthropic_error(response)
    assert error["type"] == "billing_error"
    assert f"has {FUNDS} available (credits" in str(error["message"])
    assert standin.received == []
    assert tenant.available() == FUNDS


@pytest.mark.parametrize("status", [429, 500])
def test_openai_upstream_errors_pass_through_and_void_the_hold(
    tenant: Tenant, standin: StandIn, status: int
) -> None:
    body = {"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit"}}
    standin.fail = (status, body)
    kind = openai.RateLimitError if status == 429 else openai.InternalServerError
    with pytest.raises(kind) as raised:
        tenant.openai().chat.completions.create(model="gpt-test", messages=MESSAGES)
    response = raised.value.response
    assert response.status_code == status and response.json() == body
    assert response.headers["retry-after"] == "7"
    auth = tenant.ledger.authorization(response.headers["x-creditgate-authorization"])
    assert auth.status == "voided"
    assert tenant.available() == FUNDS and tenant.charges() == []
    assert len(standin.received) == 1


@pytest.mark.parametrize("status", [429, 500])
def test_anthropic_upstream_errors_pass_through_and_void_the_hold(
    tenant: Tenant, standin: StandIn, status: int
) -> None:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    standin.fail = (status, body)
    kind = anthropic.RateLimitError if status == 429 else anthropic.InternalServerError
    with pytest.raises(kind) as raised:
        tenant.anthropic().messages.create(model="claude-test", max_tokens=10, messages=MESSAGES)
    response = raised.value.response
    assert response.status_code == status and response.json() == body
    auth = tenant.ledger.authorization(response.headers["x-creditgate-authorization"])
    assert auth.status == "voided"
    assert tenant.available() == FUNDS


def test_an_unreachable_provider_is_502_and_voids(cg: Creditgate, tenant: Tenant) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    app = create_app(cg, Settings(gateway=GatewaySettings(openai_base=closed)))
    server = Server(app).start()
    try:
        client = openai.OpenAI(
            base_url=f"{server.url}/gateway/openai/v1",
            api_key=tenant.key,
            default_headers={"X-Creditgate-Customer": CUSTOMER},
            max_retries=0,
        )
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        assert raised.value.status_code == 502
        assert _openai_error(raised.value.response)["code"] == "upstream_unreachable"
        auth_id = raised.value.response.headers.get("x-creditgate-authorization")
        assert auth_id is None  # no answer came back; the hold is voided all the same
    finally:
        server.stop()
    assert tenant.available() == FUNDS and tenant.charges() == []


def _post(url: str, **kwargs: object) -> httpx.Response:
    return httpx.post(url, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_bad_requests_answer_in_the_providers_shape_and_send_nothing(
    tenant: Tenant, standin: StandIn
) -> None:
    chat = f"{tenant.gateway_url}/gateway/openai/v1/chat/completions"
    messages = f"{tenant.gateway_url}/gateway/anthropic/v1/messages"
    auth = {"Authorization": f"Bearer {tenant.key}", "X-Creditgate-Customer": CUSTOMER}
    x_auth = {"x-api-key": tenant.key, "X-Creditgate-Customer": CUSTOMER}
    good = {"model": "gpt-test", "messages": MESSAGES}

    cases = [
        # (url, headers, body, status, code)
        (chat, auth, {"messages": MESSAGES}, 400, "invalid_request"),  # no model
        (chat, auth, {**good, "model": "gpt-unpriced"}, 422, "no_price"),
        (chat, auth, b"{not json", 400, "invalid_request"),
        (chat, auth, b"[1, 2]", 400, "invalid_request"),
        (chat, auth, {**good, "max_tokens": -5}, 422, "invalid_input"),
        (chat, {"Authorization": auth["Authorization"]}, good, 400, "invalid_request"),
        (chat, {**auth, "Authorization": "Bearer cg_nothing_bad"}, good, 401, "unauthenticated"),
        (chat, {"X-Creditgate-Customer": CUSTOMER}, good, 401, "unauthenticated"),
        (chat, {**auth, "X-Creditgate-Customer": "nobody"}, good, 404, "unknown_customer"),
    ]
    for url, headers, body, status, code in cases:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = _post(url, content=content, headers={**headers, "content-type": "x/json"})
        assert response.status_code == status, (body, response.text)
        assert _openai_error(response)["code"] == code, response.text

    big = {**good, "messages": [{"role": "user", "content": "x" * MAX_BODY}]}
    response = _post(chat, json=big, headers=auth)
    assert response.status_code == 413 and _openai_error(response)["code"] == "body_too_large"

    anthropic_cases = [
        ({"max_tokens": 5, "messages": MESSAGES}, 400, "invalid_request_error"),
        ({"model": "claude-nope", "max_tokens": 5, "messages": MESSAGES}, 422, None),
    ]
    for body, status, kind in anthropic_cases:
        response = _post(messages, json=body, headers=x_auth)
        assert response.status_code == status, response.text
        error = _anthropic_error(response)
        assert kind is None or error["type"] == kind
    response = _post(messages, content=b"nope", headers=x_auth)
    assert response.status_code == 400 and _anthropic_error(response)
    response = _post(messages, json={"model": "claude-test"}, headers={"x-api-key": "cg_x_y"})
    assert _anthropic_error(response)["type"] == "authentication_error"
    huge = {"model": "claude-test", "max_tokens": 5, "messages": [{"content": "x" * MAX_BODY}]}
    response = _post(messages, json=huge, headers=x_auth)
    assert response.status_code == 413
    assert _anthropic_error(response)["type"] == "request_too_large"

    assert standin.received == []
    assert tenant.available() == FUNDS


def test_tenants_are_kept_apart(
    cg: Creditgate, tenant: Tenant, gateway_url: str, standin: StandIn
) -> None:
    other = new_tenant(cg, gateway_url)
    TenantGateway(other.ledger).set_upstream_key("openai", "sk-other-tenant-key-000")
    other.ledger.create_customer("theirs")
    other.ledger.grant("theirs", "credits", 5_000)
    # The other tenant's customer is unknown to this tenant's key.
    with pytest.raises(openai.NotFoundError):
        tenant.openai(customer="theirs").chat.completions.create(
            model="gpt-test", messages=MESSAGES
        )
    assert standin.received == []
    # Each tenant calls the provider with its own key and pays from its own wallets.
    other.openai().chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert standin.received[-1].headers["authorization"] == "Bearer sk-other-tenant-key-000"
    tenant.openai().chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert standin.received[-1].headers["authorization"].endswith("sk-standin-openai-0123456789")
    each = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    wait_for(lambda: tenant.available() == FUNDS - each)
    wait_for(lambda: other.available() == FUNDS - each)
    assert other.available("theirs") == 5_000
    report = cg.verify(other.ledger.tenant_id)
    assert report.ok, report.violations


def test_a_replayed_gateway_request_is_not_sent_again(tenant: Tenant, standin: StandIn) -> None:
    client = tenant.openai()
    key = {"Idempotency-Key": "once-only-1"}
    client.chat.completions.create(model="gpt-test", messages=MESSAGES, extra_headers=key)
    with pytest.raises(openai.ConflictError) as raised:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, extra_headers=key)
    assert raised.value.code == "request_already_served"
    assert len(standin.received) == 1
    each = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    wait_for(lambda: tenant.available() == FUNDS - each)
    assert len(tenant.charges()) == 1
    assert math.isfinite(each)


def test_a_request_under_a_key_still_in_flight_is_not_sent_again(
    tenant: Tenant, standin: StandIn
) -> None:
    standin.pause_after = 1  # the first request streams "Hello", then waits
    standin.pause_seconds = 5
    client = tenant.openai()
    key = {"Idempotency-Key": "in-flight-1"}
    stream = client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True, extra_headers=key
    )
    assert next(c for c in stream if c.choices and c.choices[0].delta.content)
    with pytest.raises(openai.ConflictError) as raised:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, extra_headers=key)
    assert raised.value.code == "request_already_served"
    standin.resume.set()
    list(stream)
    assert len(standin.received) == 1
    each = tenant.price("gpt-test", input_tokens=1200, output_tokens=300)
    wait_for(lambda: tenant.available() == FUNDS - each)
    assert len(tenant.charges()) == 1
