"""tenant branding for the billing portal

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 05:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from creditgate.storage.types import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_branding",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("logo_url", sa.String(2000), nullable=True),
        sa.Column("accent_color", sa.String(7), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenant_branding")
