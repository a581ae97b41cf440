"""collecting the money: tenants in test mode with their own clock; plans collected through
Stripe or manual invoices, each period's fee as an invoice; the overage price and the debt
billed per cycle

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from creditgate.storage.types import ExactDecimal, UtcDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("mode", sa.String(8), server_default="live", nullable=False))
        batch.add_column(
            sa.Column("clock_offset_us", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("stripe_test_clock", sa.String(255), nullable=True))
    with op.batch_alter_table("plans") as batch:
        batch.add_column(
            sa.Column("collection", sa.String(16), server_default="external", nullable=False)
        )
        batch.add_column(sa.Column("stripe_price", sa.String(255), nullable=True))
        batch.add_column(
            sa.Column("grant_before_payment", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("grace_days", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(
            sa.Column("payment_status", sa.String(24), server_default="none", nullable=False)
        )
        batch.add_column(sa.Column("payment_failure_reason", sa.String(255), nullable=True))
        batch.add_column(sa.Column("provider_ref", sa.String(255), nullable=True))
        batch.create_index("ix_subscriptions_provider_ref", ["provider_ref"])
    with op.batch_alter_table("subscription_periods") as batch:
        batch.add_column(sa.Column("invoice_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("fee", ExactDecimal(length=64), nullable=True))
        batch.add_column(sa.Column("currency", sa.String(8), nullable=True))
        batch.add_column(sa.Column("provider", sa.String(16), nullable=True))
        batch.add_column(
            sa.Column("fee_status", sa.String(16), server_default="external", nullable=False)
        )
        batch.add_column(sa.Column("invoice_ref", sa.String(255), nullable=True))
        batch.add_column(sa.Column("pay_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("failure_reason", sa.String(255), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("paid_at", UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("failed_at", UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("withheld", sa.BigInteger(), server_default="0", nullable=False))
        batch.create_unique_constraint("uq_subscription_periods_invoice_id", ["invoice_id"])
        batch.create_index("ix_subscription_periods_invoice_ref", ["invoice_ref"])
        batch.create_index("ix_subscription_periods_dunning", ["tenant_id", "fee_status"])
    op.create_table(
        "overage_settings",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("price", ExactDecimal(length=64), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=True),
        sa.Column("on_failure", sa.String(16), nullable=False),
        sa.Column("return_url", sa.Text(), nullable=True),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_overage_settings_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "asset", name=op.f("pk_overage_settings")),
    )
    op.create_table(
        "overage_bills",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("wallet_id", sa.String(40), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("cycle", sa.String(64), nullable=False),
        sa.Column("purchase_id", sa.String(40), nullable=False),
        sa.Column("debt", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("stopped", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("wallet_id", "asset", "cycle", name=op.f("pk_overage_bills")),
    )
    op.create_index("ix_overage_bills_tenant", "overage_bills", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_overage_bills_tenant", table_name="overage_bills")
    op.drop_table("overage_bills")
    op.drop_table("overage_settings")
    with op.batch_alter_table("subscription_periods") as batch:
        batch.drop_index("ix_subscription_periods_dunning")
        batch.drop_index("ix_subscription_periods_invoice_ref")
        batch.drop_constraint("uq_subscription_periods_invoice_id", type_="unique")
        for name in (
            "withheld",
            "failed_at",
            "paid_at",
            "attempts",
            "failure_reason",
            "pay_url",
            "invoice_ref",
            "fee_status",
            "provider",
            "currency",
            "fee",
            "invoice_id",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_index("ix_subscriptions_provider_ref")
        for name in ("provider_ref", "payment_failure_reason", "payment_status"):
            batch.drop_column(name)
    with op.batch_alter_table("plans") as batch:
        for name in ("grace_days", "grant_before_payment", "stripe_price", "collection"):
            batch.drop_column(name)
    with op.batch_alter_table("tenants") as batch:
        for name in ("stripe_test_clock", "clock_offset_us", "mode"):
            batch.drop_column(name)
