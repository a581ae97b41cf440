"""Purchases marked paid or failed by many callers at once, over HTTP: each caller gets the
answer a caller coming after them would get, and the credit is granted once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from creditgate.services.billing import purchases
from creditgate.services.billing.requests import PurchaseOrder
from tests.http.conftest import Api
from tests.integration.test_plans import events_of
from tests.stripe_fake import API_KEY, WEBHOOK_SECRET, event, sign

CALLERS = 8


def at_once(call: Callable[[int], Any], times: int = CALLERS) -> list[Any]:
    """`call(n)` for n in range(times), from as many threads released together."""
    barrier = threading.Barrier(times)
    answers: list[Any] = [None] * times

    def run(n: int) -> None:
        barrier.wait()
        answers[n] = call(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.fixture
def invoice(api: Api) -> str:
    """A pending manual purchase of 10,000 credits for $25."""
    pack = {"code": "starter", "asset": "credits", "amount": 10_000, "price": "25.00"}
    assert api.post("/v1/packs", pack, headers={"Idempotency-Key": "pack"}).status_code == 201
    assert api.post("/v1/customers", {"id": "c1"}).status_code == 201
    bought = api.post(
        "/v1/customers/c1/purchases",
        {"pack": "starter", "provider": "manual"},
        headers={"Idempotency-Key": "buy"},
    )
    assert bought.status_code == 201, bought.text
    return str(bought.json()["id"])


def posted(api: Api) -> int:
    balances = api.get("/v1/customers/c1/wallet").json()["balances"]
    return sum(b["posted"] for b in balances if b["asset"] == "credits")


def mark(api: Api, purchase: str, verb: str, key: str) -> Any:
    body = {"reason": "bounced"} if verb == "mark-failed" else None
    return api.post(f"/v1/purchases/{purchase}/{verb}", body, headers={"Idempotency-Key": key})


def test_every_concurrent_mark_paid_answers_the_paid_purchase(api: Api, invoice: str) -> None:
    answers = at_once(lambda n: mark(api, invoice, "mark-paid", f"pay-{n}"))
    assert [a.status_code for a in answers] == [200] * CALLERS, [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert {b["status"] for b in bodies} == {"paid"}
    assert len({b["lot_id"] for b in bodies}) == 1  # every caller names the one lot granted
    assert posted(api) == 10_000
    assert len(events_of(api.ledger, "topup.succeeded")) == 1
    # As a caller coming after them all is answered.
    later = mark(api, invoice, "mark-paid", "pay-later")
    assert later.status_code == 200 and later.json() == bodies[0]


def test_concurrent_mark_failed_answers_name_the_purchase_as_it_ended(
    api: Api, invoice: str
) -> None:
    answers = at_once(lambda n: mark(api, invoice, "mark-failed", f"fail-{n}"))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * (CALLERS - 1), [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        problem = refused.json()
        assert problem["code"] == "purchase_not_pending"
        assert problem["detail"] == f"purchase {invoice} is failed"  # never "is pending"
    assert len(events_of(api.ledger, "topup.failed")) == 1
    later = mark(api, invoice, "mark-failed", "fail-later")
    assert later.status_code == 409 and later.json()["detail"] == f"purchase {invoice} is failed"


def test_mark_paid_and_mark_failed_at_once_answer_the_final_status(api: Api, invoice: str) -> None:
    answers = at_once(
        lambda n: mark(api, invoice, "mark-paid" if n % 2 else "mark-failed", f"k-{n}")
    )
    final = api.get(f"/v1/purchases/{invoice}").json()
    assert final["status"] == "paid"  # a failed invoice may still be paid; paid is final
    assert posted(api) == 10_000
    for n, answer in enumerate(answers):
        if n % 2:
            assert answer.status_code == 200 and answer.json() == final, answer.text
        elif answer.status_code != 200:
            # Failing it came after another call: told how that left it, never "pending".
            assert answer.status_code == 409, answer.text
            assert answer.json()["detail"] in {
                f"purchase {invoice} is paid",
                f"purchase {invoice} is failed",
            }


def test_concurrent_stripe_events_complete_once_and_say_so(api: Api) -> None:
    settings = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
    assert api.put("/v1/payment-providers/stripe", settings).status_code == 200
    pack = {"code": "starter", "asset": "credits", "amount": 10_000, "price": "25.00"}
    assert api.post("/v1/packs", pack, headers={"Idempotency-Key": "pack"}).status_code == 201
    assert api.post("/v1/customers", {"id": "c1"}).status_code == 201
    order = PurchaseOrder(customer="c1", pack="starter", provider="stripe", origin="api")
    started = api.ledger._run(purchases.start_purchase, order=order)
    bodies = [
        event(
            "payment_intent_succeeded" if n % 2 else "checkout_session_completed",
            purchase=started.id,
            tenant=api.tenant_id,
            event_id=f"evt_race_{n}",
        )
        for n in range(CALLERS)
    ]

    def deliver(n: int) -> Any:
        headers = {"Content-Type": "application/json", "Stripe-Signature": sign(bodies[n])}
        return api.client.post("/v1/providers/stripe/webhook", content=bodies[n], headers=headers)

    answers = at_once(deliver)
    assert [a.status_code for a in answers] == [200] * CALLERS, [a.text for a in answers]
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["already_paid"] * (CALLERS - 1) + ["completed"]
    assert api.get(f"/v1/purchases/{started.id}").json()["status"] == "paid"
    assert posted(api) == 10_000
    assert len(events_of(api.ledger, "topup.succeeded")) == 1
