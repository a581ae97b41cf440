"""The verifier: rebuilds every balance from the ledger and checks the invariants.

One function per invariant, numbered as `verify` reports them:

1. the ledger sums to zero per transaction and per asset;
2. each lot is within bounds, its remaining matches its history and the ledger;
3. each balance's posted equals the ledger and its lots less debt, held its open holds;
4. available is within the wallet policy's floor;
5. each hold is resolved once, and each settled hold has one charge;
6. money received = deferred + recognized + breakage + voided (per tenant and currency);
7. each paid purchase ties its money received and refunded out to the lot it bought;
8. the balance rows carry each enabled auto top-up's threshold, armed at or above it;
9. each spend limit's period holds its pending holds and has spent its settled ones'
   charges, and the two add up to no more than its cap;
10. each budget period holds what its pending holds reserve and has spent what its charges
    took less their refunds; under a hard cap, held + spent within it; the balance rows say
    which customers have a budget of their own;
11. a period whose fee creditgate collects has its credit only once paid (or granted before
    payment by its plan), and a period paid while it lasted has it;
12. each bill of overage is one pending, paid, failed or written-off purchase of the debt it
    billed; a paid one granted that debt's credit, a written-off one closed it at no value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from creditgate.domain.amounts import Asset, currency_digits, units_text
from creditgate.domain.billing import refunded_money, unit_value
from creditgate.domain.holds import HoldStatus
from creditgate.domain.lots import LotStatus
from creditgate.domain.policy import PolicyMode
from creditgate.storage import collection, reports


@dataclass
class Check:
    name: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.violations.append(message)


@dataclass(frozen=True)
class Units:
    """Amounts in violations as a person reads them, in each asset's units: "1.76 credits"."""

    scales: dict[tuple[str, str], int]  # by (tenant, asset)

    def __call__(self, tenant_id: str | None, asset: str, amount: int) -> str:
        scale = self.scales.get((tenant_id, asset)) if tenant_id else None
        if scale is None:  # an asset the row does not say the tenant of, or none at all
            return f"{amount} minor units of {asset}"
        return f"{units_text(amount, scale)} {asset}"


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
    """Check invariants 1-10 over every tenant (or one), reading only committed data."""
    # Every check reads the same committed state, however busy the ledger is.
    reports.one_snapshot(conn)
    # Read in the order the checks need them: each sum from the ledger before the rows it
    # is compared with.
    units = Units(reports.asset_scales(conn, tenant_id))
    zero_sum = _zero_sum(conn, tenant_id, units)
    lot_ledger = reports.wallet_ledger_per_lot(conn, tenant_id)
    lots = reports.all_lots(conn, tenant_id)
    posted_ledger = reports.wallet_ledger_per_balance(conn, tenant_id)
    open_holds = reports.open_holds_per_balance(conn, tenant_id)
    balances = reports.all_balances(conn, tenant_id)
    per_period = reports.held_and_spent_per_period(conn, tenant_id)
    periods = reports.spend_period_rows(conn, tenant_id)
    return VerifyReport(
        [
            zero_sum,
            _lots(lots, lot_ledger, units),
            _balances(balances, lots, posted_ledger, open_holds, units),
            _policy_floor(balances, units),
            _holds(conn, tenant_id),
            _money(lots, units),
            _payments(conn, tenant_id, {lot.id: lot for lot in lots}, units),
            _auto_top_ups(conn, tenant_id, units),
            _spend_limits(periods, per_period, units),
            _budgets(conn, tenant_id, balances, units),
            _plan_fees(conn, tenant_id),
            _overage_bills(conn, tenant_id),
        ]
    )


def _plan_fees(conn: Connection, tenant_id: str | None) -> Check:
    """11. A collected period's credit follows its payment."""
    check = Check("11 plan fees: credit granted only once paid, and for every paid period")
    for p in collection.collected_periods(conn, tenant_id):
        check.checked += 1
        name = f"period {p.period_index} of subscription {p.subscription_id}"
        early = not p.grant_before_payment and p.fee != 0
        if p.lot_id is not None and p.fee_status != "paid" and early:
            check.fail(f"{name} granted its credit while its fee is {p.fee_status}")
        if p.fee_status == "paid" and p.lot_id is None and p.paid_at < p.period_end:
            check.fail(f"{name} was paid while it lasted but granted no credit")
    return check


