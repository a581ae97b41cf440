"""Bearer API keys: each request acts as its key's tenant; lookups are cached for a moment."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from creditgate.api import Creditgate, TenantLedger
from creditgate.domain.errors import Unauthenticated
from creditgate.services.api_keys import Principal, display


class KeyCache:
    """Recently verified keys, so the gate does not read the key table on every call.

    An entry lives `ttl` seconds: a key revoked on another server stops working within that
    time; one revoked through this server stops at once (see `forget`).
    """

    def __init__(self, cg: Creditgate, *, ttl: float = 2.0, max_entries: int = 10_000) -> None:
        self.cg = cg
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _slot(key: str) -> str:
        # Held by digest, so the cache never keeps a usable secret in memory.
        return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()

    def cached(self, key: str) -> Principal | None:
        entry = self._entries.get(self._slot(key))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def load(self, key: str) -> Principal:
        principal = self.cg.authenticate(key)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[1] >= now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[self._slot(key)] = (principal, time.monotonic() + self.ttl)
        return principal

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[0].key_id != key_id}


bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="cg_<prefix>_<secret>",
    description="An API key, sent as `Authorization: Bearer cg_…`",
)


async def current_ledger(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> TenantLedger:
    if credentials is None:
        raise Unauthenticated("send an API key as `Authorization: Bearer cg_…`")
    keys: KeyCache = request.app.state.keys
    key = credentials.credentials
    principal = keys.cached(key)
    if principal is None:
        principal = await run_in_threadpool(keys.load, key)
    request.state.tenant_id = principal.tenant_id
    request.state.key = display(principal.prefix)
    return TenantLedger(keys.cg, principal.tenant_id)


Ledger = Annotated[TenantLedger, Depends(current_ledger)]
