"""Turning results into responses, and the parameters every route shares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Query
from pydantic import BaseModel
from starlette.responses import Response

from creditgate.domain.amounts import ASSET_CODE
from creditgate.http.models import ID_PATTERN
from creditgate.http.problems import IDEMPOTENCY_HEADER
from creditgate.services.catalog.catalog import MAX_NAME
from creditgate.services.context import MAX_KEY_LENGTH

_REPLAY = (
    "Makes the request safe to retry: a replay answers the first answer; "
    "the same key with a different request is 409."
)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description=_REPLAY,
    ),
]
# Requests that move money or create a billable object: a retry without a key would apply
# twice, so one is required (a request without it is 400 `idempotency_key_required`).
RequiredIdempotencyKey = Annotated[
    str,
    Header(
        alias=IDEMPOTENCY_HEADER,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="Required: a unique string per logical operation, reused on retries. "
        + _REPLAY,
    ),
]
CustomerPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_NAME,
        description="Your own id for the customer (its `external_id`)",
        examples=["cust_42"],
    ),
]
ObjectPath = Annotated[
    str,
    Path(
        pattern=ID_PATTERN,
        description="The object's id, as its answers show it (`hld_…`, `lot_…`, `pur_…`, …)",
    ),
]
AssetPath = Annotated[
    str,
    Path(
        pattern=ASSET_CODE.pattern,
        max_length=32,
        description="The asset's code",
        examples=["credits"],
    ),
]
AssetQuery = Annotated[
    str | None,
    Query(pattern=ASSET_CODE.pattern, max_length=32, description="Only this asset"),
]


def answer(result: BaseModel, status: int = 200) -> Response:
    """A result as JSON, serialized the way the services store it for idempotent replay."""
    return Response(result.model_dump_json(), status_code=status, media_type="application/json")
