"""Checks and statements the billing services share."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Table

from creditgate.domain.errors import InvalidInput
from creditgate.services.context import Tx
from creditgate.storage import billing as store

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_DAYS = 36_600
MAX_COUNT = 1_000_000


def check_code(value: object, field: str = "code") -> str:
    if not isinstance(value, str) or not CODE.match(value):
        raise InvalidInput(
            f"{field} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit",
            field=field,
        )
    return value


def check_currency(value: object, field: str = "currency") -> str:
    if not isinstance(value, str) or not value.isascii() or not value.isalpha():
        raise InvalidInput(f"{field} must be a 3-8 letter currency code", field=field)
    if not 3 <= len(value) <= 8:
        raise InvalidInput(f"{field} must be a 3-8 letter currency code", field=field)
    return value.upper()


def check_count(
    value: object, field: str, *, minimum: int = 0, maximum: int = MAX_COUNT, optional: bool = False
) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(
            f"{field} must be a whole number from {minimum} to {maximum}", field=field
        )
    return value


def insert_if_new(tx: Tx, table: Table, values: dict[str, Any]) -> bool:
    """Insert a row unless one with its key exists; whether it was inserted."""
    return store.insert_if_new(tx.conn, table, values)
