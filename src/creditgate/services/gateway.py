"""A tenant's upstream provider keys for the LLM gateway: set, cleared, listed by prefix, opened.

A key is sealed with the operator's keys (`storage/secret_keys.py`) before it is stored and
is never shown again: answers carry its first characters only. Where the gateway connects
for a provider is the operator's setting (`CREDITGATE_GATEWAY_OPENAI_BASE`, ...), never a
tenant's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from creditgate.domain.errors import InvalidInput, NotFound
from creditgate.services.context import Tx
from creditgate.services.results import Result
from creditgate.storage.secret_keys import SecretKeys
from creditgate.storage.tables import gateway_upstream_keys

PROVIDERS = ("openai", "anthropic")
MAX_KEY_LENGTH = 500
SHOWN_CHARS = 8  # of a key, in answers


class UpstreamKeyNotSet(NotFound):
    """The tenant has not set its key for this provider."""

    code = "upstream_key_not_set"


class UpstreamKey(Result):
    """A tenant's key at an upstream provider, shown by its first characters only."""

    provider: str
    prefix: str
    created_at: datetime
    updated_at: datetime


class UpstreamKeyList(Result):
    data: list[UpstreamKey]


def check_provider(provider: object) -> str:
    if provider not in PROVIDERS:
        raise InvalidInput(f"provider must be one of {', '.join(PROVIDERS)}", field="provider")
    assert isinstance(provider, str)
    return provider


def _check_key(key: object) -> str:
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_KEY_LENGTH
        or not key.isprintable()
        or key != key.strip()
    ):
        raise InvalidInput(
            f"api_key must be 1-{MAX_KEY_LENGTH} printable characters without spaces around",
            field="api_key",
        )
    return key


def shown(key: str) -> str:
    """What answers show of a key: its first characters and an ellipsis."""
    return key[:SHOWN_CHARS] + "…"


def _result(row: Any) -> UpstreamKey:
    return UpstreamKey(
        provider=row.provider,
        prefix=row.prefix,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def set_upstream_key(tx: Tx, *, provider: str, api_key: str) -> UpstreamKey:
    """Store (or replace) the tenant's key for `provider`, sealed."""
    provider = check_provider(provider)
    key = _check_key(api_key)
    sealed = tx.operator.secret_keys.seal(key)
    values = {"secret": sealed, "prefix": shown(key), "updated_at": tx.now}
    where = (
        gateway_upstream_keys.c.tenant_id == tx.tenant_id,
        gateway_upstream_keys.c.provider == provider,
    )
    row = tx.conn.execute(
        update(gateway_upstream_keys)
        .where(*where)
        .values(**values)
        .returning(gateway_upstream_keys)
    ).first()
    if row is None:
        ins = postgresql.insert if tx.conn.dialect.name == "postgresql" else sqlite.insert
        row = tx.conn.execute(
            ins(gateway_upstream_keys)
            .values(tenant_id=tx.tenant_id, provider=provider, created_at=tx.now, **values)
            .on_conflict_do_update(
                index_elements=["tenant_id", "provider"],
                set_=values,
            )
            .returning(gateway_upstream_keys)
        ).one()
    return _result(row)


def clear_upstream_key(tx: Tx, *, provider: str) -> UpstreamKey:
    """Forget the tenant's key for `provider`; the answer shows the key that was removed."""
    provider = check_provider(provider)
    row = tx.conn.execute(
        delete(gateway_upstream_keys)
        .where(
            gateway_upstream_keys.c.tenant_id == tx.tenant_id,
            gateway_upstream_keys.c.provider == provider,
        )
        .returning(gateway_upstream_keys)
    ).first()
    if row is None:
        raise UpstreamKeyNotSet(f"no {provider} key is set", field="provider")
    return _result(row)


def list_upstream_keys(tx: Tx) -> UpstreamKeyList:
    rows = tx.conn.execute(
        select(gateway_upstream_keys)
        .where(gateway_upstream_keys.c.tenant_id == tx.tenant_id)
        .order_by(gateway_upstream_keys.c.provider)
    )
    return UpstreamKeyList(data=[_result(row) for row in rows])


def open_upstream_key(tx: Tx, *, provider: str) -> str:
    """The tenant's key for `provider`, in plain text, for a call to it."""
    provider = check_provider(provider)
    sealed = tx.conn.execute(
        select(gateway_upstream_keys.c.secret).where(
            gateway_upstream_keys.c.tenant_id == tx.tenant_id,
            gateway_upstream_keys.c.provider == provider,
        )
    ).scalar()
    if sealed is None:
        raise UpstreamKeyNotSet(
            f"the tenant has not set its {provider} key for the gateway", field="provider"
        )
    return tx.operator.secret_keys.open(sealed)


def reseal_upstream_keys(conn: Connection, *, keys: SecretKeys) -> int:
    """Every upstream key sealed again under the newest key (`creditgate secrets rotate`);
    how many."""
    rows = conn.execute(
        select(
            gateway_upstream_keys.c.tenant_id,
            gateway_upstream_keys.c.provider,
            gateway_upstream_keys.c.secret,
        ).with_for_update()
    ).all()
    for row in rows:
        conn.execute(
            update(gateway_upstream_keys)
            .where(
                gateway_upstream_keys.c.tenant_id == row.tenant_id,
                gateway_upstream_keys.c.provider == row.provider,
            )
            .values(secret=keys.reseal(row.secret))
        )
    return len(rows)
