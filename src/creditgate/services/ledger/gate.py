"""The pre-call gate: authorize (hold), settle the actual usage, void; and charge in one step.

`authorize` is the hot path: one conditional update of the wallet's balance row (it reserves
only if the policy allows) and the insert of the hold, in one short transaction. Pricing is
in `priced.py`, the debit of a settle or charge in `debit.py`, the budgets a call naming a
member (or a customer with a budget) counts against in `budgets.py`, the spend limit a
hold may count against (a customer gateway key's) in `spend.py`, the requests in
`requests.py`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from creditgate.domain.amounts import check_amount, check_money
from creditgate.domain.balances import DebitAsk
from creditgate.domain.budgets import BudgetDecline
from creditgate.domain.errors import CreditgateError, HoldExpired, InvalidInput, UnknownHold
from creditgate.domain.holds import HoldStatus, check_ttl, require_pending
from creditgate.domain.spend_limits import (
    SPEND_LIMIT_REACHED,
    SpendLimit,
    SpendLimitAssetMismatch,
)
from creditgate.domain.webhooks import EventType
from creditgate.services.catalog.catalog import check_external_id, check_id, check_metadata
from creditgate.services.context import Idempotent, Tx
from creditgate.services.ledger import budgets, spend
from creditgate.services.ledger.budgets import Scope, Whose
from creditgate.services.ledger.debit import ChargeFor, Debit, debit, declined
from creditgate.services.ledger.priced import (
    MARGIN_GUARD,
    Priced,
    PriceRequest,
    Pricing,
    check_action,
    price,
)
from creditgate.services.ledger.requests import AuthorizeRequest, ChargeRequest
from creditgate.services.pricing import rate_cards
from creditgate.services.results import Authorization, Charge, Settlement
from creditgate.services.wallet import (
    after_move,
    can_move_at_commit,
    emit,
    lock_balance,
    move_at_commit,
    move_balance,
    pending_view,
    read_balance,
    shift_balance,
    submit_balance_and_lots,
    where,
)
from creditgate.storage import balance_at_commit, balances, holds
from creditgate.storage.balances import Move, SentReads
from creditgate.storage.ids import new_id
from creditgate.storage.prepared import Pending, pipeline
from creditgate.storage.unit_of_work import PendingView

__all__ = [
    "AuthorizeRequest",
    "ChargeRequest",
    "authorize",
    "charge",
    "get_authorization",
    "release",
    "settle",
    "void",
]


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
        member=row.get("member"),
    )


def authorize(tx: Tx, request: AuthorizeRequest) -> Authorization:
    """Reserve credit before the call, or decline with a named reason and the balance.

    The amount is given raw, or priced by the rate card in effect from the action, its
    dimensions and the estimated quantities (e.g. input tokens plus max_tokens of output).
    With a member, the hold is that member's and counts against its budgets and the
    customer's: declined if it does not fit a hard one, or the member is not active.
    """
    ttl = check_ttl(request.ttl_seconds)
    meta = check_metadata(request.metadata)
    action = check_action(request.action)
    check_external_id(request.customer)
    member = _member(request.member)
    wallet_id = tx.wallet_id(request.customer)
    body = {
        "customer": request.customer,
        "asset": request.asset,
        "amount": request.amount,
        "action": action,
        "dimensions": request.dimensions,
        "quantities": request.quantities,
        "rate_card": request.rate_card,
        "ttl": ttl,
        "metadata": meta,
    }
    if member is not None:
        body["member"] = member
    limit = request.spend_limit
    if limit is not None:
        body["spend_limit"] = limit.id
    idem = Idempotent(tx, request.idempotency_key, "authorization.create", body)
    replayed, scope = _replay_or_scope(tx, idem, wallet_id, member)
    if replayed is not None:
        return replayed
    try:
        return _price_and_hold(tx, request, idem, wallet_id, action, meta, ttl, member, scope)
    except CreditgateError:
        if not _takes_key_as_new(tx, idem, member):
            raise
        # The key was not looked up: a retry whose request no longer prices (its card
        # changed since) answers as the first call did, and another request under the key
        # is a conflict, as they would be had the key been looked up first.
        earlier = idem.replay(Authorization)
        if earlier is not None:
            return earlier
        raise


def _price_and_hold(
    tx: Tx,
    request: AuthorizeRequest,
    idem: Idempotent,
    wallet_id: str,
    action: str | None,
    meta: dict[str, Any],
    ttl: int,
    member: str | None,
    scope: Scope | None,
) -> Authorization:
    limit = request.spend_limit
    asking = PriceRequest(
        request.asset,
        request.amount,
        action,
        request.dimensions,
        request.quantities,
        request.rate_card,
    )
    priced = price(tx, asking)
    if limit is not None and priced.asset != limit.asset:
        raise SpendLimitAssetMismatch(
            f"the call is priced in {priced.asset}, and its spend limit counts {limit.asset}",
            field="spend_limit",
        )
    hold = _hold_row(tx, request.customer, wallet_id, priced, action, meta, ttl)
    if member is not None:
        hold["member"] = member
    hold.update(spend.hold_fields(tx, limit))
    return idem.record(_hold(tx, hold, priced, scope, limit))


def _member(member: str | None) -> str | None:
    return None if member is None else check_external_id(member, "member")


def _takes_key_as_new(tx: Tx, idem: Idempotent, member: str | None) -> bool:
    """Whether the hold reads nothing before its commit: on PostgreSQL, naming no member, its
    key is taken as new and its record's insert at the commit is the check. A key already
    used conflicts there, and the call runs again carefully (`ConflictAtCommit`), looking it
    up: a retry costs a second run, a first call one round trip fewer."""
    return member is None and idem.key is not None and can_move_at_commit(tx)


def _replay_or_scope(
    tx: Tx, idem: Idempotent, wallet_id: str, member: str | None
) -> tuple[Authorization | None, Scope | None]:
    """The answer already given under the key, or None and, for a call naming a member, what
    it counts against: read in the key's round trip (none for a key taken as new)."""
    if _takes_key_as_new(tx, idem, member):
        return None, None
    if member is None:
        return idem.replay(Authorization), None
    with pipeline(tx.conn):
        found = idem.lookup()
        sent = budgets.submit_scope(tx, wallet_id, member)
    replayed = idem.replay_found(found, Authorization)
    if replayed is not None:
        sent.rows.rows()
        return replayed, None
    return None, sent.result()


