"""A test-mode tenant's own clock: moved forward by the tenant, never by a live one.

The tenant's time is the server's plus an offset stored on the tenant (`Creditgate.tx`
adds it to every transaction of the tenant), so renewals, expiries, dunning and overage
billing run as if the time had passed. A clock never goes back: what was recorded at a
later time would otherwise look as if it were in the future.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update

from creditgate.domain.errors import InvalidInput, LiveTenant
from creditgate.services.context import Idempotent, Tx
from creditgate.services.results import TestClock
from creditgate.storage.database import RetryTransaction
from creditgate.storage.tables import tenants

MAX_OFFSET = timedelta(days=36_600)


def _micros(offset: timedelta) -> int:
    return (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds


def _seconds(offset: timedelta) -> Decimal:
    return Decimal(_micros(offset)).scaleb(-6).normalize()


def _mode_and_offset(tx: Tx) -> tuple[str, timedelta]:
    """The tenant's mode and clock offset: a test-mode tenant's as this transaction read them
    to set its time (`Creditgate.tx`), else read now."""
    if tx.clock_offset is not None:
        return "test", tx.clock_offset
    row = tx.conn.execute(
        select(tenants.c.mode, tenants.c.clock_offset_us).where(tenants.c.id == tx.tenant_id)
    ).one()
    return str(row.mode), timedelta(microseconds=int(row.clock_offset_us))


def test_clock(tx: Tx) -> TestClock:
    mode, offset = _mode_and_offset(tx)
    if mode != "test":
        raise LiveTenant("only a test-mode tenant has a test clock", field="tenant")
    return TestClock(now=tx.now, offset_seconds=_seconds(offset))


def advance(tx: Tx, *, to: datetime, idempotency_key: str | None = None) -> TestClock:
    """Move the tenant's clock forward to `to`. Live tenants are refused (403), a time
    before the tenant's present is invalid (422); advancing to the present changes nothing.
    Under an idempotency key, a retry answers the first move: by then the tenant's clock has
    run past `to`, which would otherwise be refused as a time before its present."""
    request = {"to": to.isoformat() if isinstance(to, datetime) else str(to)}
    idem = Idempotent(tx, idempotency_key, "test_clock.advance", request)
    if (replayed := idem.replay(TestClock)) is not None:
        return replayed
    mode, before = _mode_and_offset(tx)
    if mode != "test":
        raise LiveTenant(
            "only a test-mode tenant may advance its clock; create a tenant with mode test",
            field="tenant",
        )
    if not isinstance(to, datetime) or to.tzinfo is None:
        raise InvalidInput("to must be a date and time with its time zone", field="to")
    if to < tx.now:
        raise InvalidInput(
            f"to ({to.isoformat()}) is before the tenant's clock ({tx.now.isoformat()}): a "
            "test clock only moves forward",
            field="to",
        )
    offset = before + (to - tx.now)
    if offset > MAX_OFFSET:
        raise InvalidInput("to is more than 100 years ahead of the server's clock", field="to")
    moved = tx.conn.execute(
        update(tenants)
        .where(tenants.c.id == tx.tenant_id, tenants.c.clock_offset_us == _micros(before))
        .values(clock_offset_us=_micros(offset))
    ).rowcount
    if not moved:
        raise RetryTransaction  # another advance committed first: start again from its time
    return idem.record(TestClock(now=to, offset_seconds=_seconds(offset)))
