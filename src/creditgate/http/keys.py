"""Routes for a tenant's own API keys: list (by prefix), create, revoke, rotate."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from creditgate.http.answers import IdempotencyKey, ObjectPath, answer
from creditgate.http.auth import KeyCache, Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import ApiKeyList, NewApiKey
from creditgate.services.results import ApiKey, CreatedApiKey

router = APIRouter(prefix="/v1/api-keys", route_class=ExactJsonRoute, tags=["api keys"])


@router.get("", response_model=ApiKeyList)
def list_keys(t: Ledger) -> Response:
    return answer(ApiKeyList(data=t.api_keys()))


@router.post("", status_code=201, response_model=CreatedApiKey)
def create_key(
    t: Ledger, body: NewApiKey | None = None, idempotency_key: IdempotencyKey = None
) -> Response:
    """A new key. Its secret (`key`) is in this answer only; a replay answers `key: null`."""
    name = body.name if body is not None else ""
    return answer(t.create_api_key(name, idempotency_key=idempotency_key), 201)


@router.post("/{id}/revoke", response_model=ApiKey)
def revoke_key(
    id: ObjectPath, request: Request, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Stop a key working: at once on this server, within seconds on the others."""
    revoked = t.revoke_api_key(id, idempotency_key=idempotency_key)
    _forget(request, id)
    return answer(revoked)


@router.post("/{id}/rotate", status_code=201, response_model=CreatedApiKey)
def rotate_key(
    id: ObjectPath, request: Request, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Revoke a key and issue its replacement (with the same name) in one step."""
    created = t.rotate_api_key(id, idempotency_key=idempotency_key)
    _forget(request, id)
    return answer(created, 201)


def _forget(request: Request, key_id: str) -> None:
    keys: KeyCache = request.app.state.keys
    keys.forget(key_id)