def _hold_row(
    tx: Tx,
    customer: str,
    wallet_id: str,
    priced: Priced,
    action: str | None,
    meta: dict[str, Any],
    ttl: int,
) -> dict[str, Any]:
    pricing = priced.pricing
    return {
        "tenant_id": tx.tenant_id,
        "wallet_id": wallet_id,
        "id": new_id("hld"),
        "customer": customer,
        "asset": priced.asset,
        "status": HoldStatus.PENDING,
        "amount": priced.amount,
        "requested": priced.amount,
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


def _hold(
    tx: Tx,
    hold: dict[str, Any],
    priced: Priced,
    scope: Scope | None,
    limit: SpendLimit | None = None,
) -> Authorization:
    """Place the hold (its row: `hold`), or decline it: the margin guard's objection, a
    member that is not active, a wallet whose policy does not allow the reservation, a hard
    budget it does not fit (`scope`: what a hold naming a member counts against), or a spend
    limit it does not fit (`limit`). A hold may count against budgets and a spend limit both;
    it is placed only if it fits every one of them.

    The wallet's balance row is moved (and locked) first, then the spend limit's period row,
    then the budgets' usage rows, on every path (and so in settle and release): one order for
    every transaction that writes them."""
    wallet_id, asset, amount = hold["wallet_id"], priced.asset, priced.amount
    objection = priced.objection
    warnings = []
    if objection is not None:
        if objection.mode == "decline":
            return _decline_now(tx, hold, MARGIN_GUARD, objection.reason)
        warnings.append(objection.warning)
    counts = None
    if scope is not None:
        if scope.refusal is not None:
            return _decline_now(tx, hold, scope.refusal.value)
        counts = budgets.counted(scope.applying(asset), tx.now)
        if counts:
            hold["budgets"] = budgets.recorded(counts)
            capped = budgets.over_cap(counts, amount)
            if capped is not None:
                detail = budgets.refusal(tx, wallet_id, capped, amount)
                return _decline_now(tx, hold, BudgetDecline.BUDGET_EXCEEDED.value, detail)
    if limit is not None and not spend.can_reserve_at_commit(hold, limit):
        return _decline_now(tx, hold, SPEND_LIMIT_REACHED, spend.refusal(tx, hold, limit))
    if can_move_at_commit(tx) and (not counts or budgets.can_add_at_commit(counts, amount)):
        # The hold and the reservation go with the commit, guarded (see `move_at_commit`):
        # one round trip, the balance row locked only for it. A wallet that cannot pay
        # misses the guard, as does a spend limit or a budget the hold does not fit (or a
        # customer's budget the call has not read), and the careful path below declines
        # with the reason.
        holds.insert_hold(tx.uow, hold, at_commit=True)
        move = Move(posted=0, held=amount, need=priced.need, budgets_known=counts is not None)
        moved = move_at_commit(tx, wallet_id, asset, move)
        if limit is not None:
            spend.reserve_at_commit(tx, hold, limit)
        if counts:
            budgets.add_at_commit(tx, wallet_id, counts, held=amount)
        available = balance_at_commit.await_available(tx.uow, wallet_id, asset, moved)
        return _authorization(hold, available, warnings)
    # The hold row goes in first so that the balance row is locked only from the
    # conditional update to the commit.
    holds.insert_hold(tx.uow, hold)
    row = where(tx, wallet_id, asset)
    reserved = balances.reserve(tx.uow, row, amount, priced.need)
    if reserved is None:
        before = lock_balance(tx, wallet_id, asset)  # creates the row on first use
        # The row is locked: the policy answers as the reservation's condition would
        # (`ROOM_FOR_NEED`), so a wallet that cannot pay is declined without trying again.
        if before.policy.allows(before.available, priced.need):
            reserved = balances.reserve(tx.uow, row, amount, priced.need)
        if reserved is None:
            reason = before.policy.decline_reason().value
            return _decline(tx, hold, reason, before.available)
    if limit is not None and spend.reserve(tx, hold, limit) is None:
        # The wallet could pay, the limit cannot: the reservation goes back before anything
        # reacts to it (no event, no auto top-up).
        undone = move_balance(tx, wallet_id, asset, posted=0, held=-amount, debt=0, need=0)
        detail = spend.refusal(tx, hold, limit)
        return _decline(tx, hold, SPEND_LIMIT_REACHED, undone.available, detail)
    if counts is None and reserved.budgeted:
        # A hold naming no member, on a customer with a budget of its own in the asset.
        counts = budgets.counted(budgets.customer_budgets(tx, wallet_id, asset), tx.now)
        if counts:
            hold["budgets"] = budgets.recorded(counts)
            holds.set_budgets(tx.uow, hold["id"], hold["budgets"])
    if counts:
        whose = Whose(hold["customer"], hold.get("member"))
        refusing = budgets.add(tx, wallet_id, whose, counts, held=amount)
        if refusing is not None:
            # The wallet (and the spend limit) could pay, a budget cannot: the reservation
            # goes back before anything reacts to it (no event, no auto top-up).
            undone = move_balance(tx, wallet_id, asset, posted=0, held=-amount, debt=0, need=0)
            if limit is not None:
                spend.give_back(tx, hold)
            detail = budgets.refusal(tx, wallet_id, refusing, amount)
            reason = BudgetDecline.BUDGET_EXCEEDED.value
            return _decline(tx, hold, reason, undone.available, detail)
    after = after_move(tx, reserved, -amount)
    return _authorization(hold, after.available, warnings)


def _decline_now(
    tx: Tx, hold: dict[str, Any], reason: str, detail: str | None = None
) -> Authorization:
    """Insert the hold declined before it reserves anything, with the balance as it is."""
    holds.insert_hold(tx.uow, hold)
    before = read_balance(tx, hold["wallet_id"], hold["asset"])
    return _decline(tx, hold, reason, before.available, detail)


def _decline(
    tx: Tx, hold: dict[str, Any], reason: str, available: int, detail: str | None = None
) -> Authorization:
    """Turn the just-inserted hold into a declined authorization (it reserves nothing)."""
    requested = hold["amount"]
    hold.update(status=HoldStatus.DECLINED, amount=0, decline_reason=reason, resolved_at=tx.now)
    holds.decline_hold(tx.uow, hold["id"], reason, tx.now)
    payload = {
        "authorization": hold["id"],
        "customer": hold["customer"],
        "asset": hold["asset"],
        "requested": requested,
        "available": available,
        "reason": reason,
    }
    if hold.get("member") is not None:
        payload["member"] = hold["member"]
    if detail:
        payload["detail"] = detail
    emit(tx, EventType.AUTHORIZATION_DECLINED, hold["wallet_id"], payload)
    return _authorization(hold, available, [detail] if detail else [])


def _submit_claim(tx: Tx, hold_id: str, status: HoldStatus, charge_id: str | None) -> Pending:
    check_id(hold_id, "authorization")
    return holds.submit_claim(tx.uow, tx.tenant_id, hold_id, (status, charge_id), tx.now)


def _claim(
    tx: Tx,
    hold_id: str,
    resolution: tuple[HoldStatus, str | None],
    idem: Idempotent,
    sent: Pending | None = None,
) -> Any:
    """Move a pending hold to its final status (`resolution`: the status and the charge
    that settles it) exactly once, or raise the named reason why not.

    A retry of a request still in flight waits here on the hold's row; when the first one
    has committed, its answer is the retry's answer (returned as the replayed result).
    """
    status, charge_id = resolution
    if sent is None:
        sent = _submit_claim(tx, hold_id, status, charge_id)
    row = sent.first()
    if row is not None:
        return row
    # Not claimable. An earlier attempt under this key may be resolving the hold in a
    # transaction still open (its claim holds the row's lock, and its key is recorded at its
    # commit): wait for it to end, so that if it commits its answer is this one's too, rather
    # than a refusal the client would take for the outcome.
    current = holds.lock_hold_status(tx.uow, tx.tenant_id, hold_id)
    if idem.key is not None:
        replayed = idem.replay(Settlement if status is HoldStatus.SETTLED else Authorization)
        if replayed is not None:
            return replayed
    if current is None:
        raise UnknownHold(f"authorization {hold_id!r} does not exist", field="authorization")
    if current is HoldStatus.PENDING:
        raise HoldExpired(f"authorization {hold_id} has passed its TTL", field="authorization")
    require_pending(hold_id, current)
    raise AssertionError("unreachable")


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
    action = check_action(action)
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
    # hold it settled is no longer pending, so the claim changes nothing. On PostgreSQL the
    # reads of the hold's wallet's balance row and first lots go in it too (after the claim,
    # found through the hold; unused if it is not claimed).
    with pipeline(tx.conn):
        found = idem.lookup()
        claimed = _submit_claim(tx, authorization_id, HoldStatus.SETTLED, charge_id)
        reads = balances.submit_balance_and_lots_of_hold(
            tx.uow, tx.tenant_id, authorization_id, tx.now
        )
    if (replayed := idem.replay_found(found, Settlement)) is not None:
        claimed.rows()
        return replayed
    hold = _claim(tx, authorization_id, (HoldStatus.SETTLED, charge_id), idem, claimed)
    if isinstance(hold, Settlement):
        return hold
    amount, pricing = _usage(tx, hold, amount, quantities, vendor_cost)
    # The hold's budgets and spend limit: a settle past the hold charges at most what their
    # periods have left (the smaller, when it counts in both).
    by_budgets, counted_in = budgets.most(tx, budgets.of_hold(tx, hold), amount)
    most, limited_by = _smaller_cap(by_budgets, spend.most(tx, hold))
    charged = debit(
        tx,
        Debit(
            hold.wallet_id,
            hold.asset,
            DebitAsk(requested=amount, reserved=hold.amount, most=most),
            ChargeFor(
                hold.customer,
                charge_id,
                authorization_id,
                action or hold.action,
                meta or hold.metadata,
                pricing,
                member=hold.member,
                budgets=hold.budgets,
            ),
            limited_by=limited_by,
        ),
        None if reads is None else reads.of(where(tx, hold.wallet_id, hold.asset)),
    )
    spend.spend(tx, hold, charged.amount)
    budgets.settle(tx, Whose(hold.customer, hold.member), counted_in, charged.amount)
    resolved = _resolved(
        authorization_id, hold, HoldStatus.SETTLED, tx, charge_id, charged.available
    )
    return idem.record(Settlement(authorization=resolved, charge=charged))


def _smaller_cap(by_budgets: int | None, by_limit: int | None) -> tuple[int | None, str]:
    """The most a settle may charge (None: no cap) and what sets it, for a shortfall's
    `limited_by`: the hold's hard budgets, or its spend limit."""
    if by_limit is not None and (by_budgets is None or by_limit < by_budgets):
        return by_limit, "spend_limit"
    return by_budgets, "budget"


def _usage(
    tx: Tx,
    hold: Any,
    amount: int | None,
    quantities: dict[str, Any] | None,
    vendor_cost: Any,
) -> tuple[int, Pricing]:
    """What a settle charges for the hold: a raw amount, or the actual quantities priced by
    the rate card version the hold was authorized with."""
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
        return amount, Pricing(dimensions=hold.dimensions, vendor_cost=cost)
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
    return quote.amount, Pricing.of(card, quote)


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
            "member": getattr(hold, "member", None),
        },
        available,
    )


