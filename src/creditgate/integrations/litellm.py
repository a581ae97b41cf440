"""The LiteLLM plugin under the server package's name: `creditgate_sdk.integrations.litellm`,
which an app installs with `pip install "creditgate-sdk[litellm]"` (docs/litellm.md).

    litellm_settings:
      callbacks: creditgate.integrations.litellm.handler
"""

from creditgate_sdk.integrations.litellm import (
    CUSTOMER_KEY,
    CallNotGated,
    CreditDeclined,
    CreditgateLogger,
    customer_of,
    handler,
)

__all__ = [
    "CUSTOMER_KEY",
    "CallNotGated",
    "CreditDeclined",
    "CreditgateLogger",
    "customer_of",
    "handler",
]
