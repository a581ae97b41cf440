"""The pre-call gate: authorize (hold), settle the actual usage, void; and charge in one step.

`authorize` is the hot path: one conditional update of the wallet's balance row (it reserves
only if the policy allows) and the insert of the hold, in one short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from creditgate.domain.amounts import (
    check_amount,
    check_asset_code,
    check_money,
    stored_money,
)
from creditgate.domain.errors import HoldExpired, InvalidInput, UnknownHold
from creditgate.domain.holds import DEFAULT_TTL_SECONDS, HoldStatus, check_ttl, require_pending
from creditgate.domain.ledger import TransactionKind, charge_entries
from creditgate.domain.lots import plan_draws
from creditgate.domain.pricing import Quote, check_dimensions, text
from creditgate.services.catalog.catalog import check_external_id, check_id, check_metadata
from creditgate.services.context import AVAILABLE_PENDING, Idempotent, Tx, fill_available
from creditgate.services.pricing import rate_cards
from creditgate.services.results import Authorization, Charge, Draw, Settlement
from creditgate.services.wallet import (
    BALANCE_COLUMNS,
    FLOOR,
    BalanceRow,
    KnownReads,
    SentReads,
    after_move,
    can_move_at_commit,
    emit,
    lock_balance,
    move_at_commit,
    move_balance,
    open_lots,
    pending_view,
    post,
    read_balance,
    read_balance_and_lots,
    shift_balance,
    submit_balance_and_lots,
)
from creditgate.storage.database import Deferred, after_commit, defer
from creditgate.storage.ids import new_id
from creditgate.storage.prepared import Pending, Prepared, pipeline
from creditgate.storage.tables import charges, holds, wallet_balances

MAX_ACTION = 100

_RESERVE = Prepared(
    update(wallet_balances)
    .where(
        wallet_balances.c.wallet_id == bindparam("w"),
        wallet_balances.c.asset == bindparam("a"),
        # The same floor as every other debit (`WalletPolicy.capacity`). `need` is the amount,
        # or one minor unit for a price above zero that its card's rounding made 0.
        wallet_balances.c.posted - wallet_balances.c.held + FLOOR >= bindparam("need"),
    )
    .values(held=wallet_balances.c.held + bindparam("amount"), updated_at=bindparam("now"))
    .returning(*BALANCE_COLUMNS)
)


@dataclass(frozen=True, slots=True)
class Pricing:
    """What a charge was priced with; stored on the charge so it stays explainable."""

    dimensions: dict[str, str] | None = None
    quantities: dict[str, str] | None = None
    price: dict[str, Any] | None = None
    rate_card_id: str | None = None
    rate_card_version: int | None = None
    vendor_cost: Decimal | None = None

    @classmethod
    def of(cls, card: rate_cards.CardVersion, quote: Quote, *, keep: bool = True) -> Pricing:
        """`keep`: the full price snapshot, for a charge (a hold needs only its inputs)."""
        quantities = {name: text(value) for name, value in quote.quantities.items()}
        snapshot = quote.snapshot() if keep else None
        usd = quote.vendor_cost.usd if quote.vendor_cost is not None else None
        cost = None if usd is None else stored_money(usd)
        return cls(dict(quote.dimensions), quantities, snapshot, card.id, card.version, cost)

    @property
    def model(self) -> str | None:
        return (self.dimensions or {}).get("model")


@dataclass(frozen=True, slots=True)
class Objection:
    """A margin guard's verdict on a priced request: decline it, or approve with a warning."""

    mode: str
    reason: str

    @property
    def warning(self) -> str:
        return f"{MARGIN_GUARD}: {self.reason}"


MARGIN_GUARD = "margin_guard"


@dataclass(frozen=True, slots=True)
class Priced:
    """A request's asset and amount, given raw or priced by the rate card."""

    asset: str
    amount: int
    # What the wallet must be able to pay for the request to be approved (`Quote.need`).
    need: int
    pricing: Pricing
    objection: Objection | None = None