def release(tx: Tx, hold: Any) -> int:
    """Give a claimed hold's reservation back to the wallet, and to the budgets it counted
    against; returns the new available."""
    after = shift_balance(
        tx, hold.wallet_id, hold.asset, posted=0, held=-hold.amount, debt=0, need=0
    )
    spend.give_back(tx, hold)
    counted_in = getattr(hold, "budgets", None)
    budgets.give_back(tx, hold.wallet_id, hold.asset, counted_in, held=hold.amount)
    return after.available


def void(tx: Tx, *, authorization_id: str, idempotency_key: str | None = None) -> Authorization:
    """Release a pending hold in full: the call did not happen."""
    idem = Idempotent(
        tx, idempotency_key, "authorization.void", {"authorization": authorization_id}
    )
    # The key's lookup and the hold's claim in one round trip, as in `settle`.
    with pipeline(tx.conn):
        found = idem.lookup()
        claimed = _submit_claim(tx, authorization_id, HoldStatus.VOIDED, None)
    if (replayed := idem.replay_found(found, Authorization)) is not None:
        claimed.rows()
        return replayed
    hold = _claim(tx, authorization_id, (HoldStatus.VOIDED, None), idem, claimed)
    if isinstance(hold, Authorization):
        return hold
    available = release(tx, hold)
    return idem.record(_resolved(authorization_id, hold, HoldStatus.VOIDED, tx, None, available))


