"""a tenant lets its customers change their auto top-up in the billing portal

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-26 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenant_branding") as batch:
        batch.add_column(
            sa.Column(
                "customers_manage_auto_top_up", sa.Integer(), nullable=False, server_default="0"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("tenant_branding") as batch:
        batch.drop_column("customers_manage_auto_top_up")
