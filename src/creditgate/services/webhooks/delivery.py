"""Webhook delivery: sign and POST due deliveries, record each answer, and the thread doing it.

Signatures follow the Standard Webhooks specification: headers `webhook-id` (the delivery
id, the same on every attempt, for the receiver to deduplicate on), `webhook-timestamp`
and `webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`).

Every connection goes through `guarded.guarded_transport`: only to public addresses
(unless the operator allows private ones), to the address that was checked, never through
a proxy from the environment, and never following a redirect. What is recorded of an
attempt is its status code or a class of error, never what the receiver answered.

A sender makes its HTTP client (and loads httpx) with its first delivery: a server whose
tenants have no webhook endpoints never loads it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Connection
from standardwebhooks.webhooks import Webhook

from creditgate.adapters.outbound import (
    RefusedTarget,
    Resolve,
    UnresolvableTarget,
    no_cookies,
    system_resolve,
)
from creditgate.domain.errors import CreditgateError
from creditgate.services.results import Result
from creditgate.services.webhooks.outbox import (
    Outcome,
    Outgoing,
    claim_due,
    fan_out,
    record_outcome,
)
from creditgate.storage.database import Database
from creditgate.storage.secret_keys import SecretKeys

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("creditgate.webhooks")

Clock = Callable[[], datetime]

DEFAULT_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_CONCURRENCY = 8
DEFAULT_INTERVAL_SECONDS = 1.0
FAN_OUT_BATCH = 500
CLAIM_BATCH = 32
MAX_BATCHES_PER_ROUND = 50
USER_AGENT = "creditgate-webhooks/1"


def wall_clock() -> datetime:
    return datetime.now(UTC)


class WebhookReport(Result):
    events_dispatched: int = 0
    attempted: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0


class WebhookSender:
    """POSTs signed deliveries, a few at a time, with a short timeout and no redirects.

    `webhook-timestamp` is always the real time of sending, whatever clock schedules the
    retries: receivers reject a signature whose timestamp is more than minutes off theirs.
    `allow_private_targets` is the operator's switch (see `outbound`); `resolve` turns a
    host into addresses (the system resolver; tests give their own).
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        concurrency: int = DEFAULT_CONCURRENCY,
        signing_clock: Clock = wall_clock,
        allow_private_targets: bool = False,
        resolve: Resolve = system_resolve,
    ) -> None:
        self.timeout = timeout
        self.signing_clock = signing_clock
        self.allow_private_targets = allow_private_targets
        self.resolve = resolve
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="creditgate-webhook")

    def client(self) -> httpx.Client:
        """The sender's one HTTP client, made (and httpx loaded) at its first delivery."""
        with self._client_lock:
            if self._closed:
                raise RuntimeError("the webhook sender is closed")
            if self._client is None:
                import httpx

                from creditgate.adapters.guarded import guarded_transport

                timeout = self.timeout
                self._client = httpx.Client(
                    timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS)),
                    follow_redirects=False,
                    headers={"user-agent": USER_AGENT},
                    cookies=no_cookies(),
                    transport=guarded_transport(
                        allow_private=self.allow_private_targets, resolve=self.resolve
                    ),
                    trust_env=False,
                )
            return self._client

    def headers(self, sent: Outgoing, secret: str) -> dict[str, str]:
        now = self.signing_clock().astimezone(UTC)
        signature = Webhook(secret).sign(sent.delivery_id, now, sent.body)
        return {
            "content-type": "application/json",
            "webhook-id": sent.delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }

    def send(self, sent: Outgoing, secret: str) -> Outcome:
        """One attempt, signed with the endpoint's (opened) secret. The body of the answer is
        not read: closing the response drops it with the connection."""
        try:
            client = self.client()
        except RuntimeError:
            raise  # closed: a programming error, as sending on a closed client was
        except Exception:
            # Made at the first delivery, not at start: a client that cannot be made (its TLS
            # settings, say) fails each attempt, logged for the operator, and the attempts
            # are retried as any that could not connect.
            log.exception("the webhook sender's HTTP client could not be made")
            return Outcome(error="connection_error")
        import httpx  # loaded by `client()`

        from creditgate.adapters.guarded import error_class

        try:
            with client.stream(
                "POST", sent.url, content=sent.body.encode(), headers=self.headers(sent, secret)
            ) as response:
                status = response.status_code
        except (httpx.HTTPError, RefusedTarget, UnresolvableTarget) as exc:
            return Outcome(error=error_class(exc))
        if 200 <= status < 300:
            return Outcome(status_code=status)
        return Outcome(status_code=status, error="http_status")

    def send_all(self, batch: Sequence[Outgoing], secret_keys: SecretKeys) -> list[Outcome]:
        def attempt(sent: Outgoing) -> Outcome:
            try:
                secret = secret_keys.open(sent.secret)
            except CreditgateError:
                log.error("a webhook secret does not open", extra={"endpoint": sent.endpoint_id})
                return Outcome(error="signing_secret_unavailable")
            return self.send(sent, secret)

        return list(self._pool.map(attempt, batch))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._client_lock:
            self._closed = True
            if self._client is not None:
                self._client.close()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def deliver_webhooks(
    db: Database,
    clock: Clock,
    sender: WebhookSender,
    *,
    tenant_id: str | None = None,
    batch: int = CLAIM_BATCH,
    max_batches: int = MAX_BATCHES_PER_ROUND,
    rng: random.Random | None = None,
) -> WebhookReport:
    """One round: fan new events out, then attempt every due delivery (of one tenant if given)."""
    rng = rng or random.Random()
    dispatched = 0
    for _ in range(max_batches):
        taken = db.run(partial(_fan_out, clock=clock))
        dispatched += taken
        if taken < FAN_OUT_BATCH:
            break
    tally = {"succeeded": 0, "pending": 0, "failed": 0}
    attempted = 0
    for _ in range(max_batches):
        claimed = db.run(partial(_claim, clock=clock, limit=batch, tenant_id=tenant_id))
        if not claimed:
            break
        attempted += len(claimed)
        for sent, outcome in zip(claimed, sender.send_all(claimed, db.secret_keys), strict=True):
            status = db.run(
                partial(_record, sent=sent, outcome=outcome, clock=clock, spread=rng.uniform(-1, 1))
            )
            if status is not None:
                tally[status] += 1
            if not outcome.ok:
                log.info(
                    "webhook attempt failed",
                    extra={
                        "delivery": sent.delivery_id,
                        "attempt": sent.attempt,
                        "error": outcome.error,
                    },
                )
        if len(claimed) < batch:
            break
    return WebhookReport(
        events_dispatched=dispatched,
        attempted=attempted,
        succeeded=tally["succeeded"],
        retrying=tally["pending"],
        failed=tally["failed"],
    )


def _fan_out(conn: Connection, *, clock: Clock) -> int:
    return fan_out(conn, clock(), limit=FAN_OUT_BATCH)


def _claim(conn: Connection, *, clock: Clock, limit: int, tenant_id: str | None) -> list[Outgoing]:
    return claim_due(conn, clock(), limit=limit, tenant_id=tenant_id)


def _record(
    conn: Connection, *, sent: Outgoing, outcome: Outcome, clock: Clock, spread: float
) -> str | None:
    return record_outcome(conn, sent, outcome, clock(), spread=spread)


class WebhookDispatcher:
    """A daemon thread running `deliver_webhooks` every second until stopped.

    A thread of its own, so that a slow receiver never delays the sweeps. Several of them
    (one per server) share the work without sending one delivery twice at once.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        sender: WebhookSender | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.interval = interval
        self.sender = sender or WebhookSender()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="creditgate-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.sender.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                report = deliver_webhooks(self.db, self.clock, self.sender)
            except Exception:
                log.exception("webhook round failed")
                continue
            if report.attempted or report.events_dispatched:
                log.info("webhooks", extra=report.model_dump())
