"""Revenue recognition from the ledger: deferred, sold, recognized, breakage, refunds.

Credit carries the money paid for it as its lot's cost basis (per whole unit of the
asset, in the lot's currency; promotional credit has none). Every ledger entry on a lot
moves that money between states:

- a grant posts credit: **sold**, into **deferred**;
- usage draws it (or a new lot pays down usage recorded as debt): **recognized**;
- expiry takes it: **breakage**; voiding it by hand: **voided**;
- a refund of usage gives it back: **refunded** (recognition reversed), into deferred;
- a refund of a purchase takes its credit back and pays the money back:
  **purchases_refunded** (consumed credit it refunds is first given back to the lot, as a
  refund of usage, and the usage charged to the wallet again).

A plan's included credit carried into the next period (rollover) is deferred revenue moved
from one lot to another, not a sale: it counts neither as sold nor as voided, and if the
expiry sweep took the old lot before the renewal carried part of it over, that part's
breakage is taken back.

closing deferred = opening deferred + sold - recognized - breakage - voided + refunded
- purchases_refunded. Amounts are exact Decimals in the currency's major unit.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select

from creditgate.domain.errors import InvalidInput
from creditgate.domain.ledger import Account, TransactionKind
from creditgate.services.catalog.catalog import check_external_id
from creditgate.services.context import Tx
from creditgate.services.results import DecimalString, Result
from creditgate.storage import collection
from creditgate.storage.tables import ledger_entries, ledger_transactions, lots

ZERO = Decimal(0)


class RevenueLine(Result):
    currency: str
    opening_deferred: DecimalString
    sold: DecimalString
    recognized: DecimalString
    breakage: DecimalString
    voided: DecimalString
    refunded: DecimalString
    purchases_refunded: DecimalString
    closing_deferred: DecimalString


class CollectionLine(Result):
    """The money creditgate collected, per currency: plan fees of the periods that start in
    the window, and bills of overage made in it (each counted once, by where it stands)."""

    currency: str
    fees_invoiced: DecimalString
    fees_received: DecimalString
    fees_unpaid: DecimalString  # open or failed
    included_granted: DecimalString  # the value of the included credit those periods granted
    overage_billed: DecimalString
    overage_collected: DecimalString
    overage_written_off: DecimalString
    overage_unpaid: DecimalString  # pending or failed


class FeePeriod(Result):
    """One period's fee against the credit it granted."""

    subscription_id: str
    period_index: int
    period_start: datetime
    fee: DecimalString
    currency: str
    fee_status: str
    included_granted: int  # credit granted for it, less what was withheld (minor units)
    withheld: int


class RevenueReport(Result):
    start: datetime
    end: datetime
    customer: str | None
    lines: list[RevenueLine]
    collection: list[CollectionLine] = []
    fee_periods: list[FeePeriod] = []


def revenue_report(
    tx: Tx, *, start: datetime, end: datetime, customer: str | None = None
) -> RevenueReport:
    """Per currency, for [start, end) and one tenant (or one of its customers)."""
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidInput(f"{name} must be a timezone-aware timestamp", field=name)
    if end <= start:
        raise InvalidInput("end must be after start", field="end")
    t, e = ledger_transactions, ledger_entries
    earlier = t.c.created_at < start
    # The wallet's entries on lots, and the entries that take credit of a lot back out of
    # expired (a rollover carrying what the sweep had already expired).
    query = (
        select(
            t.c.kind,
            e.c.account,
            e.c.lot_id,
            earlier.label("earlier"),
            func.sum(case((e.c.amount > 0, e.c.amount), else_=0)).label("credit"),
            func.sum(case((e.c.amount < 0, -e.c.amount), else_=0)).label("debit"),
        )
        .join(t, t.c.id == e.c.transaction_id)
        .where(
            t.c.tenant_id == tx.tenant_id,
            t.c.created_at < end,
            e.c.account.in_((Account.WALLET.value, Account.EXPIRED.value)),
            e.c.lot_id.is_not(None),
        )
        .group_by(t.c.kind, e.c.account, e.c.lot_id, earlier)
    )
    if customer is not None:
        query = query.where(t.c.wallet_id == tx.wallet_id(check_external_id(customer)))
    rows = tx.conn.execute(query).all()
    lot_ids = sorted({r.lot_id for r in rows})
    basis: dict[str, tuple[Decimal, str, int]] = {}
    for chunk in range(0, len(lot_ids), 500):
        for lot in tx.conn.execute(
            select(lots.c.id, lots.c.cost_basis, lots.c.currency, lots.c.asset).where(
                lots.c.id.in_(lot_ids[chunk : chunk + 500])
            )
        ):
            basis[lot.id] = (lot.cost_basis, lot.currency, tx.asset(lot.asset).scale)
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        price, currency, scale = basis[row.lot_id]
        if not price:
            continue
        credit = Decimal(int(row.credit or 0)).scaleb(-scale) * price
        debit = Decimal(int(row.debit or 0)).scaleb(-scale) * price
        money = sums[currency]
        if row.account != Account.WALLET:
            if not row.earlier:
                _unexpire(money, row.kind, debit)
        elif row.earlier:
            money["opening"] += credit - debit
        else:
            _classify(money, row.kind, credit, debit)
    lines = []
    for currency in sorted(sums):
        m = sums[currency]
        closing = (
            m["opening"] + m["sold"] - m["recognized"] - m["breakage"] - m["voided"]
            + m["refunded"] - m["purchases_refunded"]
        )  # fmt: skip
        lines.append(
            RevenueLine(
                currency=currency,
                opening_deferred=m["opening"],
                sold=m["sold"],
                recognized=m["recognized"],
                breakage=m["breakage"],
                voided=m["voided"],
                refunded=m["refunded"],
                purchases_refunded=m["purchases_refunded"],
                closing_deferred=closing,
            )
        )
    wallet_id = tx.wallet_id(check_external_id(customer)) if customer is not None else None
    collection, periods = _collection(tx, start, end, wallet_id)
    return RevenueReport(
        start=start,
        end=end,
        customer=customer,
        lines=lines,
        collection=collection,
        fee_periods=periods,
    )