def _overage_bills(conn: Connection, tenant_id: str | None) -> Check:
    """12. Each bill of overage is one purchase of its debt, and its outcome is booked."""
    check = Check("12 overage bills: one purchase each, paid ones granted, written-off closed")
    for b in collection.all_overage_bills(conn, tenant_id):
        check.checked += 1
        name = f"overage bill {b.id} ({b.cycle})"
        if b.origin != "overage" or b.amount != b.debt or b.purchase_wallet != b.wallet_id:
            check.fail(f"{name} is not a purchase of the {b.debt} it billed")
        if b.status == "paid" and (b.lot_amount != b.amount or b.lot_kind != "purchased"):
            check.fail(f"{name} is paid but did not grant its credit")
        if b.status == "written_off" and b.lot_amount is not None and b.cost_basis != 0:
            check.fail(f"{name} was written off at a value")
    return check


def _zero_sum(conn: Connection, tenant_id: str | None, units: Units) -> Check:
    """1. Every transaction and every asset sums to zero."""
    check = Check("1 ledger sums to zero per transaction and per asset")
    for row in reports.ledger_sums_per_asset(conn, tenant_id):
        check.checked += row.n
        if row.total != 0:
            total = units(row.tenant_id, row.asset, int(row.total))
            check.fail(f"tenant {row.tenant_id} asset {row.asset} sums to {total}")
    for row in reports.unbalanced_transactions(conn, tenant_id):
        check.fail(f"transaction {row.transaction_id} is unbalanced by {row.off_by}")
    empty = reports.transactions_without_entries(conn, tenant_id)
    if empty:
        check.fail(f"{empty} ledger transactions have no entries")
    return check


def _lots(lots: Sequence[Any], lot_ledger: dict[str, int], units: Units) -> Check:
    """2. Lots: bounds, the remaining identity, and agreement with the ledger."""
    check = Check("2 lots: 0 <= remaining <= amount, remaining matches its history and ledger")
    for lot in lots:
        check.checked += 1

        def shown(amount: int, lot: Any = lot) -> str:
            return units(lot.tenant_id, lot.asset, amount)

        remaining = lot.remaining
        if not 0 <= remaining <= lot.amount:
            check.fail(f"lot {lot.id} remaining {shown(remaining)} outside 0..{shown(lot.amount)}")
        expected = lot.amount - lot.consumed - lot.expired - lot.voided + lot.refunded
        if remaining != expected:
            check.fail(f"lot {lot.id} remaining {shown(remaining)} != history {shown(expected)}")
        in_ledger = lot_ledger.get(lot.id, 0)
        should = 0 if lot.status == LotStatus.SCHEDULED else lot.remaining
        if in_ledger != should:
            check.fail(f"lot {lot.id} ledger says {shown(in_ledger)}, lot says {shown(should)}")
        if lot.status not in (LotStatus.ACTIVE, LotStatus.SCHEDULED) and lot.remaining != 0:
            check.fail(f"{lot.status} lot {lot.id} still has {shown(remaining)}")
    return check


def _balances(
    balances: Sequence[Any],
    lots: Sequence[Any],
    posted_ledger: dict[tuple[str, str], int],
    open_holds: dict[tuple[str, str], int],
    units: Units,
) -> Check:
    """3. Balances equal the ledger, their lots less debt, and the open holds."""
    check = Check("3 posted = ledger = lots - debt, held = open holds")
    lot_sums: dict[tuple[str, str], int] = defaultdict(int)
    for lot in lots:
        if lot.status == LotStatus.ACTIVE:
            lot_sums[(lot.wallet_id, lot.asset)] += lot.remaining
    seen = set()
    for bal in balances:
        key = (bal.wallet_id, bal.asset)
        seen.add(key)
        check.checked += 1

        def shown(amount: int, bal: Any = bal) -> str:
            return units(bal.tenant_id, bal.asset, amount)

        where = f"wallet {bal.wallet_id}"
        if bal.posted != posted_ledger.get(key, 0):
            ledger = shown(posted_ledger.get(key, 0))
            check.fail(f"{where} posted {shown(bal.posted)} != ledger {ledger}")
        if bal.held != open_holds.get(key, 0):
            check.fail(
                f"{where} held {shown(bal.held)} != open holds {shown(open_holds.get(key, 0))}"
            )
        if bal.debt < 0 or bal.posted != lot_sums.get(key, 0) - bal.debt:
            lots_sum, debt = shown(lot_sums.get(key, 0)), shown(bal.debt)
            check.fail(f"{where} posted {shown(bal.posted)} != lots {lots_sum} - debt {debt}")
    for key, total in posted_ledger.items():
        if key not in seen and total != 0:
            check.fail(
                f"wallet {key[0]} has ledger {units(None, key[1], total)} but no balance row"
            )
    return check


