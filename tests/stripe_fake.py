"""Stripe offline: a loopback server answering with Stripe's recorded JSON, and signed events.

The `stripe` client is pointed at the server by the operator's setting (`stripe_api_base`,
`CREDITGATE_STRIPE_API_BASE`; no tenant can point it anywhere), so requests
go through the real client (form encoding, idempotency keys, error mapping), and nothing
leaves the machine. Events are signed the way Stripe signs them (`t=…,v1=HMAC-SHA256`).
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import stripe

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
WEBHOOK_SECRET = "whsec_test_0123456789abcdef0123456789abcdef"
API_KEY = "sk_test_creditgate_offline"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())  # type: ignore[no-any-return]


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send with this body."""
    return stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=int(time.time()) if timestamp is None else timestamp
    )


def event(
    name: str,
    *,
    purchase: str | None = None,
    tenant: str | None = None,
    event_id: str | None = None,
    **fields: Any,
) -> str:
    """A recorded event (`event_<name>.json`) about our purchase, as the JSON body Stripe posts."""
    body = fixture(f"event_{name}")
    obj = body["data"]["object"]
    if purchase is not None:
        obj["metadata"] = {"creditgate_purchase": purchase, "creditgate_tenant": tenant or ""}
        if obj["object"] == "checkout.session":
            obj["client_reference_id"] = purchase
    obj.update(fields)
    if event_id is not None:
        body["id"] = event_id
    return json.dumps(body)


def invoice_event(
    kind: str,
    *,
    tenant: str,
    subscription: str,
    subscription_ref: str,
    period_start: datetime,
    amount: int,
    currency: str = "usd",
    invoice_id: str = "in_offline000001",
    event_id: str | None = None,
    reason: str = "card_declined",
) -> str:
    """An `invoice.<kind>` event (paid | payment_failed | finalized) of a subscription's
    invoice for the period starting at `period_start`, shaped as Stripe sends it (API
    2025-09: the subscription under `parent.subscription_details`)."""
    body = fixture("event_invoice_paid")
    body["type"] = f"invoice.{kind}"
    body["id"] = event_id or f"evt_{uuid.uuid4().hex[:24]}"
    obj = body["data"]["object"]
    start = int(period_start.timestamp())
    obj.update(
        id=invoice_id,
        currency=currency,
        amount_due=amount,
        amount_paid=amount if kind == "paid" else 0,
        status="paid" if kind == "paid" else "open",
        hosted_invoice_url=f"https://invoice.stripe.com/i/acct_offline/{invoice_id}",
    )
    obj["parent"]["subscription_details"] = {
        "subscription": subscription_ref,
        "metadata": {"creditgate_tenant": tenant, "creditgate_subscription": subscription},
    }
    line = obj["lines"]["data"][0]
    line["amount"] = amount
    line["period"] = {"start": start, "end": start + 30 * 86_400}
    if kind == "payment_failed":
        obj["last_finalization_error"] = {"code": reason}
    return json.dumps(body)