def _priced(
    tx: Tx,
    *,
    asset: str | None,
    amount: int | None,
    action: str | None,
    dimensions: dict[str, Any] | None,
    quantities: dict[str, Any] | None,
    rate_card: str,
    vendor_cost: Any,
    charging: bool,
) -> Priced:
    """The asset and amount of a request: given raw, or priced from its action's quantities.

    With a priced action whose card sets a margin guard, also what the guard objects to.

    Without an amount, an action is priced by the rate card (with no quantities, as a
    flat-priced action such as an image).
    """
    cost = None if vendor_cost is None else check_money(vendor_cost, "vendor_cost")
    if quantities is None and (amount is not None or action is None):
        if amount is None:
            raise InvalidInput(
                "amount is required, or action and quantities to price it", field="amount"
            )
        if asset is None:
            raise InvalidInput("asset is required with a raw amount", field="asset")
        tx.asset(check_asset_code(asset))
        dims = None if dimensions is None else check_dimensions(dimensions)
        raw = check_amount(amount)
        return Priced(asset, raw, raw, Pricing(dimensions=dims, vendor_cost=cost))
    if amount is not None:
        raise InvalidInput("give an amount or quantities to price, not both", field="amount")
    if action is None:
        raise InvalidInput("action is required to price quantities", field="action")
    quantities = quantities or {}
    card = rate_cards.in_effect(tx, rate_card)
    with rate_cards.confirming(tx):
        if asset is not None and check_asset_code(asset) != card.spec.asset:
            raise InvalidInput(
                f"the rate card prices in {card.spec.asset!r}, not {asset!r}", field="asset"
            )
    quote = rate_cards.price(
        tx, card, action=action, dimensions=dimensions, quantities=quantities, vendor_cost_usd=cost
    )
    guard = card.spec.prices(action).margin_guard
    reason = guard.check(quote) if guard is not None else None
    objection = Objection(guard.mode, reason) if guard is not None and reason else None
    amount = check_amount(quote.amount, allow_zero=True)
    return Priced(
        quote.asset, amount, quote.need, Pricing.of(card, quote, keep=charging), objection
    )


def _authorization(
    row: dict[str, Any], available: int, warnings: list[str] | None = None
) -> Authorization:
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
        action=row.get("action"),
        dimensions=row.get("dimensions"),
        quantities=row.get("quantities"),
        rate_card_id=row.get("rate_card_id"),
        warnings=warnings or [],
    )


def authorize(
    tx: Tx,
    *,
    customer: str,
    asset: str | None = None,
    amount: int | None = None,
    action: str | None = None,
    dimensions: dict[str, Any] | None = None,
    quantities: dict[str, Any] | None = None,
    rate_card: str = rate_cards.DEFAULT_CARD,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Authorization:
    """Reserve credit before the call, or decline with a named reason and the balance.

    The amount is given raw, or priced by the rate card in effect from the action, its
    dimensions and the estimated quantities (e.g. input tokens plus max_tokens of output).
    """
    ttl = check_ttl(ttl_seconds)
    meta = check_metadata(metadata)
    action = _check_action(action)
    check_external_id(customer)
    wallet_id = tx.wallet_id(customer)
    request = {
        "customer": customer,
        "asset": asset,
        "amount": amount,
        "action": action,
        "dimensions": dimensions,
        "quantities": quantities,
        "rate_card": rate_card,
        "ttl": ttl,
        "metadata": meta,
    }
    idem = Idempotent(tx, idempotency_key, "authorization.create", request)
    if (replayed := idem.replay(Authorization)) is not None:
        return replayed
    priced = _priced(
        tx,
        asset=asset,
        amount=amount,
        action=action,
        dimensions=dimensions,
        quantities=quantities,
        rate_card=rate_card,
        vendor_cost=None,
        charging=False,
    )
    asset, amount = priced.asset, priced.amount
    pricing, objection = priced.pricing, priced.objection
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
        "action": action,
        "rate_card_id": pricing.rate_card_id,
        "dimensions": pricing.dimensions,
        "quantities": pricing.quantities,
    }
    warnings = []
    if objection is not None:
        if objection.mode == "decline":
            _INSERT_HOLD.execute(tx.conn, hold)
            before = read_balance(tx, wallet_id, asset)
            return idem.record(_decline(tx, hold, MARGIN_GUARD, before.available, objection.reason))
        warnings.append(objection.warning)
    if can_move_at_commit(tx):
        # The hold and the reservation go with the commit, guarded (see `move_at_commit`):
        # one round trip, the balance row locked only for it. A wallet that cannot pay
        # misses the guard, and the careful path below declines with the reason.
        defer(tx.conn, _INSERT_HOLD, hold)
        moved = move_at_commit(tx, wallet_id, asset, posted=0, held=amount, need=priced.need)
        tx.conn.info["available_at_commit"] = (wallet_id, asset)
        after_commit(tx.conn, lambda result: _moved_available(result, moved))
        return idem.record(_authorization(hold, AVAILABLE_PENDING, warnings))
    _INSERT_HOLD.execute(tx.conn, hold)
    params = {
        "w": wallet_id,
        "a": asset,
        "amount": amount,
        "need": priced.need,
        "now": tx.now,
    }
    reserved = _RESERVE.first(tx.conn, params)
    if reserved is None:
        before = lock_balance(tx, wallet_id, asset)  # creates the row on first use
        reserved = _RESERVE.first(tx.conn, params)
        if reserved is None:
            reason = before.policy.decline_reason().value
            return idem.record(_decline(tx, hold, reason, before.available))
    after = after_move(tx, wallet_id, asset, reserved, -amount)
    return idem.record(_authorization(hold, after.available, warnings))


