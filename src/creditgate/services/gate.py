"""The pre-call gate: authorize (hold), settle the actual usage, void; and charge in one step.

`authorize` is the hot path: one conditional update of the wallet's balance row (it reserves
only if the policy allows) and the insert of the hold, in one short transaction.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update

from creditgate.domain.amounts import MAX_BALANCE, check_amount
from creditgate.domain.errors import HoldExpired, InvalidInput, UnknownHold
from creditgate.domain.holds import DEFAULT_TTL_SECONDS, HoldStatus, check_ttl, require_pending
from creditgate.domain.ledger import TransactionKind, charge_entries
from creditgate.domain.lots import plan_draws
from creditgate.domain.policy import PolicyMode
from creditgate.ids import new_id
from creditgate.services._wallet import (
    BALANCE_COLUMNS,
    BalanceRow,
    after_move,
    emit,
    lock_balance,
    open_lots,
    post,
    read_balance,
    shift_balance,
)
from creditgate.services.catalog import check_external_id, check_metadata
from creditgate.services.context import Idempotent, Tx
from creditgate.services.results import Authorization, Charge, Draw, Settlement
from creditgate.storage.prepared import Prepared
from creditgate.storage.tables import charges, holds, wallet_balances

MAX_ACTION = 100

_RESERVE = Prepared(
    update(wallet_balances)
    .where(
        wallet_balances.c.wallet_id == bindparam("w"),
        wallet_balances.c.asset == bindparam("a"),
        or_(
            and_(
                wallet_balances.c.policy == PolicyMode.ALLOW.value,
                wallet_balances.c.held <= bindparam("held_cap"),
            ),
            wallet_balances.c.posted - wallet_balances.c.held + wallet_balances.c.overdraft_limit
            >= bindparam("amount"),
        ),
    )
    .values(held=wallet_balances.c.held + bindparam("amount"), updated_at=bindparam("now"))
    .returning(*BALANCE_COLUMNS)
)


def _authorization(row: dict[str, Any], available: int) -> Authorization:
    return Authorization(
        id=row["id"],
        customer=row["customer"],
        asset=row["asset"],
        status=row["status"],
        approved=row["status"] != HoldStatus.DECLINED,
        amount=row["amount"],
        requested=row["requested"],
        decline_reason=row["decline_reason"],
        available=available,
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        resolved_at=row["resolved_at"],
        charge_id=row["charge_id"],
        metadata=row["metadata"],
    )


def authorize(
    tx: Tx,
    *,
    customer: str,
    asset: str,
    amount: int,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Authorization:
    """Reserve `amount` before the call, or decline with a named reason and the balance."""
    amount = check_amount(amount)
    ttl = check_ttl(ttl_seconds)
    meta = check_metadata(metadata)
    check_external_id(customer)
    wallet_id = tx.wallet_id(customer)
    tx.asset(asset)
    idem = Idempotent(
        tx,
        idempotency_key,
        "authorization.create",
        {"customer": customer, "asset": asset, "amount": amount, "ttl": ttl, "metadata": meta},
    )
    if (replayed := idem.replay(Authorization)) is not None:
        return replayed
    # The hold row goes in first so that the balance row is locked only from the
    # conditional update to the commit.
    hold = {
        "tenant_id": tx.tenant_id,
        "wallet_id": wallet_id,
        "id": new_id("hld"),
        "customer": customer,
        "asset": asset,
        "status": HoldStatus.PENDING,
        "amount": amount,
        "requested": amount,
        "decline_reason": None,
        "created_at": tx.now,
        "expires_at": tx.now + timedelta(seconds=ttl),
        "resolved_at": None,
        "charge_id": None,
        "metadata": meta,
    }
    _INSERT_HOLD.execute(tx.conn, hold)
    params = {
        "w": wallet_id,
        "a": asset,
        "amount": amount,
        "held_cap": MAX_BALANCE - amount,
        "now": tx.now,
    }
    reserved = _RESERVE.first(tx.conn, params)
    if reserved is None:
        before = lock_balance(tx, wallet_id, asset)  # creates the row on first use
        reserved = _RESERVE.first(tx.conn, params)
        if reserved is None:
            reason = before.policy.decline_reason().value
            hold.update(
                status=HoldStatus.DECLINED, amount=0, decline_reason=reason, resolved_at=tx.now
            )
            _DECLINE_HOLD.execute(tx.conn, {"hold_id": hold["id"], "reason": reason, "now": tx.now})
            emit(
                tx,
                "authorization.declined",
                wallet_id,
                {
                    "authorization": hold["id"],
                    "customer": customer,
                    "asset": asset,
                    "requested": amount,
                    "available": before.available,
                    "reason": reason,
                },
            )
            return idem.record(_authorization(hold, before.available))
    after = after_move(tx, wallet_id, asset, reserved, -amount)
    return idem.record(_authorization(hold, after.available))


_INSERT_HOLD = Prepared(insert(holds))
_DECLINE_HOLD = Prepared(
    update(holds)
    .where(holds.c.id == bindparam("hold_id"))
    .values(
        status=HoldStatus.DECLINED.value,
        amount=0,
        decline_reason=bindparam("reason"),
        resolved_at=bindparam("now"),
    )
)
_INSERT_CHARGE = Prepared(insert(charges))

_CLAIM_HOLD = Prepared(
    update(holds)
    .where(
        holds.c.id == bindparam("hold_id"),
        holds.c.tenant_id == bindparam("tenant"),
        holds.c.status == HoldStatus.PENDING.value,
        holds.c.expires_at > bindparam("now"),
    )
    .values(status=bindparam("status"), resolved_at=bindparam("now"), charge_id=bindparam("charge"))
    .returning(
        holds.c.wallet_id,
        holds.c.customer,
        holds.c.asset,
        holds.c.amount,
        holds.c.requested,
        holds.c.created_at,
        holds.c.expires_at,
        holds.c.metadata,
    )
)


def _claim(
    tx: Tx, hold_id: str, status: HoldStatus, charge_id: str | None, idem: Idempotent
) -> Any:
    """Move a pending hold to its final status exactly once, or raise the named reason why not.

    A retry of a request still in flight waits here on the hold's row; when the first one
    has committed, its answer is the retry's answer (returned as the replayed result).
    """
    if not isinstance(hold_id, str) or not hold_id:
        raise InvalidInput("authorization must be an authorization id", field="authorization")
    row = _CLAIM_HOLD.first(
        tx.conn,
        {
            "hold_id": hold_id,
            "tenant": tx.tenant_id,
            "now": tx.now,
            "status": status.value,
            "charge": charge_id,
        },
    )
    if row is not None:
        return row
    if idem.key is not None:
        replayed = idem.replay(Settlement if status is HoldStatus.SETTLED else Authorization)
        if replayed is not None:
            return replayed
    found = tx.conn.execute(
        select(holds.c.status).where(holds.c.id == hold_id, holds.c.tenant_id == tx.tenant_id)
    ).first()
    if found is None:
        raise UnknownHold(f"authorization {hold_id!r} does not exist", field="authorization")
    current = HoldStatus(found.status)
    if current is HoldStatus.PENDING:
        raise HoldExpired(f"authorization {hold_id} has passed its TTL", field="authorization")
    require_pending(hold_id, current)
    raise AssertionError("unreachable")


def _debit(
    tx: Tx,
    wallet_id: str,
    asset: str,
    *,
    requested: int,
    reserved: int,
    hold_id: str | None,
    customer: str,
    action: str | None,
    metadata: dict[str, Any],
    charge_id: str,
    decline: bool = False,
) -> Charge:
    """Debit up to `requested`, releasing `reserved` of the wallet's held credit.

    What the reservation covers is debited in full; anything past it only as far as the
    policy allows, the rest recorded as shortfall (or, with `decline`, nothing is taken and
    the charge is declined). Lots are drawn in burn order; what they cannot cover (under
    overdraft or allow) becomes debt.

    The plan is made from an unlocked read; the writes are conditional (each lot still has
    what is drawn from it, the balance still has room), so concurrent debits of one wallet
    hold its rows only from the first of those writes to the commit. A failed condition
    starts the transaction over. Debt is only planned with the balance row locked, so a
    lot granted meanwhile is never passed over for it.
    """
    before = read_balance(tx, wallet_id, asset)
    for locked in (False, True):
        capacity = before.policy.capacity(before.available + reserved)
        if decline and requested > capacity:
            return _declined(tx, before, requested, customer, action, metadata)
        debit = min(requested, capacity)
        draws: list[Any] = []
        new_debt = 0
        if debit:
            draws, new_debt = plan_draws(open_lots(tx, wallet_id, asset), debit, tx.now)
        if not new_debt or locked:
            break
        before = lock_balance(tx, wallet_id, asset, create=False)
    shortfall = requested - debit
    _INSERT_CHARGE.execute(
        tx.conn,
        {
            "tenant_id": tx.tenant_id,
            "wallet_id": wallet_id,
            "id": charge_id,
            "customer": customer,
            "hold_id": hold_id,
            "asset": asset,
            "requested": requested,
            "amount": debit,
            "debt": new_debt,
            "shortfall": shortfall,
            "action": action,
            "metadata": metadata,
            "created_at": tx.now,
        },
    )
    if debit:
        post(
            tx,
            wallet_id=wallet_id,
            asset=asset,
            kind=TransactionKind.CHARGE,
            entries=charge_entries(draws, new_debt),
            reference_id=charge_id,
        )
    after = shift_balance(
        tx,
        wallet_id,
        asset,
        posted=-debit,
        held=-reserved,
        debt=new_debt,
        need=debit - reserved,
        draws=[(d.lot_id, d.amount) for d in draws],
    )
    return Charge(
        id=charge_id,
        status="posted",
        decline_reason=None,
        customer=customer,
        asset=asset,
        hold_id=hold_id,
        requested=requested,
        amount=debit,
        debt=new_debt,
        shortfall=shortfall,
        draws=[Draw(lot_id=d.lot_id, amount=d.amount, cost_basis=d.cost_basis) for d in draws],
        action=action,
        metadata=metadata,
        created_at=tx.now,
        available=after.available,
    )


def _declined(
    tx: Tx,
    before: BalanceRow,
    requested: int,
    customer: str,
    action: str | None,
    metadata: dict[str, Any],
) -> Charge:
    reason = before.policy.decline_reason().value
    emit(
        tx,
        "authorization.declined",
        before.wallet_id,
        {
            "customer": customer,
            "asset": before.asset,
            "requested": requested,
            "available": before.available,
            "reason": reason,
            "action": action,
        },
    )
    return Charge(
        id=new_id("chg"),
        status="declined",
        decline_reason=reason,
        customer=customer,
        asset=before.asset,
        hold_id=None,
        requested=requested,
        amount=0,
        debt=0,
        shortfall=0,
        draws=[],
        action=action,
        metadata=metadata,
        created_at=tx.now,
        available=before.available,
    )


def _check_action(action: object) -> str | None:
    if action is None:
        return None
    if (
        not isinstance(action, str)
        or not 1 <= len(action) <= MAX_ACTION
        or not action.isprintable()
    ):
        raise InvalidInput(f"action must be 1-{MAX_ACTION} printable characters", field="action")
    return action


def settle(
    tx: Tx,
    *,
    authorization_id: str,
    amount: int,
    action: str | None = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Settlement:
    """Charge the actual amount against a pending hold and release the rest of it."""
    amount = check_amount(amount, allow_zero=True)
    action = _check_action(action)
    meta = check_metadata(metadata)
    idem = Idempotent(
        tx,
        idempotency_key,
        "authorization.settle",
        {"authorization": authorization_id, "amount": amount, "action": action, "metadata": meta},
    )
    if (replayed := idem.replay(Settlement)) is not None:
        return replayed
    charge_id = new_id("chg")
    hold = _claim(tx, authorization_id, HoldStatus.SETTLED, charge_id, idem)
    if isinstance(hold, Settlement):
        return hold
    charge = _debit(
        tx,
        hold.wallet_id,
        hold.asset,
        requested=amount,
        reserved=hold.amount,
        hold_id=authorization_id,
        customer=hold.customer,
        action=action,
        metadata=meta or hold.metadata,
        charge_id=charge_id,
    )
    resolved = _resolved(
        authorization_id, hold, HoldStatus.SETTLED, tx, charge_id, charge.available
    )
    return idem.record(Settlement(authorization=resolved, charge=charge))


def _resolved(
    hold_id: str, hold: Any, status: HoldStatus, tx: Tx, charge_id: str | None, available: int
) -> Authorization:
    return _authorization(
        {
            "id": hold_id,
            "customer": hold.customer,
            "asset": hold.asset,
            "status": status.value,
            "amount": hold.amount,
            "requested": hold.requested,
            "decline_reason": None,
            "created_at": hold.created_at,
            "expires_at": hold.expires_at,
            "resolved_at": tx.now,
            "charge_id": charge_id,
            "metadata": hold.metadata,
        },
        available,
    )


def release(tx: Tx, hold: Any) -> int:
    """Give a claimed hold's reservation back to the wallet; returns the new available."""
    after = shift_balance(
        tx, hold.wallet_id, hold.asset, posted=0, held=-hold.amount, debt=0, need=0
    )
    return after.available


