"""auto top-up decided by balance movements: each balance row carries its auto top-up
threshold, so the movement that crosses it re-arms or fires; the purchase in flight records
when it was sent to the provider

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import creditgate.storage.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_SETTING = (
    "auto_top_ups.wallet_id = wallet_balances.wallet_id "
    "AND auto_top_ups.asset = wallet_balances.asset"
)


def upgrade() -> None:
    op.add_column("wallet_balances", sa.Column("top_up_threshold", sa.BigInteger(), nullable=True))
    op.add_column(
        "auto_top_ups",
        sa.Column(
            "in_flight_sent_at",
            creditgate.storage.types.UtcDateTime(timezone=True),
            nullable=True,
        ),
    )
    # Purchases already in flight were sent when they were claimed.
    op.execute(
        "UPDATE auto_top_ups SET in_flight_sent_at = updated_at "
        "WHERE in_flight_purchase_id IS NOT NULL"
    )
    # Every setting gets a balance row to carry its threshold (a wallet that never held the
    # asset has none yet), with its customer's default policy, as the first movement would.
    op.execute(
        "INSERT INTO wallet_balances (tenant_id, wallet_id, asset, posted, held, debt, policy, "
        "overdraft_limit, low_balance_threshold, low_balance_alerted, updated_at) "
        "SELECT auto_top_ups.tenant_id, auto_top_ups.wallet_id, auto_top_ups.asset, 0, 0, 0, "
        "customers.policy, customers.overdraft_limit, NULL, 0, auto_top_ups.updated_at "
        "FROM auto_top_ups JOIN customers ON customers.wallet_id = auto_top_ups.wallet_id "
        f"WHERE NOT EXISTS (SELECT 1 FROM wallet_balances WHERE {_SETTING})"
    )
    op.execute(
        "UPDATE wallet_balances SET top_up_threshold = (SELECT auto_top_ups.threshold "
        f"FROM auto_top_ups WHERE {_SETTING} AND auto_top_ups.enabled = 1)"
    )
    # Armed while available is at or above the threshold, from now on kept by each movement.
    op.execute(
        "UPDATE auto_top_ups SET armed = 1 WHERE armed = 0 AND EXISTS (SELECT 1 FROM "
        f"wallet_balances WHERE {_SETTING} "
        "AND wallet_balances.posted - wallet_balances.held >= auto_top_ups.threshold)"
    )


def downgrade() -> None:
    with op.batch_alter_table("auto_top_ups") as batch:
        batch.drop_column("in_flight_sent_at")
    with op.batch_alter_table("wallet_balances") as batch:
        batch.drop_column("top_up_threshold")
