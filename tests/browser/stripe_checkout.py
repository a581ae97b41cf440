"""Stripe Checkout's hosted page, stood in for on loopback for the browser tests.

The FakeStripe (tests/stripe_fake.py) answers the API; this serves the page its Checkout
Sessions' `url` points at. Paying there does what Stripe does: sends the customer back to the
session's `success_url`, and posts a `checkout.session.completed` event, signed with the
endpoint secret by the real `stripe` package, to creditgate's Stripe webhook endpoint.

Served over HTTPS with a self-signed certificate made for the run (the browser context is
told to accept it), because the portal's Content-Security-Policy lets a form lead only to
its own origin or to https: pages, as it would lead to Stripe's.
"""

from __future__ import annotations

import copy
import html
import json
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.stripe_fake import FakeStripe, fixture, sign

WEBHOOK_DELAY = 0.5  # seconds between the redirect back and the event, as with Stripe


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, valid for a day (openssl, as Debian ships it)."""
    cert, key = folder / "checkout-cert.pem", folder / "checkout-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class CheckoutPages:
    """Hosted checkout pages for `fake`'s sessions; paying one posts the signed event."""

    def __init__(self, fake: FakeStripe, *, webhook_url: str, certificate: tuple[Path, Path]):
        self.fake = fake
        self.webhook_url = webhook_url
        self.deliveries: list[tuple[int, Any]] = []  # creditgate's answers to the events
        self._threads: list[threading.Thread] = []
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                session = pages.session(self.path)
                if session is None:
                    self.answer(404, "<h1>No such checkout</h1>")
                    return
                self.answer(200, pages.page(session))

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                session = pages.session(self.path)
                if session is None or session["status"] != "open":
                    self.answer(404, "<h1>This checkout is closed</h1>")
                    return
                pages.pay(session)
                self.send_response(303)
                self.send_header("Location", session["success_url"])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def answer(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*(str(p) for p in certificate))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        fake.checkout_base = f"{self.url}/c/pay"

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"https://{host!s}:{port}"

    def start(self) -> CheckoutPages:
        self.thread.start()
        return self

    def stop(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)
        self.server.shutdown()
        self.server.server_close()

    def session(self, path: str) -> dict[str, Any] | None:
        prefix = "/c/pay/"
        if not path.startswith(prefix):
            return None
        return self.fake.sessions.get(path[len(prefix) :].split("?")[0])

    def page(self, session: dict[str, Any]) -> str:
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        cancel = html.escape(session.get("cancel_url") or "/")
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>Checkout (offline Stripe)</title>"
            "<style>body{font:16px system-ui;max-width:420px;margin:40px auto;padding:0 16px}"
            "button{font:inherit;padding:10px 18px;background:#635bff;color:#fff;border:0;"
            "border-radius:6px}</style></head><body>"
            f"<h1>Pay {html.escape(amount)}</h1>"
            f"<p>Checkout session <code>{html.escape(session['id'])}</code></p>"
            '<form method="post"><button type="submit">Pay</button></form>'
            f'<p><a href="{cancel}">Cancel</a></p></body></html>'
        )

    def pay(self, session: dict[str, Any]) -> None:
        """Complete the session and post Stripe's event for it a moment later."""
        with self.fake._lock:
            session["status"] = "complete"
            session["payment_status"] = "paid"
            session["payment_intent"] = f"pi_offline_{session['id'][-6:]}"
        body = copy.deepcopy(fixture("event_checkout_session_completed"))
        body["id"] = f"evt_offline_{session['id'][-6:]}"
        body["created"] = int(time.time())
        body["data"]["object"].update(
            {
                key: session[key]
                for key in (
                    "id",
                    "amount_subtotal",
                    "amount_total",
                    "currency",
                    "client_reference_id",
                    "metadata",
                    "customer",
                    "payment_intent",
                    "payment_status",
                    "status",
                )
            }
        )
        payload = json.dumps(body)

        def deliver() -> None:
            time.sleep(WEBHOOK_DELAY)
            headers = {"Content-Type": "application/json", "Stripe-Signature": sign(payload)}
            answer = httpx.post(self.webhook_url, content=payload, headers=headers, timeout=10)
            self.deliveries.append((answer.status_code, answer.json()))

        thread = threading.Thread(target=deliver, daemon=True)
        self._threads.append(thread)
        thread.start()
