"""What a use case has committed, the next one reads, whatever an earlier use of the same
pooled connection left behind.

On SQLite a cursor left part-way through its rows (a result half read and still referenced,
as an exception's traceback references its frames' locals) keeps its statement running and
the read snapshot it began with; every later transaction on that connection would read the
old snapshot (SQLite's BEGIN does not end it, and the pool's rollback finds no transaction to
end). Returning a connection to the pool closes its cursors (`storage/database.py`).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from sqlalchemy import select

from creditgate.api import Creditgate, TenantLedger
from creditgate.storage.prepared import Prepared
from creditgate.storage.tables import tenants

_IDS = Prepared(select(tenants.c.id))
CONNECTIONS = 5


class _Rows:
    def __init__(self, rows: Any) -> None:
        self.rows = rows

    def fetchone(self) -> Any:
        return next(self.rows, None)


# as many as a SQLite pool keeps (and some of PostgreSQL's)


def test_a_half_read_result_leaves_no_old_snapshot_behind(db_url: str) -> None:
    cg = Creditgate(db_url)  # a pool of its own, every connection of it left so below
    try:
        for n in range(3):
            cg.create_tenant(f"read your writes {n}")
        kept: list[Any] = []
        with ExitStack() as stack:
            for n in range(CONNECTIONS):
                conn = stack.enter_context(cg.db.connect(read_only=True))
                if n % 2:  # through SQLAlchemy
                    result = conn.execute(select(tenants.c.id))
                else:  # through a prepared statement: SQLite's on the driver's cursor
                    pending = _IDS.submit(conn, {})
                    # (PostgreSQL's arrive whole with their round trip: there is no cursor.)
                    result = (
                        pending.cursor if pending.cursor is not None else iter([pending.first()])
                    )
                result = result if hasattr(result, "fetchone") else _Rows(result)
                assert result.fetchone() is not None  # one row of several, and kept
                kept.append(result)
        for n in range(10):
            tenant = cg.create_tenant(f"read back {n}")
            assert cg.tenant(tenant.id).tenant_id == tenant.id
            ledger = TenantLedger(cg, tenant.id)
            ledger.create_asset("credits", 2)
            ledger.create_customer("c1")
            ledger.grant("c1", "credits", 100 + n, kind="promotional")
            assert ledger.wallet("c1").balance("credits").available == 100 + n
    finally:
        cg.close()