def _decline(
    tx: Tx, hold: dict[str, Any], reason: str, available: int, detail: str | None = None
) -> Authorization:
    """Turn the just-inserted hold into a declined authorization (it reserves nothing)."""
    requested = hold["amount"]
    hold.update(status=HoldStatus.DECLINED, amount=0, decline_reason=reason, resolved_at=tx.now)
    _DECLINE_HOLD.execute(tx.conn, {"hold_id": hold["id"], "reason": reason, "now": tx.now})
    payload = {
        "authorization": hold["id"],
        "customer": hold["customer"],
        "asset": hold["asset"],
        "requested": requested,
        "available": available,
        "reason": reason,
    }
    if detail:
        payload["detail"] = detail
    emit(tx, "authorization.declined", hold["wallet_id"], payload)
    return _authorization(hold, available, [detail] if detail else [])


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
        holds.c.action,
        holds.c.rate_card_id,
        holds.c.dimensions,
        holds.c.quantities,
    )
)


def _submit_claim(tx: Tx, hold_id: str, status: HoldStatus, charge_id: str | None) -> Pending:
    check_id(hold_id, "authorization")
    return _CLAIM_HOLD.submit(
        tx.conn,
        {
            "hold_id": hold_id,
            "tenant": tx.tenant_id,
            "now": tx.now,
            "status": status.value,
            "charge": charge_id,
        },
    )


