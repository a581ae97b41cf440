"""Every decimal string in every answer is written one way, the same on SQLite and PostgreSQL:
plain notation, no exponent, no trailing zeros, "0" for zero."""

from __future__ import annotations

import importlib
import pkgutil
import re
import typing
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

import creditgate
from creditgate.services.results import Result
from tests.conftest import FakeClock
from tests.http.conftest import Api

NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
CANONICAL = re.compile(r"^-?(0|[1-9]\d*)(\.\d*[1-9])?$")


def decimal_strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in decimal_strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in decimal_strings(v, f"{path}[{i}]")]
    if isinstance(value, str) and NUMBER.match(value):
        return [(path, value)]
    return []


def not_canonical(answer: Any) -> list[tuple[str, str]]:
    return [
        (path, text)
        for path, text in decimal_strings(answer)
        if not CANONICAL.match(text) or text == "-0"
    ]


CARD = {
    "asset": "credits",
    "credit_value_usd": "0.100",
    "actions": {
        "image.generate": {"prices": [{"flat": "20.00", "vendor": {"flat": "0.300"}}]},
        "tts.speak": {
            "prices": [{"per_unit": {"characters": "0.50"}, "vendor": {"flat": "0.0500"}}]
        },
    },
}


def test_every_decimal_string_of_every_answer_is_canonical(api: Api, clock: FakeClock) -> None:
    period = {
        "from": (clock.now - timedelta(days=1)).isoformat(),
        "to": (clock.now + timedelta(days=1)).isoformat(),
    }
    answers: dict[str, Any] = {}

    def keep(name: str, response: Any) -> Any:
        assert response.status_code in (200, 201), (name, response.text)
        answers[name] = response.json()
        return answers[name]

    keep("rate card", api.post("/v1/rate-cards", {"spec": CARD}))
    model_price = {"model": "m", "input_mtok": "2.50", "output_mtok": "10.000"}
    keep("model price", api.post("/v1/model-prices", model_price))
    pack = {"code": "p", "asset": "credits", "amount": 200_000, "price": "20.00"}
    keep("pack", api.post("/v1/packs", pack))
    keep("customer", api.post("/v1/customers", {"id": "c1"}))
    bought = keep("purchase", api.post("/v1/customers/c1/purchases", {"pack": "p"}))
    keep("paid", api.post(f"/v1/purchases/{bought['id']}/mark-paid"))
    grant = {"asset": "credits", "amount": 1_000, "kind": "purchased", "cost_basis": "0.0100"}
    keep("grant", api.post("/v1/customers/c1/grants", grant))
    image = {"customer": "c1", "action": "image.generate", "vendor_cost": "0.300"}
    keep("charge", api.post("/v1/charges", image, headers={"Idempotency-Key": "k1"}))
    tts = {"customer": "c1", "action": "tts.speak", "quantities": {"characters": "1001.0"}}
    held = keep("hold", api.post("/v1/authorizations", tts, headers={"Idempotency-Key": "k2"}))
    keep(
        "settle",
        api.post(
            f"/v1/authorizations/{held['id']}/settle",
            {"quantities": {"characters": "10.0"}},
            headers={"Idempotency-Key": "k3"},
        ),
    )
    quote = {"action": "tts.speak", "quantities": {"characters": "1000"}}
    keep("quote", api.post("/v1/rate-cards/quote", quote))
    keep("lots", api.get("/v1/customers/c1/grants"))
    keep("purchases", api.get("/v1/customers/c1/purchases"))
    keep("rate cards", api.get("/v1/rate-cards"))
    keep("margin", api.get("/v1/reports/margin", params=period))
    revenue = keep("revenue", api.get("/v1/reports/revenue", params=period))

    (line,) = revenue["lines"]
    # $20 for 2,000 credits plus 10 credits at $0.01; 20 + 5 credits used, at $0.01.
    assert (line["sold"], line["recognized"]) == ("20.1", "0.25")
    assert answers["pack"]["price"] == "20" and answers["grant"]["cost_basis"] == "0.01"
    assert answers["quote"]["units"] == "500" and answers["charge"]["vendor_cost"] == "0.3"
    assert answers["rate card"]["spec"]["credit_value_usd"] == "0.1"
    seen = [found for answer in answers.values() for found in decimal_strings(answer)]
    assert len(seen) > 100
    assert {name: found for name, a in answers.items() if (found := not_canonical(a))} == {}


def test_every_decimal_field_of_every_result_is_written_canonically() -> None:
    for module in pkgutil.walk_packages(creditgate.__path__, "creditgate."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)

    def subclasses(cls: type[BaseModel]) -> list[type[BaseModel]]:
        return [c for s in cls.__subclasses__() for c in (s, *subclasses(s))]

    raw = []
    for model in subclasses(Result):
        for name, info in model.model_fields.items():
            # A Decimal written through DecimalString carries its serializer in the annotation.
            decimals = [a for a in _leaves(info.annotation) if a is Decimal]
            if decimals and "PlainSerializer" not in repr(info.annotation) and not info.metadata:
                raw.append(f"{model.__name__}.{name}")
    assert raw == []


def _leaves(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    if typing.get_origin(annotation) is typing.Annotated:
        return []  # written by its own serializer
    return [leaf for arg in args for leaf in _leaves(arg)]
