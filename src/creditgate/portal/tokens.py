"""Signed, expiring tokens: portal sessions for one customer (or one member of it), dashboard
sessions, CSRF tokens.

The secret comes from CREDITGATE_PORTAL_SECRET, which every server process sharing a database
must set alike; without it each process signs with its own random secret, so its links only
work on the process that made them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from creditgate.settings import Settings

ENV_SECRET = "CREDITGATE_PORTAL_SECRET"  # noqa: S105 - the variable name, not a secret
PORTAL_TTL = timedelta(hours=1)
DASHBOARD_TTL = timedelta(hours=8)


@dataclass(frozen=True, slots=True)
class PortalSession:
    tenant_id: str
    customer: str
    return_url: str | None
    expires_at: datetime
    # A session of one member of the customer (an organization's): it sees only the member's
    # own budgets and usage, never the wallet.
    member: str | None = None


@dataclass(frozen=True, slots=True)
class DashboardSession:
    tenant_id: str
    key_id: str
    session_id: str  # what signing out records (see services.portal.end_dashboard_session)
    expires_at: datetime


class TokenRefused(Exception):
    """A token that is forged, malformed or expired; `reason` says which, for the page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Tokens:
    def __init__(self, secret: str | bytes | None = None) -> None:
        configured = Settings().portal_secret
        if not secret and configured is not None:
            secret = configured.get_secret_value()
        secret = secret or secrets.token_urlsafe(32)
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._portal = URLSafeSerializer(self._secret, salt="creditgate.portal")
        self._dashboard = URLSafeSerializer(self._secret, salt="creditgate.dashboard")

    def portal_token(
        self,
        tenant_id: str,
        customer: str,
        *,
        now: datetime,
        return_url: str | None = None,
        member: str | None = None,
    ) -> tuple[str, datetime]:
        expires_at = now + PORTAL_TTL
        payload = {"t": tenant_id, "c": customer, "r": return_url, "e": _epoch(expires_at)}
        if member is not None:
            payload["m"] = member
        return str(self._portal.dumps(payload)), expires_at

    def portal_session(self, token: str | None, *, now: datetime) -> PortalSession:
        data = _load(self._portal, token, now)
        return PortalSession(
            tenant_id=str(data["t"]),
            customer=str(data["c"]),
            return_url=data.get("r"),
            expires_at=_from_epoch(data["e"]),
            member=None if data.get("m") is None else str(data["m"]),
        )

    def dashboard_token(self, tenant_id: str, key_id: str, *, now: datetime) -> str:
        payload = {
            "t": tenant_id,
            "k": key_id,
            "s": secrets.token_urlsafe(18),
            "e": _epoch(now + DASHBOARD_TTL),
        }
        return str(self._dashboard.dumps(payload))

    def dashboard_session(self, token: str | None, *, now: datetime) -> DashboardSession:
        data = _load(self._dashboard, token, now)
        if not isinstance(data.get("s"), str):
            raise TokenRefused("expired")  # made before sessions could be signed out
        return DashboardSession(
            tenant_id=str(data["t"]),
            key_id=str(data["k"]),
            session_id=data["s"],
            expires_at=_from_epoch(data["e"]),
        )

    def csrf(self, session_token: str) -> str:
        """The form token bound to one session: a page of another session cannot post here."""
        mac = hmac.new(self._secret, b"csrf|" + session_token.encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def csrf_ok(self, session_token: str, submitted: str | None) -> bool:
        return submitted is not None and hmac.compare_digest(self.csrf(session_token), submitted)


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def _from_epoch(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def _load(serializer: URLSafeSerializer, token: str | None, now: datetime) -> dict[str, Any]:
    if not token:
        raise TokenRefused("missing")
    try:
        data = serializer.loads(token)
    except BadSignature:
        raise TokenRefused("invalid") from None
    if not isinstance(data, dict) or not isinstance(data.get("e"), int):
        raise TokenRefused("invalid")
    if data["e"] <= _epoch(now):
        raise TokenRefused("expired")
    return data