def _collection(
    tx: Tx, start: datetime, end: datetime, wallet_id: str | None
) -> tuple[list[CollectionLine], list[FeePeriod]]:
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    periods: list[FeePeriod] = []
    for p in collection.fee_periods_between(tx.conn, tx.tenant_id, start, end, wallet_id):
        money = sums[p.currency]
        money["invoiced"] += p.fee
        money["received" if p.fee_status == "paid" else "unpaid"] += p.fee
        granted = (p.lot_amount or 0) - p.withheld
        money["granted"] += Decimal(granted).scaleb(-tx.asset(p.asset).scale) * (p.cost_basis or 0)
        periods.append(
            FeePeriod(
                subscription_id=p.subscription_id,
                period_index=p.period_index,
                period_start=p.period_start,
                fee=p.fee,
                currency=p.currency,
                fee_status=p.fee_status,
                included_granted=granted,
                withheld=p.withheld,
            )
        )
    outcome = {"paid": "collected", "written_off": "written_off"}
    for bill in collection.overage_bills_between(tx.conn, tx.tenant_id, start, end, wallet_id):
        money = sums[bill.currency]
        money["billed"] += bill.price
        money[outcome.get(bill.status, "overage_unpaid")] += bill.price
    lines = [
        CollectionLine(
            currency=currency,
            fees_invoiced=m["invoiced"],
            fees_received=m["received"],
            fees_unpaid=m["unpaid"],
            included_granted=m["granted"],
            overage_billed=m["billed"],
            overage_collected=m["collected"],
            overage_written_off=m["written_off"],
            overage_unpaid=m["overage_unpaid"],
        )
        for currency, m in sorted(sums.items())
    ]
    return lines, periods


def _classify(money: dict[str, Decimal], kind: str, credit: Decimal, debit: Decimal) -> None:
    if kind == TransactionKind.GRANT:
        money["sold"] += credit
        money["recognized"] += debit  # a new lot paying down usage recorded as debt
    elif kind == TransactionKind.CHARGE:
        money["recognized"] += debit - credit
    elif kind == TransactionKind.EXPIRE:
        money["breakage"] += debit
    elif kind == TransactionKind.VOID_LOT:
        money["voided"] += debit
    elif kind == TransactionKind.REFUND:
        money["refunded"] += credit
    elif kind == TransactionKind.ROLLOVER:
        # Carried from lot to lot: what the old lot gives the new one takes is no sale. What
        # the new lot takes beyond that came back out of expired (see `_unexpire`); what the
        # old lot gives beyond it paid down debt.
        money["recognized"] += debit - credit
    elif kind == TransactionKind.PURCHASE_REFUND:
        money["refunded"] += credit  # consumed credit refunded: its usage is given back
        money["purchases_refunded"] += debit
    elif kind == TransactionKind.REFUND_REVERSAL:
        money["purchases_refunded"] -= credit  # the provider refused: the credit is back
        money["recognized"] += debit  # and pays down debt first
    else:  # movements other modules post on lots: count them by direction
        money["sold"] += credit
        money["voided"] += debit


def _unexpire(money: dict[str, Decimal], kind: str, taken: Decimal) -> None:
    """Credit of a lot taken back out of expired: its breakage is undone."""
    money["breakage"] -= taken
    if kind == TransactionKind.ROLLOVER:
        money["recognized"] += taken  # offsets the new lot's credit in `_classify`
    else:  # a rollover recorded before rollovers had their own kind: a void
        money["voided"] += taken


def deferred_now(tx: Tx) -> dict[str, Decimal]:
    """What is deferred right now per currency, straight from the lots (for cross-checks)."""
    out: dict[str, Decimal] = defaultdict(lambda: ZERO)
    rows: Any = tx.conn.execute(
        select(lots.c.remaining, lots.c.cost_basis, lots.c.currency, lots.c.asset).where(
            lots.c.tenant_id == tx.tenant_id, lots.c.status == "active", lots.c.remaining > 0
        )
    )
    for r in rows:
        out[r.currency] += Decimal(r.remaining).scaleb(-tx.asset(r.asset).scale) * r.cost_basis
    return dict(out)
