"""Bearer API keys: each request acts as its key's tenant; lookups are cached for a moment.

Failed authentications are rate-limited per client address (`AuthFailureLimiter`): past the
limit, a key that does not verify is answered 429 with Retry-After rather than 401. Only the
failures are limited: every key is still checked, so a valid key is never refused, however
many bad ones came from its address (a shared NAT, a proxy the operator has not named).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool

from creditgate.api import Creditgate, TenantLedger
from creditgate.domain.errors import RateLimited, Unauthenticated
from creditgate.http.load import InFlight
from creditgate.services.catalog.api_keys import Principal, display
from creditgate.settings import default

DEFAULT_AUTH_FAILURES_PER_MINUTE: int = default("auth_failures_per_minute")
AUTH_FAILURE_WINDOW_SECONDS = 60.0
MAX_TRACKED_CLIENTS = 10_000


class TooManyAuthFailures(RateLimited):
    """Too many failed authentications from this client address: wait `retry_after` s."""

    code = "too_many_requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed authentications from this address; retry after {retry_after} s",
            retry_after=retry_after,
        )


class AuthFailureLimiter:
    """Failed authentications per client address, counted in a sliding window.

    `limit` failures within `window` seconds block the address until the oldest of them
    leaves the window. Memory is bounded: at most `limit` timestamps for each of at most
    `max_clients` addresses (the least recently failing ones are forgotten first). A limit
    of 0 turns the limiter off. Counts are per server process.
    """

    def __init__(
        self,
        limit: int = DEFAULT_AUTH_FAILURES_PER_MINUTE,
        window: float = AUTH_FAILURE_WINDOW_SECONDS,
        *,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._failures)

    def clear(self) -> None:
        """Forget every client's failures."""
        with self._lock:
            self._failures.clear()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        if self.limit <= 0:
            return 0.0
        with self._lock:
            times = self._failures.get(client)
            if times is None or len(times) < self.limit:
                return 0.0
            wait = times[0] + self.window - self.clock()
            return max(wait, 0.0)

    def check(self, client: str) -> None:
        """TooManyAuthFailures when `client` is past its limit."""
        wait = self.retry_after(client)
        if wait > 0:
            raise TooManyAuthFailures(max(1, math.ceil(wait)))

    def failed(self, client: str) -> None:
        if self.limit <= 0:
            return
        now = self.clock()
        with self._lock:
            times = self._failures.pop(client, None)
            if times is None:
                times = deque(maxlen=self.limit)
            while times and times[0] <= now - self.window:
                times.popleft()
            times.append(now)
            self._failures[client] = times  # most recent last
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)


class KeyHolder(Protocol):
    """What a verified key stands for: at least the key's id (to forget it when revoked)."""

    @property
    def key_id(self) -> str: ...


P = TypeVar("P", bound=KeyHolder)


