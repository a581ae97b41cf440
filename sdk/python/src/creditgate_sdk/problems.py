"""The API's error documents as they come over the wire: RFC 9457 problems and their fields."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class FieldError:
    field: str | None
    detail: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """An RFC 9457 problem document as the API sends it (also a failed item of a batch)."""

    code: str
    detail: str = ""
    status: int | None = None
    title: str = ""
    type: str = "about:blank"
    field: str | None = None
    errors: tuple[FieldError, ...] = ()  # every failing input, when a request is invalid
