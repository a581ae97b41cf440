"""the hot tables' sweep indexes cover only the rows a sweep looks for: pending holds, active
lots that expire, scheduled lots, entries that name a lot (a settled hold, a draw on a lot
that never expires or an entry on no lot then costs no index entry in them); holds lose the
index by wallet that no query used

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-03 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0020"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
EXPIRING = sa.text("status = 'active' AND expires_at IS NOT NULL")
SCHEDULED = sa.text("status = 'scheduled'")
ON_A_LOT = sa.text("lot_id IS NOT NULL")


def _partial(name: str, table: str, columns: list[str], where: sa.TextClause) -> None:
    op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    op.drop_index("ix_holds_expiry_sweep", table_name="holds")
    op.drop_index("ix_holds_wallet", table_name="holds")
    _partial("ix_holds_pending_expiry", "holds", ["expires_at"], PENDING)
    op.drop_index("ix_lots_expiry_sweep", table_name="lots")
    op.drop_index("ix_lots_activation_sweep", table_name="lots")
    _partial("ix_lots_expiry_sweep", "lots", ["expires_at"], EXPIRING)
    _partial("ix_lots_activation_sweep", "lots", ["effective_at"], SCHEDULED)
    op.drop_index("ix_ledger_entries_lot", table_name="ledger_entries")
    _partial("ix_ledger_entries_lot", "ledger_entries", ["lot_id"], ON_A_LOT)


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_lot", table_name="ledger_entries")
    op.create_index("ix_ledger_entries_lot", "ledger_entries", ["lot_id"])
    op.drop_index("ix_lots_activation_sweep", table_name="lots")
    op.drop_index("ix_lots_expiry_sweep", table_name="lots")
    op.create_index("ix_lots_activation_sweep", "lots", ["status", "effective_at"])
    op.create_index("ix_lots_expiry_sweep", "lots", ["status", "expires_at"])
    op.drop_index("ix_holds_pending_expiry", table_name="holds")
    op.create_index("ix_holds_wallet", "holds", ["wallet_id", "asset", "status"])
    op.create_index("ix_holds_expiry_sweep", "holds", ["status", "expires_at"])
