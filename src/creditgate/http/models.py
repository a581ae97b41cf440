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
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from creditgate.domain.amounts import ASSET_CODE, MAX_AMOUNT, MAX_BALANCE, MAX_SCALE
from creditgate.domain.balances import MAX_BALANCE_THRESHOLDS
from creditgate.domain.budgets import MAX_PERCENT, MAX_THRESHOLDS, BudgetMode
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
BalanceLevel = Annotated[
    int, Strict(), Field(ge=-MAX_BALANCE, le=MAX_BALANCE), BeforeValidator(whole_number)
]
BudgetAmount = Annotated[int, Strict(), Field(ge=1, le=MAX_BALANCE), BeforeValidator(whole_number)]
Percent = Annotated[int, Strict(), Field(ge=1, le=MAX_PERCENT), BeforeValidator(whole_number)]
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


MINOR = "in minor units of the asset (at scale 2, 100 is 1 credit)"
TIMESTAMP = "ISO 8601 date and time with a time zone, e.g. `2027-01-01T00:00:00Z`"
_ASSET = "The asset's code, as created with `POST /v1/assets`"
_CUSTOMER = "Your own id for the customer (its `external_id`)"
_METADATA = "Your own JSON object (at most 16 levels deep), kept and returned as sent"
_MEMBER = (
    "The member of the customer (an organization) the call is for, by its `external_id`: "
    "the call counts against the member's budgets and the customer's, and is declined if the "
    "member is inactive or removed; left out: the customer as a whole"
)
_ACTION = "What the call does, as the rate card names it, e.g. `chat.completion`"
_DIMENSIONS = (
    'Values that select the card\'s price rule, e.g. `{"model": "gpt-4.1"}`: names of '
    "letters, digits and `_ . -`, text values"
)
_RATE_CARD = "The rate card's name"
_VENDOR_COST = (
    'What the call cost you, US dollars as a decimal string (`"0.0123"`); computed from '
    "the card and the model's price if left out"
)


def example(*examples: dict[str, Any]) -> ConfigDict:
    """A body model's examples, shown in the reference (and tried by the schema tests)."""
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class NewAsset(Body):
    """A unit of credit. Amounts of it are integers in minor units: `scale` says how many
    decimal places one unit has."""

    model_config = example({"code": "credits", "scale": 2, "name": "Credits"})

    code: AssetCode = Field(
        description="Its code, used in requests and answers: letters, digits and `_ -`, up to 32"
    )
    scale: Scale = Field(
        description="Decimal places of one unit: 2 makes 100 minor units one credit, 0 makes "
        "every amount whole units"
    )
    name: Name = Field("", description="A display name")


NewCustomerId = Annotated[str, Field(pattern=CUSTOMER_ID.pattern, examples=["cust_42"])]
_NEW_CUSTOMER_ID = (
    "Your own id for the customer: 1-128 characters of A-Z a-z 0-9 . _ : @ -, starting with a "
    "letter or digit. Every other request names the customer by it (`customer`, "
    "`/v1/customers/{customer}`), and answers show it as `external_id`"
)