def charge(tx: Tx, request: ChargeRequest) -> Charge:
    """Authorize and settle in one step: declined, with nothing taken, when the policy says no
    (or, for a member, a hard budget, or the member is not active)."""
    action = check_action(request.action)
    meta = check_metadata(request.metadata)
    check_external_id(request.customer)
    member = _member(request.member)
    wallet_id = tx.wallet_id(request.customer)
    body = {
        "customer": request.customer,
        "asset": request.asset,
        "amount": request.amount,
        "action": action,
        "dimensions": request.dimensions,
        "quantities": request.quantities,
        "vendor_cost": request.vendor_cost,
        "rate_card": request.rate_card,
        "metadata": meta,
    }
    if member is not None:
        body["member"] = member
    idem = Idempotent(tx, request.idempotency_key, "charge.create", body)
    replayed, prefetched, scope = _replay_or_prefetch(tx, idem, wallet_id, request.asset, member)
    if replayed is not None:
        return replayed
    asking = PriceRequest(
        request.asset,
        request.amount,
        action,
        request.dimensions,
        request.quantities,
        request.rate_card,
        request.vendor_cost,
        charging=True,
    )
    priced = price(tx, asking)
    asset, objection = priced.asset, priced.objection
    what = ChargeFor(
        request.customer, new_id("chg"), None, action, meta, priced.pricing, member=member
    )
    if objection is not None and objection.mode == "decline":
        before = read_balance(tx, wallet_id, asset)
        refused = declined(tx, before, priced.amount, what, MARGIN_GUARD, objection.reason)
        return idem.record(refused)
    if scope is not None and scope.refusal is not None:
        before = read_balance(tx, wallet_id, asset)
        return idem.record(declined(tx, before, priced.amount, what, scope.refusal.value))
    counts = None if scope is None else budgets.counted(scope.applying(asset), tx.now)
    ask = DebitAsk(requested=priced.amount, least=priced.need, decline=True)
    usable = prefetched if prefetched is not None and prefetched.asset == asset else None
    result = debit(tx, Debit(wallet_id, asset, ask, what, counts), usable)
    if objection is not None:  # a margin guard in warn mode: charged, with its warning
        result = result.model_copy(update={"warnings": [objection.warning]})
    return idem.record(result)


