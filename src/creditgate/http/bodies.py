"""JSON request bodies read exactly: a number written with a fraction or an exponent is a Decimal.

Python's `json` reads `100.0000000000000001` as the float 100.0 and `9007199254740993.0` as
…992: by the time a model sees such an amount, the digits the client sent are gone and a
rounded one would be charged. Read as `Decimal`, the value is the text itself, and an
amount's validator (`models.whole_number`) can accept 100.0 as 100 and refuse what is not
exactly a whole number. Plain integers are read as before (Python ints, exact at any size),
so the cost falls only on numbers with a fraction or an exponent. NaN and Infinity, which
Python's `json` accepts but JSON does not have, are malformed JSON.

Every FastAPI route of the API (`ExactJsonRoute`) reads bodies with `json_body`, through
`ExactJsonRequest`; so does the edge (`hot.py`), which serves only such routes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


def _not_json(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


def json_body(body: bytes | str) -> Any:
    """The JSON text as Python values, numbers with a fraction or an exponent as Decimal."""
    return json.loads(body, parse_float=Decimal, parse_constant=_not_json)


class ExactJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json_body(await self.body())
        return self._json


class ExactJsonRoute(APIRoute):
    """A FastAPI route whose JSON body is read with `json_body` (the route class of every
    router of the API)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return exact
