"""Purchases waiting for a slow Stripe leave the gate its threads.

The edge runs the gate's calls on threads of its own, as many per process as it has
database connections on PostgreSQL. A purchase with Stripe waits for Stripe's Checkout
Session, however long Stripe takes; if it waited on one of those threads, as many slow
purchases as there are threads would keep every authorization of the process waiting too.
Purchases run on anyio's threads instead, through FastAPI's stack.

On SQLite the edge has more threads than the in-flight limit lets requests in, so there the
gate keeps a thread by construction; on PostgreSQL this fails if purchases go to the edge."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from creditgate.api import Creditgate
from creditgate.server.app import Settings
from tests.http.conftest import new_api, shared_client
from tests.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe

# Long enough that the key is still cached when the authorization comes: one found in the
# cache is served by the edge, which is what this is about.
SETTINGS = Settings(key_cache_seconds=600)


def test_purchases_waiting_for_stripe_leave_the_gate_its_threads(
    cg: Creditgate, db_url: str, fake_stripe: FakeStripe
) -> None:
    client = shared_client(cg, db_url, SETTINGS)
    api = new_api(cg, client)
    stripe = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
    assert api.put("/v1/payment-providers/stripe", stripe).status_code == 200
    pack = {"code": "starter", "asset": "credits", "amount": 10_000, "price": "25.00"}
    assert api.post("/v1/packs", pack).status_code == 201
    customer = api.funded_customer("c1", 10_000)
    # As many slow purchases as the edge has threads (10 on PostgreSQL, one per pooled
    # connection), leaving room within the in-flight limit for one more piece of new work.
    app: Any = client.app
    slow = min(app.state.gateway.threads.size, app.state.in_flight.new_work_limit - 1)
    fake_stripe.hold = threading.Event()
    bought: list[Any] = []

    def buy() -> None:
        body = {"pack": "starter", "provider": "stripe", "success_url": "https://example.com/ok"}
        key = {"Idempotency-Key": uuid.uuid4().hex}
        bought.append(api.post(f"/v1/customers/{customer}/purchases", body, headers=key))

    buyers = [threading.Thread(target=buy) for _ in range(slow)]
    answered: list[Any] = []
    try:
        for buyer in buyers:
            buyer.start()
        deadline = time.monotonic() + 60
        while fake_stripe.arrived < slow:  # every purchase is waiting for Stripe
            assert time.monotonic() < deadline, (fake_stripe.arrived, slow, bought)
            time.sleep(0.01)

        def authorize() -> None:
            hold = {"customer": customer, "asset": "credits", "amount": 100}
            answered.append(api.post("/v1/authorizations", hold))

        gate = threading.Thread(target=authorize)
        gate.start()
        gate.join(timeout=30)
        # Answered while every purchase still waits for Stripe.
        assert answered, f"the authorization waited behind {slow} purchases waiting for Stripe"
        assert fake_stripe.arrived == slow
    finally:
        fake_stripe.hold.set()
        for buyer in buyers:
            buyer.join(timeout=60)
    assert answered[0].status_code == 201, answered[0].text
    assert answered[0].json()["approved"]
    assert [r.status_code for r in bought] == [201] * slow, [r.text for r in bought]
