"""Holds (authorizations) and the charges that settle them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from creditgate.domain.holds import HoldStatus
from creditgate.storage.prepared import Pending, Prepared
from creditgate.storage.tables import charges, holds
from creditgate.storage.unit_of_work import UnitOfWork

_INSERT_HOLD = Prepared(insert(holds))
_DECLINE_HOLD = Prepared(
    update(holds)
    .where(holds.c.id == bindparam("hold_id"))
    .values(
        status=HoldStatus.DECLINED.value,
        amount=0,
        decline_reason=bindparam("reason"),
        resolved_at=bindparam("now"),
    )
)
_INSERT_CHARGE = Prepared(insert(charges))
_CLAIM_HOLD = Prepared(
    update(holds)
    .where(
        holds.c.id == bindparam("hold_id"),
        holds.c.tenant_id == bindparam("tenant"),
        holds.c.status == HoldStatus.PENDING.value,
        holds.c.expires_at > bindparam("now"),
    )
    .values(status=bindparam("status"), resolved_at=bindparam("now"), charge_id=bindparam("charge"))
    .returning(
        holds.c.wallet_id,
        holds.c.customer,
        holds.c.asset,
        holds.c.amount,
        holds.c.requested,
        holds.c.created_at,
        holds.c.expires_at,
        holds.c.metadata,
        holds.c.action,
        holds.c.rate_card_id,
        holds.c.dimensions,
        holds.c.quantities,
        holds.c.member,
        holds.c.budgets,
        holds.c.spend_limit_id,
        holds.c.spend_period,
    )
)


def insert_hold(uow: UnitOfWork, hold: dict[str, Any], *, at_commit: bool = False) -> None:
    """Write a hold's row (`hold`: its columns), now or with the commit."""
    if at_commit:
        uow.defer(_INSERT_HOLD, hold)
    else:
        _INSERT_HOLD.execute(uow.conn, hold)


def decline_hold(uow: UnitOfWork, hold_id: str, reason: str, now: datetime) -> None:
    """Turn a just-inserted hold into a declined one, which reserves nothing."""
    _DECLINE_HOLD.execute(uow.conn, {"hold_id": hold_id, "reason": reason, "now": now})


def set_budgets(uow: UnitOfWork, hold_id: str, column: list[list[str]] | None) -> None:
    """Record the budgets a just-inserted hold counts against (found after its insert)."""
    uow.conn.execute(update(holds).where(holds.c.id == hold_id).values(budgets=column))


def insert_charge(uow: UnitOfWork, charge: dict[str, Any], *, at_commit: bool = False) -> None:
    """Write a charge's row, now (inside a caller's pipeline) or with the commit."""
    if at_commit:
        uow.defer(_INSERT_CHARGE, charge)
    else:
        _INSERT_CHARGE.submit(uow.conn, charge)


def submit_claim(
    uow: UnitOfWork,
    tenant_id: str,
    hold_id: str,
    resolution: tuple[HoldStatus, str | None],
    now: datetime,
) -> Pending:
    """Send the move of a pending, unexpired hold to `resolution` (its final status and
    the charge that settles it, if any); its row (the hold) arrives if it moved."""
    status, charge_id = resolution
    params = {
        "hold_id": hold_id,
        "tenant": tenant_id,
        "now": now,
        "status": status.value,
        "charge": charge_id,
    }
    return _CLAIM_HOLD.submit(uow.conn, params)


def lock_hold_status(uow: UnitOfWork, tenant_id: str, hold_id: str) -> HoldStatus | None:
    """Wait for the hold's row lock and read its status; None if there is no such hold."""
    found = uow.conn.execute(
        select(holds.c.status)
        .where(holds.c.id == hold_id, holds.c.tenant_id == tenant_id)
        .with_for_update()
    ).first()
    return None if found is None else HoldStatus(found.status)


def read_hold(uow: UnitOfWork, tenant_id: str, hold_id: str) -> dict[str, Any] | None:
    """A hold's row, by column; None if there is no such hold."""
    row = uow.conn.execute(
        select(holds).where(holds.c.id == hold_id, holds.c.tenant_id == tenant_id)
    ).first()
    return None if row is None else dict(row._mapping)