def _policy_floor(balances: Sequence[Any], units: Units) -> Check:
    """4. Available is within the wallet policy's floor."""
    check = Check("4 available within the policy's floor")
    for bal in balances:
        check.checked += 1
        available = bal.posted - bal.held
        if bal.policy == PolicyMode.BLOCK and available < 0:
            shown = units(bal.tenant_id, bal.asset, available)
            check.fail(f"wallet {bal.wallet_id} under block at {shown}")
        limited = bal.policy in (PolicyMode.OVERDRAFT, PolicyMode.SOFT_CAP)
        if limited and available < -bal.overdraft_limit:
            shown = units(bal.tenant_id, bal.asset, available)
            floor = units(bal.tenant_id, bal.asset, -bal.overdraft_limit)
            check.fail(f"wallet {bal.wallet_id} at {shown} past its overdraft floor {floor}")
    return check


def _holds(conn: Connection, tenant_id: str | None) -> Check:
    """5. Holds resolved exactly once: each settled hold has exactly one charge."""
    check = Check("5 each hold resolved once; each settled hold has one charge")
    per_hold = reports.charges_per_hold(conn, tenant_id)
    for hold in reports.hold_states(conn, tenant_id):
        check.checked += 1
        settled = hold.status == HoldStatus.SETTLED
        n = per_hold.get(hold.id, 0)
        if settled and (n != 1 or hold.charge_id is None):
            check.fail(f"settled hold {hold.id} has {n} charges")
        if not settled and n:
            check.fail(f"{hold.status} hold {hold.id} has {n} charges")
        if (hold.status == HoldStatus.PENDING) != (hold.resolved_at is None):
            check.fail(f"hold {hold.id} is {hold.status} with resolved_at {hold.resolved_at}")
    return check


def _money(lots: Sequence[Any], units: Units) -> Check:
    """6. Money received = deferred + recognized + breakage + (voided - refunded back)."""
    check = Check("6 money received = deferred + recognized + breakage + voided")
    revenue: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for lot in lots:
        money = revenue[(lot.tenant_id, lot.currency)]
        # The cost basis is money per whole unit of the asset: amounts in units make money.
        basis = lot.cost_basis.scaleb(-units.scales.get((lot.tenant_id, lot.asset), 0))
        money["received"] += lot.amount * basis
        money["deferred"] += lot.remaining * basis
        money["recognized"] += lot.consumed * basis
        money["breakage"] += lot.expired * basis
        money["voided"] += lot.voided * basis
        money["refunded_back"] += lot.refunded * basis
    for (tenant, currency), m in revenue.items():
        check.checked += 1
        accounted = (
            m["deferred"] + m["recognized"] + m["breakage"] + m["voided"] - m["refunded_back"]
        )
        if m["received"] != accounted:
            check.fail(
                f"tenant {tenant} {currency}: received {m['received']} != accounted {accounted}"
            )
    return check


