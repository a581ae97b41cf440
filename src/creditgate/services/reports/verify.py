"""The verifier: rebuilds every balance from the ledger and checks the invariants."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Select, Table, func, select

from creditgate.domain.amounts import Asset
from creditgate.domain.billing import refunded_money, unit_value
from creditgate.domain.holds import HoldStatus
from creditgate.domain.ledger import Account
from creditgate.domain.lots import LotStatus
from creditgate.domain.policy import PolicyMode
from creditgate.services.billing.purchases import currency_digits
from creditgate.storage.tables import (
    assets,
    auto_top_ups,
    charges,
    holds,
    ledger_entries,
    ledger_transactions,
    lots,
    purchase_refunds,
    purchases,
    wallet_balances,
)


@dataclass
class Check:
    name: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.violations.append(message)


@dataclass
class VerifyReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return not any(c.violations for c in self.checks)

    @property
    def violations(self) -> list[str]:
        return [f"{c.name}: {v}" for c in self.checks for v in c.violations]


def verify(conn: Connection, tenant_id: str | None = None) -> VerifyReport:
    """Check invariants 1-7 over every tenant (or one), reading only committed data; 7 both
    per lot and against the payments received for purchases."""

    def scoped(query: Select[Any], table: Table) -> Select[Any]:
        return query if tenant_id is None else query.where(table.c.tenant_id == tenant_id)

    # 1. Every transaction and every asset sums to zero.
    zero_sum = Check("1 ledger sums to zero per transaction and per asset")
    for row in conn.execute(
        scoped(
            select(
                ledger_entries.c.tenant_id,
                ledger_entries.c.asset,
                func.sum(ledger_entries.c.amount).label("total"),
                func.count().label("n"),
            ).group_by(ledger_entries.c.tenant_id, ledger_entries.c.asset),
            ledger_entries,
        )
    ):
        zero_sum.checked += row.n
        if row.total != 0:
            zero_sum.fail(f"tenant {row.tenant_id} asset {row.asset} sums to {row.total}")
    for row in conn.execute(
        scoped(
            select(
                ledger_entries.c.transaction_id, func.sum(ledger_entries.c.amount).label("off_by")
            )
            .group_by(ledger_entries.c.transaction_id)
            .having(func.sum(ledger_entries.c.amount) != 0),
            ledger_entries,
        )
    ):
        zero_sum.fail(f"transaction {row.transaction_id} is unbalanced by {row.off_by}")
    empty = conn.execute(
        scoped(
            select(func.count())
            .select_from(ledger_transactions)
            .where(
                ~select(ledger_entries.c.seq)
                .where(ledger_entries.c.transaction_id == ledger_transactions.c.id)
                .exists()
            ),
            ledger_transactions,
        )
    ).scalar_one()
    if empty:
        zero_sum.fail(f"{empty} ledger transactions have no entries")

    # 2. Lots: bounds, the remaining identity, and agreement with the ledger.
    lot_check = Check("2 lots: 0 <= remaining <= amount, remaining matches its history and ledger")
    lot_ledger: dict[str, int] = dict(
        conn.execute(
            scoped(
                select(ledger_entries.c.lot_id, func.sum(ledger_entries.c.amount))
                .where(
                    ledger_entries.c.account == Account.WALLET.value,
                    ledger_entries.c.lot_id.is_not(None),
                )
                .group_by(ledger_entries.c.lot_id),
                ledger_entries,
            )
        ).all()
    )
    lot_sums: dict[tuple[str, str], int] = defaultdict(int)
    revenue: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    lot_rows: dict[str, Any] = {}
    for lot in conn.execute(scoped(select(lots), lots)):
        lot_check.checked += 1
        if not 0 <= lot.remaining <= lot.amount:
            lot_check.fail(f"lot {lot.id} remaining {lot.remaining} outside 0..{lot.amount}")
        expected = lot.amount - lot.consumed - lot.expired - lot.voided + lot.refunded
        if lot.remaining != expected:
            lot_check.fail(f"lot {lot.id} remaining {lot.remaining} != history {expected}")
        in_ledger = lot_ledger.get(lot.id, 0)
        should = 0 if lot.status == LotStatus.SCHEDULED else lot.remaining
        if in_ledger != should:
            lot_check.fail(f"lot {lot.id} ledger says {in_ledger}, lot says {should}")
        if lot.status == LotStatus.ACTIVE:
            lot_sums[(lot.wallet_id, lot.asset)] += lot.remaining
        elif lot.status != LotStatus.SCHEDULED and lot.remaining != 0:
            lot_check.fail(f"{lot.status} lot {lot.id} still has {lot.remaining}")
        lot_rows[lot.id] = lot
        money = revenue[(lot.tenant_id, lot.currency)]
        basis = lot.cost_basis
        money["received"] += lot.amount * basis
        money["deferred"] += lot.remaining * basis
        money["recognized"] += lot.consumed * basis
        money["breakage"] += lot.expired * basis
        money["voided"] += lot.voided * basis
        money["refunded_back"] += lot.refunded * basis

    # 3 and 4. Balances equal the ledger and the open holds, and respect the policy.
    balance_check = Check("3 posted = ledger = lots - debt, held = open holds")
    policy_check = Check("4 available within the policy's floor")
    posted_ledger = {
        (r.wallet_id, r.asset): r.total
        for r in conn.execute(
            scoped(
                select(
                    ledger_entries.c.wallet_id,
                    ledger_entries.c.asset,
                    func.sum(ledger_entries.c.amount).label("total"),
                )
                .where(ledger_entries.c.account == Account.WALLET.value)
                .group_by(ledger_entries.c.wallet_id, ledger_entries.c.asset),
                ledger_entries,
            )
        )
    }
    open_holds = {
        (r.wallet_id, r.asset): r.total
        for r in conn.execute(
            scoped(
                select(holds.c.wallet_id, holds.c.asset, func.sum(holds.c.amount).label("total"))
                .where(holds.c.status == HoldStatus.PENDING.value)
                .group_by(holds.c.wallet_id, holds.c.asset),
                holds,
            )
        )
    }
    seen = set()
    for bal in conn.execute(scoped(select(wallet_balances), wallet_balances)):
        key = (bal.wallet_id, bal.asset)
        seen.add(key)
        balance_check.checked += 1
        policy_check.checked += 1
        if bal.posted != posted_ledger.get(key, 0):
            balance_check.fail(
                f"wallet {bal.wallet_id} {bal.asset} posted {bal.posted} "
                f"!= ledger {posted_ledger.get(key, 0)}"
            )
        if bal.held != open_holds.get(key, 0):
            balance_check.fail(
                f"wallet {bal.wallet_id} {bal.asset} held {bal.held} "
                f"!= open holds {open_holds.get(key, 0)}"
            )
        if bal.debt < 0 or bal.posted != lot_sums.get(key, 0) - bal.debt:
            balance_check.fail(
                f"wallet {bal.wallet_id} {bal.asset} posted {bal.posted} != lots "
                f"{lot_sums.get(key, 0)} - debt {bal.debt}"
            )
        available = bal.posted - bal.held
        if bal.policy == PolicyMode.BLOCK and available < 0:
            policy_check.fail(f"wallet {bal.wallet_id} {bal.asset} under block at {available}")
        if bal.policy == PolicyMode.OVERDRAFT and available < -bal.overdraft_limit:
            policy_check.fail(
                f"wallet {bal.wallet_id} {bal.asset} at {available} past -{bal.overdraft_limit}"
            )
    for key, total in posted_ledger.items():
        if key not in seen and total != 0:
            balance_check.fail(f"wallet {key[0]} {key[1]} has ledger {total} but no balance row")

    # 6. Holds resolved exactly once: each settled hold has exactly one charge.
    hold_check = Check("6 each hold resolved once; each settled hold has one charge")
    per_hold: dict[str, int] = dict(
        conn.execute(
            scoped(
                select(charges.c.hold_id, func.count())
                .where(charges.c.hold_id.is_not(None))
                .group_by(charges.c.hold_id),
                charges,
            )
        ).all()
    )
    for hold in conn.execute(
        scoped(select(holds.c.id, holds.c.status, holds.c.charge_id, holds.c.resolved_at), holds)
    ):
        hold_check.checked += 1
        settled = hold.status == HoldStatus.SETTLED
        n = per_hold.get(hold.id, 0)
        if settled and (n != 1 or hold.charge_id is None):
            hold_check.fail(f"settled hold {hold.id} has {n} charges")
        if not settled and n:
            hold_check.fail(f"{hold.status} hold {hold.id} has {n} charges")
        if (hold.status == HoldStatus.PENDING) != (hold.resolved_at is None):
            hold_check.fail(f"hold {hold.id} is {hold.status} with resolved_at {hold.resolved_at}")

    # 7. Money received = deferred + recognized + breakage + (voided - refunded back).
    money_check = Check("7 money received = deferred + recognized + breakage + voided")
    for (tenant, currency), m in revenue.items():
        money_check.checked += 1
        accounted = (
            m["deferred"] + m["recognized"] + m["breakage"] + m["voided"] - m["refunded_back"]
        )
        if m["received"] != accounted:
            money_check.fail(
                f"tenant {tenant} {currency}: received {m['received']} != accounted {accounted}"
            )

    payments_check = _check_payments(conn, scoped, lot_rows)
    top_up_check = _check_auto_top_ups(conn, scoped)

    return VerifyReport(
        [
            zero_sum,
            lot_check,
            balance_check,
            policy_check,
            hold_check,
            money_check,
            payments_check,
            top_up_check,
        ]
    )


def _check_auto_top_ups(
    conn: Connection, scoped: Callable[[Select[Any], Table], Select[Any]]
) -> Check:
    """The balance rows carry each enabled auto top-up's threshold (and no other), and an
    enabled setting is armed whenever available is at or above its threshold: a crossing
    below it is then never missed."""
    check = Check("auto top-up: thresholds on the balance rows; armed at or above them")
    settings = {
        (r.wallet_id, r.asset): r
        for r in conn.execute(scoped(select(auto_top_ups), auto_top_ups))
        if r.enabled
    }
    for bal in conn.execute(
        scoped(
            select(
                wallet_balances.c.wallet_id,
                wallet_balances.c.asset,
                wallet_balances.c.posted,
                wallet_balances.c.held,
                wallet_balances.c.top_up_threshold,
            ),
            wallet_balances,
        )
    ):
        setting = settings.pop((bal.wallet_id, bal.asset), None)
        check.checked += 1
        where = f"wallet {bal.wallet_id} {bal.asset}"
        wanted = None if setting is None else setting.threshold
        if bal.top_up_threshold != wanted:
            check.fail(f"{where} carries threshold {bal.top_up_threshold}, its setting {wanted}")
        available = bal.posted - bal.held
        if setting is not None and available >= setting.threshold and not setting.armed:
            check.fail(f"{where} is disarmed at {available}, at or above {setting.threshold}")
    for wallet_id, asset in settings:
        check.fail(f"wallet {wallet_id} {asset} has an auto top-up but no balance row")
    return check


def _check_payments(
    conn: Connection, scoped: Callable[[Select[Any], Table], Select[Any]], lot_rows: dict[str, Any]
) -> Check:
    """Invariant 7 against the money itself: each paid purchase ties out to the lot it bought.

    Money received (the price) less money refunded equals the value of the lot at its cost
    basis (deferred + recognized + breakage + voided, less credit given back to it) less
    the value of the credit refunded, to within the rounding of refunds (half a minor unit
    of the currency) and of the cost basis (18 decimal places). Underneath: the lot is the
    purchase's (amount, currency, cost basis = price per unit), and the purchase's refunded
    totals agree with its refunds, with the ledger, and with the refund rule.
    """
    check = Check("7 paid purchases: money received - refunded = lot value - refunded value")
    scales = {
        (r.tenant_id, r.code): r.scale
        for r in conn.execute(
            scoped(select(assets.c.tenant_id, assets.c.code, assets.c.scale), assets)
        )
    }
    refunds: dict[str, tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal(0)))
    for r in conn.execute(
        scoped(
            select(
                purchase_refunds.c.purchase_id, purchase_refunds.c.amount, purchase_refunds.c.money
            ).where(purchase_refunds.c.status != "failed"),
            purchase_refunds,
        )
    ):
        credits, money = refunds[r.purchase_id]
        refunds[r.purchase_id] = (credits + r.amount, money + r.money)
    in_ledger: dict[str, int] = {
        lot_id: int(total)
        for lot_id, total in conn.execute(
            scoped(
                select(ledger_entries.c.lot_id, func.sum(ledger_entries.c.amount))
                .where(
                    ledger_entries.c.account == Account.REFUNDED.value,
                    ledger_entries.c.lot_id.is_not(None),
                )
                .group_by(ledger_entries.c.lot_id),
                ledger_entries,
            )
        )
    }
    for p in conn.execute(scoped(select(purchases).where(purchases.c.status == "paid"), purchases)):
        check.checked += 1
        lot = lot_rows.get(p.lot_id)
        if lot is None:
            check.fail(f"paid purchase {p.id} has no lot (lot_id {p.lot_id})")
            continue
        if (lot.amount, lot.currency, lot.asset) != (p.amount, p.currency, p.asset):
            check.fail(
                f"purchase {p.id} bought {p.amount} {p.asset} in {p.currency}, its lot {lot.id} "
                f"holds {lot.amount} {lot.asset} in {lot.currency}"
            )
            continue
        asset = Asset(p.asset, scales[(p.tenant_id, p.asset)])
        if lot.cost_basis != unit_value(p.price, p.amount, asset):
            check.fail(
                f"purchase {p.id}: lot {lot.id} cost basis {lot.cost_basis} is not the price "
                f"per unit paid, {unit_value(p.price, p.amount, asset)}"
            )
        credits, money = refunds[p.id]
        if not p.refunded == credits == in_ledger.get(lot.id, 0):
            check.fail(
                f"purchase {p.id}: {p.refunded} credits refunded, its refunds say {credits}, "
                f"the ledger {in_ledger.get(lot.id, 0)}"
            )
        digits = currency_digits(p.currency)
        rule = refunded_money(p.price, p.amount, min(max(p.refunded, 0), p.amount), digits)
        if not p.refunded_money == money == rule:
            check.fail(
                f"purchase {p.id}: {p.refunded_money} {p.currency} refunded, its refunds say "
                f"{money}, {p.refunded} of {p.amount} credits make {rule}"
            )
        basis = lot.cost_basis
        value = (
            asset.to_units(lot.remaining + lot.consumed + lot.expired + lot.voided - lot.refunded)
            * basis
        )
        refunded_value = asset.to_units(in_ledger.get(lot.id, 0)) * basis
        off = (p.price - p.refunded_money) - (value - refunded_value)
        tolerance = Decimal(5).scaleb(-digits - 1) + asset.to_units(p.amount) * Decimal("5e-19")
        if abs(off) > tolerance:
            check.fail(
                f"purchase {p.id}: received {p.price} - refunded {p.refunded_money} "
                f"{p.currency} != lot {lot.id} value {value} - refunded {refunded_value} "
                f"(off by {off})"
            )
    return check
