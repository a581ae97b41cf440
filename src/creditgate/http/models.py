"""What the API accepts, bounded so that no input can hurt a server, and its list answers.

The services check every value again; these bounds reject what is malformed before any work
(and describe the inputs in the OpenAPI document).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    WithJsonSchema,
    model_validator,
)

from creditgate.domain.amounts import ASSET_CODE, MAX_AMOUNT, MAX_BALANCE, MAX_SCALE
from creditgate.domain.grants import DEFAULT_CURRENCY, MAX_PRIORITY
from creditgate.domain.holds import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS
from creditgate.domain.lots import LotKind
from creditgate.domain.policy import PolicyMode
from creditgate.domain.pricing import DEFAULT_RATE_CARD, MAX_KEYS, MAX_TEXT, NAME
from creditgate.http.problems import Problem
from creditgate.services.catalog.catalog import CUSTOMER_ID, MAX_NAME, MAX_SAFE_INTEGER
from creditgate.services.context import MAX_KEY_LENGTH
from creditgate.services.pricing.quotes import MAX_PROVIDER
from creditgate.services.results import (
    ApiKey,
    AssetInfo,
    Charge,
    Customer,
    Lot,
    RateCardVersion,
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
    """Check a JSON value, and turn its Decimals back into the JSON numbers (floats) that
    metadata keeps: metadata is the client's own, not money (see `bodies.py`)."""
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
            if isinstance(item, Decimal):
                value[key] = float(item)
            else:
                _json_value(item, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, Decimal):
                value[i] = float(item)
            else:
                _json_value(item, depth + 1)


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    _json_value(value)
    return value


def _iso_8601(value: object) -> object:
    # Pydantic would also read 1767225600 or "0.5" as seconds since 1970.
    if isinstance(value, datetime) or (
        isinstance(value, str) and re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}", value)
    ):
        return value
    raise ValueError("must be an ISO 8601 timestamp with a time zone")


