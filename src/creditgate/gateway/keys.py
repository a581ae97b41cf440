"""Routes for a tenant's upstream provider keys: set, list (by prefix), clear."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from creditgate.api.gateway import TenantGateway, UpstreamKey, UpstreamKeyList
from creditgate.http.answers import answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute

router = APIRouter(prefix="/v1/gateway/upstream-keys", route_class=ExactJsonRoute, tags=["gateway"])

Provider = Literal["openai", "anthropic"]


class NewUpstreamKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(
        min_length=1,
        max_length=500,
        description="The tenant's key at the provider; stored sealed, never shown again",
    )


@router.get("", response_model=UpstreamKeyList)
def list_upstream_keys(t: Ledger) -> Response:
    """The providers the gateway has a key for, each key shown by its first characters."""
    return answer(UpstreamKeyList(data=TenantGateway(t).upstream_keys()))


@router.put("/{provider}", response_model=UpstreamKey)
def set_upstream_key(
    provider: Provider, body: NewUpstreamKey, request: Request, t: Ledger
) -> Response:
    """The key the gateway calls `provider` with for this tenant (replacing any before it).
    The answer shows its first characters only."""
    key = TenantGateway(t).set_upstream_key(provider, body.api_key)
    request.app.state.gateway.keys.forget(t.tenant_id, provider)
    return answer(key)


@router.delete("/{provider}", response_model=UpstreamKey)
def clear_upstream_key(provider: Provider, request: Request, t: Ledger) -> Response:
    """Forget the tenant's key for `provider`: the gateway refuses its calls from now on."""
    key = TenantGateway(t).clear_upstream_key(provider)
    request.app.state.gateway.keys.forget(t.tenant_id, provider)
    return answer(key)
