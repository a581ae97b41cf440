"""Settling a priced hold without usage: an action the card prices flat needs none."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from tests.http.conftest import Api
from tests.http.test_pricing import CARD, problem


def keyed() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@pytest.fixture
def priced(api: Api) -> Api:
    assert api.post("/v1/rate-cards", {"spec": CARD}, headers=keyed()).status_code == 201
    api.funded_customer("c1", 1_000_000)
    return api


def hold(api: Api, action: str, dimensions: dict[str, str], **extra: Any) -> dict[str, Any]:
    body = {"customer": "c1", "action": action, "dimensions": dimensions, **extra}
    answer = api.post("/v1/authorizations", body, headers=keyed())
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_a_flat_priced_action_settles_with_no_usage(priced: Api) -> None:
    auth = hold(priced, "image.generate", {"quality": "ultra"})
    assert (auth["status"], auth["amount"]) == ("pending", 2_000)
    settled = priced.post(f"/v1/authorizations/{auth['id']}/settle", {}, headers=keyed())
    assert settled.status_code == 200, settled.text
    charge = settled.json()["charge"]
    assert (charge["amount"], charge["shortfall"]) == (2_000, 0)
    assert Decimal(charge["vendor_cost"]) == Decimal("0.30")
    assert charge["rate_card_id"] == auth["rate_card_id"]
    wallet = priced.get("/v1/customers/c1/wallet").json()["balances"][0]
    assert (wallet["held"], wallet["posted"]) == (0, 1_000_000 - 2_000)


def test_an_action_priced_by_usage_is_not_settled_as_if_it_used_nothing(priced: Api) -> None:
    auth = hold(priced, "tts.speak", {"model": "flash"}, quantities={"characters": 100})
    path = f"/v1/authorizations/{auth['id']}/settle"
    refused = priced.post(path, {}, headers=keyed())
    body = problem(refused, 422, "invalid_input", "quantities")
    assert "tts.speak is priced by usage" in body["detail"]
    # Nothing changed: the hold is still pending and settles with its usage.
    assert priced.get(f"/v1/authorizations/{auth['id']}").json()["status"] == "pending"
    settled = priced.post(path, {"quantities": {"characters": 60}}, headers=keyed())
    assert settled.status_code == 200 and settled.json()["charge"]["amount"] == 3_000
