"""dashboard sessions signed out before they expired

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from creditgate.storage.types import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sign_outs",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("signed_out_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_dashboard_sign_outs_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "session_id", name=op.f("pk_dashboard_sign_outs")),
    )


def downgrade() -> None:
    op.drop_table("dashboard_sign_outs")