def _auto_top_ups(conn: Connection, tenant_id: str | None, units: Units) -> Check:
    """8. The balance rows carry each enabled auto top-up's threshold (and no other), and an
    enabled setting is armed whenever available is at or above its threshold: a crossing
    below it is then never missed."""
    check = Check("8 auto top-up: thresholds on the balance rows; armed at or above them")
    settings = {
        (r.wallet_id, r.asset): r
        for r in reports.auto_top_up_settings(conn, tenant_id)
        if r.enabled
    }
    for bal in reports.balance_thresholds(conn, tenant_id):
        setting = settings.pop((bal.wallet_id, bal.asset), None)
        check.checked += 1

        def shown(amount: int | None, bal: Any = bal) -> str:
            return "none" if amount is None else units(bal.tenant_id, bal.asset, amount)

        where = f"wallet {bal.wallet_id} {bal.asset}"
        wanted = None if setting is None else setting.threshold
        if bal.top_up_threshold != wanted:
            check.fail(
                f"{where} carries threshold {shown(bal.top_up_threshold)}, its setting "
                f"{shown(wanted)}"
            )
        available = bal.posted - bal.held
        if setting is not None and available >= setting.threshold and not setting.armed:
            check.fail(
                f"{where} is disarmed at {shown(available)}, at or above {shown(setting.threshold)}"
            )
    for wallet_id, asset in settings:
        check.fail(f"wallet {wallet_id} {asset} has an auto top-up but no balance row")
    return check


def _spend_limits(
    periods: Sequence[Any], per_period: dict[tuple[str, Any], tuple[int, int]], units: Units
) -> Check:
    """9. A spend limit's period row says what its holds say: held = its pending holds,
    spent = its settled holds' charges; and held + spent <= cap."""
    check = Check("9 spend limits: held = open holds, spent = their charges, within the cap")
    left = dict(per_period)
    for period in periods:
        check.checked += 1

        def shown(amount: int, period: Any = period) -> str:
            return units(period.tenant_id, period.asset, amount)

        where = f"spend limit {period.limit_id} from {period.period_start.isoformat()}"
        held, spent = left.pop((period.limit_id, period.period_start), (0, 0))
        if (period.held, period.spent) != (held, spent):
            check.fail(
                f"{where} holds {shown(period.held)} and spent {shown(period.spent)}; its "
                f"holds say {shown(held)} and {shown(spent)}"
            )
        if period.held + period.spent > period.cap:
            check.fail(
                f"{where} holds {shown(period.held)} + spent {shown(period.spent)} > cap "
                f"{shown(period.cap)}"
            )
    for (limit_id, start), (held, spent) in left.items():
        if held or spent:
            check.fail(f"spend limit {limit_id} from {start} has holds but no period row")
    return check


def _budgets(
    conn: Connection, tenant_id: str | None, balances: Sequence[Any], units: Units
) -> Check:
    """10. Budgets: each period's held and spent are what its holds and charges say."""
    check = Check("10 budgets: held = open holds, spent = charges - refunds, within a hard cap")
    pending, spent = reports.budget_counts(conn, tenant_id)
    held_by: dict[tuple[str, datetime], int] = defaultdict(int)
    spent_by: dict[tuple[str, datetime], int] = defaultdict(int)
    for hold in pending:
        for budget_id, start in hold.budgets or ():
            held_by[(budget_id, datetime.fromisoformat(start))] += hold.amount
    for charge in spent:
        for budget_id, start in charge.budgets or ():
            key = (budget_id, datetime.fromisoformat(start))
            spent_by[key] += charge.amount - charge.refunded
    for row in reports.all_budget_usage(conn, tenant_id):
        check.checked += 1

        def shown(amount: int, row: Any = row) -> str:
            return units(row.tenant_id, row.asset, amount)

        key = (row.budget_id, row.period_start)
        where = f"budget {row.budget_id} period {row.period_start.isoformat()}"
        held, took = held_by.pop(key, 0), spent_by.pop(key, 0)
        if row.held != held:
            check.fail(f"{where} holds {shown(row.held)}, its open holds {shown(held)}")
        if row.spent != took:
            check.fail(f"{where} spent {shown(row.spent)}, its charges less refunds {shown(took)}")
        if row.cap is not None and row.held + row.spent > row.cap:
            check.fail(
                f"{where} holds {shown(row.held)} + spent {shown(row.spent)} past its cap "
                f"{shown(row.cap)}"
            )
    for budget_id, start in [*held_by, *spent_by]:
        if held_by.get((budget_id, start)) or spent_by.get((budget_id, start)):
            check.fail(f"budget {budget_id} period {start.isoformat()} has no usage row")
    budgeted = reports.customer_budget_assets(conn, tenant_id)
    for bal in balances:
        if bool(bal.budgeted) != ((bal.wallet_id, bal.asset) in budgeted):
            check.fail(f"wallet {bal.wallet_id} {bal.asset} says budgeted={bal.budgeted}")
    return check