def void(tx: Tx, *, authorization_id: str, idempotency_key: str | None = None) -> Authorization:
    """Release a pending hold in full: the call did not happen."""
    idem = Idempotent(
        tx, idempotency_key, "authorization.void", {"authorization": authorization_id}
    )
    if (replayed := idem.replay(Authorization)) is not None:
        return replayed
    hold = _claim(tx, authorization_id, HoldStatus.VOIDED, None, idem)
    if isinstance(hold, Authorization):
        return hold
    available = release(tx, hold)
    return idem.record(_resolved(authorization_id, hold, HoldStatus.VOIDED, tx, None, available))


def charge(
    tx: Tx,
    *,
    customer: str,
    asset: str,
    amount: int,
    action: str | None = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Charge:
    """Authorize and settle in one step: declined, with nothing taken, when the policy says no."""
    amount = check_amount(amount)
    action = _check_action(action)
    meta = check_metadata(metadata)
    check_external_id(customer)
    wallet_id = tx.wallet_id(customer)
    tx.asset(asset)
    idem = Idempotent(
        tx,
        idempotency_key,
        "charge.create",
        {
            "customer": customer,
            "asset": asset,
            "amount": amount,
            "action": action,
            "metadata": meta,
        },
    )
    if (replayed := idem.replay(Charge)) is not None:
        return replayed
    result = _debit(
        tx,
        wallet_id,
        asset,
        requested=amount,
        reserved=0,
        hold_id=None,
        customer=customer,
        action=action,
        metadata=meta,
        charge_id=new_id("chg"),
        decline=True,
    )
    return idem.record(result)


def get_authorization(tx: Tx, *, authorization_id: str) -> Authorization:
    row = tx.conn.execute(
        select(holds).where(holds.c.id == authorization_id, holds.c.tenant_id == tx.tenant_id)
    ).first()
    if row is None:
        raise UnknownHold(
            f"authorization {authorization_id!r} does not exist", field="authorization"
        )
    balance = tx.conn.execute(
        select(wallet_balances.c.posted, wallet_balances.c.held).where(
            wallet_balances.c.wallet_id == row.wallet_id, wallet_balances.c.asset == row.asset
        )
    ).first()
    available = balance.posted - balance.held if balance is not None else 0
    return _authorization(dict(row._mapping), available)
