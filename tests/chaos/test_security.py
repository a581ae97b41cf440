"""Security checks: keys never kept or logged in the clear, keys compared in constant time
after a lookup by prefix, bodies and pages capped, failed authentications rate-limited."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from starlette.testclient import TestClient

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate, TenantLedger
from creditgate.http.auth import AuthFailureLimiter
from creditgate.server.app import Settings, create_app
from creditgate.services.catalog import api_keys
from creditgate.storage import tables
from tests.chaos.live import live_server

PROBLEM = "application/problem+json"


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _wrong(key: str) -> str:
    """The same prefix with another secret: found by prefix, refused by the digest."""
    prefix, secret = api_keys.parse_key(key)
    return f"cg_{prefix}_{secret[::-1] if secret[::-1] != secret else 'x' + secret[1:]}"


def _cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "creditgate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _stored_text(cg: Creditgate) -> Iterator[tuple[str, str, str]]:
    """(table, column, text) for every value of every table, JSON included."""

    def read(conn: Any) -> list[tuple[str, str, str]]:
        found = []
        for table in tables.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, default=str)
                    found.append((table.name, column, text))
        return found

    yield from cg.db.run(read, read_only=True)


# Keys never stored or logged in the clear


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_keys_are_never_stored_or_logged_in_the_clear(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    with live_server(request, backend, tmp_path) as live:
        created = json.loads(
            _cli("keys", "create", "--db", live.url, "--tenant", live.tenant_id, "--json")
        )
        cli_key = created["key"]
        secrets = [live.key, cli_key]
        with httpx.Client(verify=tls_context(), base_url=live.base, timeout=30) as http:
            made = http.post("/v1/api-keys", json={"name": "ci"}, headers=_headers(live.key))
            assert made.status_code == 201, made.text
            api_key = made.json()["key"]
            rotated = http.post(
                f"/v1/api-keys/{made.json()['id']}/rotate",
                headers={**_headers(cli_key), "Idempotency-Key": "rotate-1"},
            )
            assert rotated.status_code == 201, rotated.text
            # A replay answers the same key without its secret: it was never kept.
            replay = http.post(
                f"/v1/api-keys/{made.json()['id']}/rotate",
                headers={**_headers(cli_key), "Idempotency-Key": "rotate-1"},
            )
            assert replay.status_code == 201 and replay.json()["key"] is None
            secrets += [api_key, rotated.json()["key"]]
            for key in secrets[:2] + secrets[3:]:
                assert http.get("/v1/assets", headers=_headers(key)).status_code == 200
                wrong = _wrong(key)
                assert http.get("/v1/assets", headers=_headers(wrong)).status_code == 401
                assert http.get("/v1/assets", headers=_headers(key[:-1])).status_code == 401
                secrets.append(wrong)  # a presented key is not logged either
            assert http.get("/v1/assets", headers=_headers(api_key)).status_code == 401  # rotated
            # The key where a careless client might put it: never echoed into the log.
            http.get(f"/v1/customers/{live.key}", headers=_headers(live.key))
            http.get("/v1/assets", headers={"X-Request-Id": live.key, **_headers(live.key)})
        stored = list(_stored_text(live.cg))
        log = live.log()
    assert stored and log
    for secret in secrets:
        tail = api_keys.parse_key(secret)[1]
        assert not [(t, c) for t, c, text in stored if secret in text or tail in text], secret[:11]
        assert secret not in log and tail not in log, secret[:11]
    # Only the digest is kept, and the prefix (shown as cg_<prefix>_…) is fine to log.
    digests = {text for t, c, text in stored if (t, c) == ("api_keys", "hash")}
    assert hashlib.sha256(api_keys.parse_key(live.key)[1].encode()).hexdigest() in digests
    assert f"cg_{api_keys.parse_key(live.key)[0]}_" in log


# Constant-time comparison, after a lookup by prefix


def test_keys_are_found_by_prefix_and_compared_in_constant_time(
    cg: Creditgate, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, created = cg.create_tenant_with_key("constant time")
    key = created.key
    assert key is not None
    prefix, secret = api_keys.parse_key(key)
    compared: list[tuple[str, str]] = []
    original = hmac.compare_digest

    def compare_digest(a: str, b: str) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(api_keys.hmac, "compare_digest", compare_digest)
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "api_keys" in statement:
            statements.append((statement, parameters))

    event.listen(cg.db.engine, "before_cursor_execute", record)
    try:
        with TestClient(create_app(cg, Settings(key_cache_seconds=0))) as client:
            assert client.get("/v1/assets", headers=_headers(key)).status_code == 200
            digest = hashlib.sha256(secret.encode()).hexdigest()
            assert compared == [(digest, digest)]
            lookups = [s for s in statements if s[0].lstrip().upper().startswith("SELECT")]
            assert lookups, statements
            sent = json.dumps([p for _, p in lookups], default=str)
            assert prefix in sent and secret not in sent and digest not in sent

            compared.clear()
            statements.clear()
            assert client.get("/v1/assets", headers=_headers(_wrong(key))).status_code == 401
            assert len(compared) == 1 and compared[0][0] == digest != compared[0][1]

            compared.clear()
            unknown = "cg_zzzzzzzz_" + "a" * 43  # no key has this prefix: nothing to compare
            assert client.get("/v1/assets", headers=_headers(unknown)).status_code == 401
            assert compared == []
    finally:
        event.remove(cg.db.engine, "before_cursor_execute", record)
    assert TenantLedger(cg, tenant.id).api_keys()


# Bodies and pages capped


@pytest.fixture
def capped(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A served creditgate with a 4 KiB body cap and 3 failed authentications a minute."""
    env = {"CREDITGATE_MAX_BODY_BYTES": "4096", "CREDITGATE_AUTH_FAILURES_PER_MINUTE": "3"}
    with live_server(request, "sqlite", tmp_path, **env) as live:
        yield live


