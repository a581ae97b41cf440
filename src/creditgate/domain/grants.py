"""A grant of credit as asked for, and the rules its terms must keep.

A grant adds one lot to a customer's wallet in one asset. A grant that names no priority
takes its kind's priority from the tenant's consumption order (see
`services/ledger/consumption.py`); the terms below are checked with the priority resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from creditgate.domain.amounts import (
    EXACT,
    MAX_BALANCE,
    MAX_WHOLE_DIGITS,
    Asset,
    check_amount,
    check_money,
    fits_money,
)
from creditgate.domain.errors import AmountOverflow, InvalidInput
from creditgate.domain.ledger import TransactionKind
from creditgate.domain.lots import LotKind

MAX_PRIORITY = 1_000_000
CURRENCY_LEN = 8
# The currency a lot's cost basis is in when the grant names none.
DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """A lot of credit to add to a customer's wallet, as the caller asks for it.

    `priority` None takes the kind's priority from the tenant's consumption order.
    `ledger_kind` is how the ledger names where the credit came from: a grant, or a plan's
    rollover (credit carried over from the period before, not newly issued).
    """

    customer: str
    asset: str
    amount: int
    kind: str = LotKind.PROMOTIONAL
    priority: int | None = None
    effective_at: datetime | None = None
    expires_at: datetime | None = None
    cost_basis: Decimal | str | int = Decimal(0)
    currency: str = DEFAULT_CURRENCY
    metadata: dict[str, Any] | None = None
    ledger_kind: TransactionKind = TransactionKind.GRANT


@dataclass(frozen=True, slots=True)
class GrantTerms:
    """A grant's terms once checked: the lot it makes."""

    amount: int
    kind: LotKind
    priority: int
    effective_at: datetime  # when the lot takes effect: the grant's time if not named
    expires_at: datetime | None
    cost_basis: Decimal


def check_lot_kind(kind: str) -> LotKind:
    try:
        return LotKind(kind)
    except ValueError:
        choices = ", ".join(k.value for k in LotKind)
        raise InvalidInput(f"kind must be one of {choices}", field="kind") from None


def check_priority(priority: object) -> int:
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not 0 <= priority <= MAX_PRIORITY
    ):
        raise InvalidInput(
            f"priority must be a whole number from 0 to {MAX_PRIORITY}", field="priority"
        )
    return priority


def _check_time(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{field} must be a timezone-aware timestamp", field=field)
    return value


def check_lot_value(amount: int, basis: Decimal, asset: Asset) -> None:
    """The money a lot stands for, its amount at its cost basis, is what its draws recognize
    as revenue, stored as every amount of money is (NUMERIC(38, 18)): below 10^20."""
    with localcontext(EXACT):
        value = asset.to_units(amount) * basis
    if not fits_money(value):
        raise InvalidInput(
            f"cost_basis times amount must be below 10^{MAX_WHOLE_DIGITS}: "
            f"{asset.amount_text(amount)} at {basis} is {value:f}",
            field="cost_basis",
        )


def check_grant(request: GrantRequest, priority: int, now: datetime) -> GrantTerms:
    """The terms of `request` with `priority` (its own or its kind's), granted at `now`.

    Whether `expires_at` is still ahead is not checked here: a retry of a grant that has
    since expired still gets the answer the grant had.
    """
    amount = check_amount(request.amount)
    if amount > MAX_BALANCE:
        raise AmountOverflow(f"amount must be at most {MAX_BALANCE}", field="amount")
    kind = check_lot_kind(request.kind)
    check_priority(priority)
    effective = _check_time(request.effective_at, "effective_at") or now
    expires = _check_time(request.expires_at, "expires_at")
    if expires is not None and request.effective_at is not None and expires <= effective:
        raise InvalidInput("expires_at must be after effective_at", field="expires_at")
    basis = check_money(request.cost_basis, "cost_basis")
    if kind is LotKind.PROMOTIONAL and basis != 0:
        raise InvalidInput("promotional credit carries no cost basis", field="cost_basis")
    currency = request.currency
    if (
        not isinstance(currency, str)
        or not currency.isalpha()
        or not 3 <= len(currency) <= CURRENCY_LEN
    ):
        raise InvalidInput("currency must be a 3-8 letter currency code", field="currency")
    return GrantTerms(amount, kind, priority, effective, expires, basis)
