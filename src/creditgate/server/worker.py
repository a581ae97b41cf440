"""The background worker: every few seconds, the billing round and the sweeps for every tenant
with something due; and webhook delivery."""

from __future__ import annotations

import logging
import threading

from creditgate.api import Creditgate, TenantLedger
from creditgate.services.webhooks.delivery import WebhookDispatcher, WebhookSender

log = logging.getLogger("creditgate.server.worker")

DEFAULT_INTERVAL_SECONDS = 5.0


def sweep_all(cg: Creditgate) -> int:
    """The billing round and the sweeps (holds past their TTL, lots activated, announced and
    expired) for every tenant that has any of it due; returns changes. Which tenants those
    are is one read (`Creditgate.tenants_due`): a tenant with nothing due costs nothing."""
    changed = 0
    try:
        due = cg.tenants_due()
    except Exception:
        # Whatever failed the read of who is due, every tenant's holds still expire.
        log.exception("reading the tenants with work due failed: visiting every tenant")
        due = [tenant.id for tenant in cg.tenants()]
    for tenant_id in due:
        try:  # renewals and auto top-up first, so that a new period's credit is there
            billing = TenantLedger(cg, tenant_id).run_billing()
            renewals, top_ups = billing.renewals, billing.top_ups
            changed += renewals.renewed + renewals.canceled + renewals.withheld
            changed += billing.overage.billed + top_ups.started
        except Exception:
            log.exception("billing failed", extra={"tenant": tenant_id})
        try:
            report = TenantLedger(cg, tenant_id).run_sweeps()
        except Exception:
            # One tenant's failure must not stop the others' holds from expiring.
            log.exception("sweep failed", extra={"tenant": tenant_id})
            continue
        done = report.holds_expired + report.lots_expired + report.lots_activated
        if done:
            log.info("swept", extra={"tenant": tenant_id, **report.model_dump()})
        changed += done
    return changed


class Sweeper:
    """A daemon thread running `sweep_all` on an interval until stopped.

    Sweeps are idempotent and use conditional updates, so several sweepers (one per server)
    would be safe; `creditgate serve` runs exactly one however many workers it starts.
    """

    def __init__(self, cg: Creditgate, interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.cg = cg
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="creditgate-sweeper", daemon=True)
        sender = WebhookSender(allow_private_targets=cg.operator.allow_private_webhook_targets)
        self.webhooks = WebhookDispatcher(cg.db, lambda: cg.clock(), sender=sender)

    def start(self) -> None:
        self._thread.start()
        self.webhooks.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.webhooks.stop(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep_all(self.cg)
            except Exception:
                log.exception("sweep round failed")
