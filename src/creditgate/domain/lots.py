"""Lots (grants of credit), the burn order that consumes them, and how expiry spares held credit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class LotKind(StrEnum):
    INCLUDED = "included"
    PROMOTIONAL = "promotional"
    PURCHASED = "purchased"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class LotStatus(StrEnum):
    SCHEDULED = "scheduled"  # effective_at is still ahead; not yet in the balance
    ACTIVE = "active"
    EXPIRED = "expired"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class LotBalance:
    """What burn order needs to know of a lot."""

    id: str
    remaining: int
    priority: int
    expires_at: datetime | None
    created_at: datetime
    cost_basis: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Draw:
    lot_id: str
    amount: int
    cost_basis: Decimal


def burn_key(
    lot: LotBalance, now: datetime | None
) -> tuple[bool, int, bool, datetime, datetime, str]:
    """Priority ascending, then soonest expiry (no expiry last), then oldest.

    A lot already past its expiry that still has credit is credit the sweep kept back to
    cover open holds; it is drawn before anything else so that the hold consumes it.
    """
    overdue = now is not None and lot.expires_at is not None and lot.expires_at <= now
    return (
        not overdue,
        lot.priority,
        lot.expires_at is None,
        lot.expires_at or lot.created_at,
        lot.created_at,
        lot.id,
    )


def burn_order(lots: Iterable[LotBalance], now: datetime) -> list[LotBalance]:
    return sorted((lot for lot in lots if lot.remaining > 0), key=lambda lot: burn_key(lot, now))


def plan_draws(lots: Sequence[LotBalance], amount: int, now: datetime) -> tuple[list[Draw], int]:
    """Draw `amount` from lots in burn order; returns the draws and what the lots cannot cover."""
    draws: list[Draw] = []
    left = amount
    for lot in burn_order(lots, now):
        if left == 0:
            break
        take = min(left, lot.remaining)
        draws.append(Draw(lot.id, take, lot.cost_basis))
        left -= take
    return draws, left


def held_shares(lots: Iterable[LotBalance], held: int) -> dict[str, int]:
    """Which lots the open holds will draw on: `held` spread over lots in burn order.

    The order is the plain burn order, as it stood before any of these lots expired, so a
    lot that was going to pay for a running call keeps that part when it expires.
    """
    shares: dict[str, int] = {}
    left = held
    for lot in sorted((x for x in lots if x.remaining > 0), key=lambda x: burn_key(x, None)):
        if left <= 0:
            break
        take = min(left, lot.remaining)
        shares[lot.id] = take
        left -= take
    return shares


def expirable(lot: LotBalance, shares: dict[str, int]) -> int:
    """How much of an expiring lot may go now: all but its share of the open holds."""
    return lot.remaining - shares.get(lot.id, 0)
