"""Every request that moves money or creates a billable object carries an Idempotency-Key:
one per logical call, generated unless the caller gives one, the same on every retry."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import creditgate_sdk as sdk
from creditgate_sdk import AsyncClient, ChargeEvent, Client
from tests.sdk.fakes import FakeCreditgate

# Each write, called on a client (sync or async) with a pending hold's id to act on.
WRITES: dict[str, Callable[..., Any]] = {
    "authorize": lambda c, hold, **k: c.authorize("cust_42", "credits", 10, **k),
    "settle": lambda c, hold, **k: c.settle(hold, 5, **k),
    "void": lambda c, hold, **k: c.void(hold, **k),
    "charge": lambda c, hold, **k: c.charge("cust_42", "credits", 5, **k),
    "charge_batch": lambda c, hold, **k: c.charge_batch(
        [ChargeEvent(customer="cust_42", asset="credits", amount=5)], **k
    ),
    "grant": lambda c, hold, **k: c.grant("cust_42", "credits", 500, kind="promotional", **k),
    "void_grant": lambda c, hold, **k: c.void_grant("lot_1", reason="typo", **k),
    "refund_charge": lambda c, hold, **k: c.refund_charge("chg_1", "failed call", **k),
    "create_purchase": lambda c, hold, **k: c.create_purchase("cust_42", pack="starter", **k),
    "mark_purchase_paid": lambda c, hold, **k: c.mark_purchase_paid("pur_1", **k),
    "mark_purchase_failed": lambda c, hold, **k: c.mark_purchase_failed("pur_1", **k),
    "refund_purchase": lambda c, hold, **k: c.refund_purchase("pur_1", "duplicate", **k),
    "create_asset": lambda c, hold, **k: c.create_asset("gems", 0, **k),
    "create_customer": lambda c, hold, **k: c.create_customer("cust_7", **k),
    "set_policy": lambda c, hold, **k: c.set_policy("cust_42", "credits", "block", **k),
    "publish_rate_card": lambda c, hold, **k: c.publish_rate_card({"asset": "credits"}, **k),
    "set_model_price": lambda c, hold, **k: c.set_model_price(
        "gpt-4.1", input_mtok=2, output_mtok=8, **k
    ),
    "create_member": lambda c, hold, **k: c.create_member("cust_42", "alice", **k),
    "update_member": lambda c, hold, **k: c.update_member("cust_42", "alice", active=False, **k),
    "set_budget": lambda c, hold, **k: c.set_budget("cust_42", "credits", 100, period="day", **k),
    "create_gateway_key": lambda c, hold, **k: c.create_gateway_key("cust_42", **k),
    "mark_invoice_paid": lambda c, hold, **k: c.mark_invoice_paid("inv_1", **k),
    "mark_invoice_failed": lambda c, hold, **k: c.mark_invoice_failed("inv_1", **k),
    "advance_test_clock": lambda c, hold, **k: c.advance_test_clock(
        datetime(2027, 1, 1, tzinfo=UTC), **k
    ),
}
# What moves money or creates a billable object, by the API's routes.
MONEY = {
    "authorize",
    "settle",
    "void",
    "charge",
    "charge_batch",
    "grant",
    "void_grant",
    "refund_charge",
    "create_purchase",
    "mark_purchase_paid",
    "mark_purchase_failed",
    "refund_purchase",
    "mark_invoice_paid",
    "mark_invoice_failed",
}
# The fake answers only the gate's routes; other writes end in its 404, and a second settle
# or void of one hold in a conflict. Only the requests matter here.
ANSWERED_OR_NOT = (sdk.NotFound, sdk.Conflict)
FAILURES = (503, httpx.ConnectError("refused"))


def keyed_methods(cls: type[Any]) -> set[str]:
    return {
        name
        for name, method in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and "idempotency_key" in inspect.signature(method).parameters
    }


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_every_method_that_takes_a_key_is_checked_here(cls: type[Any]) -> None:
    # The guard's key is checked below: its settle and void keys derive from it.
    assert keyed_methods(cls) - {"guard"} == set(WRITES)
    assert set(WRITES) >= MONEY


def key_of(requests: list[httpx.Request]) -> str:
    keys = {r.headers.get("idempotency-key") for r in requests}
    assert len(keys) == 1, keys
    (key,) = keys
    assert key is not None
    return key


@pytest.mark.parametrize("method", sorted(WRITES))
def test_a_write_sends_one_key_per_call_and_the_same_on_every_retry(
    method: str, cg: Client, fake: FakeCreditgate
) -> None:
    call = WRITES[method]
    hold = cg.authorize("cust_42", "credits", 100).id
    seen = len(fake.requests)
    fake.fail_with = list(FAILURES)
    with contextlib.suppress(*ANSWERED_OR_NOT):
        call(cg, hold)
    retried = fake.requests[seen:]
    assert len(retried) == 3  # a 503, a refused connection, then the answer
    first = key_of(retried)
    assert len(first) >= 32  # generated: a UUID

    seen = len(fake.requests)
    with contextlib.suppress(*ANSWERED_OR_NOT):
        call(cg, hold)
    assert key_of(fake.requests[seen:]) != first  # another call, another key

    seen = len(fake.requests)
    fake.fail_with = [503]
    with contextlib.suppress(*ANSWERED_OR_NOT):
        call(cg, hold, idempotency_key=f"mine-{method}")
    assert key_of(fake.requests[seen:]) == f"mine-{method}"
    assert len(fake.requests) - seen == 2


@pytest.mark.anyio
@pytest.mark.parametrize("method", sorted(WRITES))
async def test_an_async_write_keeps_its_key_on_every_retry(
    method: str, acg: AsyncClient, fake: FakeCreditgate
) -> None:
    hold = (await acg.authorize("cust_42", "credits", 100)).id
    seen = len(fake.requests)
    fake.fail_with = list(FAILURES)
    with contextlib.suppress(*ANSWERED_OR_NOT):
        await WRITES[method](acg, hold)
    assert len(fake.requests) - seen == 3
    assert len(key_of(fake.requests[seen:])) >= 32


def test_a_guards_settle_and_void_keys_derive_from_its_one_key_and_survive_retries(
    cg: Client, fake: FakeCreditgate
) -> None:
    with cg.guard("cust_42", "chat.completion", amount=600) as g:
        fake.fail_with = list(FAILURES)
        g.settle(amount=500)
    with cg.guard("cust_42", "chat.completion", amount=600):
        fake.fail_with = list(FAILURES)
    settled, voided = (
        fake.calls("POST", r"/v1/authorizations/.*/settle"),
        fake.calls("POST", r"/v1/authorizations/.*/void"),
    )
    first, second = (r.headers["idempotency-key"] for r in fake.calls("POST", "/v1/authorizations"))
    assert first != second
    assert key_of(settled) == f"{first}:settle" and len(settled) == 3
    assert key_of(voided) == f"{second}:void" and len(voided) == 3