class NewCustomer(Body):
    """A customer and its wallet. Name it with `external_id`; `id`, its earlier name, is still
    taken (deprecated)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "external_id": "cust_42",
                    "name": "Ada Lovelace",
                    "metadata": {"plan": "pro"},
                    "policy": "block",
                }
            ]
        }
    )

    # `id` before `external_id`: the check that one of them is given runs on `external_id`,
    # with `id` already read.
    id: NewCustomerId | None = Field(
        None,
        description="Deprecated: the earlier name of `external_id`, still taken. Send "
        "`external_id` instead; sent with it, it must be the same",
        json_schema_extra={"deprecated": True},
    )
    external_id: NewCustomerId | None = Field(
        None,
        description=_NEW_CUSTOMER_ID + " (required; `id` is taken in its place, deprecated)",
        validate_default=True,
    )
    name: Name = Field("", description="A display name, shown in the portal and the dashboard")
    metadata: Metadata | None = Field(
        None, description="Your own JSON object, kept with the customer and returned as sent"
    )
    policy: PolicyMode = Field(
        PolicyMode.BLOCK,
        description="The wallet policy for every asset: `block` (never below zero), "
        "`overdraft` (down to -`overdraft_limit`), `soft_cap` (as overdraft, raising "
        "`balance.soft_cap_reached` as it crosses zero) or `allow` (no floor)",
    )
    overdraft_limit: Limit | None = Field(
        None,
        description="With `policy: overdraft` or `soft_cap`: how far below zero the wallet may "
        "go, in minor units of each asset",
    )

    @field_validator("external_id")
    @classmethod
    def _one_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "id" not in info.data:  # `id` is refused already
            return value
        old = info.data["id"]
        if value is None and old is None:
            raise PydanticCustomError("missing", "Field required")
        if value is not None and old is not None and value != old:
            raise ValueError("differs from `id`, its deprecated name: send `external_id` only")
        return value

    @property
    def customer_id(self) -> str:
        """The customer's id, under whichever name it was sent."""
        value = self.external_id if self.external_id is not None else self.id
        assert value is not None  # checked by `_one_id`
        return value

    @property
    def id_field(self) -> str:
        """The name the request used for the customer's id: failures name the same field."""
        return "external_id" if self.external_id is not None else "id"


class PolicyChange(Body):
    model_config = example(
        {"policy": "overdraft", "overdraft_limit": 500, "low_balance_threshold": 1_000}
    )

    policy: PolicyMode = Field(
        description="`block` (never below zero), `overdraft` (down to -`overdraft_limit`), "
        "`soft_cap` (as overdraft, raising `balance.soft_cap_reached` as available crosses "
        "zero) or `allow` (no floor: usage past the balance is recorded as debt)"
    )
    overdraft_limit: Limit | None = Field(
        None,
        description="With `overdraft` or `soft_cap` (and only then): how far below zero, " + MINOR,
    )
    low_balance_threshold: Limit | None = Field(
        None,
        description="Send a `balance.low` event when available falls below it, "
        + MINOR
        + "; left out: none",
    )
    thresholds: Annotated[list[BalanceLevel], Field(max_length=MAX_BALANCE_THRESHOLDS)] | None = (
        Field(
            None,
            description="Alert thresholds of available, " + MINOR + ": a "
            "`balance.threshold_crossed` event each time available falls below one (again "
            f"after it has risen back to it); at most {MAX_BALANCE_THRESHOLDS}; left out: none",
        )
    )


MemberRef = Annotated[Text, Field(min_length=1, max_length=MAX_NAME, examples=["alice"])]


class NewMember(Body):
    """A member of the customer: one of its users, seats, projects or API keys, drawing on the
    customer's wallet under budgets of its own."""

    model_config = example(
        {"external_id": "alice", "name": "Alice Liddell", "metadata": {"team": "research"}}
    )

    external_id: NewCustomerId = Field(
        description="Your own id for the member, unique within the customer: calls name the "
        "member by it. 1-128 characters of A-Z, a-z, 0-9 and . _ : @ -"
    )
    name: Name = Field("", description="A display name")
    metadata: Metadata | None = Field(None, description=_METADATA)
    active: StrictBool = Field(
        True, description="Whether its calls are let through; false: declined (`member_inactive`)"
    )


class MemberChange(Body):
    model_config = example({"active": False}, {"name": "Alice L.", "metadata": {"team": "ml"}})

    name: Name | None = Field(None, description="A display name; left out: unchanged")
    metadata: Metadata | None = Field(None, description=_METADATA + "; left out: unchanged")
    active: StrictBool | None = Field(
        None,
        description="false: its calls are declined (`member_inactive`) until it is true again; "
        "left out: unchanged",
    )


