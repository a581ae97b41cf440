"""The in-process API of the LLM gateway's tenant settings: its upstream provider keys and
its customers' gateway keys.

gw = TenantGateway(cg.tenant(tenant_id))
gw.set_upstream_key("openai", "sk-…")   # stored sealed; answers show a prefix only
key = gw.create_customer_key("cust_42", spend_limit={"asset": "credits", "amount": 50_000,
                                                     "period": "month"})
key.key                                  # cgk_…, shown this once
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from creditgate.api.ledger import Creditgate, TenantLedger
from creditgate.services import gateway, gateway_keys
from creditgate.services.gateway import PROVIDERS, UpstreamKey, UpstreamKeyList, UpstreamKeyNotSet
from creditgate.services.gateway_keys import (
    CreatedGatewayKey,
    CustomerNotOfKey,
    GatewayKey,
    GatewayKeyList,
    GatewayKeyPrincipal,
    ModelNotAllowed,
    UnknownGatewayKey,
)
from creditgate.services.results import Authorization, Settlement

__all__ = [
    "CUSTOMER_KEY_SCHEME",
    "PROVIDERS",
    "Authorization",
    "CreatedGatewayKey",
    "CustomerNotOfKey",
    "GatewayKey",
    "GatewayKeyList",
    "GatewayKeyPrincipal",
    "ModelNotAllowed",
    "Settlement",
    "TenantGateway",
    "UnknownGatewayKey",
    "UpstreamKey",
    "UpstreamKeyList",
    "UpstreamKeyNotSet",
    "authenticate_customer_key",
]

CUSTOMER_KEY_SCHEME = gateway_keys.SCHEME

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

    # Customer gateway keys

    def create_customer_key(
        self,
        customer: str,
        *,
        name: str = "",
        spend_limit: dict[str, Any] | None = None,
        models: list[str] | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedGatewayKey:
        """A key bound to `customer` for calling the gateway directly; its secret (`key`) is
        in this answer only. `spend_limit`: `{"asset", "amount", "period"}` (period: day,
        week, month or total; month when not given); `models`: the models it may call."""
        return self._run(
            gateway_keys.create_key,
            customer=customer,
            name=name,
            spend_limit=spend_limit,
            models=models,
            idempotency_key=idempotency_key,
        )

    def customer_keys(self, customer: str) -> list[GatewayKey]:
        return self._run(gateway_keys.list_keys, read_only=True, customer=customer).data

    def revoke_customer_key(
        self, customer: str, key_id: str, *, idempotency_key: str | None = None
    ) -> GatewayKey:
        return self._run(
            gateway_keys.revoke_key,
            customer=customer,
            key_id=key_id,
            idempotency_key=idempotency_key,
        )


def authenticate_customer_key(cg: Creditgate, key: str) -> GatewayKeyPrincipal:
    """The tenant, customer and rules a customer gateway key stands for; Unauthenticated if
    it is malformed, unknown or revoked."""
    now = cg.clock()
    principal, stale = cg.db.run(
        lambda conn: gateway_keys.authenticate(conn, key, now), read_only=True
    )
    if stale:
        cg.db.run(lambda conn: gateway_keys.touch(conn, principal.key_id, now))
    cg.catalog.note_mode(principal.tenant_id, principal.mode)
    return principal
