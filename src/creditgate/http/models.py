"""What the API accepts, bounded so that no input can hurt a server, and its list answers.

The services check every value again; these bounds reject what is malformed before any work
(and describe the inputs in the OpenAPI document).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
)

from creditgate.domain.amounts import ASSET_CODE, MAX_AMOUNT, MAX_BALANCE, MAX_SCALE
from creditgate.domain.holds import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS
from creditgate.domain.lots import LotKind
from creditgate.domain.policy import PolicyMode
from creditgate.http.problems import Problem
from creditgate.services.catalog import MAX_NAME
from creditgate.services.context import MAX_KEY_LENGTH
from creditgate.services.grants import MAX_PRIORITY
from creditgate.services.results import (
    ApiKey,
    AssetInfo,
    Charge,
    Customer,
    Lot,
    Result,
)

MAX_METADATA_DEPTH = 16
MAX_BATCH = 1_000
MAX_REASON = 500
ID_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
DECIMAL_PATTERN = r"^[0-9]{1,20}(\.[0-9]{1,18})?$"


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must hold printable characters only")
    return value


def _json_value(value: Any, depth: int = 0) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"must be nested at most {MAX_METADATA_DEPTH} levels deep")
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("must hold valid Unicode text (no lone surrogates)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _json_value(key, depth + 1)
            _json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_value(item, depth + 1)


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    _json_value(value)
    return value


def _utc_timestamp(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not 1970 <= utc.year <= 9998:
        raise ValueError("must be between the years 1970 and 9998")
    return utc


def _integral(value: object) -> object:
    # JSON Schema counts 10.0 as the integer 10; 10.5, "10" and true are still refused.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**64:
        return int(value)
    return value


def _decimal_text(value: object) -> object:
    # Integers are taken too; floats never (they cannot hold an exact price).
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Whole numbers within bounds: 10 and 10.0, never 10.5, "10" or true.
Amount = Annotated[
    int, Strict(), Field(ge=1, le=MAX_AMOUNT, examples=[1_000]), BeforeValidator(_integral)
]
Usage = Annotated[int, Strict(), Field(ge=0, le=MAX_AMOUNT), BeforeValidator(_integral)]
GrantAmount = Annotated[int, Strict(), Field(ge=1, le=MAX_BALANCE), BeforeValidator(_integral)]
Limit = Annotated[int, Strict(), Field(ge=0, le=MAX_BALANCE), BeforeValidator(_integral)]
Scale = Annotated[int, Strict(), Field(ge=0, le=MAX_SCALE), BeforeValidator(_integral)]
Priority = Annotated[int, Strict(), Field(ge=0, le=MAX_PRIORITY), BeforeValidator(_integral)]
Ttl = Annotated[
    int,
    Strict(),
    Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS),
    BeforeValidator(_integral),
]
Text = Annotated[str, AfterValidator(_printable)]
Name = Annotated[Text, Field(max_length=MAX_NAME)]
CustomerId = Annotated[Text, Field(min_length=1, max_length=MAX_NAME, examples=["cust_42"])]
AssetCode = Annotated[str, Field(pattern=ASSET_CODE.pattern, max_length=32, examples=["credits"])]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
Timestamp = Annotated[AwareDatetime, AfterValidator(_utc_timestamp)]
Action = Annotated[Text, Field(min_length=1, max_length=100)]
IdempotencyKey = Annotated[Text, Field(min_length=1, max_length=MAX_KEY_LENGTH)]
DecimalText = Annotated[
    str, BeforeValidator(_decimal_text), Field(pattern=DECIMAL_PATTERN, examples=["0.25"])
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewAsset(Body):
    code: AssetCode
    scale: Scale
    name: Name = ""


class NewCustomer(Body):
    id: CustomerId = Field(description="Your own id for the customer (`external_id`)")
    name: Name = ""
    metadata: Metadata | None = None
    policy: PolicyMode = PolicyMode.BLOCK
    overdraft_limit: Limit | None = None


class PolicyChange(Body):
    policy: PolicyMode
    overdraft_limit: Limit | None = None
    low_balance_threshold: Limit | None = None


class NewGrant(Body):
    asset: AssetCode
    amount: GrantAmount
    kind: LotKind = LotKind.PROMOTIONAL
    priority: Priority = 0
    effective_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    cost_basis: DecimalText = "0"
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3,8}$")] = "USD"
    metadata: Metadata | None = None


class GrantVoid(Body):
    reason: Annotated[Text, Field(max_length=MAX_REASON)] = ""


class NewAuthorization(Body):
    customer: CustomerId
    asset: AssetCode
    amount: Amount
    ttl_seconds: Ttl = DEFAULT_TTL_SECONDS
    metadata: Metadata | None = None


class SettlementRequest(Body):
    amount: Usage
    action: Action | None = None
    metadata: Metadata | None = None


class NewCharge(Body):
    customer: CustomerId
    asset: AssetCode
    amount: Amount
    action: Action | None = None
    metadata: Metadata | None = None


class UsageEvent(NewCharge):
    idempotency_key: IdempotencyKey


class ChargeBatch(Body):
    events: Annotated[list[UsageEvent], Field(min_length=1, max_length=MAX_BATCH)]


class NewApiKey(Body):
    name: Name = ""


# Answers that are not a single service result.


class AssetList(BaseModel):
    data: list[AssetInfo]


class CustomerList(BaseModel):
    data: list[Customer]


class LotList(BaseModel):
    data: list[Lot]


class ApiKeyList(BaseModel):
    data: list[ApiKey]


class BatchItem(Result):
    idempotency_key: str
    status: Literal["posted", "declined", "error"]
    charge: Charge | None = None
    error: Problem | None = None


class BatchResult(Result):
    data: list[BatchItem]


class Health(BaseModel):
    status: str
