"""Steps shared by the use cases that move credit: balance rows, lots, postings, events.

The statements are in storage (`storage.balances`, `storage.lots`, `storage.postings`);
here the transaction's steps decide what follows a move: the balance events it raises and
the auto top-up it fires or re-arms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict, Unpack

from sqlalchemy import Table

from creditgate.domain.balances import (
    WalletBalance,
    crosses,
    depletes,
    low_balance_alert,
    thresholds_crossed,
)
from creditgate.domain.ledger import Entry, is_balanced
from creditgate.domain.lots import LotBalance, held_shares
from creditgate.domain.policy import WalletPolicy
from creditgate.domain.webhooks import EventType
from creditgate.services.context import Tx
from creditgate.services.results import AssetBalance
from creditgate.storage import balances, lots
from creditgate.storage.balances import SentReads, Where
from creditgate.storage.postings import (
    Event,
    Posting,
    write_dispatched_event,
    write_event,
    write_events_once,
    write_posting,
)
from creditgate.storage.unit_of_work import Deferred, PendingView

LOT_WINDOW = lots.LOT_WINDOW


def where(tx: Tx, wallet_id: str, asset: str) -> Where:
    return Where(tx.tenant_id, wallet_id, asset, tx.now)


def lock_balance(tx: Tx, wallet_id: str, asset: str, *, create: bool = True) -> WalletBalance:
    """Lock the wallet's balance row for this asset; every credit movement takes it first."""
    return balances.lock_balance(tx.uow, where(tx, wallet_id, asset), create=create)


def read_balance(tx: Tx, wallet_id: str, asset: str) -> WalletBalance:
    """Read a balance row without locking it (see `shift_balance`)."""
    return balances.read_balance(tx.uow, where(tx, wallet_id, asset))


def read_balance_and_lots(
    tx: Tx, wallet_id: str, asset: str
) -> tuple[WalletBalance, list[LotBalance]]:
    """The balance row and the first `LOT_WINDOW` open lots in burn order, unlocked, in one
    round trip where the driver can (`storage.balances.read_balance_and_lots`)."""
    return balances.read_balance_and_lots(tx.uow, where(tx, wallet_id, asset))


def submit_balance_and_lots(tx: Tx, wallet_id: str, asset: str) -> SentReads:
    """`read_balance_and_lots` sent inside a caller's pipeline; `result()` once it is over."""
    return balances.submit_balance_and_lots(tx.uow, where(tx, wallet_id, asset))


def pending_view(tx: Tx, wallet_id: str, asset: str) -> PendingView | None:
    """The rows as an earlier debit of this transaction will leave them
    (`storage.balances.pending_view`)."""
    return balances.pending_view(tx.uow, wallet_id, asset)


def open_lots(tx: Tx, wallet_id: str, asset: str) -> list[LotBalance]:
    return lots.open_lots(tx.uow, wallet_id, asset)


def held_lot_shares(tx: Tx, wallet_id: str, asset: str, held: int) -> dict[str, int]:
    """`domain.lots.held_shares` of the wallet's open lots: which lots the open holds will
    draw on. The holds draw on a prefix of the plain burn order, so the first lots are read,
    and every lot only when those do not cover `held`."""
    if held <= 0:
        return {}
    found = lots.plain_first_lots(tx.uow, wallet_id, asset)
    if len(found) == LOT_WINDOW and sum(lot.remaining for lot in found) < held:
        found = open_lots(tx, wallet_id, asset)
    return held_shares(found, held)


class Move(TypedDict):
    """A conditional move of a balance row (see `storage.balances.Move`)."""

    posted: int
    held: int
    debt: int
    need: int
    draws: NotRequired[Sequence[tuple[str, int]]]


def move_balance(tx: Tx, wallet_id: str, asset: str, **move: Unpack[Move]) -> WalletBalance:
    """Take `draws` from their lots and move the balance row by deltas, conditionally
    (`storage.balances.move_balance`); the row as moved, for `after_move`."""
    planned = balances.Move(
        move["posted"], move["held"], move["debt"], move["need"], move.get("draws", ())
    )
    return balances.move_balance(tx.uow, where(tx, wallet_id, asset), planned)


def shift_balance(tx: Tx, wallet_id: str, asset: str, **move: Unpack[Move]) -> WalletBalance:
    """`move_balance`, then the events and auto top-up its move causes (`after_move`)."""
    moved = move_balance(tx, wallet_id, asset, **move)
    return after_move(tx, moved, move["posted"] - move["held"])


def can_move_at_commit(tx: Tx) -> bool:
    """Whether this transaction may send its balance move with the commit (`move_at_commit`):
    on PostgreSQL, unless an earlier attempt's guard missed."""
    return tx.uow.moves_at_commit


def move_at_commit(
    tx: Tx,
    wallet_id: str,
    asset: str,
    move: balances.Move,
    *,
    planned_from: PendingView | None = None,
) -> Deferred:
    """`shift_balance`, sent with the commit and guarded (`storage.balances.move_at_commit`):
    the move must need no reaction, so `after_move` has nothing to do."""
    return balances.move_at_commit(
        tx.uow, where(tx, wallet_id, asset), move, planned_from=planned_from
    )


