"""refunds of purchases: the refunded totals on purchases, and one row per refund

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from creditgate.storage.types import ExactDecimal, UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("refunded", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("refunded_money", ExactDecimal(length=64), nullable=False, server_default="0")
        )
    op.create_table(
        "purchase_refunds",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("wallet_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("purchase_id", sa.String(40), nullable=False),
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("lot_id", sa.String(40), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("unused", sa.BigInteger(), nullable=False),
        sa.Column("consumed", sa.BigInteger(), nullable=False),
        sa.Column("money", ExactDecimal(length=64), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("provider_ref", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.String(255), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_refunds")),
    )
    op.create_index(
        "ix_purchase_refunds_purchase", "purchase_refunds", ["purchase_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_purchase_refunds_purchase", table_name="purchase_refunds")
    op.drop_table("purchase_refunds")
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("refunded_money")
        batch.drop_column("refunded")
