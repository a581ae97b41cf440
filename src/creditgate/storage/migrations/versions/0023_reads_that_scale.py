"""reads that grew with the whole ledger go down an index: a refund finds the charge's
ledger transaction among the wallet's at the charge's time (it read every transaction of
every tenant); the balance before a billing cycle is the balance less the wallet's
transactions since (it summed every entry before): both down an index of a wallet's
transactions by time; the webhook fan-out reads undispatched events down an index of those
alone, in id order (it visited every event's entry with a NULL `dispatched_at` still in the
index, and sorted)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

UNDISPATCHED = sa.text("dispatched_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_ledger_transactions_wallet_time", "ledger_transactions", ["wallet_id", "created_at"]
    )
    op.drop_index("ix_events_undispatched", table_name="events")
    op.create_index(
        "ix_events_undispatched",
        "events",
        ["id"],
        postgresql_where=UNDISPATCHED,
        sqlite_where=UNDISPATCHED,
    )


def downgrade() -> None:
    op.drop_index("ix_events_undispatched", table_name="events")
    op.create_index("ix_events_undispatched", "events", ["dispatched_at", "id"])
    op.drop_index("ix_ledger_transactions_wallet_time", table_name="ledger_transactions")
