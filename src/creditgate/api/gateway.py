"""The in-process API of the LLM gateway's tenant settings: its upstream provider keys.

gw = TenantGateway(cg.tenant(tenant_id))
gw.set_upstream_key("openai", "sk-…")   # stored sealed; answers show a prefix only
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from creditgate.api.ledger import TenantLedger
from creditgate.services import gateway
from creditgate.services.gateway import PROVIDERS, UpstreamKey, UpstreamKeyList, UpstreamKeyNotSet
from creditgate.services.results import Authorization, Settlement

__all__ = [
    "PROVIDERS",
    "Authorization",
    "Settlement",
    "TenantGateway",
    "UpstreamKey",
    "UpstreamKeyList",
    "UpstreamKeyNotSet",
]

T = TypeVar("T")


class TenantGateway:
    """One tenant's gateway settings, each call one transaction."""

    def __init__(self, ledger: TenantLedger) -> None:
        self.ledger = ledger

    def _run(self, fn: Callable[..., T], /, read_only: bool = False, **kwargs: Any) -> T:
        cg, tenant_id = self.ledger.cg, self.ledger.tenant_id
        return cg.db.run(lambda conn: fn(cg.tx(conn, tenant_id), **kwargs), read_only=read_only)

    def set_upstream_key(self, provider: str, api_key: str) -> UpstreamKey:
        """Store (or replace) the key the gateway calls `provider` with, sealed."""
        return self._run(gateway.set_upstream_key, provider=provider, api_key=api_key)

    def clear_upstream_key(self, provider: str) -> UpstreamKey:
        return self._run(gateway.clear_upstream_key, provider=provider)

    def upstream_keys(self) -> list[UpstreamKey]:
        return self._run(gateway.list_upstream_keys, read_only=True).data

    def open_upstream_key(self, provider: str) -> str:
        """The key in plain text, for the gateway's call (never shown in an answer)."""
        return self._run(gateway.open_upstream_key, read_only=True, provider=provider)
