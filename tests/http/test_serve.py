"""A real `creditgate serve` process, started by the test on a free port and driven over HTTP:
on SQLite with one worker, on PostgreSQL with two worker processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from creditgate.adapters.outbound import tls_context
from creditgate.storage.throwaway import listening_port
from tests.databases import create_database, drop_database

pytestmark = pytest.mark.slow


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "creditgate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    stdout: Path
    stderr: Path
    db: str

    def log(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()


def start(db: str, tmp_path: Path, *extra: str) -> Server:
    port = listening_port()
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "creditgate", "serve", "--db", db, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--sweep-seconds", "0.3", *extra],
        stdout=stdout.open("wb"),
        stderr=stderr.open("wb"),
    )
    server = Server(process, f"http://127.0.0.1:{port}", stdout, stderr, db)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, server.log()
        try:
            if (
                httpx.get(f"{server.base_url}/readyz", timeout=1, verify=tls_context()).status_code
                == 200
            ):
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)


def autovacuum_off(db: str) -> bool:
    if not db.startswith("postgresql"):
        return False
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SHOW autovacuum").scalar() == "off"
    finally:
        engine.dispose()


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path / 'served.db'}"
        served = start(db, tmp_path, "--demo")
        try:
            yield served
        finally:
            stop(served)
        return
    postgres_server = str(request.getfixturevalue("postgres_server"))
    name = f"creditgate_serve_{uuid.uuid4().hex[:8]}"
    db = create_database(postgres_server, name)
    served = start(db, tmp_path, "--demo", "--workers", "2")
    try:
        yield served
    finally:
        stop(served)
        drop_database(postgres_server, name)


def test_a_served_creditgate_end_to_end(server: Server) -> None:
    created = json.loads(cli("tenants", "create", "Acme AI", "--db", server.db, "--json"))
    headers = {"Authorization": f"Bearer {created['api_key']['key']}"}
    with httpx.Client(
        verify=tls_context(), base_url=server.base_url, headers=headers, timeout=10
    ) as http:
        assert http.post("/v1/assets", json={"code": "credits", "scale": 2}).status_code == 201
        assert http.post("/v1/customers", json={"id": "c1"}).status_code == 201
        grant = {"asset": "credits", "amount": 10_000, "kind": "purchased", "cost_basis": "0.01"}
        keyed = {"Idempotency-Key": "grant-1"}
        assert http.post("/v1/customers/c1/grants", json=grant, headers=keyed).status_code == 201

        auth = http.post(
            "/v1/authorizations",
            json={"customer": "c1", "asset": "credits", "amount": 3_000},
            headers={"Idempotency-Key": "auth-1"},
        )
        assert auth.status_code == 201 and auth.json()["approved"]
        settled = http.post(
            f"/v1/authorizations/{auth.json()['id']}/settle",
            json={"amount": 2_000},
            headers={"Idempotency-Key": "settle-1"},
        )
        assert settled.status_code == 200

        # The background worker expires a hold left past its TTL.
        left = http.post(
            "/v1/authorizations",
            json={"customer": "c1", "asset": "credits", "amount": 1_000, "ttl_seconds": 1},
            headers={"Idempotency-Key": "auth-2"},
        ).json()
        deadline = time.monotonic() + 15
        while http.get(f"/v1/authorizations/{left['id']}").json()["status"] != "expired":
            assert time.monotonic() < deadline, "the sweeper did not expire the hold"
            time.sleep(0.2)

        batch = {
            "events": [
                {"idempotency_key": f"e{i}", "customer": "c1", "asset": "credits", "amount": 100}
                for i in range(5)
            ]
        }
        items = http.post(
            "/v1/charges/batch", json=batch, headers={"Idempotency-Key": "batch-1"}
        ).json()["data"]
        assert [i["status"] for i in items] == ["posted"] * 5
        balance = http.get("/v1/customers/c1/wallet").json()["balances"][0]
        assert (balance["posted"], balance["held"]) == (7_500, 0)

        assert (
            http.get("/v1/customers/c1", headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        metrics = http.get("/metrics").text
        assert 'creditgate_authorizations_total{outcome="approved"}' in metrics
        assert 'route="/v1/customers/{customer}/wallet"' in metrics

    # The demo tenant and its key, printed at start.
    demo_key = next(
        line.split(": ", 1)[1].strip()
        for line in server.stdout.read_text().splitlines()
        if line.startswith("demo API key: ")
    )
    assert f"API docs: {server.base_url}/docs" in server.stdout.read_text()
    demo = httpx.get(
        f"{server.base_url}/v1/customers/cust_alice/wallet",
        headers={"Authorization": f"Bearer {demo_key}"},
    )
    assert demo.status_code == 200 and demo.json()["balances"]
    assert httpx.get(f"{server.base_url}/docs").status_code == 200

    stop(server)
    assert server.process.returncode == 0, server.log()
    # JSON log lines with request ids, and never a whole key.
    lines = [json.loads(line) for line in server.stderr.read_text().splitlines() if line]
    requests = [line for line in lines if line.get("msg") == "request"]
    assert requests and all(line["request_id"] for line in requests)
    assert created["api_key"]["key"] not in server.stderr.read_text()
    assert demo_key not in server.stderr.read_text()
    # The operator is told when the database server does not vacuum (a PostgreSQL server
    # with autovacuum off, as on some CI machines).
    warned = [line for line in lines if "autovacuum is off" in line.get("msg", "")]
    assert len(warned) == (1 if autovacuum_off(server.db) else 0)
