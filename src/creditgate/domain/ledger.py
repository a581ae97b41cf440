"""Double-entry postings: every movement of an asset is a balanced set of entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from creditgate.domain.lots import Draw, LotKind


class Account(StrEnum):
    """Accounts per tenant and asset. `WALLET` is the customer's; the rest are the tenant's."""

    WALLET = "wallet"
    ISSUED = "issued"  # where granted credit comes from (one per lot kind, see `issued`)
    USAGE = "usage"  # where consumed credit goes
    EXPIRED = "expired"
    VOIDED = "voided"
    REFUNDED = "refunded"  # credit taken back because the money paid for it was refunded

    @staticmethod
    def issued(kind: LotKind) -> str:
        return f"issued:{kind.value}"


class TransactionKind(StrEnum):
    GRANT = "grant"
    CHARGE = "charge"
    EXPIRE = "expire"
    VOID_LOT = "void_lot"
    REFUND = "refund"
    # A period's unused included credit carried into the next period's lot (not a sale).
    ROLLOVER = "rollover"
    # Credit taken back from a purchased lot because the purchase's money was refunded,
    # and given back if the payment provider refused that refund.
    PURCHASE_REFUND = "purchase_refund"
    REFUND_REVERSAL = "refund_reversal"


@dataclass(frozen=True, slots=True)
class Entry:
    account: str
    amount: int  # positive = credit to the account
    lot_id: str | None = None


def is_balanced(entries: Sequence[Entry]) -> bool:
    return sum(e.amount for e in entries) == 0


def grant_entries(kind: LotKind, lot_id: str, amount: int) -> list[Entry]:
    return [Entry(Account.issued(kind), -amount), Entry(Account.WALLET, amount, lot_id)]


def charge_entries(draws: Sequence[Draw], debt: int) -> list[Entry]:
    """A usage debit: one wallet entry per lot drawn, one for any debt, and the usage sink."""
    entries = [Entry(Account.WALLET, -d.amount, d.lot_id) for d in draws]
    if debt:
        entries.append(Entry(Account.WALLET, -debt))
    total = sum(d.amount for d in draws) + debt
    entries.append(Entry(Account.USAGE, total))
    return entries


def removal_entries(sink: Account, lot_id: str, amount: int) -> list[Entry]:
    """Credit leaving a lot without being used: expiry or a voided remainder."""
    return [Entry(Account.WALLET, -amount, lot_id), Entry(sink, amount)]


def debt_repayment_entries(lot_id: str, amount: int) -> list[Entry]:
    """A new lot paying down debt: the lot's credit covers usage already posted as debt."""
    return [Entry(Account.WALLET, -amount, lot_id), Entry(Account.WALLET, amount)]