def _utc_timestamp(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not 1970 <= utc.year <= 9998:
        raise ValueError("must be between the years 1970 and 9998")
    return utc


def whole_number(value: object) -> object:
    """An integer field's input: a JSON integer as it is (exact, whatever its size); a number
    written with a fraction or an exponent (100.0, 1e3: a Decimal, see `bodies.py`) as the
    integer it is exactly, within ±(2**53 - 1), the range every JSON reader holds exactly
    (I-JSON, RFC 7493); anything else such a number is refused, never rounded.
    Strings and booleans are left for the field's own check to refuse."""
    if isinstance(value, float):  # from a caller that built the body in Python
        value = Decimal(value) if math.isfinite(value) else Decimal("NaN")
    if isinstance(value, Decimal):
        if (
            value.is_finite()
            and value.copy_abs() <= MAX_SAFE_INTEGER
            and value == value.to_integral_value()
        ):
            return int(value)
        raise ValueError(_INEXACT)
    return value


_INEXACT = (
    "must be a whole number; one written with a fraction or an exponent must be exactly "
    f"whole and within ±{MAX_SAFE_INTEGER}"
)


def _decimal_text(value: object) -> object:
    # Integers are taken too; floats never (they cannot hold an exact price).
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _quantity(value: object) -> int | str:
    # A count (1200) or an exact decimal string ("1.5" seconds); never a JSON fraction.
    try:
        value = whole_number(value)
    except ValueError:
        raise ValueError(_QUANTITY) from None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_AMOUNT:
            raise ValueError(f"must be a whole number from 0 to {MAX_AMOUNT}")
        return value
    if isinstance(value, str) and re.fullmatch(DECIMAL_PATTERN, value):
        return value
    raise ValueError(_QUANTITY)


_QUANTITY = (
    'must be a whole number or a decimal string such as "1.5", never a fraction as a number '
    f"(a whole number written with a fraction or an exponent must be within ±{MAX_SAFE_INTEGER})"
)


# Whole numbers within bounds: 10 and 10.0 (and 1e1), never 10.5, "10", true, or
# 9007199254740993.0 (beyond what a JSON reader holds exactly as written).
Amount = Annotated[
    int, Strict(), Field(ge=1, le=MAX_AMOUNT, examples=[1_000]), BeforeValidator(whole_number)
]
Usage = Annotated[int, Strict(), Field(ge=0, le=MAX_AMOUNT), BeforeValidator(whole_number)]
GrantAmount = Annotated[int, Strict(), Field(ge=1, le=MAX_BALANCE), BeforeValidator(whole_number)]
Limit = Annotated[int, Strict(), Field(ge=0, le=MAX_BALANCE), BeforeValidator(whole_number)]
Scale = Annotated[int, Strict(), Field(ge=0, le=MAX_SCALE), BeforeValidator(whole_number)]
Priority = Annotated[int, Strict(), Field(ge=0, le=MAX_PRIORITY), BeforeValidator(whole_number)]
Ttl = Annotated[
    int,
    Strict(),
    Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS),
    BeforeValidator(whole_number),
]
Text = Annotated[str, AfterValidator(_printable)]
Name = Annotated[Text, Field(max_length=MAX_NAME)]
CustomerId = Annotated[Text, Field(min_length=1, max_length=MAX_NAME, examples=["cust_42"])]
AssetCode = Annotated[str, Field(pattern=ASSET_CODE.pattern, max_length=32, examples=["credits"])]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_8601), AfterValidator(_utc_timestamp)]
Action = Annotated[Text, Field(min_length=1, max_length=100)]
IdempotencyKey = Annotated[Text, Field(min_length=1, max_length=MAX_KEY_LENGTH)]
DecimalText = Annotated[
    str,
    Field(pattern=DECIMAL_PATTERN),
    BeforeValidator(_decimal_text),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DECIMAL_PATTERN},
                {"type": "integer", "minimum": 0},
            ],
            "examples": ["0.25"],
        }
    ),
]
# Pricing: dimensions select a price rule, quantities are what the rule prices per unit.
PricingName = Annotated[str, Field(pattern=NAME.pattern)]
DimensionValue = Annotated[Text, Field(min_length=1, max_length=MAX_TEXT)]
Dimensions = Annotated[
    dict[PricingName, DimensionValue],
    Field(max_length=MAX_KEYS, examples=[{"model": "gpt-4.1"}]),
]
Quantity = Annotated[
    int | str,
    PlainValidator(_quantity),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT},
                {"type": "string", "pattern": DECIMAL_PATTERN},
            ]
        }
    ),
]
Quantities = Annotated[
    dict[PricingName, Quantity],
    Field(max_length=MAX_KEYS, examples=[{"input_tokens": 1_200, "output_tokens": 800}]),
]
RateCardName = Annotated[Text, Field(min_length=1, max_length=100, examples=["default"])]
PricingAction = Annotated[Action, Field(examples=["chat.completion"])]
SignedDecimal = Annotated[str, Field(pattern=r"^-?[0-9]{1,6}(\.[0-9]{1,18})?$")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        # FastAPI validates with `from_attributes`: a bare JSON number (a Decimal, see
        # bodies.py) would pass for an object whose fields all have defaults.
        if isinstance(value, dict | BaseModel):
            return value
        raise ValueError("must be a JSON object")


class NewAsset(Body):
    code: AssetCode
    scale: Scale
    name: Name = ""


class NewCustomer(Body):
    id: Annotated[str, Field(pattern=CUSTOMER_ID.pattern, examples=["cust_42"])] = Field(
        description="Your own id for the customer (`external_id`): 1-128 characters of "
        "A-Z a-z 0-9 . _ : @ -, starting with a letter or digit"
    )
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
    priority: Priority | None = None  # None: the kind's default (the consumption order)
    effective_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    cost_basis: DecimalText = "0"
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3,8}$")] = DEFAULT_CURRENCY
    metadata: Metadata | None = None


class GrantVoid(Body):
    reason: Annotated[Text, Field(max_length=MAX_REASON)] = ""


