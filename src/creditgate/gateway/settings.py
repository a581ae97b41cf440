"""The operator's settings of the gateway, from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_OPENAI_BASE = "https://api.openai.com"
DEFAULT_ANTHROPIC_BASE = "https://api.anthropic.com"
# Output tokens held for a request that sets no cap of its own (max_tokens and its kin).
DEFAULT_MAX_OUTPUT_TOKENS = 4096
DEFAULT_MAX_BODY_BYTES = 8 << 20
DEFAULT_TIMEOUT_SECONDS = 600.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
# How long a gateway hold lives past the call's timeout before the sweeper may expire it.
HOLD_GRACE_SECONDS = 300
UPSTREAM_KEY_CACHE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Where the gateway connects (the operator's choice, trusted: the outbound address
    guard applies only to addresses tenants give) and how it sizes and times calls.

    An upstream URL is the base and the path after `/gateway/<provider>`:
    `/gateway/openai/v1/chat/completions` goes to `<openai_base>/v1/chat/completions`.
    """

    openai_base: str = DEFAULT_OPENAI_BASE
    anthropic_base: str = DEFAULT_ANTHROPIC_BASE
    default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    upstream_key_cache_seconds: float = UPSTREAM_KEY_CACHE_SECONDS

    @property
    def hold_ttl_seconds(self) -> int:
        return int(self.timeout_seconds) + HOLD_GRACE_SECONDS

    def base(self, provider: str) -> str:
        return (self.openai_base if provider == "openai" else self.anthropic_base).rstrip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = os.environ if environ is None else environ
        return cls(
            openai_base=env.get("CREDITGATE_GATEWAY_OPENAI_BASE") or DEFAULT_OPENAI_BASE,
            anthropic_base=env.get("CREDITGATE_GATEWAY_ANTHROPIC_BASE") or DEFAULT_ANTHROPIC_BASE,
            default_max_output_tokens=int(
                env.get("CREDITGATE_GATEWAY_DEFAULT_MAX_TOKENS", DEFAULT_MAX_OUTPUT_TOKENS)
            ),
            max_body_bytes=int(
                env.get("CREDITGATE_GATEWAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
            ),
            timeout_seconds=float(
                env.get("CREDITGATE_GATEWAY_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
            ),
            connect_timeout_seconds=float(
                env.get(
                    "CREDITGATE_GATEWAY_CONNECT_TIMEOUT_SECONDS", DEFAULT_CONNECT_TIMEOUT_SECONDS
                )
            ),
        )
