"""refunded amount on charges

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("charges") as batch:
        batch.add_column(sa.Column("refunded", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("charges") as batch:
        batch.drop_column("refunded")