class BudgetSpec(Body):
    """How much of one asset a member (or the customer as a whole) may use per period."""

    model_config = example(
        {"amount": 500_000, "period": "month", "mode": "hard", "thresholds": [50, 80]},
        {
            "amount": 20_000,
            "period": "week",
            "anchor": "2026-12-07T09:00:00Z",
            "mode": "soft",
            "thresholds": [100, 150],
        },
    )

    amount: BudgetAmount = Field(description="The most per period, " + MINOR)
    period: Literal["day", "week", "month", "total"] = Field(
        description="`day`, `week` or `month`, counted from `anchor`; or `total` (one period)"
    )
    anchor: Timestamp | None = Field(
        None,
        description="Where periods are counted from (a month keeps its day of the month, or "
        "the last day of a shorter month); " + TIMESTAMP + "; left out: calendar periods in UTC "
        "(days from midnight, weeks from Monday, months from the 1st). Another period or "
        "anchor than the budget's starts a new budget, counted from zero",
    )
    mode: BudgetMode = Field(
        BudgetMode.HARD,
        description="`hard`: a call past the amount is declined (`budget_exceeded`); `soft`: "
        "let through, with its alerts",
    )
    thresholds: Annotated[list[Percent], Field(max_length=MAX_THRESHOLDS)] | None = Field(
        None,
        description="Alert thresholds, percentages of `amount` (1-100 for a hard budget, "
        f"1-{MAX_PERCENT} for a soft one; at most {MAX_THRESHOLDS}): a "
        "`budget.threshold_crossed` event the first time held + spent reaches each in a period. "
        "100 always is one",
    )


class NewGrant(Body):
    """Credit added to the wallet as a lot, used in burn order: lower priority first, then
    the soonest to expire, then the oldest."""

    model_config = example(
        {
            "asset": "credits",
            "amount": 50_000,
            "kind": "purchased",
            "cost_basis": "0.01",
            "currency": "USD",
            "expires_at": "2027-12-31T00:00:00Z",
            "metadata": {"order": "ord_1001"},
        },
        {"asset": "credits", "amount": 1_000, "kind": "promotional"},
    )

    asset: AssetCode = Field(description=_ASSET)
    amount: GrantAmount = Field(description="Credit to add, " + MINOR)
    kind: LotKind = Field(
        LotKind.PROMOTIONAL,
        description="included, promotional, purchased, refund or adjustment: sets the "
        "default priority (see `GET /v1/consumption-order`) and how revenue is recognized",
    )
    priority: Priority | None = Field(
        None, description="Burn order, lower first; left out: the kind's default"
    )
    effective_at: Timestamp | None = Field(
        None, description="From when the credit counts; " + TIMESTAMP + "; left out: now"
    )
    expires_at: Timestamp | None = Field(
        None, description="When what remains expires; " + TIMESTAMP + "; left out: never"
    )
    cost_basis: DecimalText = Field(
        "0",
        description="What one unit of the asset cost the customer, in `currency`, as a "
        "decimal string: revenue is recognized from it as the credit is used (0: free). "
        "The grant's whole value (its amount in units times this) must be below 10^20",
    )
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3,8}$")] = Field(
        DEFAULT_CURRENCY, description="The currency of `cost_basis` (ISO 4217 code)"
    )
    metadata: Metadata | None = Field(None, description=_METADATA)


class GrantVoid(Body):
    model_config = example({"reason": "granted by mistake"})

    reason: Annotated[Text, Field(max_length=MAX_REASON)] = Field(
        "", description="Why, kept in the ledger"
    )


