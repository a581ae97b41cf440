"""organizations: members of a customer, budgets per member (or customer) and period, their
usage per period; the member and budgets a hold, charge and ledger transaction count in;
alert thresholds of a balance

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from creditgate.storage.types import UtcDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("wallet_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), server_default="", nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("removed_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_members_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint(
            "wallet_id", "external_id", name=op.f("uq_members_wallet_id_external_id")
        ),
    )
    op.create_table(
        "budgets",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("wallet_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("member", sa.String(200), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("anchor", UtcDateTime(timezone=True), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_budgets_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budgets")),
        sa.UniqueConstraint(
            "wallet_id", "member", "asset", name=op.f("uq_budgets_wallet_id_member_asset")
        ),
    )
    op.create_table(
        "budget_usage",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("wallet_id", sa.String(40), nullable=False),
        sa.Column("budget_id", sa.String(40), nullable=False),
        sa.Column("period_start", UtcDateTime(timezone=True), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("cap", sa.BigInteger(), nullable=True),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.Column("alerted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("budget_id", "period_start", name=op.f("pk_budget_usage")),
    )
    op.add_column("holds", sa.Column("member", sa.String(200), nullable=True))
    op.add_column("holds", sa.Column("budgets", sa.JSON(), nullable=True))
    op.add_column("charges", sa.Column("member", sa.String(200), nullable=True))
    op.add_column("charges", sa.Column("budgets", sa.JSON(), nullable=True))
    op.add_column("ledger_transactions", sa.Column("member", sa.String(200), nullable=True))
    op.add_column("wallet_balances", sa.Column("thresholds", sa.JSON(), nullable=True))
    op.add_column(
        "wallet_balances",
        sa.Column("budgeted", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("wallet_balances") as batch:
        batch.drop_column("budgeted")
        batch.drop_column("thresholds")
    with op.batch_alter_table("ledger_transactions") as batch:
        batch.drop_column("member")
    with op.batch_alter_table("charges") as batch:
        batch.drop_column("budgets")
        batch.drop_column("member")
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("budgets")
        batch.drop_column("member")
    op.drop_table("budget_usage")
    op.drop_table("budgets")
    op.drop_table("members")
