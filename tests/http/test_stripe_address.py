"""Where the server connects for Stripe is the operator's setting: a tenant's `api_base` is
refused, and what a tenant reads of a failed call is Stripe's own error code and message,
or the kind of failure, never the body of another answer or a socket's text."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from creditgate.api import Creditgate
from tests.conftest import operator_settings
from tests.http.conftest import Api
from tests.stripe_fake import API_KEY

INSIDE_ANSWER = "internal-admin: db_password=hunter2"


class Answering:
    """An HTTP server on loopback that answers every request with one status and body."""

    def __init__(self, status: int, body: str, content_type: str) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests.append(self.path)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shop(api: Api) -> Api:
    assert api.put("/v1/payment-providers/stripe", {"api_key": API_KEY}).status_code == 200
    pack = {"code": "starter", "asset": "credits", "amount": 10_000, "price": "25.00"}
    assert api.post("/v1/packs", pack).status_code == 201
    assert api.post("/v1/customers", {"id": "c1"}).status_code == 201
    return api


def _checkout(api: Api, cg: Creditgate, base: str) -> Any:
    with operator_settings(cg, stripe_api_base=base):
        return api.post(
            "/v1/customers/c1/purchases",
            {"pack": "starter", "provider": "stripe", "success_url": "https://shop.example/ok"},
            headers={"Idempotency-Key": "buy-1"},
        )


@pytest.mark.parametrize("api_base", ["http://127.0.0.1:9/", "https://api.stripe.com", None])
def test_a_tenant_cannot_say_where_the_server_connects(api: Api, api_base: str | None) -> None:
    answer = api.put("/v1/payment-providers/stripe", {"api_key": API_KEY, "api_base": api_base})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "api_base"
    assert "operator" in answer.json()["detail"]
    assert api.get("/v1/payment-providers").json()["data"] == []


def test_provider_accounts_do_not_show_an_address(shop: Api) -> None:
    (account,) = shop.get("/v1/payment-providers").json()["data"]
    assert "api_base" not in account


@pytest.fixture
def inside() -> Iterator[Answering]:
    server = Answering(500, f"<html>{INSIDE_ANSWER}</html>", "text/html")
    yield server
    server.close()


def test_an_answer_that_is_not_stripes_error_is_not_echoed(
    shop: Api, cg: Creditgate, inside: Answering
) -> None:
    answer = _checkout(shop, cg, inside.url)
    assert answer.status_code == 502, answer.text
    assert answer.json()["code"] == "payment_provider_error"
    assert INSIDE_ANSWER not in answer.text and "hunter2" not in answer.text
    assert answer.json()["detail"] == (
        "Stripe did not answer: HTTP 500, without an error Stripe explains"
    )
    assert inside.requests  # it was asked: the address is the operator's to choose


def test_a_socket_error_is_told_as_unreachable_without_its_text(shop: Api, cg: Creditgate) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    answer = _checkout(shop, cg, f"http://127.0.0.1:{closed}")
    assert answer.status_code == 502, answer.text
    detail = answer.json()["detail"]
    assert detail == "Stripe did not answer: the connection to Stripe failed"
    assert "Errno" not in detail and "127.0.0.1" not in detail and "refused" not in detail


def test_stripes_own_error_code_and_message_are_shown_bounded(shop: Api, cg: Creditgate) -> None:
    error = {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": "No such customer: 'cus_x'" + " padding" * 100,
            "request_log_url": "https://dashboard.stripe.com/logs/req_secret_log",
        }
    }
    stripe = Answering(400, json.dumps(error), "application/json")
    try:
        answer = _checkout(shop, cg, stripe.url)
    finally:
        stripe.close()
    assert answer.status_code == 502, answer.text
    detail = answer.json()["detail"]
    assert "resource_missing: No such customer: 'cus_x'" in detail
    assert "req_secret_log" not in detail and len(detail) < 300
