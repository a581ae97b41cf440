"""Purchases waiting for a slow Stripe leave the gate, and the rest of the API, their threads.

The edge runs the gate's calls on threads of its own, as many per process as it has
database connections on PostgreSQL; every other blocking route, and a key not cached yet,
runs on anyio's threads, as many again. A purchase with Stripe waits for Stripe's Checkout
Session, however long Stripe takes. On either set of threads, as many slow purchases as it
has threads would keep the process's authorizations waiting. Purchases run under a limit of
their own instead (`http/threads.py` `waiting_on_a_provider`).

On SQLite the threads outnumber the requests the in-flight limit lets in, so there the gate
keeps a thread by construction; on PostgreSQL this fails if purchases take either set. Every
other route that may wait for a provider is checked to wait for room under the same limit."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import anyio
from fastapi.testclient import TestClient

from creditgate.api import Creditgate
from creditgate.server.app import Settings, create_app
from tests.http.conftest import Api, new_api
from tests.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe

# Long enough that the first key stays cached, so its authorization is served by the edge.
SETTINGS = Settings(key_cache_seconds=600)


def _answered_meanwhile(api: Api, customer: str) -> Any:
    """An authorization's answer, or None when it is still waiting after 30 s."""
    answered: list[Any] = []

    def authorize() -> None:
        hold = {"customer": customer, "asset": "credits", "amount": 100}
        answered.append(api.post("/v1/authorizations", hold))

    gate = threading.Thread(target=authorize, daemon=True)
    gate.start()
    gate.join(timeout=30)
    return answered[0] if answered else None


def test_purchases_waiting_for_stripe_leave_the_gate_its_threads(
    cg: Creditgate, fake_stripe: FakeStripe
) -> None:
    with TestClient(create_app(cg, SETTINGS)) as client:
        api = new_api(cg, client)
        stripe = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
        assert api.put("/v1/payment-providers/stripe", stripe).status_code == 200
        pack = {"code": "starter", "asset": "credits", "amount": 10_000, "price": "25.00"}
        assert api.post("/v1/packs", pack).status_code == 201
        customer = api.funded_customer("c1", 10_000)
        app: Any = client.app
        assert app.state.in_flight.count == 0
        # As many slow purchases as either set of threads has (10 on PostgreSQL, one per
        # pooled connection), leaving room within the in-flight limit for new work.
        slow = min(app.state.gateway.threads.size, app.state.in_flight.new_work_limit - 1)
        fake_stripe.hold = threading.Event()
        bought: list[Any] = []

        def buy() -> None:
            body = {"pack": "starter", "provider": "stripe", "success_url": "https://x.io/ok"}
            key = {"Idempotency-Key": uuid.uuid4().hex}
            bought.append(api.post(f"/v1/customers/{customer}/purchases", body, headers=key))

        buyers = [threading.Thread(target=buy, daemon=True) for _ in range(slow)]
        try:
            for buyer in buyers:
                buyer.start()
            deadline = time.monotonic() + 60
            while fake_stripe.arrived < slow:  # every purchase is waiting for Stripe
                assert time.monotonic() < deadline, (fake_stripe.arrived, slow, bought)
                time.sleep(0.01)

            # A key found in the cache: the edge serves it, on the gate's threads.
            at_the_edge = _answered_meanwhile(api, customer)
            # A key not cached yet: FastAPI's stack loads it and serves the call, on anyio's.
            fresh = api.ledger.create_api_key("fresh").key
            assert fresh is not None
            through_the_stack = _answered_meanwhile(Api(client, fresh, api.ledger), customer)

            assert at_the_edge is not None, f"waited behind {slow} purchases waiting for Stripe"
            assert through_the_stack is not None, f"waited behind {slow} purchases (new key)"
            assert fake_stripe.arrived == slow  # none answered meanwhile
        finally:
            fake_stripe.hold.set()
            for buyer in buyers:
                buyer.join(timeout=120)
    for answer in (at_the_edge, through_the_stack):
        assert answer.status_code == 201, answer.text
        assert answer.json()["approved"]
    assert [r.status_code for r in bought] == [201] * slow, [r.text for r in bought]


# Each route that may wait for a provider, with a request its endpoint runs (answered 2xx or
# refused by the ledger, either way after the endpoint has run under the provider calls'
# limit).
PROVIDER_ROUTES = {
    "buy": ("/v1/customers/nobody/purchases", {"pack": "p"}, 404),
    "refund a purchase": (
        "/v1/purchases/pur_00000000000000000000000000/refunds",
        {"reason": "requested_by_customer"},
        404,
    ),
    "create a plan": (
        "/v1/plans",
        {"code": "pro", "asset": "credits", "included": 1_000, "fee": "10"},
        201,
    ),
    "subscribe": ("/v1/customers/nobody/subscriptions", {"plan": "pro"}, 404),
    "advance a test clock": ("/v1/test-clock/advance", {"to": "2099-01-01T00:00:00Z"}, 403),
}


def test_every_route_that_may_wait_for_a_provider_runs_under_its_limit(cg: Creditgate) -> None:
    with TestClient(create_app(cg, SETTINGS)) as client:
        api = new_api(cg, client)
        app: Any = client.app
        portal: Any = client.portal
        limiter = app.state.provider_calls = anyio.CapacityLimiter(1)
        holder = object()
        for name, (path, body, status) in PROVIDER_ROUTES.items():
            portal.call(limiter.acquire_on_behalf_of_nowait, holder)  # the limit is full
            answered: list[Any] = []

            def send(
                path: str = path, body: dict[str, Any] = body, answered: list[Any] = answered
            ) -> None:
                key = {"Idempotency-Key": uuid.uuid4().hex}
                answered.append(api.post(path, body, headers=key))

            caller = threading.Thread(target=send, daemon=True)
            caller.start()
            caller.join(timeout=1.0)
            assert not answered, f"{name}: answered while the provider calls' limit was full"
            portal.call(limiter.release_on_behalf_of, holder)
            caller.join(timeout=30)
            assert answered, f"{name}: not answered once the limit had room"
            assert answered[0].status_code == status, (name, answered[0].text)
