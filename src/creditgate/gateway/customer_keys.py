"""Routes for a customer's gateway keys: create (with a spend limit and models), list, revoke."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import Field
from starlette.responses import Response

from creditgate.api.gateway import (
    CreatedGatewayKey,
    GatewayKey,
    GatewayKeyList,
    TenantGateway,
    UnknownGatewayKey,
)
from creditgate.domain.errors import AmountOverflow, UnknownAsset, UnknownCustomer
from creditgate.http.answers import CustomerPath, IdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import ID_PATTERN, AssetCode, Body, Limit, Name, example
from creditgate.http.reference import documented, errors
from creditgate.services.gateway_keys import (
    MAX_MODEL_LENGTH,
    MAX_MODELS,
    GatewayKeyLimit,
    GatewayKeyUsage,
)

router = APIRouter(
    prefix="/v1/customers/{customer}/gateway-keys",
    route_class=ExactJsonRoute,
    tags=["gateway"],
)

KeyPath = Annotated[str, Path(pattern=ID_PATTERN, description="The gateway key's id (`gwk_…`)")]

_LIMIT_EXAMPLE = {"asset": "credits", "amount": 50_000, "period": "month"}
_KEY_EXAMPLE = {
    "id": "gwk_01JF3Q8ZC4R2M5W7Y9A1B3D5F7",
    "customer": "cust_42",
    "name": "cust_42's app",
    "prefix": "h3k9x2qa",
    "spend_limit": _LIMIT_EXAMPLE,
    "models": ["gpt-4o-mini", "claude-3-5-haiku-latest"],
    "usage": {
        "period_start": "2026-12-01T00:00:00Z",
        "period_end": "2027-01-01T00:00:00Z",
        "held": 1_200,
        "spent": 8_800,
        "remaining": 40_000,
    },
    "created_at": "2026-12-03T09:00:00Z",
    "revoked_at": None,
    "last_used_at": "2026-12-03T09:05:00Z",
}
_KEY_FIELDS = {
    "id": "The key's id (`gwk_…`): name it to revoke the key",
    "customer": "The customer the key is bound to (your own id for it): every call made "
    "with the key holds and charges this customer's wallet",
    "name": "The name given to the key",
    "prefix": "The key's prefix: the key is `cgk_<prefix>_<secret>`; the secret is never "
    "shown again after it is created",
    "spend_limit": "The most the key's calls may hold and spend per period; null: no limit "
    "but the wallet's",
    "models": "The models the key may call (the request's `model`); null: any model",
    "usage": "The current period's use of the spend limit; null without a limit",
    "created_at": "When the key was created; ISO 8601 date and time, UTC",
    "revoked_at": "When the key was revoked (it is refused from then on); null while it works",
    "last_used_at": "When the key last called the gateway, to the minute; null if never",
}
_LIMIT_FIELDS = {
    "asset": "The asset the limit counts (the asset the rate card prices the calls in)",
    "amount": "The most the key's open holds and settled charges may add up to in one "
    "period, in the asset's minor units",
    "period": "`day`, `week` (Monday to Sunday) or `month` of the calendar in UTC, or "
    "`total` (one period for the key's life)",
}
_USAGE_FIELDS = {
    "period_start": "When the current period began; ISO 8601 date and time, UTC",
    "period_end": "When it ends (the next one begins); null for a `total` limit",
    "held": "Held by the key's open authorizations in this period, in minor units",
    "spent": "Charged by the key's settled calls in this period, in minor units",
    "remaining": "What the period has left for new calls: amount - held - spent, in minor units",
}
GatewayKeyLimitAnswer = documented(GatewayKeyLimit, _LIMIT_FIELDS, example=_LIMIT_EXAMPLE)
GatewayKeyUsageAnswer = documented(
    GatewayKeyUsage,
    _USAGE_FIELDS,
    example=_KEY_EXAMPLE["usage"],  # type: ignore[arg-type]
)
GatewayKeyAnswer = documented(GatewayKey, _KEY_FIELDS, example=_KEY_EXAMPLE)
CreatedGatewayKeyAnswer = documented(
    CreatedGatewayKey,
    {
        **_KEY_FIELDS,
        "key": "The key itself, `cgk_<prefix>_<secret>`: shown in this answer only (null "
        "when the answer is a replay); give it to the customer's client as its API key",
    },
    example={**_KEY_EXAMPLE, "key": "cgk_h3k9x2qa_Xq3v…"},
)
GatewayKeyListAnswer = documented(
    GatewayKeyList,
    {"data": "The customer's gateway keys, revoked ones too, oldest first"},
    example={"data": [_KEY_EXAMPLE]},
)


class NewSpendLimit(Body):
    model_config = example(_LIMIT_EXAMPLE)

    asset: AssetCode = Field(description=_LIMIT_FIELDS["asset"])
    amount: Limit = Field(description=_LIMIT_FIELDS["amount"])
    period: Literal["day", "week", "month", "total"] = Field(
        "month", description=_LIMIT_FIELDS["period"]
    )


Model = Annotated[str, Field(min_length=1, max_length=MAX_MODEL_LENGTH)]


class NewGatewayKey(Body):
    model_config = example(
        {"name": "cust_42's app", "spend_limit": _LIMIT_EXAMPLE, "models": ["gpt-4o-mini"]},
    )

    name: Name = Field("", description="A name for the key, e.g. where it is used")
    spend_limit: NewSpendLimit | None = Field(
        None,
        description="At most this much held and spent per period through the key (besides "
        "what the wallet allows); a call past it is declined with 402. Omitted: no limit",
    )
    models: list[Model] | None = Field(
        None,
        min_length=1,
        max_length=MAX_MODELS,
        description="The models the key may call; a call to another is refused with 403 and "
        "never sent. Omitted: any model the rate card prices",
    )


@router.post(
    "",
    status_code=201,
    response_model=CreatedGatewayKeyAnswer,
    summary="Create a customer gateway key",
    responses=errors(UnknownCustomer, UnknownAsset, AmountOverflow),
)
def create_gateway_key(
    customer: CustomerPath,
    t: Ledger,
    body: NewGatewayKey | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A key bound to one customer, for calling the LLM gateway directly (from the
    customer's own client, or your code acting for it) with no tenant key and no
    `X-Creditgate-Customer` header: the key says whose wallet pays. Optionally a spend
    limit per period and the models it may call. The secret (`key`) is in this answer only;
    a replay answers `key: null`. The body is optional."""
    body = body or NewGatewayKey.model_validate({})
    created = TenantGateway(t).create_customer_key(
        customer,
        name=body.name,
        spend_limit=None if body.spend_limit is None else body.spend_limit.model_dump(),
        models=body.models,
        idempotency_key=idempotency_key,
    )
    return answer(created, 201)


@router.get(
    "",
    response_model=GatewayKeyListAnswer,
    summary="List a customer's gateway keys",
    responses=errors(UnknownCustomer),
)
def list_gateway_keys(customer: CustomerPath, t: Ledger) -> Response:
    """The customer's gateway keys, revoked ones too, each shown by its prefix (a secret is
    never shown again after it is created), with the current period's use of its spend
    limit."""
    return answer(GatewayKeyList(data=TenantGateway(t).customer_keys(customer)))


@router.delete(
    "/{key_id}",
    response_model=GatewayKeyAnswer,
    summary="Revoke a customer gateway key",
    responses=errors(UnknownCustomer, UnknownGatewayKey),
)
def revoke_gateway_key(
    customer: CustomerPath,
    key_id: KeyPath,
    request: Request,
    t: Ledger,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Stop a gateway key working: at once on this server, within seconds on the others
    (their key caches). Calls it has in flight settle as usual. Revoking a revoked key
    answers it as it is."""
    revoked = TenantGateway(t).revoke_customer_key(
        customer, key_id, idempotency_key=idempotency_key
    )
    request.app.state.gateway.customer_keys.forget(key_id)
    return answer(revoked)
