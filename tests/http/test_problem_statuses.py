"""Errors name what failed; only the HTTP edge decides the status (one table in problems.py)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import creditgate
from creditgate.domain.errors import CreditgateError
from creditgate.http.problems import STATUS_BY_KIND, status_of


def _every_error_class() -> list[type[CreditgateError]]:
    for module in pkgutil.walk_packages(creditgate.__path__, "creditgate."):
        if ".migrations" in module.name or module.name.startswith("creditgate.__main__"):
            continue
        importlib.import_module(module.name)
    found: list[type[CreditgateError]] = []
    todo: list[type[CreditgateError]] = [CreditgateError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_no_error_carries_an_http_status() -> None:
    classes = _every_error_class()
    assert len(classes) > 40
    carrying = [c.__qualname__ for c in classes if "status" in vars(c)]
    assert carrying == []


def test_every_error_has_its_own_stable_code() -> None:
    codes: dict[str, list[str]] = {}
    for cls in _every_error_class():
        codes.setdefault(vars(cls).get("code", ""), []).append(cls.__qualname__)
    assert "" not in codes, f"classes without a code of their own: {codes.get('')}"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("invalid_input", 422),
        ("amount_overflow", 422),
        ("no_price", 422),
        ("no_exchange_rate", 422),
        ("unknown_customer", 404),
        ("unknown_charge", 404),
        ("unauthenticated", 401),
        ("idempotency_conflict", 409),
        ("hold_expired", 409),
        ("refund_not_covered", 409),
        ("webhook_endpoint_disabled", 409),
        ("too_many_requests", 429),
        ("payment_provider_error", 502),
        ("secret_keys_missing", 503),
        ("overloaded", 503),
        ("invalid_signature", 400),
    ],
)
def test_the_status_of_each_kind(code: str, status: int) -> None:
    by_code = {vars(c).get("code"): c for c in _every_error_class()}
    cls = by_code[code]
    exc = cls.__new__(cls)
    assert status_of(exc) == status


def test_each_kind_in_the_table_is_an_error_class() -> None:
    assert all(issubclass(kind, CreditgateError) for kind in STATUS_BY_KIND)
