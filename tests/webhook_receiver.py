"""A real HTTP receiver on loopback that checks every delivery's Standard Webhooks signature."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HANG = "hang"  # a plan step: answer nothing until the sender has given up


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int | None  # the status answered; None when the receiver hung

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def acknowledged(self) -> bool:
        return self.answered is not None and 200 <= self.answered < 300


class Receiver:
    """Each path is an endpoint with its own secret and a plan of answers (then 200s)."""

    def __init__(self, *, hang_seconds: float = 1.5, delay: float = 0.0) -> None:
        self.hang_seconds = hang_seconds
        self.delay = delay
        self.set_cookie: str | None = None  # sent with every answer when set
        self.received: list[Received] = []
        self._secrets: dict[str, str] = {}
        self._plans: dict[str, list[int | str]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll: `shutdown` waits for the loop's next one (half a second by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def expect(self, path: str, secret: str | None) -> None:
        assert secret is not None and secret.startswith("whsec_")
        self._secrets[path] = secret

    def plan(self, path: str, *answers: int | str) -> None:
        """Answer the next requests to `path` with these statuses (or HANG), then 200."""
        with self._lock:
            self._plans[path] = list(answers)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def acknowledged(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.acknowledged and path in (None, r.path)]

    def acknowledged_ids(self, path: str | None = None) -> Counter[str]:
        return Counter(r.webhook_id for r in self.acknowledged(path))

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.path
        secret = self._secrets.get(path)
        try:
            verified = secret is not None and Webhook(secret).verify(body, headers) is not None
        except WebhookVerificationError:
            verified = False
        with self._lock:
            plan = self._plans.get(path)
            answer: int | str = plan.pop(0) if plan else 200
        if answer == HANG:
            with self._lock:
                self.received.append(Received(path, headers, body, verified, None))
            time.sleep(self.hang_seconds)
            return
        status = int(answer)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.received.append(Received(path, headers, body, verified, status))
        try:
            request.send_response(status)
            request.send_header("content-type", "text/plain")
            if self.set_cookie is not None:
                request.send_header("set-cookie", self.set_cookie)
            request.end_headers()
            request.wfile.write(b"ok" if status < 300 else f"failing with {status}".encode())
        except OSError:
            pass

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
