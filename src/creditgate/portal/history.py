"""Ledger rows as a person reads them: what each movement of credit was."""

from __future__ import annotations

from dataclasses import dataclass

from creditgate.api import TenantLedger
from creditgate.domain.ledger import TransactionKind
from creditgate.portal.reads import ledger_references
from creditgate.services.reports.portal import LedgerReference
from creditgate.services.results import LedgerPage, LedgerTransaction

LOT_KINDS = {
    "included": "Included credit",
    "promotional": "Promotional credit",
    "purchased": "Purchased credit",
    "refund": "Credit given back",
    "adjustment": "Adjustment",
}
MOVES: dict[str, str] = {
    TransactionKind.EXPIRE: "Expired",
    TransactionKind.VOID_LOT: "Removed",
    TransactionKind.ROLLOVER: "Rolled over",
    TransactionKind.PURCHASE_REFUND: "Purchase refunded",
    TransactionKind.REFUND_REVERSAL: "Purchase refund reversed",
}


@dataclass(frozen=True, slots=True)
class Row:
    transaction: LedgerTransaction
    what: str  # "chat.completion · gpt-4o", "Purchased credit", "Expired: promotional credit"


def usage_name(reference: LedgerReference | None) -> str:
    """A charge as its action and model: "chat.completion · gpt-4o"; "Usage" without them."""
    if reference is None or not (reference.action or reference.model):
        return "Usage"
    return " · ".join(part for part in (reference.action, reference.model) if part)


def describe(t: LedgerTransaction, reference: LedgerReference | None) -> str:
    if t.kind == TransactionKind.CHARGE:
        return usage_name(reference)
    if t.kind == TransactionKind.REFUND:
        return f"Refund: {usage_name(reference)}"
    lot = LOT_KINDS.get(reference.lot_kind or "") if reference else None
    if t.kind == TransactionKind.GRANT:
        return lot or "Credit added"
    move = MOVES.get(t.kind)
    if move is None:
        return t.kind.replace("_", " ").capitalize()
    return f"{move}: {lot.lower()}" if lot and t.kind != TransactionKind.ROLLOVER else move


def rows(ledger: TenantLedger, customer: str, page: LedgerPage) -> list[Row]:
    """A page of a customer's ledger, each row with what it was."""
    ids = sorted({t.reference_id for t in page.data if t.reference_id})
    found = ledger_references(ledger.cg, ledger.tenant_id, customer=customer, references=ids)
    return [Row(t, describe(t, found.get(t.reference_id or ""))) for t in page.data]
