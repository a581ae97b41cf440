"""the guard function of the writes sent with the commit: creditgate_guard(ok) raises
SQLSTATE CG001 when ok is false (PostgreSQL only; SQLite never sends such writes)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION creditgate_guard(ok boolean) RETURNS integer
        LANGUAGE plpgsql AS $$
        BEGIN
            IF ok THEN
                RETURN 1;
            END IF;
            RAISE EXCEPTION 'creditgate guard missed' USING ERRCODE = 'CG001';
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS creditgate_guard(boolean)")