def _claim(
    tx: Tx,
    hold_id: str,
    status: HoldStatus,
    charge_id: str | None,
    idem: Idempotent,
    sent: Pending | None = None,
) -> Any:
    """Move a pending hold to its final status exactly once, or raise the named reason why not.

    A retry of a request still in flight waits here on the hold's row; when the first one
    has committed, its answer is the retry's answer (returned as the replayed result).
    """
    if sent is None:
        sent = _submit_claim(tx, hold_id, status, charge_id)
    row = sent.first()
    if row is not None:
        return row
    # Not claimable. An earlier attempt under this key may be resolving the hold in a
    # transaction still open (its claim holds the row's lock, and its key is recorded at its
    # commit): wait for it to end, so that if it commits its answer is this one's too, rather
    # than a refusal the client would take for the outcome.
    found = tx.conn.execute(
        select(holds.c.status)
        .where(holds.c.id == hold_id, holds.c.tenant_id == tx.tenant_id)
        .with_for_update()
    ).first()
    if idem.key is not None:
        replayed = idem.replay(Settlement if status is HoldStatus.SETTLED else Authorization)
        if replayed is not None:
            return replayed
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
    pricing: Pricing,
    decline: bool = False,
    least: int = 0,
    prefetched: SentReads | KnownReads | None = None,
) -> Charge:
    """Debit up to `requested`, releasing `reserved` of the wallet's held credit.

    What the reservation covers is debited in full; anything past it only as far as the
    policy allows, the rest recorded as shortfall and raised as `charge.shortfall` (or, with
    `decline`, nothing is taken and the charge is declined). Lots are drawn in burn order;
    what they cannot cover (under overdraft or allow) becomes debt. With `decline`, a wallet
    that cannot pay `least` (one minor unit for a priced call its card's rounding made 0) is
    declined too.

    The plan is made from an unlocked read; the writes are conditional (each lot still has
    what is drawn from it, the balance still has room), so concurrent debits of one wallet
    hold its rows only from the first of those writes to the commit. A failed condition
    starts the transaction over. Debt is only planned with the balance row locked, so a
    lot granted meanwhile is never passed over for it.
    """
    if prefetched is not None:
        before, lots = prefetched.result()
    else:
        before, lots = read_balance_and_lots(tx, wallet_id, asset)
    for locked in (False, True):
        capacity = before.policy.capacity(before.available + reserved)
        if decline and max(requested, least) > capacity:
            return _declined(tx, before, requested, customer, action, metadata, pricing)
        debit = min(requested, capacity)
        draws: list[Any] = []
        new_debt = 0
        if debit:
            draws, new_debt = plan_draws(lots, debit, tx.now)
        if not new_debt or locked:
            break
        before = lock_balance(tx, wallet_id, asset, create=False)
        lots = open_lots(tx, wallet_id, asset)
    shortfall = requested - debit
    scale = tx.asset(asset).scale
    revenue = stored_money(
        sum((Decimal(d.amount).scaleb(-scale) * d.cost_basis for d in draws), Decimal(0))
    )
    row = {
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
        "model": pricing.model,
        "dimensions": pricing.dimensions,
        "quantities": pricing.quantities,
        "price": pricing.price,
        "rate_card_id": pricing.rate_card_id,
        "rate_card_version": pricing.rate_card_version,
        "vendor_cost": pricing.vendor_cost,
        "revenue": revenue,
    }
    taken = [(d.lot_id, d.amount) for d in draws]
    if shortfall:
        # Usage the wallet could not pay for is never silent: the call already happened (a
        # settle does not decline), so the integrator hears of what went unbilled.
        emit(
            tx,
            "charge.shortfall",
            wallet_id,
            {
                "charge": charge_id,
                "authorization": hold_id,
                "customer": customer,
                "asset": asset,
                "action": action,
                "requested": requested,
                "amount": debit,
                "shortfall": shortfall,
                "policy": before.policy.mode.value,
            },
            at_commit=True,
        )
    posting = partial(
        post,
        tx,
        wallet_id=wallet_id,
        asset=asset,
        kind=TransactionKind.CHARGE,
        entries=charge_entries(draws, new_debt),
        reference_id=charge_id,
    )
    if not new_debt and can_move_at_commit(tx):
        # Every write goes with the commit, guarded: the wallet's rows are locked for that
        # one round trip only. `available` is known once it has run (see `_moved_available`).
        if debit:
            posting(at_commit=True, with_row=(charges, row))
        else:
            defer(tx.conn, _INSERT_CHARGE, row)
        moved = move_at_commit(
            tx,
            wallet_id,
            asset,
            posted=-debit,
            held=-reserved,
            need=max(debit - reserved, least),
            draws=taken,
            planned_from=KnownReads(before, lots),
        )
        tx.conn.info["available_at_commit"] = (wallet_id, asset)
        after_commit(tx.conn, lambda result: _moved_available(result, moved))
        available = AVAILABLE_PENDING
    else:
        # The writes go out together (one round trip on PostgreSQL): the inserts first, then
        # the conditional moves of the lots and the balance row, which lock those rows.
        with pipeline(tx.conn):
            _INSERT_CHARGE.submit(tx.conn, row)
            if debit:
                posting()
            moved_row = move_balance(
                tx,
                wallet_id,
                asset,
                posted=-debit,
                held=-reserved,
                debt=new_debt,
                need=max(debit - reserved, least),
                draws=taken,
            )
        available = after_move(tx, wallet_id, asset, moved_row, reserved - debit).available
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
        available=available,
        revenue=revenue,
        **_pricing_fields(pricing),
    )


