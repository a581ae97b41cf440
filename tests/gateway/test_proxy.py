"""The gateway reaches providers through the proxy the operator's environment names."""

from __future__ import annotations

import pytest

from creditgate.gateway.routes import Gateway
from creditgate.gateway.settings import GatewaySettings
from creditgate.http.threads import Threads

PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES + NO_PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_provider_calls_use_the_environments_proxy_unless_no_proxy_names_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    settings = GatewaySettings(
        openai_base="https://api.openai.com", anthropic_base="http://127.0.0.1:8080"
    )
    gateway = Gateway(settings, Threads(1))
    assert gateway.proxy("openai") == "http://proxy.internal:3128"
    assert gateway.proxy("anthropic") is None  # loopback is in NO_PROXY


def test_without_proxy_variables_calls_go_direct() -> None:
    gateway = Gateway(GatewaySettings(openai_base="https://api.openai.com"), Threads(1))
    assert gateway.proxy("openai") is None