class NewAuthorization(Body):
    """A hold: `amount` (with `asset`), or no amount and an `action` with its `dimensions` and
    estimated `quantities`, priced by the rate card."""

    model_config = example(
        {
            "customer": "cust_42",
            "action": "chat.completion",
            "dimensions": {"model": "gpt-4.1"},
            "quantities": {"input_tokens": 1_200, "output_tokens": 1_000},
            "metadata": {"request": "req_7"},
        },
        {"customer": "cust_42", "asset": "credits", "amount": 500},
    )

    customer: CustomerId = Field(description=_CUSTOMER)
    asset: AssetCode | None = Field(None, description=_ASSET + "; required with `amount`")
    amount: Amount | None = Field(
        None, description="Credit to hold, " + MINOR + "; else the card prices `action`"
    )
    action: PricingAction | None = Field(None, description=_ACTION)
    dimensions: Dimensions | None = Field(None, description=_DIMENSIONS)
    quantities: Quantities | None = Field(
        None,
        description="The estimate to hold for, e.g. input tokens and `max_tokens` of "
        'output: whole numbers, or decimal strings such as `"1.5"`',
    )
    rate_card: RateCardName = Field(DEFAULT_RATE_CARD, description=_RATE_CARD)
    ttl_seconds: Ttl = Field(
        DEFAULT_TTL_SECONDS,
        description="Seconds until an unsettled hold is released (1 to 604800)",
    )
    metadata: Metadata | None = Field(None, description=_METADATA)
    member: MemberRef | None = Field(None, description=_MEMBER)


class SettlementRequest(Body):
    """The actual usage: `amount`, or (for a priced hold) `quantities`, priced by the rate card
    version the hold was priced with; neither, for an action that card prices flat."""

    model_config = example(
        {"quantities": {"input_tokens": 1_200, "output_tokens": 640}},
        {"amount": 420, "metadata": {"request": "req_7"}},
    )

    amount: Usage | None = Field(
        None,
        description="The usage to charge, "
        + MINOR
        + "; past the hold it is charged as far as the policy allows, the rest is shortfall",
    )
    quantities: Quantities | None = Field(
        None,
        description="The actual quantities, priced as the hold was: whole numbers, or "
        'decimal strings such as `"1.5"`',
    )
    vendor_cost: DecimalText | None = Field(None, description=_VENDOR_COST)
    action: Action | None = Field(
        None, description="The action the charge records; left out: the hold's"
    )
    metadata: Metadata | None = Field(
        None, description=_METADATA + " on the charge; left out: the hold's"
    )


class NewCharge(Body):
    """A charge in one step: `amount` (with `asset`), or no amount and an `action` with its
    `dimensions` and `quantities`, priced by the rate card."""

    model_config = example(
        {"customer": "cust_42", "asset": "credits", "amount": 250, "action": "image.generate"},
        {
            "customer": "cust_42",
            "action": "chat.completion",
            "dimensions": {"model": "gpt-4.1"},
            "quantities": {"input_tokens": 1_200, "output_tokens": 640},
        },
    )

    customer: CustomerId = Field(description=_CUSTOMER)
    asset: AssetCode | None = Field(None, description=_ASSET + "; required with `amount`")
    amount: Amount | None = Field(
        None, description="Credit to charge, " + MINOR + "; else the card prices `action`"
    )
    action: PricingAction | None = Field(None, description=_ACTION)
    dimensions: Dimensions | None = Field(None, description=_DIMENSIONS)
    quantities: Quantities | None = Field(
        None,
        description='The quantities used: whole numbers, or decimal strings such as `"1.5"`',
    )
    vendor_cost: DecimalText | None = Field(None, description=_VENDOR_COST)
    rate_card: RateCardName = Field(DEFAULT_RATE_CARD, description=_RATE_CARD)
    metadata: Metadata | None = Field(None, description=_METADATA)
    member: MemberRef | None = Field(None, description=_MEMBER)


class UsageEvent(NewCharge):
    model_config = example(
        {
            "idempotency_key": "evt-1",
            "customer": "cust_42",
            "asset": "credits",
            "amount": 120,
            "action": "embedding",
        }
    )

    idempotency_key: IdempotencyKey = Field(
        description="The event's own key: an event sent again (in any batch) is charged once"
    )