def _moved_available(result: Any, moved: Deferred) -> Any:
    """The committed answer, with `available` as the balance row's move left it."""
    return fill_available(result, moved.row.posted - moved.row.held)


def _pricing_fields(pricing: Pricing) -> dict[str, Any]:
    return {
        "model": pricing.model,
        "dimensions": pricing.dimensions,
        "quantities": pricing.quantities,
        "price": pricing.price,
        "rate_card_id": pricing.rate_card_id,
        "rate_card_version": pricing.rate_card_version,
        "vendor_cost": pricing.vendor_cost,
    }


def _declined(
    tx: Tx,
    before: BalanceRow,
    requested: int,
    customer: str,
    action: str | None,
    metadata: dict[str, Any],
    pricing: Pricing,
    reason: str | None = None,
) -> Charge:
    reason = reason or before.policy.decline_reason().value
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
        **_pricing_fields(pricing),
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
    amount: int | None = None,
    quantities: dict[str, Any] | None = None,
    vendor_cost: Any = None,
    action: str | None = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Settlement:
    """Charge the actual usage against a pending hold and release the rest of it.

    A priced hold settles from the actual quantities, priced by the same rate card version
    it was authorized with; any hold settles from a raw amount.
    """
    action = _check_action(action)
    meta = check_metadata(metadata)
    request = {
        "authorization": authorization_id,
        "amount": amount,
        "quantities": quantities,
        "vendor_cost": vendor_cost,
        "action": action,
        "metadata": meta,
    }
    idem = Idempotent(tx, idempotency_key, "authorization.settle", request)
    charge_id = new_id("chg")
    # The key's lookup and the hold's claim in one round trip: if the key has an answer, the
    # hold it settled is no longer pending, so the claim changes nothing.
    with pipeline(tx.conn):
        found = idem.lookup()
        claimed = _submit_claim(tx, authorization_id, HoldStatus.SETTLED, charge_id)
    if (replayed := idem.replay_found(found, Settlement)) is not None:
        claimed.rows()
        return replayed
    hold = _claim(tx, authorization_id, HoldStatus.SETTLED, charge_id, idem, claimed)
    if isinstance(hold, Settlement):
        return hold
    if quantities is not None and hold.rate_card_id is None:
        raise InvalidInput(
            "this authorization was not priced by a rate card: settle it with an amount",
            field="quantities",
        )
    if quantities is None and amount is None and hold.rate_card_id is not None:
        quantities = _no_usage(rate_cards.by_id(tx, hold.rate_card_id), hold.action)
    if quantities is None:
        if amount is None:
            raise InvalidInput("amount or quantities is required", field="amount")
        amount = check_amount(amount, allow_zero=True)
        cost = None if vendor_cost is None else check_money(vendor_cost, "vendor_cost")
        pricing = Pricing(dimensions=hold.dimensions, vendor_cost=cost)
    else:
        if amount is not None:
            raise InvalidInput("give an amount or quantities to price, not both", field="amount")
        card = rate_cards.by_id(tx, hold.rate_card_id)
        quote = rate_cards.price(
            tx,
            card,
            action=hold.action,
            dimensions=hold.dimensions,
            quantities=quantities,
            vendor_cost_usd=vendor_cost,
        )
        amount, pricing = quote.amount, Pricing.of(card, quote)
    charge = _debit(
        tx,
        hold.wallet_id,
        hold.asset,
        requested=amount,
        reserved=hold.amount,
        hold_id=authorization_id,
        customer=hold.customer,
        action=action or hold.action,
        metadata=meta or hold.metadata,
        charge_id=charge_id,
        pricing=pricing,
    )
    resolved = _resolved(
        authorization_id, hold, HoldStatus.SETTLED, tx, charge_id, charge.available
    )
    return idem.record(Settlement(authorization=resolved, charge=charge))