class FakeStripe:
    """Stripe's API on loopback: Checkout Sessions, PaymentIntents, Refunds, Customers,
    Subscriptions, Prices (read) and test clocks; idempotent by key."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.sessions: dict[str, dict[str, Any]] = {}  # Checkout Sessions made, by id
        # Where a session's `url` points: Stripe's hosted page, or a loopback stand-in for it
        # (tests/browser/stripe_checkout.py) that a browser test can "pay" on.
        self.checkout_base = "https://checkout.stripe.com/c/pay"
        self.decline = False  # answer PaymentIntents with a card_declined error
        self.fail_next = 0  # answer the next N requests with a 500 (unknown outcome)
        self.refuse_refunds = False  # answer Refunds with charge_already_refunded
        self.refund_status = "succeeded"  # or "pending": Stripe pays it out later
        # A slow Stripe: while this is an Event not yet set, every POST waits for it (at most
        # three minutes) before it is answered; `arrived` counts the POSTs received meanwhile.
        self.hold: threading.Event | None = None
        self.arrived = 0
        self.prices: dict[str, dict[str, Any]] = {}  # what GET /v1/prices/{id} finds
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.test_clocks: dict[str, dict[str, Any]] = {}
        self._by_key: dict[str, tuple[int, bytes]] = {}
        self._lock = threading.Lock()
        self._counter = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                key = self.headers.get("Idempotency-Key")
                with fake._lock:
                    fake.arrived += 1
                if fake.hold is not None:
                    fake.hold.wait(timeout=180)
                status, body = fake.answer(self.path, form, key)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Request-Id", "req_offline")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                status, body = fake.read(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Request-Id", "req_offline")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeStripe:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_price(
        self, price_id: str, unit_amount: int, currency: str = "usd", interval: str = "month"
    ) -> None:
        self.prices[price_id] = {
            "id": price_id,
            "object": "price",
            "active": True,
            "currency": currency,
            "unit_amount": unit_amount,
            "type": "recurring",
            "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
        }

    def read(self, path: str) -> tuple[int, bytes]:
        with self._lock:
            self.requests.append({"path": path, "form": {}, "idempotency_key": None})
            name = path.split("?")[0].rsplit("/", 1)[-1]
            if path.startswith("/v1/prices/") and name in self.prices:
                return 200, json.dumps(self.prices[name]).encode()
            error = {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No such price: '{name}'",
                    "param": "id",
                }
            }
            return 404, json.dumps(error).encode()

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def answer(self, path: str, form: dict[str, str], key: str | None) -> tuple[int, bytes]:
        with self._lock:
            self.requests.append({"path": path, "form": form, "idempotency_key": key})
            if self.fail_next:
                self.fail_next -= 1
                error = {"error": {"type": "api_error", "message": "offline fake: try again"}}
                return 500, json.dumps(error).encode()
            if key is not None and key in self._by_key:
                return self._by_key[key]
            self._counter += 1
            answer = self._new(path, form, self._counter)
            if key is not None:
                self._by_key[key] = answer
            return answer

    def _new(self, path: str, form: dict[str, str], n: int) -> tuple[int, bytes]:
        metadata = {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")}
        if path == "/v1/checkout/sessions":
            session = copy.deepcopy(fixture("checkout_session"))
            session["id"] = f"cs_test_offline{n:06d}"
            session["url"] = f"{self.checkout_base}/{session['id']}"
            amount = int(form["line_items[0][price_data][unit_amount]"])
            session.update(
                amount_subtotal=amount,
                amount_total=amount,
                currency=form["line_items[0][price_data][currency]"],
                client_reference_id=form.get("client_reference_id"),
                metadata=metadata,
                success_url=form.get("success_url"),
                cancel_url=form.get("cancel_url"),
                customer=form.get("customer"),
            )
            self.sessions[session["id"]] = session
            return 200, json.dumps(session).encode()
        if path == "/v1/payment_intents":
            if self.decline:
                error = copy.deepcopy(fixture("card_declined"))
                error["error"]["payment_intent"]["id"] = f"pi_offline{n:06d}"
                error["error"]["payment_intent"]["metadata"] = metadata
                return 402, json.dumps(error).encode()
            intent = copy.deepcopy(fixture("payment_intent_succeeded"))
            intent.update(
                id=f"pi_offline{n:06d}",
                amount=int(form["amount"]),
                amount_received=int(form["amount"]),
                currency=form["currency"],
                customer=form.get("customer"),
                payment_method=form["payment_method"],
                metadata=metadata,
            )
            return 200, json.dumps(intent).encode()
        if path == "/v1/customers":
            customer = {
                "id": f"cus_offline{n:06d}",
                "object": "customer",
                "description": form.get("description"),
                "metadata": metadata,
                "test_clock": form.get("test_clock"),
            }
            return 200, json.dumps(customer).encode()
        if path == "/v1/subscriptions":
            price = form.get("items[0][price]", "")
            if price not in self.prices:
                error = {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
                return 400, json.dumps(error).encode()
            subscription = {
                "id": f"sub_offline{n:06d}",
                "object": "subscription",
                "customer": form["customer"],
                "status": "active",
                "metadata": metadata,
                "default_payment_method": form.get("default_payment_method"),
                "items": {"object": "list", "data": [{"price": self.prices[price]}]},
            }
            self.subscriptions[subscription["id"]] = subscription
            return 200, json.dumps(subscription).encode()
        if path == "/v1/test_helpers/test_clocks":
            clock = {
                "id": f"clock_offline{n:06d}",
                "object": "test_helpers.test_clock",
                "frozen_time": int(form["frozen_time"]),
                "status": "ready",
            }
            self.test_clocks[clock["id"]] = clock
            return 200, json.dumps(clock).encode()
        if path.startswith("/v1/test_helpers/test_clocks/") and path.endswith("/advance"):
            clock_id = path.split("/")[4]
            if clock_id not in self.test_clocks:
                return 404, json.dumps({"error": {"type": "invalid_request_error"}}).encode()
            self.test_clocks[clock_id]["frozen_time"] = int(form["frozen_time"])
            return 200, json.dumps(self.test_clocks[clock_id]).encode()
        if path == "/v1/refunds":
            if self.refuse_refunds:
                return 400, json.dumps(fixture("refund_charge_already_refunded")).encode()
            refund = copy.deepcopy(fixture("refund_succeeded"))
            refund.update(
                id=f"re_offline{n:06d}",
                amount=int(form["amount"]),
                payment_intent=form["payment_intent"],
                metadata=metadata,
                status=self.refund_status,
            )
            return 200, json.dumps(refund).encode()
        return 404, json.dumps({"error": {"type": "invalid_request_error"}}).encode()
