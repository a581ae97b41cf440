"""rate cards, model prices, and the pricing context of holds and charges

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 04:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import creditgate.storage.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_cards",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "effective_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_rate_cards_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_cards")),
        sa.UniqueConstraint(
            "tenant_id", "name", "version", name=op.f("uq_rate_cards_tenant_id_name_version")
        ),
    )
    op.create_table(
        "model_prices",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("input_mtok", creditgate.storage.types.ExactDecimal(), nullable=False),
        sa.Column("output_mtok", creditgate.storage.types.ExactDecimal(), nullable=False),
        sa.Column("cache_read_mtok", creditgate.storage.types.ExactDecimal(), nullable=True),
        sa.Column(
            "effective_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "created_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_model_prices_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_prices")),
    )
    op.create_index(
        "ix_model_prices_lookup", "model_prices", ["tenant_id", "model", "effective_at"]
    )
    with op.batch_alter_table("holds") as batch:
        batch.add_column(sa.Column("action", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("rate_card_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("dimensions", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("quantities", sa.JSON(), nullable=True))
    with op.batch_alter_table("charges") as batch:
        batch.add_column(sa.Column("model", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("dimensions", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("quantities", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("price", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("rate_card_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("rate_card_version", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("vendor_cost", creditgate.storage.types.ExactDecimal(), nullable=True)
        )
        batch.add_column(
            sa.Column("revenue", creditgate.storage.types.ExactDecimal(), nullable=True)
        )
        batch.create_index("ix_charges_tenant_time", ["tenant_id", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("charges") as batch:
        batch.drop_index("ix_charges_tenant_time")
        for name in (
            "revenue",
            "vendor_cost",
            "rate_card_version",
            "rate_card_id",
            "price",
            "quantities",
            "dimensions",
            "model",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("holds") as batch:
        for name in ("quantities", "dimensions", "rate_card_id", "action"):
            batch.drop_column(name)
    op.drop_index("ix_model_prices_lookup", table_name="model_prices")
    op.drop_table("model_prices")
    op.drop_table("rate_cards")