def _no_usage(card: rate_cards.CardVersion, action: str) -> dict[str, Any]:
    """The quantities of a settle that names none: none, for an action the card prices flat.

    An action priced by usage is refused instead, so a settle that forgot its usage is not
    charged as if the call had used nothing.
    """
    if card.spec.prices(action).quantities:
        raise InvalidInput(
            f"{action} is priced by usage: settle it with its quantities (or an amount)",
            field="quantities",
        )
    return {}


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
            "action": hold.action,
            "rate_card_id": hold.rate_card_id,
            "dimensions": hold.dimensions,
            "quantities": hold.quantities,
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
    asset: str | None = None,
    amount: int | None = None,
    action: str | None = None,
    dimensions: dict[str, Any] | None = None,
    quantities: dict[str, Any] | None = None,
    vendor_cost: Any = None,
    rate_card: str = rate_cards.DEFAULT_CARD,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Charge:
    """Authorize and settle in one step: declined, with nothing taken, when the policy says no."""
    action = _check_action(action)
    meta = check_metadata(metadata)
    check_external_id(customer)
    wallet_id = tx.wallet_id(customer)
    request = {
        "customer": customer,
        "asset": asset,
        "amount": amount,
        "action": action,
        "dimensions": dimensions,
        "quantities": quantities,
        "vendor_cost": vendor_cost,
        "rate_card": rate_card,
        "metadata": meta,
    }
    idem = Idempotent(tx, idempotency_key, "charge.create", request)
    prefetched: SentReads | KnownReads | None = None
    known = pending_view(tx, wallet_id, asset) if isinstance(asset, str) else None
    if known is not None and idem.key is not None and can_move_at_commit(tx):
        # A later debit of a combined batch: the rows are known, and its key is new unless
        # its record's insert at the commit conflicts, which runs the batch again carefully,
        # looking every key up (see `Database.run_combined`). No round trip before the commit.
        prefetched, replayed = known, None
    elif isinstance(asset, str) and tx.conn.dialect.name == "postgresql":
        # The key's record and the wallet's rows in one round trip, with the BEGIN.
        with pipeline(tx.conn):
            found = idem.lookup()
            prefetched = submit_balance_and_lots(tx, wallet_id, asset)
        replayed = idem.replay_found(found, Charge)
    else:
        replayed = idem.replay(Charge)
    if replayed is not None:
        return replayed
    priced = _priced(
        tx,
        asset=asset,
        amount=amount,
        action=action,
        dimensions=dimensions,
        quantities=quantities,
        rate_card=rate_card,
        vendor_cost=vendor_cost,
        charging=True,
    )
    asset, objection = priced.asset, priced.objection
    if objection is not None and objection.mode == "decline":
        before = read_balance(tx, wallet_id, asset)
        declined = _declined(
            tx, before, priced.amount, customer, action, meta, priced.pricing, MARGIN_GUARD
        )
        return idem.record(declined.model_copy(update={"warnings": [objection.reason]}))
    result = _debit(
        tx,
        wallet_id,
        asset,
        requested=priced.amount,
        reserved=0,
        hold_id=None,
        customer=customer,
        action=action,
        metadata=meta,
        charge_id=new_id("chg"),
        pricing=priced.pricing,
        decline=True,
        least=priced.need,
        prefetched=prefetched if prefetched is not None and prefetched.asset == asset else None,
    )
    if objection is not None:  # a margin guard in warn mode: charged, with its warning
        result = result.model_copy(update={"warnings": [objection.warning]})
    return idem.record(result)


def get_authorization(tx: Tx, *, authorization_id: str) -> Authorization:
    check_id(authorization_id, "authorization")
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
