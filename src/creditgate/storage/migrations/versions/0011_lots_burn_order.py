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
    # Built inside the migration's transaction, which holds writes to lots until it is done.
    # On a large PostgreSQL table, build it first without blocking writes and this is a no-op:
    #   CREATE INDEX CONCURRENTLY ix_lots_burn_order ON lots (wallet_id, asset, priority,
    #     (expires_at IS NULL), coalesce(expires_at, created_at), created_at)
    #     WHERE status = 'active' AND remaining > 0;
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
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_lots_burn_order", table_name="lots")
