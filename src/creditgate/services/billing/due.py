"""Which tenants the worker's round has anything to do for.

The round (`creditgate.server.worker.sweep_all`) runs each tenant's billing (overage,
renewals, dunning, auto top-up) and sweeps (holds past their TTL, scheduled lots, expiry
warnings, lots past their expiry). Run for every tenant, it cost milliseconds per tenant
with nothing due, so a round grew with the number of tenants (BENCHMARKS.md). This read asks the
database, once, which tenants have work, on the predicates the steps themselves select by:
each step's tenant read is built beside the step's own read from the same conditions. Where a
step decides per row in Python (a grace period, a back-off, whether a bill is due yet), the
read takes every row that decision is made on, so a tenant is never left out that a step
would have acted for; at worst it is visited and nothing is done.

A test-mode tenant's clock runs ahead of the server's by its own offset: what is due for it
cannot be read at the server's time, so each is always visited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, select, union

from creditgate.services.billing import auto_top_up
from creditgate.services.billing.payments import UNANSWERED_AFTER
from creditgate.services.ledger.sweeps import tenants_with_sweeps_due
from creditgate.storage.billing import tenants_with_periods_ended
from creditgate.storage.collection import tenants_with_collection_due
from creditgate.storage.tables import tenants


def reads(now: datetime) -> dict[str, Select[Any]]:
    """Each step's read of the tenants it has work for at `now`, by step."""
    return {
        **tenants_with_sweeps_due(now),
        "renew_due": tenants_with_periods_ended(now),
        **tenants_with_collection_due(now, now - UNANSWERED_AFTER),
        **auto_top_up.tenants_with_top_ups_due(now),
        "test_mode": select(tenants.c.id).where(tenants.c.mode == "test"),
    }


def tenants_due(conn: Connection, now: datetime) -> list[str]:
    """The ids of the tenants with anything due at `now`, and every test-mode tenant."""
    found = conn.execute(union(*reads(now).values()))
    return sorted(str(tenant_id) for (tenant_id,) in found)
