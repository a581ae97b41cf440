"""Debit a wallet for a charge: plan the draws from an unlocked read, write them guarded.

The plan is made from an unlocked read; the writes are conditional (each lot still has what
is drawn from it, the balance still has room), so concurrent debits of one wallet hold its
rows only from the first of those writes to the commit. A failed condition starts the
transaction over. Debt is only planned with the balance row locked, so a lot granted
meanwhile is never passed over for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from creditgate.domain.balances import DebitAsk, DebitPlan, WalletBalance, plan_debit
from creditgate.domain.ledger import TransactionKind, charge_entries
from creditgate.domain.webhooks import EventType
from creditgate.services.context import Tx
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
    """What a charge is for: whose, which hold it settles (if any), the call, its pricing."""

    customer: str
    charge_id: str
    hold_id: str | None
    action: str | None
    metadata: dict[str, Any]
    pricing: Pricing


@dataclass(frozen=True, slots=True)
class Debit:
    """A debit of one wallet in one asset (`ask`) for a charge (`charge`)."""

    wallet_id: str
    asset: str
    ask: DebitAsk
    charge: ChargeFor


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
    plan = plan_debit(request.ask, before, lots, tx.now)
    if plan is not None and plan.debt:
        # Debt is planned with the balance row locked, from every open lot.
        before = lock_balance(tx, request.wallet_id, request.asset, create=False)
        lots = open_lots(tx, request.wallet_id, request.asset)
        plan = plan_debit(request.ask, before, lots, tx.now)
    if plan is None:
        return declined(tx, before, request.ask.requested, request.charge)
    row = _charge_row(tx, request, plan)
    if plan.shortfall:
        _shortfall(tx, request, plan, before)
    if not plan.debt and can_move_at_commit(tx):
        available = _write_at_commit(tx, request, plan, row, PendingView(before, lots))
    else:
        available = _write_now(tx, request, plan, row)
    return _charge(tx, request, plan, row["revenue"], available)


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
        "revenue": plan.revenue(tx.asset(request.asset).scale),
    }


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
        # What stopped it: the wallet's policy, or the spend limit the hold counts against.
        "limited_by": "spend_limit" if plan.debit == request.ask.most else "policy",
    }
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
        **charge.pricing.fields(),
    )


def declined(
    tx: Tx, before: WalletBalance, requested: int, charge: ChargeFor, reason: str | None = None
) -> Charge:
    """A declined charge: nothing taken, `authorization.declined` raised with the reason
    (the policy's, unless given)."""
    reason = reason or before.policy.decline_reason().value
    emit(
        tx,
        EventType.AUTHORIZATION_DECLINED,
        before.wallet_id,
        {
            "customer": charge.customer,
            "asset": before.asset,
            "requested": requested,
            "available": before.available,
            "reason": reason,
            "action": charge.action,
        },
    )
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
        **charge.pricing.fields(),
    )
