"""Routes for a tenant's upstream provider keys: set, list (by prefix), clear."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from creditgate.api.gateway import TenantGateway, UpstreamKey, UpstreamKeyList
from creditgate.http.answers import answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.reference import documented, errors
from creditgate.services.gateway import UpstreamKeyNotSet

router = APIRouter(prefix="/v1/gateway/upstream-keys", route_class=ExactJsonRoute, tags=["gateway"])

Provider = Annotated[
    Literal["openai", "anthropic"],
    Path(description="The upstream provider: `openai` or `anthropic`"),
]

_KEY_EXAMPLE = {
    "provider": "openai",
    "prefix": "sk-proj-",
    "created_at": "2026-12-03T09:00:00Z",
    "updated_at": "2026-12-03T09:00:00Z",
}
_KEY_FIELDS = {
    "provider": "The upstream provider: `openai` or `anthropic`",
    "prefix": "The key's first 8 characters; the rest is stored sealed and never shown",
    "created_at": "When a key for this provider was first set; ISO 8601 date and time, UTC",
    "updated_at": "When the key was last set or cleared; ISO 8601 date and time, UTC",
}
UpstreamKeyAnswer = documented(UpstreamKey, _KEY_FIELDS, example=_KEY_EXAMPLE)
UpstreamKeyListAnswer = documented(
    UpstreamKeyList,
    {"data": "The providers the gateway has a key for"},
    example={"data": [_KEY_EXAMPLE]},
)


class NewUpstreamKey(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"api_key": "sk-proj-…"}]}
    )

    api_key: str = Field(
        min_length=1,
        max_length=500,
        description="The tenant's key at the provider; stored sealed, never shown again",
    )


@router.get(
    "",
    response_model=UpstreamKeyListAnswer,
    summary="List the gateway's upstream keys",
    responses=errors(),
)
def list_upstream_keys(t: Ledger) -> Response:
    """The providers the gateway has a key for, each key shown by its first characters."""
    return answer(UpstreamKeyList(data=TenantGateway(t).upstream_keys()))


@router.put(
    "/{provider}",
    response_model=UpstreamKeyAnswer,
    summary="Set the gateway's key for a provider",
    responses=errors(),
)
def set_upstream_key(
    provider: Provider, body: NewUpstreamKey, request: Request, t: Ledger
) -> Response:
    """The key the gateway calls `provider` with for this tenant (replacing any before it).
    The answer shows its first characters only."""
    key = TenantGateway(t).set_upstream_key(provider, body.api_key)
    request.app.state.gateway.keys.forget(t.tenant_id, provider)
    return answer(key)


@router.delete(
    "/{provider}",
    response_model=UpstreamKeyAnswer,
    summary="Clear the gateway's key for a provider",
    responses=errors(UpstreamKeyNotSet),
)
def clear_upstream_key(provider: Provider, request: Request, t: Ledger) -> Response:
    """Forget the tenant's key for `provider`: the gateway refuses its calls from now on."""
    key = TenantGateway(t).clear_upstream_key(provider)
    request.app.state.gateway.keys.forget(t.tenant_id, provider)
    return answer(key)
