"""secrets sealed at rest, no receiver's answer kept, portal demo payments a tenant's choice

Webhook signing secrets and provider API keys and webhook secrets stored in plain text are
sealed with the operator's keys (see storage/secret_keys.py: CREDITGATE_SECRET_KEYS, or the
key file beside an SQLite database; on PostgreSQL with secrets to seal and no key set, the
upgrade stops and says so). A tenant's `api_base` for a provider is dropped: where the
server connects is the operator's setting now. The start of receivers' answers kept with
webhook deliveries is dropped, and errors that quoted a socket's text become their class.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 21:30:00.000000
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from creditgate.storage.secret_keys import SecretKeys, SecretKeysMissing, is_sealed

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SECRET_FIELDS = ("api_key", "webhook_secret")
ERROR_CLASSES = (
    "timeout",
    "connection_refused",
    "connection_error",
    "tls_error",
    "dns_error",
    "refused_target",
    "protocol_error",
    "http_status",
    "signing_secret_unavailable",
    "the endpoint was deleted",
)

endpoints = sa.table(
    "webhook_endpoints", sa.column("id", sa.String()), sa.column("secret", sa.String())
)
providers = sa.table(
    "payment_providers",
    sa.column("tenant_id", sa.String()),
    sa.column("provider", sa.String()),
    sa.column("config", sa.JSON()),
)
deliveries = sa.table(
    "webhook_deliveries",
    sa.column("last_error", sa.Text()),
    sa.column("last_status_code", sa.Integer()),
)


def _keys() -> SecretKeys:
    return SecretKeys.for_url(op.get_bind().engine.url)


def _secret_column(length: int) -> None:
    """webhook_endpoints.secret as VARCHAR(length), its values kept. SQLite cannot change a
    column's type, and rebuilding the table would trip the deliveries' foreign key: a new
    column takes the values, the old one is dropped and the new one renamed."""
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "webhook_endpoints", "secret", type_=sa.String(length), existing_nullable=False
        )
        return
    op.add_column(
        "webhook_endpoints",
        sa.Column("secret_resized", sa.String(length), nullable=False, server_default=""),
    )
    op.execute("UPDATE webhook_endpoints SET secret_resized = secret")
    op.drop_column("webhook_endpoints", "secret")
    op.alter_column("webhook_endpoints", "secret_resized", new_column_name="secret")


def _rewrite_secrets(change: Callable[[str], str], *, drop_api_base: bool) -> None:
    bind = op.get_bind()
    for row in bind.execute(sa.select(endpoints.c.id, endpoints.c.secret)).all():
        new = change(row.secret)
        if new != row.secret:
            bind.execute(endpoints.update().where(endpoints.c.id == row.id).values(secret=new))
    rows = bind.execute(
        sa.select(providers.c.tenant_id, providers.c.provider, providers.c.config)
    ).all()
    for row in rows:
        config: dict[str, Any] = dict(row.config or {})
        new_config = {
            name: change(value) if name in SECRET_FIELDS and isinstance(value, str) else value
            for name, value in config.items()
            if not (drop_api_base and name == "api_base")
        }
        if new_config != config:
            bind.execute(
                providers.update()
                .where(
                    providers.c.tenant_id == row.tenant_id,
                    providers.c.provider == row.provider,
                )
                .values(config=new_config)
            )


def upgrade() -> None:
    op.add_column(
        "tenant_branding",
        sa.Column("portal_demo_payments", sa.Integer(), nullable=False, server_default="0"),
    )
    _secret_column(500)
    keys = _keys()

    def seal(value: str) -> str:
        if is_sealed(value):
            return value
        try:
            return keys.seal(value)
        except SecretKeysMissing:
            raise RuntimeError(
                "this database stores webhook and provider secrets, and they are now kept "
                "sealed: set CREDITGATE_SECRET_KEYS (make a key with `creditgate secrets "
                "generate-key`) and run the migration again"
            ) from None

    _rewrite_secrets(seal, drop_api_base=True)
    op.drop_column("webhook_deliveries", "response_excerpt")
    error = deliveries.c.last_error
    op.get_bind().execute(
        deliveries.update()
        .where(error.is_not(None), error.not_in(ERROR_CLASSES))
        .values(
            last_error=sa.case(
                (error.like("timed out%"), "timeout"),
                (deliveries.c.last_status_code.is_not(None), "http_status"),
                else_="connection_error",
            )
        )
    )


def downgrade() -> None:
    op.add_column("webhook_deliveries", sa.Column("response_excerpt", sa.Text(), nullable=True))
    keys = _keys()
    _rewrite_secrets(keys.open, drop_api_base=False)
    _secret_column(100)
    op.drop_column("tenant_branding", "portal_demo_payments")
