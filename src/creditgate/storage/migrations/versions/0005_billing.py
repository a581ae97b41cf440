"""plans, subscriptions, packs, purchases, payment methods, auto top-up and campaigns

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import creditgate.storage.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auto_top_ups",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("wallet_id", sa.String(length=40), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("pack_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("monthly_limit", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Integer(), nullable=False),
        sa.Column("armed", sa.Integer(), nullable=False),
        sa.Column("in_flight_purchase_id", sa.String(length=40), nullable=True),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("month_count", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column(
            "backoff_until", creditgate.storage.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "updated_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("wallet_id", "asset", name=op.f("pk_auto_top_ups")),
    )
    op.create_index(
        "ix_auto_top_ups_tenant", "auto_top_ups", ["tenant_id", "enabled"], unique=False
    )
    op.create_table(
        "campaign_redemptions",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("wallet_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("lot_id", sa.String(length=40), nullable=False),
        sa.Column(
            "created_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "wallet_id", "seq", name=op.f("pk_campaign_redemptions")
        ),
    )
    op.create_table(
        "payment_methods",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("wallet_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=True),
        sa.Column("method_ref", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_methods")),
        sa.UniqueConstraint(
            "wallet_id", "provider", name=op.f("uq_payment_methods_wallet_id_provider")
        ),
    )
    op.create_table(
        "provider_events",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column(
            "received_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "provider", "event_id", name=op.f("pk_provider_events")
        ),
    )
    op.create_table(
        "purchases",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("wallet_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("pack_id", sa.String(length=40), nullable=True),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("price", creditgate.storage.types.ExactDecimal(length=64), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("expires_after_days", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("payment_ref", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.String(length=255), nullable=True),
        sa.Column("lot_id", sa.String(length=40), nullable=True),
        sa.Column(
            "created_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("paid_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("failed_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
    )
    op.create_index(
        "ix_purchases_open", "purchases", ["tenant_id", "status", "origin"], unique=False
    )
    op.create_index("ix_purchases_provider_ref", "purchases", ["provider_ref"], unique=False)
    op.create_index("ix_purchases_wallet", "purchases", ["wallet_id", "created_at"], unique=False)
    op.create_table(
        "subscription_periods",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("wallet_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("period_index", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.String(length=40), nullable=False),
        sa.Column(
            "period_start", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "period_end", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("lot_id", sa.String(length=40), nullable=True),
        sa.Column("rollover_lot_id", sa.String(length=40), nullable=True),
        sa.Column("rolled_over", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint(
            "subscription_id", "period_index", name=op.f("pk_subscription_periods")
        ),
    )
    op.create_table(
        "subscriptions",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("wallet_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("plan_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("live_wallet_id", sa.String(length=40), nullable=True),
        sa.Column("anchor_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("anchor_index", sa.Integer(), nullable=False),
        sa.Column("period_index", sa.Integer(), nullable=False),
        sa.Column(
            "current_period_start",
            creditgate.storage.types.UtcDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "current_period_end",
            creditgate.storage.types.UtcDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column("pending_plan_id", sa.String(length=40), nullable=True),
        sa.Column("cancel_at_period_end", sa.Integer(), nullable=False),
        sa.Column(
            "canceled_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "created_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("live_wallet_id", name=op.f("uq_subscriptions_live_wallet_id")),
    )
    op.create_index(
        "ix_subscriptions_due",
        "subscriptions",
        ["tenant_id", "status", "current_period_end"],
        unique=False,
    )
    op.create_table(
        "campaigns",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("per_customer_limit", sa.Integer(), nullable=False),
        sa.Column("max_redemptions", sa.Integer(), nullable=True),
        sa.Column("redemptions", sa.Integer(), nullable=False),
        sa.Column("expires_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("credit_valid_days", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_campaigns_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_campaigns_tenant_id_code")),
    )
    op.create_table(
        "exchange_rates",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("rate", creditgate.storage.types.ExactDecimal(length=64), nullable=False),
        sa.Column(
            "updated_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_exchange_rates_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "currency", "asset", name=op.f("pk_exchange_rates")),
    )
    op.create_table(
        "kind_priorities",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_kind_priorities_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "kind", name=op.f("pk_kind_priorities")),
    )
    op.create_table(
        "packs",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("price", creditgate.storage.types.ExactDecimal(length=64), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("expires_after_days", sa.Integer(), nullable=True),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_packs_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packs")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_packs_tenant_id_code")),
    )
    op.create_table(
        "payment_providers",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column(
            "updated_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_payment_providers_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "provider", name=op.f("pk_payment_providers")),
    )
    op.create_table(
        "plans",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("fee", creditgate.storage.types.ExactDecimal(length=64), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("included", sa.BigInteger(), nullable=False),
        sa.Column("rollover_cap", sa.BigInteger(), nullable=False),
        sa.Column("overage_policy", sa.String(length=16), nullable=False),
        sa.Column("overdraft_limit", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", creditgate.storage.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_plans_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_plans_tenant_id_code")),
    )


def downgrade() -> None:
    op.drop_table("plans")
    op.drop_table("payment_providers")
    op.drop_table("packs")
    op.drop_table("kind_priorities")
    op.drop_table("exchange_rates")
    op.drop_table("campaigns")
    op.drop_index("ix_subscriptions_due", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_table("subscription_periods")
    op.drop_index("ix_purchases_wallet", table_name="purchases")
    op.drop_index("ix_purchases_provider_ref", table_name="purchases")
    op.drop_index("ix_purchases_open", table_name="purchases")
    op.drop_table("purchases")
    op.drop_table("provider_events")
    op.drop_table("payment_methods")
    op.drop_table("campaign_redemptions")
    op.drop_index("ix_auto_top_ups_tenant", table_name="auto_top_ups")
    op.drop_table("auto_top_ups")
