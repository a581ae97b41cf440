"""The operator's settings of the gateway, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from creditgate.settings import Settings, default

DEFAULT_OPENAI_BASE: str = default("gateway_openai_base")
DEFAULT_ANTHROPIC_BASE: str = default("gateway_anthropic_base")
# Output tokens held for a request that sets no cap of its own (max_tokens and its kin).
DEFAULT_MAX_OUTPUT_TOKENS: int = default("gateway_default_max_tokens")
DEFAULT_MAX_BODY_BYTES: int = default("gateway_max_body_bytes")
DEFAULT_TIMEOUT_SECONDS: float = default("gateway_timeout_seconds")
DEFAULT_CONNECT_TIMEOUT_SECONDS: float = default("gateway_connect_timeout_seconds")
# How long a gateway hold lives past the call's timeout before the sweeper may expire it.
HOLD_GRACE_SECONDS = 300
UPSTREAM_KEY_CACHE_SECONDS = 2.0
# How long a settle after an answer is tried again while the database is unavailable (cut,
# failing over, its pool exhausted): the answer has gone, so the charge must follow it.
SETTLE_RETRY_SECONDS = 60.0


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
    settle_retry_seconds: float = SETTLE_RETRY_SECONDS

    @property
    def hold_ttl_seconds(self) -> int:
        return int(self.timeout_seconds) + HOLD_GRACE_SECONDS

    def base(self, provider: str) -> str:
        return (self.openai_base if provider == "openai" else self.anthropic_base).rstrip("/")

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> GatewaySettings:
        """The gateway's part of `creditgate.settings.Settings` (the `CREDITGATE_GATEWAY_*`
        variables)."""
        env = settings or Settings()
        return cls(
            openai_base=env.gateway_openai_base,
            anthropic_base=env.gateway_anthropic_base,
            default_max_output_tokens=env.gateway_default_max_tokens,
            max_body_bytes=env.gateway_max_body_bytes,
            timeout_seconds=env.gateway_timeout_seconds,
            connect_timeout_seconds=env.gateway_connect_timeout_seconds,
        )
