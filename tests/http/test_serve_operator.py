"""The operator's settings on a real `creditgate serve`: private webhook targets refused unless
`--allow-private-webhook-targets`, and the Stripe client pointed by `--stripe-api-base`, in
every worker process and in the background sender."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from creditgate.adapters.outbound import tls_context
from tests.databases import create_database, drop_database
from tests.http.test_serve import Server, start, stop
from tests.stripe_fake import API_KEY, FakeStripe
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def served_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'operator.db'}", []
        return
    postgres_server = str(request.getfixturevalue("postgres_server"))
    name = f"creditgate_operator_{uuid.uuid4().hex[:8]}"
    try:
        yield create_database(postgres_server, name), ["--workers", "2"]
    finally:
        drop_database(postgres_server, name)


def _client(server: Server) -> httpx.Client:
    found = re.search(r"demo API key: (\S+)", server.stdout.read_text())
    assert found is not None, server.log()
    return httpx.Client(
        verify=tls_context(),
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {found.group(1)}"},
    )


def test_serve_keeps_webhooks_off_the_inside_network_unless_the_operator_allows(
    served_db: tuple[str, list[str]], tmp_path: Path
) -> None:
    db, extra = served_db
    receiver, stripe = Receiver(), FakeStripe().start()
    (tmp_path / "closed").mkdir()
    (tmp_path / "open").mkdir()
    try:
        server = start(db, tmp_path / "closed", "--demo", *extra)
        try:
            with _client(server) as api:
                refused = api.post("/v1/webhook-endpoints", json={"url": receiver.url()})
                assert refused.status_code == 422 and refused.json()["field"] == "url"
        finally:
            stop(server)

        switches = ["--allow-private-webhook-targets", "--stripe-api-base", stripe.url]
        server = start(db, tmp_path / "open", "--demo", *extra, *switches)
        try:
            with _client(server) as api:
                created = api.post("/v1/webhook-endpoints", json={"url": receiver.url()})
                assert created.status_code == 201, created.text
                receiver.expect("/hook", created.json()["secret"])
                api.post(f"/v1/webhook-endpoints/{created.json()['id']}/test").raise_for_status()
                deadline = time.monotonic() + 20
                while not receiver.acknowledged() and time.monotonic() < deadline:
                    time.sleep(0.1)
                (got,) = receiver.acknowledged()  # sent by the server's background sender
                assert got.verified

                api.put("/v1/payment-providers/stripe", json={"api_key": API_KEY})
                purchase = {"asset": "USD", "price": "5", "provider": "stripe"}
                purchase["success_url"] = "https://shop.example/ok"
                bought = api.post(
                    "/v1/customers/cust_alice/purchases",
                    json=purchase,
                    headers={"Idempotency-Key": "op-1"},
                )
                assert bought.status_code == 201, bought.text
                assert bought.json()["checkout_url"].startswith("https://checkout.stripe.com")
                assert len(stripe.calls("/v1/checkout/sessions")) == 1
        finally:
            stop(server)
    finally:
        receiver.close()
        stripe.stop()
