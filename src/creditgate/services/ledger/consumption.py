"""The consumption order a tenant sets per lot kind: the priority grants of a kind get by default.

Burn order is priority ascending, then soonest expiry, then oldest. A grant that names its
own priority keeps it; one that does not gets its kind's priority from this setting (0 for
a kind the tenant never set), so e.g. `promotional: 0, included: 10, purchased: 20` spends
free credit first and paid credit last. `grants.grant` applies it to every grant.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from creditgate.domain.errors import InvalidInput
from creditgate.domain.grants import check_priority
from creditgate.domain.lots import LotKind
from creditgate.services.context import Tx
from creditgate.services.results import ConsumptionOrder, KindPriority
from creditgate.storage.tables import kind_priorities


def _kind(kind: object) -> LotKind:
    try:
        return LotKind(str(kind))
    except ValueError:
        choices = ", ".join(k.value for k in LotKind)
        raise InvalidInput(f"kind must be one of {choices}", field="kind") from None


def default_priority(tx: Tx, kind: str) -> int:
    """The priority a grant of this kind gets when it does not name one."""
    found = tx.conn.execute(
        select(kind_priorities.c.priority).where(
            kind_priorities.c.tenant_id == tx.tenant_id, kind_priorities.c.kind == str(kind)
        )
    ).scalar()
    return int(found) if found is not None else 0


def consumption_order(tx: Tx) -> ConsumptionOrder:
    rows = dict(
        tx.conn.execute(
            select(kind_priorities.c.kind, kind_priorities.c.priority).where(
                kind_priorities.c.tenant_id == tx.tenant_id
            )
        ).all()
    )
    items = [
        KindPriority(kind=k.value, priority=rows.get(k.value, 0), is_default=k.value not in rows)
        for k in LotKind
    ]
    order = {k.value: i for i, k in enumerate(LotKind)}
    return ConsumptionOrder(data=sorted(items, key=lambda i: (i.priority, order[i.kind])))


def set_kind_priority(tx: Tx, *, kind: str, priority: int) -> ConsumptionOrder:
    """Set the default priority of a kind; lots already granted keep the priority they have."""
    lot_kind = _kind(kind)
    check_priority(priority)
    ins = postgresql.insert if tx.conn.dialect.name == "postgresql" else sqlite.insert
    stmt = ins(kind_priorities).values(
        tenant_id=tx.tenant_id, kind=lot_kind.value, priority=priority, updated_at=tx.now
    )
    tx.conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[kind_priorities.c.tenant_id, kind_priorities.c.kind],
            set_={"priority": priority, "updated_at": tx.now},
        )
    )
    return consumption_order(tx)
