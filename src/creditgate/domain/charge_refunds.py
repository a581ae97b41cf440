"""Where a charge's refunded credit goes: the charge refund plan.

A refund returns credit in the reverse of the order it was taken: first any part of the
charge that became debt, then the lots, last-drawn first, so the credit a customer would
keep longest comes back first. The part of a charge already refunded came back from the
same end, so a later refund starts where the earlier ones stopped. Of the charge's debt,
what the wallet still owes shrinks the debt; what later credit has since paid off comes
back as new credit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from creditgate.domain.amounts import Asset
from creditgate.domain.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class ChargeTaken:
    """What a charge took from a wallet, and how much of it has been refunded."""

    charge_id: str
    amount: int  # all the charge debited
    debt: int  # the part that became debt
    drawn: Sequence[tuple[str, int]]  # (lot, amount) in the order the charge drew them
    refunded: int
    asset: Asset  # what the charge debited: its amounts are written in its units


@dataclass(frozen=True, slots=True)
class LotShare:
    lot_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class ChargeRefundPlan:
    amount: int  # all this refund gives back
    debt_back: int  # the wallet's debt that shrinks
    paid_off: int  # the charge's debt that later credit paid: comes back as new credit
    lots: tuple[LotShare, ...]  # credit back to the lots drawn, last drawn first


def plan_charge_refund(
    charge: ChargeTaken, wanted: int | None, wallet_debt: int
) -> ChargeRefundPlan:
    """Give back `wanted` (None: all that is left) of `charge` from a wallet that owes
    `wallet_debt`; a charge is never refunded past what it debited."""
    left = charge.amount - charge.refunded
    amount = left if wanted is None else wanted
    if amount == 0 or amount > left:
        text = charge.asset.amount_text
        raise InvalidInput(
            f"charge {charge.charge_id} has {text(left)} left to refund, not {text(amount)}",
            field="amount",
        )
    already, todo = charge.refunded, amount
    debt_back = paid_off = 0
    shares: list[LotShare] = []
    # What the charge took, newest first: its debt, then its lots in reverse burn order.
    for lot_id, taken in [(None, charge.debt), *reversed(charge.drawn)]:
        if taken <= 0:
            continue
        skip = min(already, taken)
        already -= skip
        give = min(todo, taken - skip)
        if give <= 0:
            continue
        todo -= give
        if lot_id is None:
            debt_back = min(give, max(wallet_debt, 0))
            paid_off = give - debt_back
        else:
            shares.append(LotShare(lot_id, give))
        if todo == 0:
            break
    return ChargeRefundPlan(amount, debt_back, paid_off, tuple(shares))
