"""The server's settings: every `CREDITGATE_*` environment variable it reads, in one typed object.

`Settings()` reads the environment when it is made (pydantic-settings), so a value is
checked once, named in the error when it is wrong, and documented in one place: the field's
description is the reference (`docs/configuration.md` is generated from it by
`python -m creditgate.settings`, and a test keeps the two in step). Command-line options
of `creditgate serve` override the variables they name.

This module imports nothing of creditgate's, so every layer may read it.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CREDITGATE_"
DEFAULT_SQLITE_FILE = "creditgate.db"


class Settings(BaseSettings):
    """What an operator sets; a tenant never sets any of it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_default=True
    )

    # The database
    db: str | None = Field(
        default=None,
        description="Database URL: `sqlite:///path/file.db`, a plain path to an SQLite file, or "
        "`postgresql+psycopg://user@host:5432/dbname`; a replicated cluster as all its hosts, "
        "`postgresql+psycopg://user@pg1:5432,pg2:5432,pg3:5432/dbname?target_session_attrs="
        "read-write` (deploy.md). Default: `./creditgate.db`.",
    )
    pool_size: int = Field(
        default=10,
        ge=1,
        description="Database connections per server process (`serve --pool-size`).",
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        default="FULL",
        description="SQLite's `synchronous` setting. `FULL` survives power loss; `NORMAL` may "
        "lose the last commits on power loss (never on a process crash).",
    )
    secret_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys, newest first, that seal webhook secrets and "
        "provider keys at rest (`creditgate secrets generate-key`). Required on PostgreSQL "
        "to store a secret; SQLite keeps its own key file beside the database without it.",
    )

    # The HTTP server
    max_in_flight: int = Field(
        default=32,
        ge=1,
        description="Requests served at once per process; more are refused with 503 and "
        "Retry-After (`serve --max-in-flight`).",
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1, description="Largest request body, in bytes (413)."
    )
    body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a request's body may take to arrive; a slower one is refused with "
        "408 (`serve --body-timeout`).",
    )
    key_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a verified API key is cached: a key revoked through another "
        "server process may still work here that long.",
    )
    auth_failures_per_minute: int = Field(
        default=20,
        ge=0,
        description="Failed authentications per client address per minute before 429 "
        "(0: no limit).",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks of the proxies in front whose "
        "X-Forwarded-For names the client (`serve --trusted-proxies`). Default: none.",
    )
    portal_secret: SecretStr | None = Field(
        default=None,
        description="Signs the billing portal's and dashboard's session cookies. Set it when "
        "several processes serve the portal, so each accepts the others' sessions; without "
        "it each process makes its own at start.",
    )

    # Outbound connections (operator-only switches)
    allow_private_webhook_targets: bool = Field(
        default=False,
        description="Let webhooks go to loopback, private and link-local addresses "
        "(self-hosted receivers). Off: such targets are refused.",
    )
    stripe_api_base: str | None = Field(
        default=None,
        description="Where the Stripe client connects instead of Stripe (a proxy, or an "
        "offline stand-in). Operator configuration: tenants cannot set it.",
    )

    # The LLM gateway (operator configuration: trusted, not subject to the address guard)
    gateway_openai_base: str = Field(
        default="https://api.openai.com",
        description="Where the gateway sends OpenAI calls (`/gateway/openai/v1/...` goes to "
        "`<base>/v1/...`).",
    )
    gateway_anthropic_base: str = Field(
        default="https://api.anthropic.com",
        description="Where the gateway sends Anthropic calls.",
    )
    gateway_default_max_tokens: int = Field(
        default=4096,
        ge=1,
        description="Output tokens held for a gateway request that sets no cap of its own "
        "(`max_tokens`, `max_completion_tokens`, `max_output_tokens`).",
    )
    gateway_max_body_bytes: int = Field(
        default=8 << 20, ge=1, description="Largest gateway request body, in bytes (413)."
    )
    gateway_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a gateway call may take upstream; its hold lives 300 s longer.",
    )
    gateway_connect_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long connecting upstream may take."
    )

    # The command line
    tenant: str | None = Field(
        default=None,
        description="The tenant CLI commands act on when `--tenant` is not given (before the "
        "config file's `tenant`, after `--tenant`).",
    )
    config: str | None = Field(
        default=None,
        description="The CLI's settings file (`creditgate config set …`). Default: "
        "`$XDG_CONFIG_HOME/creditgate/config.toml`, else `~/.config/creditgate/config.toml`.",
    )
    debug: bool = Field(
        default=False,
        description="`1`: the CLI prints the traceback under its one-line error (as `--debug`).",
    )

    # Testing
    clock_file: str | None = Field(
        default=None,
        description="A file holding a clock offset in seconds, for fault-injection runs "
        "(`creditgate chaos`). Never set in production.",
    )


def debug_requested() -> bool:
    """`CREDITGATE_DEBUG`, read on its own: the error handler that asks must not fail on
    another variable's wrong value."""
    return os.environ.get(env_name("debug"), "").strip().lower() not in ("", "0", "false", "no")


def describe(error: ValidationError) -> str:
    """One line naming each wrong variable and what is wrong with it."""
    return "; ".join(
        f"{env_name(str(e['loc'][0]))}: {e['msg']}" if e["loc"] else e["msg"]
        for e in error.errors()
    )


def default(field: str) -> Any:
    """A setting's default, for the code that names it as a constant."""
    return Settings.model_fields[field].default


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def env_reference() -> str:
    """The environment-variable reference, as Markdown (docs/configuration.md)."""
    lines = [
        "# Configuration",
        "",
        "The server reads these environment variables (through one typed settings object,",
        "`creditgate/settings.py`); a wrong value stops it at start with the variable named.",
        "Options of `creditgate serve` override the variables they name. This page is",
        "generated by `python -m creditgate.settings`; a test keeps it in step.",
        "",
        "| Variable | Default | Meaning |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "unset" if default is None else f"`{default}`"
        if isinstance(default, bool):
            shown = "`1`" if default else "`0`"
        elif default == "":
            shown = "empty"
        lines.append(f"| `{env_name(name)}` | {shown} | {field.description} |")
    lines += [
        "",
        "The clients read their own:",
        "",
        "| Variable | Read by | Meaning |",
        "| --- | --- | --- |",
        "| `CREDITGATE_BASE_URL` | the Python SDK, the TypeScript client | Where the "
        "server is, e.g. `http://127.0.0.1:8000`. |",
        "| `CREDITGATE_API_KEY` | the Python SDK, the TypeScript client | The tenant's API "
        "key, as `creditgate serve --demo` or `creditgate keys create` prints it. |",
        "",
        "The test suite reads `CREDITGATE_TEST_POSTGRES_URL` (a PostgreSQL server to test "
        "against; else it starts a throwaway cluster) and `CI` (`true`: a missing PostgreSQL "
        "or Chromium fails the run instead of skipping).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(env_reference(), end="")
