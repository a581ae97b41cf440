"""Debit a wallet for a charge: plan the draws from an unlocked read, write them guarded.

The plan is made from an unlocked read; the writes are conditional (each lot still has what
is drawn from it, the balance still has room), so concurrent debits of one wallet hold its
rows only from the first of those writes to the commit. A failed condition starts the
transaction over. Debt is only planned with the balance row locked, so a lot granted
meanwhile is never passed over for it. A charge counted in budgets adds to them after the
balance row's move (with the commit), or with the balance row locked first (carefully).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from creditgate.domain.balances import DebitAsk, DebitPlan, WalletBalance, plan_debit
from creditgate.domain.budgets import BudgetDecline
from creditgate.domain.ledger import TransactionKind, charge_entries
from creditgate.domain.webhooks import EventType
from creditgate.services.context import Tx
from creditgate.services.ledger import budgets
from creditgate.services.ledger.budgets import Counted, Whose
from creditgate.services.ledger.priced import Pricing
from creditgate.services.results import Charge, Draw
from creditgate.services.wallet import (
    after_move,
    can_move_at_commit,
    emit,
    lock_balance,
    move_at_commit,
    move_balance,
    open_lots,
    post,
    read_balance_and_lots,
)
from creditgate.storage import balance_at_commit, holds
from creditgate.storage.balances import Move, SentReads
from creditgate.storage.ids import new_id
from creditgate.storage.prepared import pipeline
from creditgate.storage.tables import charges
from creditgate.storage.unit_of_work import PendingView


@dataclass(frozen=True, slots=True)
class ChargeFor:
    """What a charge is for: whose (the customer, and its member if any), which hold it
    settles (if any), the call, its pricing; and the budget periods it is spent in (the
    `budgets` column of its hold or charge)."""

    customer: str
    charge_id: str
    hold_id: str | None
    action: str | None
    metadata: dict[str, Any]
    pricing: Pricing
    member: str | None = None
    budgets: Any = None


@dataclass(frozen=True, slots=True)
class Debit:
    """A debit of one wallet in one asset (`ask`) for a charge (`charge`), spent in the
    periods of `budgets`: () for none (a settle, whose hold counted), None when not known
    yet (a charge naming no member counts in the customer's own budget, if it has one)."""

    wallet_id: str
    asset: str
    ask: DebitAsk
    charge: ChargeFor
    budgets: Sequence[Counted] | None = ()
    # What sets `ask.most`: `budget` (the hold's hard budgets) or `spend_limit` (its limit).
    limited_by: str = "budget"


def debit(tx: Tx, request: Debit, prefetched: SentReads | PendingView | None = None) -> Charge:
    """Debit up to the requested amount, releasing the reserved part of the wallet's held
    credit (`domain.balances.plan_debit`); with `decline`, a declined charge when the
    wallet cannot pay. What the lots cannot cover becomes debt; what the policy does not
    allow, a shortfall, raised as `charge.shortfall`. `prefetched`: the balance and lots,
    already sent (or known from an earlier debit of this transaction)."""
    if prefetched is not None:
        before, lots = prefetched.result()
    else:
        before, lots = read_balance_and_lots(tx, request.wallet_id, request.asset)
    counts = request.budgets
    if counts is None:
        counts = []
        if before.budgeted:
            found = budgets.customer_budgets(tx, request.wallet_id, request.asset)
            counts = budgets.counted(found, tx.now)
    if counts:
        charge = replace(request.charge, budgets=budgets.recorded(counts))
        request = replace(request, charge=charge, budgets=counts)
    plan = plan_debit(request.ask, before, lots, tx.now)
    locked = False
    if plan is not None and plan.debt:
        # Debt is planned with the balance row locked, from every open lot.
        before = lock_balance(tx, request.wallet_id, request.asset, create=False)
        locked = True
        lots = open_lots(tx, request.wallet_id, request.asset)
        plan = plan_debit(request.ask, before, lots, tx.now)
    if plan is None:
        return declined(tx, before, request.ask.requested, request.charge)
    if counts and (capped := budgets.over_cap(counts, plan.debit)) is not None:
        return _over_budget(tx, request, before, capped)
    row = _charge_row(tx, request, plan)
    if plan.shortfall:
        _shortfall(tx, request, plan, before)
    at_commit = not plan.debt and can_move_at_commit(tx)
    if at_commit and (not counts or budgets.can_add_at_commit(counts, plan.debit)):
        available = _write_at_commit(tx, request, plan, row, PendingView(before, lots))
        if counts:
            budgets.add_at_commit(tx, request.wallet_id, counts, spent=plan.debit)
    else:
        if counts:
            # The balance row first, then the budgets: a budget that refuses leaves nothing
            # written to undo.
            if not locked:
                before = lock_balance(tx, request.wallet_id, request.asset, create=False)
            whose = Whose(request.charge.customer, request.charge.member)
            refusing = budgets.add(tx, request.wallet_id, whose, counts, spent=plan.debit)
            if refusing is not None:
                return _over_budget(tx, request, before, refusing)
        available = _write_now(tx, request, plan, row)
    return _charge(tx, request, plan, row["revenue"], available)


def _over_budget(tx: Tx, request: Debit, before: WalletBalance, refusing: Counted) -> Charge:
    requested = request.ask.requested
    detail = budgets.refusal(tx, request.wallet_id, refusing, requested)
    reason = BudgetDecline.BUDGET_EXCEEDED.value
    return declined(tx, before, requested, request.charge, reason, detail)


def _charge_row(tx: Tx, request: Debit, plan: DebitPlan) -> dict[str, Any]:
    charge = request.charge
    return {
        "tenant_id": tx.tenant_id,
        "wallet_id": request.wallet_id,
        "id": charge.charge_id,
        "customer": charge.customer,
        "hold_id": charge.hold_id,
        "asset": request.asset,
        "requested": request.ask.requested,
        "amount": plan.debit,
        "debt": plan.debt,
        "shortfall": plan.shortfall,
        "action": charge.action,
        "metadata": charge.metadata,
        "created_at": tx.now,
        **charge.pricing.fields(),
        # Refused (AmountOverflow) before anything is written when past what a charge stores.
        "revenue": plan.revenue(tx.asset(request.asset).scale),
    } | _whose_columns(charge)


def _whose_columns(charge: ChargeFor) -> dict[str, Any]:
    """The member and budget columns of a charge's row, when it has them."""
    columns: dict[str, Any] = {}
    if charge.member is not None:
        columns["member"] = charge.member
    if charge.budgets:
        columns["budgets"] = charge.budgets
    return columns


def _shortfall(tx: Tx, request: Debit, plan: DebitPlan, before: WalletBalance) -> None:
    """Usage the wallet could not pay for is never silent: the call already happened (a
    settle does not decline), so the integrator hears of what went unbilled."""
    charge = request.charge
    payload = {
        "charge": charge.charge_id,
        "authorization": charge.hold_id,
        "customer": charge.customer,
        "asset": request.asset,
        "action": charge.action,
        "requested": request.ask.requested,
        "amount": plan.debit,
        "shortfall": plan.shortfall,
        "policy": before.policy.mode.value,
        # What stopped it: the wallet's policy, or what the hold counts against (a hard
        # budget, a spend limit: the one with less left when both apply).
        "limited_by": request.limited_by if plan.debit == request.ask.most else "policy",
    }
    if charge.member is not None:
        payload["member"] = charge.member
    emit(tx, EventType.CHARGE_SHORTFALL, request.wallet_id, payload, at_commit=True)


def _move(request: Debit, plan: DebitPlan) -> Move:
    ask = request.ask
    return Move(
        posted=-plan.debit,
        held=-ask.reserved,
        debt=plan.debt,
        need=max(plan.debit - ask.reserved, ask.least),
        draws=[(d.lot_id, d.amount) for d in plan.draws],
    )


def _posting(tx: Tx, request: Debit, plan: DebitPlan, **how: Any) -> None:
    post(
        tx,
        wallet_id=request.wallet_id,
        asset=request.asset,
        kind=TransactionKind.CHARGE,
        entries=charge_entries(plan.draws, plan.debt),
        reference_id=request.charge.charge_id,
        member=request.charge.member,
        **how,
    )


def _write_at_commit(
    tx: Tx, request: Debit, plan: DebitPlan, row: dict[str, Any], planned_from: PendingView
) -> int:
    """Every write goes with the commit, guarded: the wallet's rows are locked for that one
    round trip only. Returns the placeholder `available`, known once it has run."""
    if plan.debit:
        _posting(tx, request, plan, at_commit=True, with_row=(charges, row))
    else:
        holds.insert_charge(tx.uow, row, at_commit=True)
    moved = move_at_commit(
        tx, request.wallet_id, request.asset, _move(request, plan), planned_from=planned_from
    )
    return balance_at_commit.await_available(tx.uow, request.wallet_id, request.asset, moved)


def _write_now(tx: Tx, request: Debit, plan: DebitPlan, row: dict[str, Any]) -> int:
    """The writes go out together (one round trip on PostgreSQL): the inserts first, then
    the conditional moves of the lots and the balance row, which lock those rows. Returns
    `available` after them."""
    move = _move(request, plan)
    with pipeline(tx.conn):
        holds.insert_charge(tx.uow, row)
        if plan.debit:
            _posting(tx, request, plan)
        moved = move_balance(
            tx,
            request.wallet_id,
            request.asset,
            posted=move.posted,
            held=move.held,
            debt=move.debt,
            need=move.need,
            draws=move.draws,
        )
    return after_move(tx, moved, move.change).available


def _charge(tx: Tx, request: Debit, plan: DebitPlan, revenue: Any, available: int) -> Charge:
    charge = request.charge
    return Charge(
        id=charge.charge_id,
        status="posted",
        decline_reason=None,
        customer=charge.customer,
        asset=request.asset,
        hold_id=charge.hold_id,
        requested=request.ask.requested,
        amount=plan.debit,
        debt=plan.debt,
        shortfall=plan.shortfall,
        draws=[Draw(lot_id=d.lot_id, amount=d.amount, cost_basis=d.cost_basis) for d in plan.draws],
        action=charge.action,
        metadata=charge.metadata,
        created_at=tx.now,
        available=available,
        revenue=revenue,
        member=charge.member,
        **charge.pricing.fields(),
    )


def declined(
    tx: Tx,
    before: WalletBalance,
    requested: int,
    charge: ChargeFor,
    reason: str | None = None,
    detail: str | None = None,
) -> Charge:
    """A declined charge: nothing taken, `authorization.declined` raised with the reason
    (the policy's, unless given) and its `detail` (also the answer's warning)."""
    reason = reason or before.policy.decline_reason().value
    payload: dict[str, Any] = {
        "customer": charge.customer,
        "asset": before.asset,
        "requested": requested,
        "available": before.available,
        "reason": reason,
        "action": charge.action,
    }
    if charge.member is not None:
        payload["member"] = charge.member
    if detail:
        payload["detail"] = detail
    emit(tx, EventType.AUTHORIZATION_DECLINED, before.wallet_id, payload)
    return Charge(
        id=new_id("chg"),
        status="declined",
        decline_reason=reason,
        customer=charge.customer,
        asset=before.asset,
        hold_id=None,
        requested=requested,
        amount=0,
        debt=0,
        shortfall=0,
        draws=[],
        action=charge.action,
        metadata=charge.metadata,
        created_at=tx.now,
        available=before.available,
        warnings=[detail] if detail else [],
        member=charge.member,
        **charge.pricing.fields(),
    )