def test_bodies_past_the_cap_are_refused_413_chunked_or_not(capped: Any) -> None:
    headers = {**_headers(capped.key), "Content-Type": "application/json"}
    small = json.dumps({"code": "credits", "scale": 2}).encode()
    at_cap = small[:-1] + b" " * (4096 - len(small)) + b"}"
    assert len(at_cap) == 4096

    def chunks(body: bytes) -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    with httpx.Client(verify=tls_context(), base_url=capped.base, timeout=30) as http:
        answer = http.post("/v1/assets", content=at_cap, headers=headers)
        assert answer.status_code == 201, answer.text
        for body in (at_cap + b" ", b"{" + b" " * 5_000_000 + b"}"):
            sized = http.post("/v1/customers", content=body, headers=headers)
            assert sized.status_code == 413, sized.text
            assert sized.headers["content-type"] == PROBLEM
            assert sized.json()["code"] == "body_too_large"
            streamed = http.post("/v1/customers", content=chunks(body), headers=headers)
            assert streamed.request.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in streamed.request.headers
            assert streamed.status_code == 413, streamed.text
            assert streamed.json()["code"] == "body_too_large"
        # The hot path's routes are capped the same way.
        hot = http.post("/v1/authorizations", content=chunks(at_cap * 2), headers=headers)
        assert hot.status_code == 413
        # Nothing refused was created.
        listed = http.get("/v1/customers", headers=_headers(capped.key)).json()["data"]
        assert listed == []


def _limited_lists(client: TestClient) -> list[tuple[str, int]]:
    """Every GET whose page size is a `limit` query parameter, with its maximum."""
    found = []
    for path, item in client.get("/openapi.json").json()["paths"].items():
        for parameter in item.get("get", {}).get("parameters", []):
            if parameter["name"] == "limit" and parameter["in"] == "query":
                found.append((path, int(parameter["schema"]["maximum"])))
    return found


def test_page_sizes_are_capped(cg: Creditgate) -> None:
    tenant, created = cg.create_tenant_with_key("pages")
    assert created.key is not None
    ledger = TenantLedger(cg, tenant.id)
    ledger.create_asset("credits", 2)
    ledger.create_customer("c1")
    with TestClient(create_app(cg)) as client:
        lists = _limited_lists(client)
        assert {"/v1/customers", "/v1/customers/{customer}/ledger"} <= {p for p, _ in lists}
        for path, maximum in lists:
            url = path.replace("{customer}", "c1")
            assert maximum <= 1000, path
            ok = client.get(url, params={"limit": maximum}, headers=_headers(created.key))
            assert ok.status_code == 200, (path, ok.text)
            for limit in (maximum + 1, 10**9, 2**64, -1, 0):
                refused = client.get(url, params={"limit": limit}, headers=_headers(created.key))
                assert refused.status_code == 422, (path, limit, refused.text)
                assert refused.json()["field"] == "limit", refused.text


# Failed authentications rate-limited


def _client(cg: Creditgate, limit: int, address: str = "127.0.0.2") -> TestClient:
    return TestClient(
        create_app(cg, Settings(auth_failures_per_minute=limit)), client=(address, 50000)
    )


