"""Turn the API's JSON into the result dataclasses, by their type hints."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, TypeVar

from creditgate_sdk.errors import UnexpectedResponse, problem_from
from creditgate_sdk.problems import Problem

T = TypeVar("T")


@cache
def _fields(cls: type[Any]) -> tuple[tuple[str, Any, bool], ...]:
    hints = typing.get_type_hints(cls)
    return tuple(
        (
            f.name,
            hints[f.name],
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )


def decode(cls: type[T], data: Any) -> T:
    """Build `cls` from decoded JSON; unknown keys are ignored, missing optional ones default."""
    return typing.cast(T, _value(cls, data, cls.__name__))


def _value(hint: Any, data: Any, where: str) -> Any:
    if hint is Any:
        return data
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if data is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _value(inner, data, where)
    if origin is tuple:
        _expect(isinstance(data, list), where, "a list", data)
        inner = typing.get_args(hint)[0]
        return tuple(_value(inner, item, f"{where}[{i}]") for i, item in enumerate(data))
    if origin is dict:
        _expect(isinstance(data, dict), where, "an object", data)
        inner = typing.get_args(hint)[1]
        return {key: _value(inner, item, f"{where}.{key}") for key, item in data.items()}
    if hint is Problem:
        return problem_from(data)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        _expect(isinstance(data, dict), where, "an object", data)
        kwargs: dict[str, Any] = {}
        for name, field_hint, required in _fields(hint):
            if name in data:
                kwargs[name] = _value(field_hint, data[name], f"{where}.{name}")
            elif required:
                raise UnexpectedResponse(f"the answer has no {where}.{name}", field=name)
        return hint(**kwargs)
    if hint is datetime:
        _expect(isinstance(data, str), where, "an ISO 8601 time", data)
        try:
            return datetime.fromisoformat(data)
        except ValueError:
            raise UnexpectedResponse(f"{where} is not an ISO 8601 time: {data!r}") from None
    if hint is Decimal:
        _expect(
            isinstance(data, str | int) and not isinstance(data, bool), where, "a decimal", data
        )
        try:
            return Decimal(data)
        except InvalidOperation:
            raise UnexpectedResponse(f"{where} is not a decimal: {data!r}") from None
    if hint is int:
        _expect(isinstance(data, int) and not isinstance(data, bool), where, "an integer", data)
        return data
    if hint is bool:
        _expect(isinstance(data, bool), where, "true or false", data)
        return data
    if hint is str:
        _expect(isinstance(data, str), where, "a string", data)
        return data
    raise TypeError(f"cannot decode {where} as {hint!r}")  # a hint this module does not know


def _expect(ok: bool, where: str, what: str, data: Any) -> None:
    if not ok:
        raise UnexpectedResponse(f"{where} should be {what}, got {data!r:.80}")
