"""The operator's side of the secrets stored for tenants: re-sealing them under the newest key."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import Connection, select, update

from creditgate.services.billing.purchases import SECRET_FIELDS
from creditgate.services.gateway import reseal_upstream_keys
from creditgate.services.results import Result
from creditgate.storage.database import Database
from creditgate.storage.secret_keys import SecretKeys
from creditgate.storage.tables import payment_providers, webhook_endpoints

BATCH = 200


class ResealReport(Result):
    webhook_secrets: int = 0
    # Payment providers' secrets and the LLM gateway's upstream provider keys.
    provider_secrets: int = 0


def _reseal_endpoints(conn: Connection, *, keys: SecretKeys, after: str) -> tuple[int, str | None]:
    rows = conn.execute(
        select(webhook_endpoints.c.id, webhook_endpoints.c.secret)
        .where(webhook_endpoints.c.id > after)
        .order_by(webhook_endpoints.c.id)
        .limit(BATCH)
        .with_for_update()
    ).all()
    for row in rows:
        conn.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == row.id)
            .values(secret=keys.reseal(row.secret))
        )
    return len(rows), rows[-1].id if len(rows) == BATCH else None


def _reseal_providers(conn: Connection, *, keys: SecretKeys) -> int:
    count = 0
    rows = conn.execute(
        select(
            payment_providers.c.tenant_id,
            payment_providers.c.provider,
            payment_providers.c.config,
        ).with_for_update()
    ).all()
    for row in rows:
        config: dict[str, Any] = dict(row.config or {})
        for name in SECRET_FIELDS:
            if isinstance(config.get(name), str) and config[name]:
                config[name] = keys.reseal(config[name])
                count += 1
        conn.execute(
            update(payment_providers)
            .where(
                payment_providers.c.tenant_id == row.tenant_id,
                payment_providers.c.provider == row.provider,
            )
            .values(config=config)
        )
    return count


def reseal_all(db: Database) -> ResealReport:
    """Every stored secret sealed again under the newest key (`MultiFernet.rotate`), in short
    transactions; then the older keys may be dropped. A secret no key opens stops the run."""
    keys = db.secret_keys
    endpoints = 0
    after: str | None = ""
    while after is not None:
        done, after = db.run(partial(_reseal_endpoints, keys=keys, after=after))
        endpoints += done
    providers = db.run(partial(_reseal_providers, keys=keys))
    providers += db.run(partial(reseal_upstream_keys, keys=keys))
    return ResealReport(webhook_secrets=endpoints, provider_secrets=providers)