class KeyCache(Generic[P]):
    """Recently verified keys, so the gate does not read the key table on every call.

    An entry lives `ttl` seconds: a key revoked on another server stops working within that
    time; one revoked through this server stops at once (see `forget`). `load` verifies a key
    not in the cache: the tenant API keys' by default; the gateway's customer keys have a
    cache of their own.

    A key in use is verified again before its entry ends: the first lookup in the second
    half of its life starts one verification on a thread of its own, and its result makes a
    new entry. A key in steady use then never misses (a miss sends its requests the long
    way, each verifying the key itself), and none is served past its `ttl`.
    """

    def __init__(
        self,
        cg: Creditgate,
        *,
        ttl: float = 2.0,
        max_entries: int = 10_000,
        limiter: AuthFailureLimiter | None = None,
        load: Callable[[str], P] | None = None,
    ) -> None:
        self.cg = cg
        self.ttl = ttl
        self.max_entries = max_entries
        self.limiter = limiter if limiter is not None else AuthFailureLimiter()
        self._load: Callable[[str], Any] = load if load is not None else cg.authenticate
        self._entries: dict[str, tuple[P, float]] = {}
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()  # slots being verified again
        self._forgotten = 0  # counts `forget`s: a verification begun before one is dropped

    @staticmethod
    def _slot(key: str) -> str:
        # Held by digest, so the cache never keeps a usable secret in memory.
        return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()

    def cached(self, key: str) -> P | None:
        slot = self._slot(key)
        entry = self._entries.get(slot)
        if entry is None:
            return None
        principal, ends = entry
        left = ends - time.monotonic()
        if left < 0:
            return None
        if left < self.ttl / 2 and slot not in self._refreshing:
            self._refresh(key, slot)
        return principal

    def load(self, key: str) -> P:
        forgotten = self._forgotten
        principal: P = self._load(key)
        self._store(self._slot(key), principal, forgotten)
        return principal

    def _store(self, slot: str, principal: P, forgotten: int) -> None:
        now = time.monotonic()
        with self._lock:
            if forgotten != self._forgotten:
                return  # verified before a `forget`: the next request verifies it again
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[1] >= now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[slot] = (principal, now + self.ttl)

    def _refresh(self, key: str, slot: str) -> None:
        with self._lock:
            if slot in self._refreshing:
                return
            self._refreshing.add(slot)
        forgotten = self._forgotten

        def verify() -> None:
            try:
                principal = self._load(key)
            except Unauthenticated:
                with self._lock:  # revoked meanwhile: no longer served from here
                    self._entries.pop(slot, None)
            except Exception:  # noqa: S110 - the entry ends at its time; a request retries
                pass
            else:
                self._store(slot, principal, forgotten)
            finally:
                with self._lock:
                    self._refreshing.discard(slot)

        threading.Thread(target=verify, name="key-cache-refresh", daemon=True).start()

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._forgotten += 1
            self._entries = {k: v for k, v in self._entries.items() if v[0].key_id != key_id}


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def authenticate(request: Request, key: str | None) -> Principal:
    """The tenant API key's principal (see `authenticate_with`)."""
    keys: KeyCache[Principal] = request.app.state.keys
    return await authenticate_with(keys, request, key)


async def authenticate_with(keys: KeyCache[P], request: Request, key: str | None) -> P:
    """The principal of `key` by `keys` (the tenant API keys', or another kind's), counting
    a failure against the client's address.

    A key in the cache answers at once; any other is looked up. One that does not verify is
    Unauthenticated, or TooManyAuthFailures once its address is past the limit (that failure
    is not counted again). A request without a key is refused without being counted.
    """
    if not key:
        # Not counted: no key guesses nothing and reads nothing.
        raise Unauthenticated("send an API key as `Authorization: Bearer cg_…`")
    cached = keys.cached(key)
    if cached is not None:
        return cached
    try:
        principal: P = await run_in_threadpool(keys.load, key)
    except Unauthenticated:
        limiter, client = keys.limiter, client_address(request)
        limiter.check(client)
        limiter.failed(client)
        raise
    return principal


bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="cg_<prefix>_<secret>",
    description="An API key, sent as `Authorization: Bearer cg_…`",
)


def bearer_key(authorization: str | None) -> str | None:
    """The key of an Authorization header, read as `bearer` reads it; None when it holds no
    bearer key (`bearer` then gives no credentials, and `current_ledger` answers 401)."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


async def current_ledger(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> AsyncIterator[TenantLedger]:
    """The key's tenant; the request holds an in-flight slot from here (authenticated and
    routed, its body read) until its answer is sent."""
    keys: KeyCache[Principal] = request.app.state.keys
    principal = await authenticate(request, credentials.credentials if credentials else None)
    request.state.tenant_id = principal.tenant_id
    request.state.key = display(principal.prefix)
    in_flight: InFlight = request.app.state.in_flight
    async with in_flight.slot(request.method, request.scope["path"]):
        yield TenantLedger(keys.cg, principal.tenant_id)


Ledger = Annotated[TenantLedger, Depends(current_ledger)]