def after_move(tx: Tx, moved: WalletBalance, change: int) -> WalletBalance:
    """Raise the balance events a conditional move caused, given the row as it left it, and
    re-arm or fire the wallet's auto top-up if the move crossed its threshold.

    `change` is what the move added to `available`. `balance.low` fires once per crossing:
    of several concurrent movers, only the one that flips the row's alert flag raises it;
    `balance.threshold_crossed` once for each alert threshold the move falls below (the row
    as moved is locked by the move, so its before and after are exact).
    Not inside a `pipeline`: the auto top-up reads as it goes.
    """
    wallet_id, asset, policy = moved.wallet_id, moved.asset, moved.policy
    after = moved.available
    low, alerted = low_balance_alert(policy, after, moved.low_balance_alerted)
    if alerted != moved.low_balance_alerted:
        flipped = balances.flip_alert(tx.uow, wallet_id, asset, alerted=alerted)
        low = low and flipped
    _balance_events(tx, moved, policy, after - change, low)
    threshold = moved.top_up_threshold
    if threshold is not None and crosses(threshold, after - change, after):
        tx.reactions.threshold_crossed(tx, wallet_id, asset, rising=after >= threshold)
    return WalletBalance(
        wallet_id,
        asset,
        moved.posted,
        moved.held,
        moved.debt,
        policy,
        alerted,
        threshold,
        moved.thresholds,
        moved.budgeted,
    )


def _balance_events(
    tx: Tx, moved: WalletBalance, policy: WalletPolicy, before: int, low: bool
) -> None:
    after = moved.available
    if low:
        emit(
            tx,
            EventType.BALANCE_LOW,
            moved.wallet_id,
            {"asset": moved.asset, "available": after, "threshold": policy.low_balance_threshold},
        )
    if depletes(before, after):
        emit(
            tx,
            EventType.BALANCE_DEPLETED,
            moved.wallet_id,
            {"asset": moved.asset, "available": after},
        )
    if policy.soft_cap_reached(before, after):
        emit(
            tx,
            EventType.BALANCE_SOFT_CAP_REACHED,
            moved.wallet_id,
            {"asset": moved.asset, "available": after, "limit": policy.overdraft_limit},
        )
    for threshold in thresholds_crossed(moved.thresholds, before, after):
        emit(
            tx,
            EventType.BALANCE_THRESHOLD_CROSSED,
            moved.wallet_id,
            {"asset": moved.asset, "threshold": threshold, "available": after},
        )


def post(
    tx: Tx,
    *,
    wallet_id: str,
    asset: str,
    kind: str,
    entries: Sequence[Entry],
    reference_id: str | None,
    at_commit: bool = False,
    with_row: tuple[Table, dict[str, Any]] | None = None,
    member: str | None = None,
) -> str:
    """Write one balanced ledger transaction (now, or with the commit), recording the member
    whose call it is, if any.

    With the commit, `with_row` (a table and a row: the charge the posting is for) is
    written by the same statement."""
    if not is_balanced(entries):
        raise AssertionError(f"unbalanced ledger transaction: {entries}")
    posting = Posting(tx.tenant_id, wallet_id, asset, kind, entries, reference_id, tx.now, member)
    return write_posting(tx.uow, posting, at_commit=at_commit, with_row=with_row)


def emit(
    tx: Tx,
    event_type: EventType,
    wallet_id: str | None,
    payload: dict[str, Any],
    *,
    at_commit: bool = False,
    only_to_its_caller: bool = False,
) -> str:
    """Write an event to the outbox in the same transaction as its cause (now, or with the
    commit when the cause's own writes go with it); its id. Every event creditgate raises
    goes through here or `emit_once`, named by `EventType`. `only_to_its_caller`: written
    as already fanned out, for an event the caller delivers to one endpoint itself."""
    event = Event(tx.tenant_id, _checked(event_type), wallet_id, payload, tx.now)
    if only_to_its_caller:
        return write_dispatched_event(tx.uow, event)
    return write_event(tx.uow, event, at_commit=at_commit)


def emit_once(
    tx: Tx, event_type: EventType, announced: Sequence[tuple[str, str | None, dict[str, Any]]]
) -> int:
    """Events whose ids say what they announce, `(id, wallet, payload)`: one event per id,
    however many processes announce it at once; how many were new."""
    kind = _checked(event_type)
    batch = [Event(tx.tenant_id, kind, w, payload, tx.now, id=i) for i, w, payload in announced]
    return write_events_once(tx.uow, batch)


def _checked(event_type: EventType) -> EventType:
    if not isinstance(event_type, EventType):
        raise TypeError(f"an event type is an EventType, not {event_type!r}")
    return event_type


def balance_result(asset: str, scale: int, row: Any) -> AssetBalance:
    return AssetBalance(
        asset=asset,
        scale=scale,
        posted=row.posted,
        held=row.held,
        available=row.posted - row.held,
        debt=row.debt,
        policy=row.policy,
        overdraft_limit=row.overdraft_limit,
        low_balance_threshold=row.low_balance_threshold,
        thresholds=list(row.thresholds or ()),
    )
