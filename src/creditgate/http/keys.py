"""Routes for a tenant's own API keys: list (by prefix), create, revoke, rotate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from creditgate.domain.errors import ApiKeyRevoked, UnknownApiKey
from creditgate.http import schemas
from creditgate.http.answers import IdempotencyKey, answer
from creditgate.http.auth import KeyCache, Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import ID_PATTERN, ApiKeyList, NewApiKey
from creditgate.http.reference import errors
from creditgate.services.catalog.api_keys import Principal

KeyPath = Annotated[str, Path(pattern=ID_PATTERN, description="The key's id (`key_…`)")]

router = APIRouter(prefix="/v1/api-keys", route_class=ExactJsonRoute, tags=["api keys"])


@router.get(
    "", response_model=schemas.ApiKeyListAnswer, summary="List API keys", responses=errors()
)
def list_keys(t: Ledger) -> Response:
    """The tenant's keys, revoked ones too, each shown by its prefix: a secret is never
    shown again after it is created."""
    return answer(ApiKeyList(data=t.api_keys()))


@router.post(
    "",
    status_code=201,
    response_model=schemas.CreatedApiKey,
    summary="Create an API key",
    responses=errors(),
)
def create_key(
    t: Ledger, body: NewApiKey | None = None, idempotency_key: IdempotencyKey = None
) -> Response:
    """A new key for the tenant. Its secret (`key`) is in this answer only; a replay answers
    `key: null`. The body is optional."""
    name = body.name if body is not None else ""
    return answer(t.create_api_key(name, idempotency_key=idempotency_key), 201)


@router.post(
    "/{id}/revoke",
    response_model=schemas.ApiKey,
    summary="Revoke an API key",
    responses=errors(UnknownApiKey),
)
def revoke_key(
    id: KeyPath, request: Request, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Stop a key working: at once on this server, within seconds on the others. Revoking
    a revoked key answers it as it is."""
    revoked = t.revoke_api_key(id, idempotency_key=idempotency_key)
    _forget(request, id)
    return answer(revoked)


@router.post(
    "/{id}/rotate",
    status_code=201,
    response_model=schemas.CreatedApiKey,
    summary="Rotate an API key",
    responses=errors(UnknownApiKey, ApiKeyRevoked),
)
def rotate_key(
    id: KeyPath, request: Request, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Revoke a key and issue its replacement (with the same name) in one step; the new
    secret is in this answer only. A revoked key cannot be rotated (409)."""
    created = t.rotate_api_key(id, idempotency_key=idempotency_key)
    _forget(request, id)
    return answer(created, 201)


def _forget(request: Request, key_id: str) -> None:
    keys: KeyCache[Principal] = request.app.state.keys
    keys.forget(key_id)
