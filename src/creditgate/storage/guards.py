"""Guards: conditions a write sent with the commit checks in SQL, failing the transaction.

A move sent with the commit (`storage.balances.move_at_commit`) cannot be looked at before
the commit, so it carries its condition into the statement: the write is an `UPDATE …
WHERE condition RETURNING …` in a CTE, and the statement's one row calls
`creditgate_guard(<the update returned a row>)`. That PostgreSQL function (created by
migration 0016) raises SQLSTATE `GUARD_SQLSTATE` when its argument is false, which fails
the whole transaction at the commit; `storage.database` turns that error into `GuardMissed`
and the unit of work runs again carefully. Only PostgreSQL takes this path.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, func, select

# The SQLSTATE `creditgate_guard` raises, which nothing else in creditgate raises.
GUARD_SQLSTATE = "CG001"
GUARD_FUNCTION = "creditgate_guard"


def require_rows(written: Any) -> Any:
    """1, or the transaction fails with `GUARD_SQLSTATE`, unless `written` (a write's
    returned rows, or any rows that must exist) has a row."""
    found = select(func.count()).select_from(written).scalar_subquery() > 0
    return getattr(func, GUARD_FUNCTION)(found, type_=Integer)


def is_guard_miss(sqlstate: object) -> bool:
    return sqlstate == GUARD_SQLSTATE
