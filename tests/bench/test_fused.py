"""`bench/fused.py`, the prototype of the proposed lighter stack: a pair through it is answered
as through creditgate's application, and whatever it does not serve itself (a bad key, a body
the model refuses, no Idempotency-Key, a hold already settled) gets the application's own
answer."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from creditgate.api import Creditgate
from creditgate.bench.edge import post
from creditgate.bench.fused import Fused
from creditgate.server.app import create_app
from tests.http.asgi import tenant_with_funds

_INEXACT = b'{"customer": "c1", "asset": "credits", "amount": 100.0000000000000001}'


def _headers(key: str, idempotency: str | None = None) -> list[tuple[bytes, bytes]]:
    headers = [(b"authorization", b"Bearer " + key.encode())]
    headers.append((b"content-type", b"application/json"))
    if idempotency is not None:
        headers.append((b"idempotency-key", idempotency.encode()))
    return headers


def test_a_pair_and_every_refusal_are_answered_as_the_application_answers(cg: Creditgate) -> None:
    key, ledger = tenant_with_funds(cg)
    app = create_app(cg)
    fused = Fused(app)

    async def main() -> list[tuple[str, Any, Any]]:
        seen: list[tuple[str, Any, Any]] = []
        async with app.router.lifespan_context(app):
            held: dict[str, Any] = {}
            for name, target in (("fused", fused), ("app", app)):
                body = json.dumps({"customer": "c1", "asset": "credits", "amount": 50}).encode()
                status, answer = await post(
                    target, "/v1/authorizations", _headers(key, uuid.uuid4().hex), body
                )
                hold = json.loads(answer)
                held[name] = (status, hold)
                settle = f"/v1/authorizations/{hold['id']}/settle"
                body = json.dumps({"amount": 30}).encode()
                settled = await post(target, settle, _headers(key, uuid.uuid4().hex), body)
                again = await post(target, settle, _headers(key, uuid.uuid4().hex), body)
                seen.append(("settle", settled[0], sorted(json.loads(settled[1]))))
                seen.append(("settled again", again[0], json.loads(again[1])["code"]))
            assert held["fused"][0] == held["app"][0] == 201
            assert sorted(held["fused"][1]) == sorted(held["app"][1])
            refusals = (
                ("no key", "/v1/authorizations", [(b"idempotency-key", b"k1")], b"{}"),
                ("bad key", "/v1/authorizations", _headers("cg_nope_nope", "k2"), b"{}"),
                ("no idempotency", "/v1/authorizations", _headers(key), b'{"customer": "c1"}'),
                ("bad body", "/v1/authorizations", _headers(key, "k3"), b'{"customer": 5}'),
                ("not json", "/v1/authorizations", _headers(key, "k4"), b"{"),
                ("no hold", "/v1/authorizations/hold_nope/settle", _headers(key, "k5"), b"{}"),
                ("bad hold id", "/v1/authorizations/h-1/settle", _headers(key, "k6"), b"{}"),
                # Read as the API reads JSON: this amount is not 100, and not a whole number.
                ("inexact", "/v1/authorizations", _headers(key, "k7"), _INEXACT),
            )
            for name, path, headers, body in refusals:
                mine = await post(fused, path, headers, body)
                theirs = await post(app, path, headers, body)
                seen.append((name, mine[0], theirs[0]))
                assert mine == theirs, name
        return seen

    seen = asyncio.run(main())
    assert seen[0] == seen[2] and seen[0][1] == 200  # settled alike through both
    assert seen[1] == seen[3] and seen[1][1] == 409
    assert [s for _, s, _ in seen[4:]] == [401, 401, 400, 422, 400, 404, 422, 422]
    assert ledger.wallet("c1").balances[0].available == 10_000 - 2 * 30
