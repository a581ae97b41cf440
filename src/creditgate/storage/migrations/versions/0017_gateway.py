"""the LLM gateway: a tenant's upstream provider keys, sealed

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 08:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from creditgate.storage.types import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_upstream_keys",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("secret", sa.String(1000), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_gateway_upstream_keys_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "provider", name=op.f("pk_gateway_upstream_keys")),
    )


def downgrade() -> None:
    op.drop_table("gateway_upstream_keys")
