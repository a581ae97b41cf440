"""The balance known only at the commit: its placeholder and where it is filled in.

A debit or hold sent with the commit (`storage.balances.move_at_commit`) learns the balance
row's new values only once the commit has run. The answer built before then carries
`AVAILABLE_PENDING` as its `available`, and this module fills it in twice:

- in the idempotency record written with the same commit (`record`), by SQL that takes
  `available` from the balance row after the move, in the same transaction;
- in the answer returned to the caller, after the commit (`await_available`), from the row
  the move returned.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel
from sqlalchemy import String, Text, bindparam, cast, func, insert, literal, select

from creditgate.storage.prepared import Prepared
from creditgate.storage.tables import idempotency_keys, wallet_balances
from creditgate.storage.types import UtcDateTime
from creditgate.storage.unit_of_work import Deferred, UnitOfWork

M = TypeVar("M", bound=BaseModel)

# An answer's `available` until the move sent with the commit has run. No balance reaches it
# (balances stay within ±MAX_BALANCE, far inside it).
AVAILABLE_PENDING = -(2**62) - 4_242
_PENDING_JSON = f'"available":{AVAILABLE_PENDING}'

_SAVE_KEY_FILLED = Prepared(
    insert(idempotency_keys).from_select(
        ["tenant_id", "key", "operation", "request_hash", "response", "created_at"],
        select(
            bindparam("tenant_id", type_=String),
            bindparam("key", type_=String),
            bindparam("operation", type_=String),
            bindparam("request_hash", type_=String),
            func.replace(
                bindparam("response", type_=Text),
                _PENDING_JSON,
                literal('"available":', Text)
                + cast(wallet_balances.c.posted - wallet_balances.c.held, Text),
            ),
            bindparam("created_at", type_=UtcDateTime()),
        ).where(
            wallet_balances.c.wallet_id == bindparam("w"),
            wallet_balances.c.asset == bindparam("a"),
        ),
    )
)


def await_available(uow: UnitOfWork, wallet_id: str, asset: str, moved: Deferred) -> int:
    """Mark the current unit's answer as showing the balance `moved` (a deferred move of
    that wallet's row, returning its posted and held) leaves: returns the placeholder to
    put in the answer, which is filled in after the commit and in its idempotency record."""
    uow.available_at_commit = (wallet_id, asset)
    uow.after_commit(lambda result: fill_available(result, moved.row.posted - moved.row.held))
    return AVAILABLE_PENDING


def record(uow: UnitOfWork, params: dict[str, Any]) -> bool:
    """Write an idempotency record (`params`: its row) whose response shows the placeholder,
    with `available` taken from the balance row at the commit. False, writing nothing, when
    the current unit's answer waits on no balance."""
    pending = uow.available_at_commit
    if pending is None or _PENDING_JSON not in params["response"]:
        return False
    wallet_id, asset = pending
    uow.defer(_SAVE_KEY_FILLED, {**params, "w": wallet_id, "a": asset})
    return True


def fill_available(result: M, available: int) -> M:
    """The answer with the placeholder `available` replaced by the real one, wherever one of
    its models carries it (a settlement carries its authorization and its charge)."""
    has_available, nested = _carriers(type(result))
    update: dict[str, Any] = {}
    if has_available and getattr(result, "available", None) == AVAILABLE_PENDING:
        update["available"] = available
    for name in nested:
        value = getattr(result, name)
        if isinstance(value, BaseModel):
            filled = fill_available(value, available)
            if filled is not value:
                update[name] = filled
    return result.model_copy(update=update) if update else result


# Per answer model: whether it has an `available` field, and which of its fields may hold a
# model (one that may carry its own `available`), from the fields' declared types.
_CARRIERS: dict[type[BaseModel], tuple[bool, tuple[str, ...]]] = {}


def _carriers(model: type[BaseModel]) -> tuple[bool, tuple[str, ...]]:
    found = _CARRIERS.get(model)
    if found is None:
        fields = model.model_fields
        nested = tuple(name for name, f in fields.items() if _may_hold_a_model(f.annotation))
        found = _CARRIERS[model] = ("available" in fields, nested)
    return found


def _may_hold_a_model(annotation: Any) -> bool:
    """A model, an optional one or a union naming one (annotated or not), or anything (`Any`,
    `object`, a type variable); not a list or a dict of them, which the placeholder is never
    put in. When in doubt, the field is visited: visiting one too many costs a `getattr`."""
    if annotation is Any or annotation is object or isinstance(annotation, TypeVar):
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel)
    origin = get_origin(annotation)
    if origin is Annotated:
        return _may_hold_a_model(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return any(_may_hold_a_model(arg) for arg in get_args(annotation))
    return False