def test_failed_authentications_are_limited_per_address(cg: Creditgate) -> None:
    tenant, created = cg.create_tenant_with_key("limited")
    key = created.key
    assert key is not None
    TenantLedger(cg, tenant.id).create_asset("credits", 2)
    bad = _headers("cg_zzzzzzzz_" + "b" * 43)
    with _client(cg, 5) as client:
        assert client.get("/v1/assets", headers=_headers(key)).status_code == 200
        clock = [1000.0]
        limiter: AuthFailureLimiter = client.app.state.keys.limiter  # type: ignore[attr-defined]
        limiter.clock = lambda: clock[0]
        for _ in range(5):
            assert client.get("/v1/assets", headers=bad).status_code == 401
            clock[0] += 1
        # Past the limit: a key that does not verify is answered 429 with Retry-After.
        refused = client.get("/v1/assets", headers=bad)
        forged = client.get("/v1/assets", headers=_headers(_wrong(key)))
        for answer in (refused, forged):
            assert answer.status_code == 429, answer.text
            assert answer.headers["content-type"] == PROBLEM
            assert answer.json()["code"] == "too_many_requests"
            assert 1 <= int(answer.headers["retry-after"]) <= 60
        # The hot path (authorize, settle) is limited the same way.
        hot = client.post(
            "/v1/authorizations",
            json={"customer": "c1", "asset": "credits", "amount": 1},
            headers={**bad, "Idempotency-Key": "k1"},
        )
        assert hot.status_code == 429, hot.text
        # Only failures are limited: a valid key from the address is never refused, whether
        # this server has seen it work (cached or not) or never has.
        assert client.get("/v1/assets", headers=_headers(key)).status_code == 200
        client.app.state.keys._entries.clear()  # type: ignore[attr-defined]
        assert client.get("/v1/assets", headers=_headers(key)).status_code == 200
        _, fresh = cg.create_tenant_with_key("fresh")
        assert fresh.key is not None
        assert client.get("/v1/assets", headers=_headers(fresh.key)).status_code == 200
        # Requests without a key are refused without counting or limiting.
        assert client.get("/v1/assets").status_code == 401
        # Another address is not limited.
        with TestClient(client.app, client=("127.0.0.3", 50000)) as other:
            assert other.get("/v1/assets", headers=bad).status_code == 401
        # The window slides: once the oldest failure is a minute old, one more try is let in.
        clock[0] = 1000.0 + 60.5
        assert client.get("/v1/assets", headers=bad).status_code == 401
        assert client.get("/v1/assets", headers=bad).status_code == 429


def test_without_a_key_nothing_is_counted(cg: Creditgate) -> None:
    with _client(cg, 2) as client:
        for _ in range(10):
            assert client.get("/v1/assets").status_code == 401
            assert client.get("/v1/assets", headers={"Authorization": "Basic x"}).status_code == 401


def test_the_limiter_is_bounded_in_memory() -> None:
    clock = [0.0]
    limiter = AuthFailureLimiter(3, 60, max_clients=100, clock=lambda: clock[0])
    for i in range(10_000):
        limiter.failed(f"127.1.{i // 250}.{i % 250}")
        limiter.failed("127.0.0.9")  # the busiest address stays tracked
        clock[0] += 0.001
    assert len(limiter) <= 100
    assert max(len(times) for times in limiter._failures.values()) <= 3
    assert limiter.retry_after("127.0.0.9") > 0
    off = AuthFailureLimiter(0)
    for _ in range(100):
        off.failed("127.0.0.9")
    assert off.retry_after("127.0.0.9") == 0 and len(off) == 0


def test_the_dashboard_sign_in_shares_the_limiter(cg: Creditgate) -> None:
    with _client(cg, 3) as client:

        def sign_in(api_key: str) -> Any:
            form = client.get("/dashboard/login")
            csrf = client.cookies.get("cg_dashboard_csrf")
            assert form.status_code == 200 and csrf
            return client.post(
                "/dashboard/login",
                data={"api_key": api_key, "csrf": csrf},
                follow_redirects=False,
            )

        for _ in range(3):
            assert sign_in("cg_zzzzzzzz_" + "c" * 43).status_code == 401
        assert sign_in("cg_zzzzzzzz_" + "c" * 43).status_code == 429
        # The API shares the count.
        bad = _headers("cg_zzzzzzzz_" + "d" * 43)
        assert client.get("/v1/assets", headers=bad).status_code == 429


def test_a_served_creditgate_limits_failed_authentications(capped: Any) -> None:
    bad = _headers(_wrong(capped.key))
    with httpx.Client(verify=tls_context(), base_url=capped.base, timeout=30) as http:
        assert http.get("/v1/assets", headers=_headers(capped.key)).status_code == 200
        assert [http.get("/v1/assets", headers=bad).status_code for _ in range(3)] == [401] * 3
        refused = http.get("/v1/assets", headers=bad)
        assert refused.status_code == 429 and refused.headers["retry-after"]
        assert http.get("/v1/assets", headers=_headers(capped.key)).status_code == 200
