"""The LiteLLM proxy itself, configured as docs/litellm.md says (`callbacks:
creditgate.integrations.litellm.handler` and the two environment variables), in front of the
gateway tests' stand-in provider, called with the official `openai` client: a call is held
before the proxy routes it and charged the card's price of the provider's usage when it ends
(streamed or not), and a customer who cannot pay gets the proxy's 402 while the provider
receives nothing. One proxy serves the whole test: it takes seconds to start."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from creditgate.adapters.outbound import tls_context
from creditgate.bench.http import stop_server
from creditgate.bench.standin import OPENAI_CHAT_USAGE, StandIn
from creditgate.storage.throwaway import listening_port
from tests.gateway.conftest import wait_for
from tests.integrations.conftest import FUNDS, MODEL, POOR, RICH, Shop

MESSAGES = [{"role": "user", "content": "Say hello to the world, please."}]
STARTUP_SECONDS = 240  # its imports and startup are heavy; on a loaded 2-core machine, minutes


class Proxy:
    def __init__(self, process: subprocess.Popen[bytes], url: str, key: str, log: Path) -> None:
        self.process, self.url, self.key, self.log = process, url, key, log


@pytest.fixture
def proxy(shop: Shop, standin: StandIn, tmp_path: Path) -> Iterator[Proxy]:
    port = listening_port()
    (tmp_path / "config.yaml").write_text(
        f"""\
model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_base: {standin.url}/v1
      api_key: sk-stand-in
litellm_settings:
  callbacks: creditgate.integrations.litellm.handler
"""
    )
    master = f"sk-{secrets.token_hex(32)}"
    env = {
        **os.environ,
        "CREDITGATE_BASE_URL": shop.url,
        "CREDITGATE_API_KEY": shop.key,
        "LITELLM_MASTER_KEY": master,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
    }
    log = tmp_path / "proxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "litellm.proxy.proxy_cli",
                "--config",
                "config.yaml",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"the LiteLLM proxy exited at startup:\n{log.read_text()[-3000:]}")
            try:
                if (
                    httpx.get(
                        f"{url}/health/liveliness", timeout=2, verify=tls_context()
                    ).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the LiteLLM proxy did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Proxy(process, url, master, log)
    finally:
        stop_server(process)


# The plugin's ledger effects are tested on both backends in test_litellm.py; this test is about
# the proxy's loading and wiring of it, so one backend spares a second proxy start.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_litellm_proxy_holds_charges_and_declines_through_the_plugin(
    shop: Shop, standin: StandIn, proxy: Proxy
) -> None:
    client = openai.OpenAI(base_url=proxy.url, api_key=proxy.key, max_retries=0, timeout=60)
    price = shop.price(
        input_tokens=OPENAI_CHAT_USAGE["prompt_tokens"],
        output_tokens=OPENAI_CHAT_USAGE["completion_tokens"],
    )

    # A customer who cannot pay: the proxy answers 402 and its provider receives nothing.
    with pytest.raises(openai.APIStatusError) as declined:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=200, user=POOR)
    assert declined.value.status_code == 402
    assert "insufficient_funds" in str(declined.value)
    assert standin.received == []
    assert shop.charges(POOR) == [] and shop.holds(POOR)[0].status == "declined"

    # A customer who can: held from the request, charged the provider's usage at the card's price.
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=200, user=RICH
    )
    assert reply.choices[0].message.content == "Hello, world!"
    wait_for(lambda: len(shop.charges()) == 1, timeout=30)
    (charge,) = shop.charges()
    assert charge.amount == price
    assert charge.metadata["upstream_id"] == "chatcmpl-standin"

    # Streamed: passed through as it arrives, charged when it ends.
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=200, user=RICH, stream=True
    )
    text = "".join((chunk.choices[0].delta.content or "") for chunk in stream if chunk.choices)
    assert text == "Hello, world!"
    wait_for(lambda: len(shop.charges()) == 2, timeout=30)
    assert [c.amount for c in shop.charges()] == [price, price]
    assert [h.status for h in shop.holds()] == ["settled", "settled"]
    assert shop.available() == FUNDS - 2 * price
    assert [r.path for r in standin.received] == ["/v1/chat/completions"] * 2
