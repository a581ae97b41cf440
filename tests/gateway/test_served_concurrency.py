"""A real `creditgate serve` process in front of the stand-in, called at once by 8 OS
processes with the openai client on one customer: the approvals are exactly what the
balance fits, and exactly what a customer key's spend limit fits — on SQLite with one
worker, on PostgreSQL with two worker processes sharing the database.

Every call reports the usage the gateway held for, so a settle neither frees nor takes more
than its hold: however the calls interleave, the approvals are floor(funds / price).
"""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate
from creditgate.bench.standin import StandIn
from creditgate.domain.gateway import estimate_input_tokens
from tests.databases import create_database, drop_database
from tests.gateway import calling_process
from tests.gateway.conftest import CARD, OPENAI_KEY, wait_for
from tests.http.test_serve import Server, start, stop
from tests.processes import worker_context

pytestmark = pytest.mark.slow


def settled(api: httpx.Client, customer: str) -> dict[str, Any]:
    """The customer's credits once no hold is open (settles follow the answers)."""
    wallet: dict[str, Any] = {}

    def done() -> bool:
        nonlocal wallet
        wallet = api.get(f"/v1/customers/{customer}/wallet").json()["balances"][0]
        return bool(wallet["held"] == 0)

    wait_for(done, timeout=30)
    return wallet


PROCESSES = 8
MESSAGES, MAX_TOKENS = calling_process.MESSAGES, calling_process.MAX_TOKENS


@dataclass
class Served:
    server: Server
    standin: StandIn
    tenant_key: str

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tenant_key}"}
        return httpx.Client(
            verify=tls_context(), base_url=self.server.base_url, headers=headers, timeout=30
        )


@pytest.fixture(params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    standin = StandIn(delay=0.005).start()  # streamed pieces arrive apart: calls overlap
    sent = {"messages": MESSAGES}
    standin.chat_usage = {
        "prompt_tokens": estimate_input_tokens(sent),
        "completion_tokens": MAX_TOKENS,
        "total_tokens": estimate_input_tokens(sent) + MAX_TOKENS,
    }
    # The operator points the gateway at the stand-in (the served process inherits it).
    monkeypatch.setenv("CREDITGATE_GATEWAY_OPENAI_BASE", standin.url)
    name = ""
    postgres_server = ""
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path / 'served.db'}"
        extra: tuple[str, ...] = ()
    else:
        postgres_server = str(request.getfixturevalue("postgres_server"))
        name = f"creditgate_gwserve_{uuid.uuid4().hex[:8]}"
        db = create_database(postgres_server, name)
        extra = ("--workers", "2")
    server = start(db, tmp_path, *extra)
    try:
        with Creditgate(db) as cg:  # the served database, in this process: no CLI to start
            _, key = cg.create_tenant_with_key("Gateway AI")
        assert key.key is not None
        yield Served(server, standin, key.key)
    finally:
        stop(server)
        standin.stop()
        if name:
            drop_database(postgres_server, name)


def _races(served: Served, races: list[tuple[str, int]]) -> list[tuple[int, int]]:
    """PROCESSES processes, started once, run the races one after the other: in each, all
    are released at once, each making the race's number of calls with its key. The approvals
    and declines in all, per race."""
    ctx = worker_context()
    start = ctx.Barrier(PROCESSES)  # reused: every process waits on it before each race
    out = ctx.Queue()
    workers = [
        ctx.Process(
            target=calling_process.call,
            args=(served.server.base_url, races, i % 2 == 0, start, out),
        )
        for i in range(PROCESSES)
    ]
    for w in workers:
        w.start()
    answers: list[tuple[Any, ...]] = []
    failed = False
    try:
        # A process that fails leaves the others waiting at the next race's barrier: the
        # first error ends the wait.
        while len(answers) < PROCESSES * len(races) and not failed:
            answers.append(out.get(timeout=180))
            failed = answers[-1][0] != "ok"
    except queue.Empty:
        pytest.fail(f"a calling process did not answer\n{served.server.log()[-3000:]}")
    finally:
        for w in workers:
            w.join(timeout=0 if failed else 30)  # after a failure, no one is waited for
            if w.is_alive():
                w.kill()
    assert not failed, answers
    return [
        (
            sum(a[2] for a in answers if a[1] == race),
            sum(a[3] for a in answers if a[1] == race),
        )
        for race in range(len(races))
    ]


def test_eight_processes_never_get_one_call_past_the_balance_or_the_key_limit(
    served: Served,
) -> None:
    with served.api() as api:
        assert api.post("/v1/assets", json={"code": "credits", "scale": 2}).status_code == 201
        published = api.post(
            "/v1/rate-cards", json={"spec": CARD}, headers={"Idempotency-Key": "card"}
        )
        assert published.status_code == 201, published.text
        upstream = api.put("/v1/gateway/upstream-keys/openai", json={"api_key": OPENAI_KEY})
        assert upstream.status_code == 200, upstream.text
        quote = api.post(
            "/v1/rate-cards/quote",
            json={
                "action": "chat.completion",
                "dimensions": {"model": "gpt-test"},
                "quantities": {
                    "input_tokens": estimate_input_tokens({"messages": MESSAGES}),
                    "output_tokens": MAX_TOKENS,
                },
            },
        )
        assert quote.status_code == 200, quote.text
        price = quote.json()["amount"]
        assert price > 0

        def customer(name: str, funds: int, **key: Any) -> str:
            assert api.post("/v1/customers", json={"id": name}).status_code == 201
            grant = {"asset": "credits", "amount": funds, "kind": "purchased"}
            granted = api.post(
                f"/v1/customers/{name}/grants",
                json={**grant, "cost_basis": "0.01"},
                headers={"Idempotency-Key": f"grant-{name}"},
            )
            assert granted.status_code == 201, granted.text
            created = api.post(f"/v1/customers/{name}/gateway-keys", json=key)
            assert created.status_code == 201, created.text
            return str(created.json()["key"])

        # Funds for 13 calls and a half; a limit for 9 calls and a bit, on ample funds.
        funded = 13 * price + price // 2
        by_balance = customer("by-balance", funded)
        limit = 9 * price + 1
        by_limit = customer(
            "by-limit",
            100 * price,
            spend_limit={"asset": "credits", "amount": limit, "period": "day"},
        )

        # The calling processes start once (each imports openai) and race twice: every
        # process calls with the balance's key, then, released together again, with the
        # limit's.
        by_balance_race, by_limit_race = _races(served, [(by_balance, 3), (by_limit, 2)])
        assert by_balance_race == (13, PROCESSES * 3 - 13)
        wallet = settled(api, "by-balance")
        assert (wallet["posted"], wallet["held"]) == (funded - 13 * price, 0)

        assert by_limit_race == (9, PROCESSES * 2 - 9)
        wallet = settled(api, "by-limit")
        assert (wallet["posted"], wallet["held"]) == (100 * price - 9 * price, 0)
        (key,) = api.get("/v1/customers/by-limit/gateway-keys").json()["data"]
        assert (key["usage"]["spent"], key["usage"]["held"]) == (9 * price, 0)

    # Only the approved calls reached the provider; the books agree.
    assert len(served.standin.received) == 13 + 9
    with Creditgate(served.server.db) as cg:
        report = cg.verify()
    assert report.ok, report.violations