def _replay_or_prefetch(
    tx: Tx, idem: Idempotent, wallet_id: str, asset: str | None, member: str | None
) -> tuple[Charge | None, SentReads | PendingView | None, Scope | None]:
    """The answer already given under the charge's key, or None and, where it saves a
    round trip, the wallet's rows read with the key's lookup (or known from an earlier
    debit of this transaction); for a call naming a member, what it counts against, read
    in the same round trip."""
    known = pending_view(tx, wallet_id, asset) if isinstance(asset, str) else None
    if member is not None:
        scope = budgets.known_scope(tx, wallet_id, member)
        # A later debit of a combined batch, its member read with an earlier one's: no
        # round trip before the commit, as in `_replay_or_prefetch_rows`.
        if scope is not None and known is not None and idem.key and can_move_at_commit(tx):
            return None, known, scope
        with pipeline(tx.conn):
            found = idem.lookup()
            sent = budgets.submit_scope(tx, wallet_id, member)
            prefetched: SentReads | PendingView | None = known
            if known is None and isinstance(asset, str) and tx.conn.dialect.name == "postgresql":
                prefetched = submit_balance_and_lots(tx, wallet_id, asset)
        replayed = idem.replay_found(found, Charge)
        if replayed is not None:
            sent.rows.rows()
            return replayed, None, None
        return None, prefetched, sent.result()
    replayed, prefetched = _replay_or_prefetch_rows(tx, idem, wallet_id, asset, known)
    return replayed, prefetched, None


