"""Requests sent straight into the app as ASGI messages: a body in pieces, late, or never."""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from creditgate.api import Creditgate, TenantLedger


def pieces(chunks: list[bytes]) -> list[Any]:
    """The body in `chunks`, one `http.request` message each."""
    return [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]


async def post(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], messages: list[Any], gate: Any = None
) -> tuple[int, dict[bytes, bytes], bytes]:
    """POST into the app: `receive` gives `messages` once `gate` is set (if given), then
    waits as a client waiting for its answer does. The status is 0 when nothing was sent."""
    pending = list(messages)
    sent: list[Any] = []

    async def receive() -> Any:
        if gate is not None:
            await gate.wait()
        if pending:
            return pending.pop(0)
        await anyio.sleep(3600)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None:
        return 0, {}, b""
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


async def cache_key(app: Any, key: str) -> None:
    """One request through FastAPI, which verifies the key: the edge serves it from then on."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        listed = await client.get("/v1/assets", headers={"Authorization": f"Bearer {key}"})
        assert listed.status_code == 200


def tenant_with_funds(cg: Creditgate) -> tuple[str, TenantLedger]:
    """A tenant's key, and its ledger with 10,000 credits for customer c1."""
    tenant, key = cg.create_tenant_with_key(f"asgi {id(cg)}")
    assert key.key is not None
    ledger = TenantLedger(cg, tenant.id)
    ledger.create_asset("credits", 2)
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 10_000, kind="purchased", cost_basis="0.01")
    return key.key, ledger