class NewAuthorization(Body):
    """A hold: `amount` (with `asset`), or no amount and an `action` with its `dimensions` and
    estimated `quantities`, priced by the rate card."""

    customer: CustomerId
    asset: AssetCode | None = Field(None, description="Required with `amount`")
    amount: Amount | None = None
    action: PricingAction | None = None
    dimensions: Dimensions | None = None
    quantities: Quantities | None = Field(
        None, description="The estimate, e.g. input tokens and `max_tokens` of output"
    )
    rate_card: RateCardName = DEFAULT_RATE_CARD
    ttl_seconds: Ttl = DEFAULT_TTL_SECONDS
    metadata: Metadata | None = None


class SettlementRequest(Body):
    """The actual usage: `amount`, or (for a priced hold) `quantities`, priced by the rate card
    version the hold was priced with; neither, for an action that card prices flat."""

    amount: Usage | None = None
    quantities: Quantities | None = None
    vendor_cost: DecimalText | None = Field(
        None, description="What the call cost you in USD; computed from the card if left out"
    )
    action: Action | None = None
    metadata: Metadata | None = None


class NewCharge(Body):
    """A charge in one step: `amount` (with `asset`), or no amount and an `action` with its
    `dimensions` and `quantities`, priced by the rate card."""

    customer: CustomerId
    asset: AssetCode | None = Field(None, description="Required with `amount`")
    amount: Amount | None = None
    action: PricingAction | None = None
    dimensions: Dimensions | None = None
    quantities: Quantities | None = None
    vendor_cost: DecimalText | None = Field(
        None, description="What the call cost you in USD; computed from the card if left out"
    )
    rate_card: RateCardName = DEFAULT_RATE_CARD
    metadata: Metadata | None = None


class UsageEvent(NewCharge):
    idempotency_key: IdempotencyKey


class ChargeBatch(Body):
    events: Annotated[list[UsageEvent], Field(min_length=1, max_length=MAX_BATCH)]


class NewApiKey(Body):
    name: Name = ""


class NewRateCard(Body):
    spec: Annotated[
        Metadata,
        Field(
            description="The card: asset, credit_value_usd, actions (see the README)",
            examples=[
                {
                    "asset": "credits",
                    "credit_value_usd": "0.01",
                    "actions": {
                        "chat.completion": {
                            "prices": [
                                {"per_unit": {"input_tokens": "0.002", "output_tokens": "0.008"}}
                            ]
                        }
                    },
                }
            ],
        ),
    ]
    name: RateCardName = DEFAULT_RATE_CARD
    effective_at: Timestamp | None = Field(None, description="Default: now; never in the past")
    strict: bool = Field(
        False,
        description="Refuse the card (422 unpriced_cost) rather than warn when it prices at 0 "
        "a quantity its LLM vendor charges for",
    )


class QuoteRequest(Body):
    action: PricingAction
    dimensions: Dimensions | None = None
    quantities: Quantities | None = None
    rate_card: RateCardName = DEFAULT_RATE_CARD
    at: Timestamp | None = Field(None, description="Price by the card in effect then")


class NewModelPrice(Body):
    model: Annotated[Text, Field(min_length=1, max_length=MAX_TEXT, examples=["gpt-4.1"])]
    input_mtok: Annotated[DecimalText, Field(description="USD per million input tokens")]
    output_mtok: Annotated[DecimalText, Field(description="USD per million output tokens")]
    cache_read_mtok: Annotated[
        DecimalText | None, Field(description="Default: the input price")
    ] = None
    provider: Annotated[Text, Field(min_length=1, max_length=MAX_PROVIDER)] | None = None
    effective_at: Timestamp | None = Field(None, description="Default: now")


# Answers that are not a single service result.


class AssetList(BaseModel):
    data: list[AssetInfo]


class CustomerList(BaseModel):
    data: list[Customer]


class LotList(BaseModel):
    data: list[Lot]


class ApiKeyList(BaseModel):
    data: list[ApiKey]


class RateCardList(BaseModel):
    data: list[RateCardVersion]


class BatchItem(Result):
    idempotency_key: str
    status: Literal["posted", "declined", "error"]
    charge: Charge | None = None
    error: Problem | None = None


class BatchResult(Result):
    data: list[BatchItem]


class Health(BaseModel):
    status: str
