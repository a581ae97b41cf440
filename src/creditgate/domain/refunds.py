"""The purchase refund plan: what a refund of a purchase takes back and pays back, without I/O.

A refund takes the lot's unused credit first (what open holds reserved stays with them),
then, only on request, credit already consumed: the usage it paid for is debited from the
wallet again, from its other lots in burn order and, where they do not cover it, as debt
within the wallet's policy. Its money is the change the refund makes to the purchase's
running refunded total (`billing.refunded_money`), so refunds in parts add up to one refund
of the whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from creditgate.domain.amounts import EXACT, Asset, quantized
from creditgate.domain.billing import refunded_money
from creditgate.domain.billing_errors import RefundNotCovered
from creditgate.domain.errors import InvalidInput
from creditgate.domain.ledger import Account, Entry, charge_entries
from creditgate.domain.lots import Draw, LotBalance, plan_draws
from creditgate.domain.policy import WalletPolicy


@dataclass(frozen=True, slots=True)
class RefundablePurchase:
    """What the plan needs of a paid purchase and the lot it bought."""

    id: str
    asset: Asset  # what was bought: its amounts are written in its units
    amount: int  # credits bought
    refunded: int  # credits refunded before
    price: Decimal
    refunded_money: Decimal  # money refunded before
    currency: str
    digits: int  # decimal places of the currency's minor unit
    unused: int  # the lot's credit that neither usage nor open holds took
    consumed: int  # the lot's credit usage still holds (0 unless consumed credit is refunded)


@dataclass(frozen=True, slots=True)
class RefundPlan:
    amount: int  # credits taken back
    from_unused: int
    from_consumed: int
    money: Decimal  # paid back by this refund
    money_total: Decimal  # the purchase's refunded money once it is made


@dataclass(frozen=True, slots=True)
class ConsumedDebit:
    """How the wallet pays again for the consumed credit a refund takes back."""

    draws: list[Draw]
    debt: int


def consumed_still_held(consumed: int, refunded: int, given_back: int) -> int:
    """A lot's credit that usage still holds: consumed, less what refunds of charges gave
    back (to the lot itself, or `given_back` to refund lots made for it once it closed)."""
    return max(0, consumed - refunded - given_back)


def unused_credit(remaining: int, held_share: int) -> int:
    """What of a lot's remaining credit no open hold will draw on."""
    return max(0, remaining - held_share)


def plan_purchase_refund(
    purchase: RefundablePurchase, wanted: int | None, include_consumed: bool
) -> RefundPlan:
    """How much of the purchase to refund (`wanted`; None: all it can give back), from which
    credit, and its money; refuses a refund of nothing, of more than it can give back, or
    worth less than one minor unit of the currency."""
    left = purchase.amount - purchase.refunded
    can = min(purchase.unused + purchase.consumed, left)
    amount = can if wanted is None else wanted
    if amount == 0 or amount > can:
        more = (
            "; pass include_consumed to refund credit already used"
            if not include_consumed and left > purchase.unused
            else ""
        )
        text = purchase.asset.amount_text
        has = f"has {text(can)} to refund, not {text(amount)}" if can else "has no credit to refund"
        raise InvalidInput(f"purchase {purchase.id} {has}{more}", field="amount")
    from_unused = min(amount, purchase.unused)
    total = refunded_money(
        purchase.price, purchase.amount, purchase.refunded + amount, purchase.digits
    )
    with localcontext(EXACT):  # NUMERIC(38, 18) values, never rounded to 28 digits
        difference = total - purchase.refunded_money
    money = quantized(difference, total)
    if money <= 0:
        text = purchase.asset.amount_text
        raise InvalidInput(
            f"{text(amount)} of {text(purchase.amount)} are worth less than one minor unit of "
            f"{purchase.currency}: there is no money to pay back",
            field="amount",
        )
    return RefundPlan(amount, from_unused, amount - from_unused, money, total)


def check_consumed_covered(
    plan: RefundPlan, policy: WalletPolicy, available: int, asset: Asset
) -> None:
    """Refunding consumed credit debits it from the wallet again: within its policy, after
    the unused credit the refund takes."""
    capacity = policy.capacity(available - plan.from_unused)
    if plan.from_consumed > capacity:
        raise RefundNotCovered(
            f"refunding {asset.amount_text(plan.from_consumed)} of consumed credit debits it "
            f"from the wallet again, and its {policy.mode.value} policy allows "
            f"{asset.amount_text(max(capacity, 0))}",
            field="amount",
        )


def debit_consumed(
    plan: RefundPlan, other_lots: Sequence[LotBalance], now: datetime
) -> ConsumedDebit:
    """The consumed credit drawn from the wallet's other lots in burn order; the rest is debt."""
    draws, debt = plan_draws(other_lots, plan.from_consumed, now)
    return ConsumedDebit(draws, debt)


def refund_entries(plan: RefundPlan, lot_id: str) -> list[Entry]:
    """The refund's ledger entries: the credit leaves the lot for the refunded account; the
    usage the lot paid for is first taken off it, to be paid by the wallet again."""
    entries: list[Entry] = []
    if plan.from_consumed:
        entries += [
            Entry(Account.USAGE, -plan.from_consumed),
            Entry(Account.WALLET, plan.from_consumed, lot_id),
        ]
    return [
        *entries,
        Entry(Account.WALLET, -plan.amount, lot_id),
        Entry(Account.REFUNDED, plan.amount, lot_id),
    ]


def consumed_debit_entries(debit: ConsumedDebit) -> list[Entry]:
    """The charge that makes the wallet pay again for the consumed credit refunded."""
    return charge_entries(debit.draws, debit.debt)
