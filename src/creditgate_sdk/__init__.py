"""creditgate's Python SDK: the HTTP API with typed results, and the guard around LLM calls.

    from creditgate_sdk import Client, TokenRate

    cg = Client("https://credits.example.com", api_key, price=TokenRate(input="0.1", output="0.4"))
    with cg.guard("cust_42", "chat.completion", model="gpt-4.1", input_tokens=n,
                  max_tokens=800) as g:
        resp = openai_client.chat.completions.create(...)
        g.settle(resp)

Depends on httpx only; usage is read off OpenAI and Anthropic response objects by their
field names, without importing either SDK. See `creditgate_sdk.guard` for the guard.
"""

from creditgate_sdk._retry import RetryPolicy
from creditgate_sdk._version import __version__
from creditgate_sdk.client import AsyncClient, Client, new_idempotency_key
from creditgate_sdk.errors import (
    AlreadyExists,
    AmountOverflow,
    APIConnectionError,
    APITimeoutError,
    Conflict,
    CreditgateError,
    Declined,
    FieldError,
    GrantNotActive,
    HoldAlreadySettled,
    HoldAlreadyVoided,
    HoldExpired,
    HoldNotPending,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Problem,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnexpectedResponse,
    UnknownAsset,
    UnknownAuthorization,
    UnknownCustomer,
    UnknownGrant,
)
from creditgate_sdk.guard import AsyncGuard, Guard
from creditgate_sdk.models import (
    Asset,
    AssetBalance,
    Authorization,
    BatchItem,
    Charge,
    ChargeEvent,
    Customer,
    Draw,
    LedgerEntry,
    LedgerPage,
    LedgerTransaction,
    Lot,
    Policy,
    Settlement,
    Wallet,
)
from creditgate_sdk.pricing import Price, TokenRate
from creditgate_sdk.usage import Usage, UsageMeter, UsageNotFound, usage_from

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AlreadyExists",
    "AmountOverflow",
    "Asset",
    "AssetBalance",
    "AsyncClient",
    "AsyncGuard",
    "Authorization",
    "BatchItem",
    "Charge",
    "ChargeEvent",
    "Client",
    "Conflict",
    "CreditgateError",
    "Customer",
    "Declined",
    "Draw",
    "FieldError",
    "GrantNotActive",
    "Guard",
    "HoldAlreadySettled",
    "HoldAlreadyVoided",
    "HoldExpired",
    "HoldNotPending",
    "IdempotencyConflict",
    "InvalidRequest",
    "LedgerEntry",
    "LedgerPage",
    "LedgerTransaction",
    "Lot",
    "NotFound",
    "PermissionDenied",
    "Policy",
    "Price",
    "Problem",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "Settlement",
    "TokenRate",
    "Unauthorized",
    "UnexpectedResponse",
    "UnknownAsset",
    "UnknownAuthorization",
    "UnknownCustomer",
    "UnknownGrant",
    "Usage",
    "UsageMeter",
    "UsageNotFound",
    "Wallet",
    "__version__",
    "new_idempotency_key",
    "usage_from",
]