def _replay_or_prefetch_rows(
    tx: Tx, idem: Idempotent, wallet_id: str, asset: str | None, known: PendingView | None
) -> tuple[Charge | None, SentReads | PendingView | None]:
    if known is not None and idem.key is not None and can_move_at_commit(tx):
        # A later debit of a combined batch: the rows are known, and its key is new unless
        # its record's insert at the commit conflicts, which runs the batch again carefully,
        # looking every key up (see `Database.run_combined`). No round trip before the commit.
        return None, known
    if isinstance(asset, str) and tx.conn.dialect.name == "postgresql":
        # The key's record and the wallet's rows in one round trip, with the BEGIN.
        with pipeline(tx.conn):
            found = idem.lookup()
            prefetched = submit_balance_and_lots(tx, wallet_id, asset)
        return idem.replay_found(found, Charge), prefetched
    return idem.replay(Charge), None


def get_authorization(tx: Tx, *, authorization_id: str) -> Authorization:
    check_id(authorization_id, "authorization")
    row = holds.read_hold(tx.uow, tx.tenant_id, authorization_id)
    if row is None:
        raise UnknownHold(
            f"authorization {authorization_id!r} does not exist", field="authorization"
        )
    available = balances.read_available(tx.uow, row["wallet_id"], row["asset"])
    return _authorization(row, available)
