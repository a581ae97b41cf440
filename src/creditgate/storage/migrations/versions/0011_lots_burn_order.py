"""open lots in burn order: a partial index, so a debit reads a wallet's first open lots
without visiting the lots it has used up

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 22:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OPEN_LOT = sa.text("status = 'active' AND remaining > 0")


def upgrade() -> None:
    op.create_index(
        "ix_lots_burn_order",
        "lots",
        [
            "wallet_id",
            "asset",
            "priority",
            sa.text("(expires_at IS NULL)"),
            sa.text("coalesce(expires_at, created_at)"),
            "created_at",
        ],
        postgresql_where=OPEN_LOT,
        sqlite_where=OPEN_LOT,
    )


def downgrade() -> None:
    op.drop_index("ix_lots_burn_order", table_name="lots")
