"""The Python snippets of docs/gateway.md run as written against a live gateway in front of
the stand-in provider, and charge the customer they name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from creditgate.api import Creditgate
from creditgate.api.gateway import TenantGateway
from tests.gateway.conftest import new_tenant, wait_for

DOC = Path(__file__).parents[2] / "docs" / "gateway.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
CARD = re.search(r"```json\n\s*(\{\"asset\".*?)```", DOC.read_text(), re.S)


# The calls each snippet makes, by its client.
CALLS = {"openai": 2, "anthropic": 2, "litellm": 2, "customer-key": 1}


def _named(snippet: str) -> str:
    if "create_gateway_key" in snippet:
        return "customer-key"
    if "import litellm" in snippet:
        return "litellm"
    return "anthropic" if "from anthropic import" in snippet else "openai"


def test_the_doc_has_its_snippets() -> None:
    assert sorted(map(_named, SNIPPETS)) == sorted(CALLS) and CARD is not None


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[_named(s) for s in SNIPPETS])
def test_each_snippet_runs_as_written(
    snippet: str,
    cg: Creditgate,
    gateway_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert CARD is not None
    t = new_tenant(cg, gateway_url)
    t.ledger.publish_rate_card(json.loads(CARD.group(1)))
    t.ledger.create_customer("cust_42")
    t.ledger.grant("cust_42", "credits", 100_000)
    assert TenantGateway(t.ledger).upstream_keys()
    monkeypatch.setenv("CREDITGATE_URL", gateway_url)
    monkeypatch.setenv("CREDITGATE_API_KEY", t.key)
    exec(compile(snippet, str(DOC), "exec"), {"__name__": "snippet"})
    assert "Hello, world!" in capsys.readouterr().out
    wait_for(lambda: len(t.charges("cust_42")) == CALLS[_named(snippet)])
    assert t.available("cust_42") < 100_000