class ChargeBatch(Body):
    model_config = example(
        {
            "events": [
                {
                    "idempotency_key": "evt-1",
                    "customer": "cust_42",
                    "asset": "credits",
                    "amount": 120,
                    "action": "embedding",
                },
                {
                    "idempotency_key": "evt-2",
                    "customer": "cust_42",
                    "action": "chat.completion",
                    "dimensions": {"model": "gpt-4.1"},
                    "quantities": {"input_tokens": 800, "output_tokens": 200},
                },
            ]
        }
    )

    events: Annotated[list[UsageEvent], Field(min_length=1, max_length=MAX_BATCH)] = Field(
        description="1 to 1,000 usage events, each charged on its own"
    )


class NewApiKey(Body):
    model_config = example({"name": "production"})

    name: Name = Field("", description="A name for the key, e.g. where it is used")


class NewRateCard(Body):
    model_config = example(
        {
            "spec": {
                "asset": "credits",
                "credit_value_usd": "0.01",
                "actions": {
                    "chat.completion": {
                        "prices": [
                            {
                                "match": {"model": "gpt-4.1"},
                                "per_unit": {"input_tokens": "0.0004", "output_tokens": "0.0016"},
                                "vendor": {"llm": {"provider": "openai"}},
                            }
                        ]
                    }
                },
            }
        }
    )

    spec: Annotated[
        Metadata,
        Field(
            description="The card: `asset`, `credit_value_usd` (USD one unit of the asset is "
            "worth, a decimal string), optional `rounding`, and `actions`, each with price "
            "rules (`match`, `flat`, `per_unit` in units of the asset, `vendor`); see the "
            "README and docs/examples.md",
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
    name: RateCardName = Field(
        DEFAULT_RATE_CARD, description="The card's name: a tenant has several"
    )
    effective_at: Timestamp | None = Field(
        None,
        description="From when it prices; " + TIMESTAMP + "; left out: now; never in the past",
    )
    strict: StrictBool = Field(
        False,
        description="Refuse the card (422 unpriced_cost) rather than warn when it prices at 0 "
        "a quantity its LLM vendor charges for",
    )


class QuoteRequest(Body):
    model_config = example(
        {
            "action": "chat.completion",
            "dimensions": {"model": "gpt-4.1"},
            "quantities": {"input_tokens": 1_200, "output_tokens": 800},
        }
    )

    action: PricingAction = Field(description=_ACTION)
    dimensions: Dimensions | None = Field(None, description=_DIMENSIONS)
    quantities: Quantities | None = Field(
        None, description="Quantities to price: whole numbers, or decimal strings"
    )
    rate_card: RateCardName = Field(DEFAULT_RATE_CARD, description=_RATE_CARD)
    at: Timestamp | None = Field(
        None, description="Price by the card in effect then; " + TIMESTAMP + "; left out: now"
    )


class NewModelPrice(Body):
    model_config = example(
        {
            "model": "gpt-4.1",
            "provider": "openai",
            "input_mtok": "2",
            "output_mtok": "8",
            "cache_read_mtok": "0.5",
        }
    )

    model: Annotated[Text, Field(min_length=1, max_length=MAX_TEXT, examples=["gpt-4.1"])] = Field(
        description="The model, as a `model` dimension names it"
    )
    input_mtok: Annotated[
        DecimalText, Field(description="USD per million input tokens, a decimal string")
    ]
    output_mtok: Annotated[
        DecimalText, Field(description="USD per million output tokens, a decimal string")
    ]
    cache_read_mtok: Annotated[
        DecimalText | None,
        Field(description="USD per million cached input tokens; left out: the input price"),
    ] = None
    provider: Annotated[Text, Field(min_length=1, max_length=MAX_PROVIDER)] | None = Field(
        None, description="The vendor, e.g. `openai`; left out: any"
    )
    effective_at: Timestamp | None = Field(
        None, description="From when it prices vendor costs; " + TIMESTAMP + "; left out: now"
    )


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
