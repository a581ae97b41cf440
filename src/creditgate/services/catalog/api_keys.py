"""API keys: `cg_<prefix>_<secret>`, kept as the prefix (to find it) and a SHA-256 of the secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from creditgate.domain.errors import ApiKeyRevoked, Unauthenticated, UnknownApiKey
from creditgate.services.catalog.catalog import check_name
from creditgate.services.context import Idempotent, Tx
from creditgate.services.results import ApiKey, CreatedApiKey
from creditgate.storage.database import RetryTransaction
from creditgate.storage.ids import new_id
from creditgate.storage.tables import api_keys, tenants

SCHEME = "cg"
PREFIX_LENGTH = 8
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
SECRET_ALPHABET = frozenset(string.ascii_letters + string.digits + "-_")  # token_urlsafe's
SECRET_BYTES = 32  # 43 URL-safe characters
MIN_SECRET_LENGTH = 32
MAX_KEY_LENGTH = 200
# last_used_at is a hint for people tidying keys, not an audit log: write it at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: a tenant, through one of its keys."""

    tenant_id: str
    key_id: str
    prefix: str
    mode: str = "live"  # the tenant's: live | test


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> tuple[str, str]:
    """A new key's (prefix, secret): the prefix finds its row, the secret is only hashed."""
    prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return prefix, secrets.token_urlsafe(SECRET_BYTES)


def parse_key(key: str, scheme: str = SCHEME, kind: str = "API key") -> tuple[str, str]:
    """(prefix, secret) of a well-formed `<scheme>_<prefix>_<secret>`; Unauthenticated
    otherwise."""
    parts = key.split("_", 2) if len(key) <= MAX_KEY_LENGTH else []
    if (
        len(parts) != 3
        or parts[0] != scheme
        or len(parts[1]) != PREFIX_LENGTH
        or not all(c in PREFIX_ALPHABET for c in parts[1])
        or len(parts[2]) < MIN_SECRET_LENGTH
        or not SECRET_ALPHABET.issuperset(parts[2])
    ):
        raise Unauthenticated(f"the {kind} is malformed: expected {scheme}_<prefix>_<secret>")
    return parts[1], parts[2]


def display(prefix: str, scheme: str = SCHEME) -> str:
    """How a key is shown anywhere but the moment it is created."""
    return f"{scheme}_{prefix}_…"


def _result(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _insert_key(tx: Tx, name: str) -> CreatedApiKey:
    prefix, secret = new_secret()
    key_id = new_id("key")
    try:
        tx.conn.execute(
            insert(api_keys).values(
                id=key_id,
                tenant_id=tx.tenant_id,
                prefix=prefix,
                hash=hash_secret(secret),
                name=name,
                created_at=tx.now,
                revoked_at=None,
                last_used_at=None,
            )
        )
    except IntegrityError:
        # Two keys drew the same prefix: draw again in a fresh transaction.
        raise RetryTransaction from None
    return CreatedApiKey(
        id=key_id,
        name=name,
        prefix=prefix,
        created_at=tx.now,
        revoked_at=None,
        last_used_at=None,
        key=f"{SCHEME}_{prefix}_{secret}",
    )


def _recorded(idem: Idempotent, created: CreatedApiKey) -> CreatedApiKey:
    # The secret is not kept for replays: a replay answers the same key without it.
    idem.record(ApiKey(**created.model_dump(exclude={"key"})))
    return created


def _replayed(idem: Idempotent) -> CreatedApiKey | None:
    replayed = idem.replay(ApiKey)
    return None if replayed is None else CreatedApiKey(**replayed.model_dump(), key=None)


def create_key(tx: Tx, *, name: str = "", idempotency_key: str | None = None) -> CreatedApiKey:
    name = check_name(name, "name", required=False)
    idem = Idempotent(tx, idempotency_key, "api_key.create", {"name": name})
    if (replayed := _replayed(idem)) is not None:
        return replayed
    return _recorded(idem, _insert_key(tx, name))


def list_keys(tx: Tx) -> list[ApiKey]:
    rows = tx.conn.execute(
        select(api_keys).where(api_keys.c.tenant_id == tx.tenant_id).order_by(api_keys.c.id)
    )
    return [_result(r) for r in rows]


def _find(tx: Tx, key_id: str) -> Any:
    row = tx.conn.execute(
        select(api_keys).where(api_keys.c.id == key_id, api_keys.c.tenant_id == tx.tenant_id)
    ).first()
    if row is None:
        raise UnknownApiKey(f"API key {key_id!r} does not exist", field="key")
    return row


def revoke_key(tx: Tx, *, key_id: str, idempotency_key: str | None = None) -> ApiKey:
    """Stop a key working (within seconds on every server); revoking twice changes nothing."""
    idem = Idempotent(tx, idempotency_key, "api_key.revoke", {"key": key_id})
    if (replayed := idem.replay(ApiKey)) is not None:
        return replayed
    _find(tx, key_id)
    tx.conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=tx.now)
    )
    return idem.record(_result(_find(tx, key_id)))


def rotate_key(tx: Tx, *, key_id: str, idempotency_key: str | None = None) -> CreatedApiKey:
    """Revoke a key and issue its replacement under the same name, in one transaction."""
    idem = Idempotent(tx, idempotency_key, "api_key.rotate", {"key": key_id})
    if (replayed := _replayed(idem)) is not None:
        return replayed
    old = _find(tx, key_id)
    revoked = tx.conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=tx.now)
    ).rowcount
    if not revoked:
        raise ApiKeyRevoked(f"API key {key_id} is already revoked", field="key")
    return _recorded(idem, _insert_key(tx, old.name))


def authenticate(conn: Connection, key: str, now: datetime) -> tuple[Principal, bool]:
    """The principal a key stands for, and whether its last_used_at is due a refresh."""
    prefix, secret = parse_key(key)
    row = conn.execute(
        select(
            api_keys.c.id,
            api_keys.c.tenant_id,
            api_keys.c.hash,
            api_keys.c.revoked_at,
            api_keys.c.last_used_at,
            tenants.c.mode,
        )
        .join(tenants, tenants.c.id == api_keys.c.tenant_id)
        .where(api_keys.c.prefix == prefix)
    ).first()
    if row is None or not hmac.compare_digest(row.hash, hash_secret(secret)):
        raise Unauthenticated("the API key is not valid")
    if row.revoked_at is not None:
        raise Unauthenticated(f"the API key {display(prefix)} has been revoked")
    stale = row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION
    return Principal(row.tenant_id, row.id, prefix, row.mode), stale


def touch(conn: Connection, key_id: str, now: datetime) -> None:
    conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            or_(
                api_keys.c.last_used_at.is_(None),
                api_keys.c.last_used_at < now - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=now)
    )