def _payments(
    conn: Connection, tenant_id: str | None, lot_rows: dict[str, Any], units: Units
) -> Check:
    """7. Money against the money itself: each paid purchase ties out to the lot it bought.

    Money received (the price) less money refunded equals the value of the lot at its cost
    basis (deferred + recognized + breakage + voided, less credit given back to it) less
    the value of the credit refunded, to within the rounding of refunds (half a minor unit
    of the currency) and of the cost basis (18 decimal places). Underneath: the lot is the
    purchase's (amount, currency, cost basis = price per unit), and the purchase's refunded
    totals agree with its refunds, with the ledger, and with the refund rule.
    """
    check = Check("7 paid purchases: money received - refunded = lot value - refunded value")
    refunds: dict[str, tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal(0)))
    for r in reports.refunds_not_failed(conn, tenant_id):
        credits, money = refunds[r.purchase_id]
        refunds[r.purchase_id] = (credits + r.amount, money + r.money)
    in_ledger = reports.refunded_ledger_per_lot(conn, tenant_id)
    for p in reports.paid_purchases(conn, tenant_id):
        check.checked += 1
        lot = lot_rows.get(p.lot_id)
        if lot is None:
            check.fail(f"paid purchase {p.id} has no lot (lot_id {p.lot_id})")
            continue
        if (lot.amount, lot.currency, lot.asset) != (p.amount, p.currency, p.asset):
            bought, held = (
                units(p.tenant_id, p.asset, p.amount),
                units(lot.tenant_id, lot.asset, lot.amount),
            )
            check.fail(
                f"purchase {p.id} bought {bought} in {p.currency}, its lot {lot.id} holds "
                f"{held} in {lot.currency}"
            )
            continue
        asset = Asset(p.asset, units.scales[(p.tenant_id, p.asset)])
        refunded = in_ledger.get(lot.id, 0)
        for problem in _purchase_problems(p, lot, asset, refunds[p.id], refunded):
            check.fail(problem)
    return check


def _purchase_problems(
    p: Any, lot: Any, asset: Asset, refunds: tuple[int, Decimal], in_ledger: int
) -> list[str]:
    """What does not tie out between a paid purchase, the lot it bought and its refunds."""
    problems = []
    if lot.cost_basis != unit_value(p.price, p.amount, asset):
        problems.append(
            f"purchase {p.id}: lot {lot.id} cost basis {lot.cost_basis} is not the price "
            f"per unit paid, {unit_value(p.price, p.amount, asset)}"
        )
    credits, money = refunds
    text = asset.amount_text
    if not p.refunded == credits == in_ledger:
        problems.append(
            f"purchase {p.id}: {text(p.refunded)} refunded, its refunds say {text(credits)}, "
            f"the ledger {text(in_ledger)}"
        )
    digits = currency_digits(p.currency)
    rule = refunded_money(p.price, p.amount, min(max(p.refunded, 0), p.amount), digits)
    if not p.refunded_money == money == rule:
        problems.append(
            f"purchase {p.id}: {p.refunded_money} {p.currency} refunded, its refunds say "
            f"{money}, {text(max(p.refunded, 0))} of {text(p.amount)} make {rule}"
        )
    basis = lot.cost_basis
    value = (
        asset.to_units(lot.remaining + lot.consumed + lot.expired + lot.voided - lot.refunded)
        * basis
    )
    refunded_value = asset.to_units(in_ledger) * basis
    off = (p.price - p.refunded_money) - (value - refunded_value)
    tolerance = Decimal(5).scaleb(-digits - 1) + asset.to_units(p.amount) * Decimal("5e-19")
    if abs(off) > tolerance:
        problems.append(
            f"purchase {p.id}: received {p.price} - refunded {p.refunded_money} "
            f"{p.currency} != lot {lot.id} value {value} - refunded {refunded_value} "
            f"(off by {off})"
        )
    return problems
