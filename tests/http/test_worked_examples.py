"""The worked examples of docs/examples.md against a live `creditgate serve`, over HTTP as an
integrator calls it: each card is read from the page, published, and its stated outcome checked
on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from creditgate.adapters.outbound import tls_context
from tests.sdk import test_sdk_live as sdk_live
from tests.sdk.test_sdk_live import Live

live = sdk_live.live

PAGE = Path(__file__).resolve().parents[2] / "docs" / "examples.md"


def card(name: str) -> dict[str, Any]:
    """The card of one example, as the page shows it."""
    blocks = re.findall(r"```yaml\n# example: (\w+)\n(.*?)```", PAGE.read_text(), re.S)
    found = {label: yaml.safe_load(body) for label, body in blocks}
    assert set(found) == {"images", "speech", "complexity", "ratio", "pool"}
    return found[name]


class Integrator:
    """One tenant's backend calling the API, a fresh idempotency key per logical call."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def post(self, path: str, body: dict[str, Any], timeout: float = 30) -> httpx.Response:
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        return self.http.post(path, json=body, headers=headers, timeout=timeout)

    def publish(self, example: str) -> str:
        name = f"{example}-{uuid.uuid4().hex[:6]}"
        answer = self.post("/v1/rate-cards", {"spec": card(example), "name": name})
        assert answer.status_code == 201, answer.text
        assert answer.json()["warnings"] == []
        return name

    def customer(self, asset: str, amount: int, cost_basis: str = "0") -> str:
        customer = f"cust_{uuid.uuid4().hex[:10]}"
        assert self.post("/v1/customers", {"id": customer}).status_code == 201
        kind = "purchased" if Decimal(cost_basis) else "promotional"
        grant = {"asset": asset, "amount": amount, "kind": kind, "cost_basis": cost_basis}
        answer = self.post(f"/v1/customers/{customer}/grants", grant)
        assert answer.status_code == 201, answer.text
        return customer

    def charge(self, customer: str, card_name: str, action: str, **usage: Any) -> dict[str, Any]:
        body = {"customer": customer, "action": action, "rate_card": card_name, **usage}
        answer = self.post("/v1/charges", body)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def available(self, customer: str, asset: str) -> int:
        wallet = self.http.get(f"/v1/customers/{customer}/wallet").json()
        (balance,) = [b for b in wallet["balances"] if b["asset"] == asset]
        return int(balance["available"])


@pytest.fixture
def api(live: Live) -> Iterator[Integrator]:
    headers = {"Authorization": f"Bearer {live.api_key}"}
    with httpx.Client(
        verify=tls_context(), base_url=live.base_url, headers=headers, timeout=30
    ) as http:
        yield Integrator(http)


def test_images_cost_1_standard_and_20_ultra(api: Integrator) -> None:
    name = api.publish("images")
    customer = api.customer("credits", 100_00)
    ultra = [
        api.charge(customer, name, "image.generate", dimensions={"quality": "ultra"})
        for _ in range(6)
    ]
    assert [c["status"] for c in ultra] == ["posted"] * 5 + ["declined"]
    assert ultra[0]["amount"] == 20_00 and ultra[-1]["decline_reason"] == "insufficient_funds"
    other = api.customer("credits", 100_00)
    standard = api.charge(other, name, "image.generate", dimensions={"quality": "standard"})
    assert standard["amount"] == 1_00
    assert api.available(customer, "credits") == 0


def test_speech_is_priced_per_character_exactly(api: Integrator) -> None:
    name = api.publish("speech")
    customer = api.customer("credits", 5_000_00)
    flash = api.charge(
        customer, name, "tts.speak", dimensions={"model": "flash"}, quantities={"characters": 1001}
    )
    assert flash["amount"] == 500_50  # 500.5 credits: nothing rounded away
    multilingual = api.charge(
        customer,
        name,
        "tts.speak",
        dimensions={"model": "multilingual"},
        quantities={"characters": 1001},
    )
    assert multilingual["amount"] == 1001_00


def test_work_is_weighted_by_complexity(api: Integrator) -> None:
    name = api.publish("complexity")
    customer = api.customer("credits", 20_00)
    amounts = [
        api.charge(customer, name, "app.change", dimensions={"complexity": c})["amount"]
        for c in ["simple"] * 10 + ["auth_flow"] * 5
    ]
    assert amounts == [50] * 10 + [120] * 5
    assert api.available(customer, "credits") == 20_00 - 11_00


def test_a_ratio_of_2_5_is_a_margin_of_60_percent(api: Integrator) -> None:
    name = api.publish("ratio")
    # Bought at $0.10 a credit (a cost basis is money per whole unit of the asset).
    customer = api.customer("credits", 10_00, cost_basis="0.10")
    for _ in range(10):
        assert api.charge(customer, name, "image.generate")["status"] == "posted"
    params = {"asset": "credits", "by": "customer", "rate_card": name}
    report = api.http.get("/v1/reports/margin", params=params).json()["report"]
    (row,) = [r for r in report["rows"] if r["key"] == customer]
    assert (row["revenue"], row["vendor_cost"]) == ("1", "0.4")
    assert (row["credit_to_cost"], row["margin"], row["loss"]) == ("2.5", "0.6", False)


def test_a_20_dollar_pool_at_api_rates_pays_for_649_requests(api: Integrator) -> None:
    answer = api.post("/v1/assets", {"code": "USD", "scale": 6, "name": "US dollars"})
    assert answer.status_code in (201, 409), answer.text  # one USD asset per tenant
    name = api.publish("pool")
    customer = api.customer("USD", 20_000_000)
    request = {"input_tokens": 8_000, "output_tokens": 1_850}
    event = {
        "customer": customer,
        "action": "chat.completion",
        "rate_card": name,
        "dimensions": {"model": "gpt-4.1"},
        "quantities": request,
    }
    batch = {"events": [{**event, "idempotency_key": uuid.uuid4().hex} for _ in range(650)]}
    # 650 charges, each its own commit: minutes on a loaded machine, seconds on a quiet one.
    answer = api.post("/v1/charges/batch", batch, timeout=300)
    assert answer.status_code == 200, answer.text
    charges = [item["charge"] for item in answer.json()["data"]]
    statuses = [c["status"] for c in charges]
    assert statuses == ["posted"] * 649 + ["declined"]
    assert {c["amount"] for c in charges[:649]} == {30_800}  # $0.0308
    assert {Decimal(c["vendor_cost"]) for c in charges[:649]} == {Decimal("0.0308")}
    assert api.available(customer, "USD") == 20_000_000 - 649 * 30_800
