"""A prototype of ARCHITECTURE.md's proposed lighter stack for the hot routes, as a yardstick.

`bench/lean.py` measured creditgate's ledger behind the floor's handling, which leaves out
what creditgate's edge must do. This serves `POST /v1/authorizations` and `POST
/v1/authorizations/{id}/settle` in one ASGI handler that does all of it on the way to a
successful answer, with creditgate's own parts: the request id and its header, the log line
and the latency metric (`middleware.answered`), the body's cap and deadline
(`middleware.read_body`), the refusal past the in-flight limit and the slot, the key through
the app's `KeyCache`, the Idempotency-Key header's bounds, the body read as the API reads
JSON (`bodies.json_body`: a number with a fraction is a Decimal) and validated by the
route's own model (`model_validate`), the route's own endpoint
(`http/gate.py`) on the edge's threads, its answer sent as two raw ASGI messages. Whatever is not a
plain success before the ledger is called (no key or an unknown one, a body the model
refuses, a missing header, any other route) goes to creditgate's application unchanged, whose
answer is the one of record; an error the ledger raises is answered by the app's handlers.

Not served by creditgate: a measurement of what the proposal could cost, before it is built
(`bench http --floor --fused`, a stage of `bench.stages`).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from creditgate.api import Creditgate, TenantLedger
from creditgate.bench import floor
from creditgate.http import gate
from creditgate.http.bodies import json_body
from creditgate.http.hot import HotRoutes
from creditgate.http.load import overloaded
from creditgate.http.logs import request_id
from creditgate.http.middleware import (
    _header,
    answered,
    body_timed_out,
    handled,
    read_body,
    replaying,
    request_id_of,
    too_large,
)
from creditgate.http.models import ID_PATTERN, NewAuthorization, SettlementRequest
from creditgate.http.problems import IDEMPOTENCY_HEADER
from creditgate.services.catalog.api_keys import display
from creditgate.services.context import MAX_KEY_LENGTH

DB_ENV = "CREDITGATE_FUSED_DB"
POOL_ENV = "CREDITGATE_FUSED_POOL"
_AUTHORIZE = "/v1/authorizations"
_SETTLE_ROUTE = "/v1/authorizations/{id}/settle"
_IDEMPOTENCY = IDEMPOTENCY_HEADER.lower().encode()
_JSON = [(b"content-type", b"application/json")]
_HOLD = re.compile(ID_PATTERN)  # the route's path parameter, as its `Path` checks it


class Fused:
    """`app` (creditgate's application) with the two calls of a pair served in one handler."""

    def __init__(self, app: Any) -> None:
        self.app = app
        settings = app.state.settings  # the body's cap and deadline, as the app's own
        self.limit: int = settings.max_body_bytes
        self.timeout: float = settings.body_timeout_seconds
        front = getattr(app, "front", None)
        if not isinstance(front, HotRoutes):
            raise TypeError("the app must serve its hot routes at its edge")
        self.threads = front.threads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or not path.startswith(_AUTHORIZE):
            await self.app(scope, receive, send)
            return
        settle = path != _AUTHORIZE
        hold = ""
        if settle:
            parts = path.split("/")  # "", v1, authorizations, id, settle
            if len(parts) != 5 or parts[4] != "settle" or not _HOLD.fullmatch(parts[3]):
                await self.app(scope, receive, send)
                return
            hold = parts[3]
        state = self.app.state
        start = time.perf_counter()
        rid = request_id_of(_header(scope, b"x-request-id"))
        token = request_id.set(rid)
        status = 500
        try:
            status = await self._serve(scope, receive, send, state, rid, settle, hold)
        finally:
            route = _SETTLE_ROUTE if settle else _AUTHORIZE
            if status:  # 0: answered by the app, which logged and counted it itself
                answered(scope, "POST", route, status, start, rid)
            request_id.reset(token)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        state: Any,
        rid: str,
        settle: bool,
        hold: str,
    ) -> int:
        in_flight = state.in_flight
        if in_flight.refuses("POST", scope["path"]):
            return await _answer(overloaded(), scope, receive, send, rid)
        declared = _header(scope, b"content-length")
        if declared is None or not declared.isdigit() or int(declared) > self.limit:
            await self.app(scope, receive, send)
            return 0
        try:
            body = await read_body(receive, self.limit, self.timeout)
        except TimeoutError:
            return await _answer(body_timed_out(self.timeout), scope, receive, send, rid)
        if body is None:
            return await _answer(too_large(self.limit), scope, receive, send, rid)
        credentials = _header(scope, b"authorization") or ""
        key = _header(scope, _IDEMPOTENCY) or ""
        call: Callable[[], Any]
        try:
            if not credentials.startswith("Bearer ") or not key or len(key) > MAX_KEY_LENGTH:
                raise LookupError
            principal = state.keys.cached(credentials[7:])
            if principal is None:
                principal = await run_in_threadpool(state.keys.load, credentials[7:])
            ledger = TenantLedger(state.keys.cg, principal.tenant_id)
            if settle:
                settlement = SettlementRequest.model_validate(json_body(body))
                call = partial(gate.settle, hold, settlement, ledger, key)
            else:
                new = NewAuthorization.model_validate(json_body(body))
                call = partial(gate.authorize, new, ledger, key)
        except Exception:  # not a plain success: the application answers it
            await self.app(scope, replaying(body, receive), send)
            return 0
        scope.setdefault("state", {}).update(
            tenant_id=principal.tenant_id, key=display(principal.prefix)
        )
        in_flight.enter()
        try:
            answer: Any = await self.threads.run(call)
        except Exception as exc:
            response, _ = await handled(self.app.exception_handlers, exc, scope, receive)
            return await _answer(response, scope, receive, send, rid)
        finally:
            in_flight.leave()
        payload = bytes(answer.body)
        headers = [
            *_JSON,
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", rid.encode()),
        ]
        status = int(answer.status_code)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        return status


async def _answer(response: Any, scope: Scope, receive: Receive, send: Send, rid: str) -> int:
    async def with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
        await send(message)

    await response(scope, receive, with_id)
    return int(response.status_code)


def make() -> Fused:
    """The served application (uvicorn's factory), over `create_app` of the database in the
    environment."""
    from creditgate.server.app import create_app

    pool = int(os.environ.get(POOL_ENV, "10"))
    return Fused(create_app(Creditgate(os.environ[DB_ENV], pool_size=pool)))


def main(argv: list[str]) -> None:
    """`python -m creditgate.bench.fused URL PORT WORKERS POOL`: serve it."""
    url, port, workers, pool = argv
    os.environ[DB_ENV] = url
    os.environ[POOL_ENV] = pool
    floor.serve("creditgate.bench.fused:make", port, workers, factory=True)


if __name__ == "__main__":
    main(sys.argv[1:])
