"""customer gateway keys and spend limits: gateway_keys, spend_periods, the holds' limit

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from creditgate.storage.types import UtcDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("wallet_id", sa.String(40), nullable=False),
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), server_default="", nullable=False),
        sa.Column("limit_asset", sa.String(32), nullable=True),
        sa.Column("limit_amount", sa.BigInteger(), nullable=True),
        sa.Column("limit_period", sa.String(8), nullable=True),
        sa.Column("models", sa.JSON(), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_gateway_keys_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_gateway_keys_prefix")),
    )
    op.create_index(
        "ix_gateway_keys_customer", "gateway_keys", ["tenant_id", "customer", "id"], unique=False
    )
    op.create_table(
        "spend_periods",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("wallet_id", sa.String(40), nullable=False),
        sa.Column("limit_id", sa.String(40), nullable=False),
        sa.Column("period_start", UtcDateTime(timezone=True), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("cap", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("limit_id", "period_start", name=op.f("pk_spend_periods")),
    )
    op.add_column("holds", sa.Column("spend_limit_id", sa.String(40), nullable=True))
    op.add_column("holds", sa.Column("spend_period", UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("spend_period")
        batch.drop_column("spend_limit_id")
    op.drop_table("spend_periods")
    op.drop_index("ix_gateway_keys_customer", table_name="gateway_keys")
    op.drop_table("gateway_keys")
