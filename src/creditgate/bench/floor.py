"""The floor of `creditgate bench http --floor`: the least server that does a gate's effects.

Raw ASGI on uvicorn (the same workers, HTTP parser and event loop as `creditgate serve`) and
raw psycopg 3, pipelined, on a pool of threads, against tables of its own in a fresh
database. Per pair it does what creditgate must do at least, with PostgreSQL's full
durability:

- authorize (`POST /v1/authorizations`): bearer key, Idempotency-Key, a JSON body; in one
  transaction of two round trips: look the key up and reserve on the balance row with a
  conditional update, then insert the hold and the idempotency record and commit;
- settle (`POST /v1/authorizations/{id}/settle`): the same key lookup and, in one
  statement, the hold marked settled and the balance row moved (held released, the actual
  amount debited), then a ledger entry and the idempotency record, and commit.

It is a yardstick for the work creditgate adds over the physical floor (HTTP, a commit with
its WAL flush, row locks), not a product: no pricing, lots, budgets, events or reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

DB_ENV = "CREDITGATE_FLOOR_DB"  # the floor server's database (a libpq URL), for its workers
POOL_ENV = "CREDITGATE_FLOOR_POOL"
MAX_BODY = 64 * 1024

SCHEMA = """
create table floor_keys (key text primary key);
create table floor_balances (
    customer text primary key, available bigint not null, held bigint not null
);
create table floor_holds (
    id text primary key, customer text not null, amount bigint not null,
    status text not null, created_at timestamptz not null default now()
);
create table floor_entries (
    id bigserial primary key, hold_id text not null, customer text not null,
    amount bigint not null, created_at timestamptz not null default now()
);
create table floor_idempotency (key text primary key, status int not null, body bytea not null);
"""

LOOKUP = "select status, body from floor_idempotency where key = %s"
RESERVE = (
    "update floor_balances set available = available - %(amount)s, held = held + %(amount)s"
    " where customer = %(customer)s and available >= %(amount)s returning available"
)
INSERT_HOLD = "insert into floor_holds (id, customer, amount, status) values (%s, %s, %s, %s)"
SETTLE = (
    "with h as (update floor_holds set status = 'settled' where id = %(id)s"
    " and status = 'pending' returning customer, amount)"
    " update floor_balances b set held = b.held - h.amount,"
    " available = b.available + h.amount - least(h.amount, %(actual)s)"
    " from h where b.customer = h.customer"
    " returning b.customer, b.available, least(h.amount, %(actual)s)"
)
INSERT_ENTRY = "insert into floor_entries (hold_id, customer, amount) values (%s, %s, %s)"
RECORD = "insert into floor_idempotency (key, status, body) values (%s, %s, %s)"


def prepare(dsn: str, customers: list[str], balance: int) -> str:
    """The floor's tables in the (fresh) database at `dsn`, its customers funded; its key."""
    key = "floor_" + uuid.uuid4().hex
    with psycopg.connect(dsn) as conn:
        conn.execute(SCHEMA)
        conn.execute("insert into floor_keys values (%s)", (key,))
        with conn.cursor() as cur:
            cur.executemany(
                "insert into floor_balances values (%s, %s, 0)", [(c, balance) for c in customers]
            )
    return key


class Floor:
    """One worker's database side: a connection per thread, at most `pool` threads."""

    def __init__(self, dsn: str, pool: int) -> None:
        self.dsn = dsn
        self.local = threading.local()
        self.executor = ThreadPoolExecutor(pool, thread_name_prefix="floor")
        with psycopg.connect(dsn) as conn:
            self.keys = {row[0] for row in conn.execute("select key from floor_keys")}

    def _conn(self) -> psycopg.Connection[Any]:
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = self.local.conn = psycopg.connect(self.dsn)
        return conn

    def authorize(self, key: str, customer: str, amount: int) -> tuple[int, bytes]:
        conn = self._conn()
        try:
            with conn.pipeline():
                found = conn.execute(LOOKUP, (key,))
                reserved = conn.execute(RESERVE, {"amount": amount, "customer": customer})
                replay = found.fetchone()
                row = reserved.fetchone()
                if replay is not None:
                    conn.rollback()
                    return replay[0], bytes(replay[1])
                hold_id = "hld_" + uuid.uuid4().hex
                approved = row is not None
                body = json.dumps(
                    {
                        "id": hold_id,
                        "customer": customer,
                        "approved": approved,
                        "amount": amount if approved else 0,
                        "available": row[0] if row is not None else None,
                    }
                ).encode()
                status = "pending" if approved else "declined"
                conn.execute(INSERT_HOLD, (hold_id, customer, amount, status))
                conn.execute(RECORD, (key, 201, body))
                conn.commit()
            return 201, body
        except psycopg.errors.UniqueViolation:  # the same key, committed meanwhile
            conn.rollback()
            return self._replay(conn, key)
        except BaseException:
            conn.rollback()
            raise

    def settle(self, key: str, hold_id: str, actual: int) -> tuple[int, bytes]:
        conn = self._conn()
        try:
            with conn.pipeline():
                found = conn.execute(LOOKUP, (key,))
                settled = conn.execute(SETTLE, {"id": hold_id, "actual": actual})
                replay = found.fetchone()
                row = settled.fetchone()
                if replay is not None or row is None:
                    conn.rollback()
                    if replay is not None:
                        return replay[0], bytes(replay[1])
                    return _error(409, "hold_not_pending")
                customer, available, charged = row
                body = json.dumps(
                    {"id": hold_id, "charged": charged, "available": available}
                ).encode()
                conn.execute(INSERT_ENTRY, (hold_id, customer, charged))
                conn.execute(RECORD, (key, 200, body))
                conn.commit()
            return 200, body
        except psycopg.errors.UniqueViolation:
            conn.rollback()
            return self._replay(conn, key)
        except BaseException:
            conn.rollback()
            raise

    def _replay(self, conn: psycopg.Connection[Any], key: str) -> tuple[int, bytes]:
        row = conn.execute(LOOKUP, (key,)).fetchone()
        conn.commit()
        if row is None:
            return _error(409, "idempotency_conflict")
        return row[0], bytes(row[1])


_floor: Floor | None = None


def _error(status: int, code: str) -> tuple[int, bytes]:
    return status, b'{"error":{"code":"%s"}}' % code.encode()


async def _handle(floor: Floor, scope: dict[str, Any], body: bytes) -> tuple[int, bytes]:
    path: str = scope["path"]
    if scope["method"] == "GET" and path == "/readyz":
        return 200, b'{"ready":true}'
    if scope["method"] != "POST" or not path.startswith("/v1/authorizations"):
        return _error(404, "not_found")
    auth = idem = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            auth = value
        elif name == b"idempotency-key":
            idem = value
    if auth is None or not auth.startswith(b"Bearer ") or auth[7:].decode() not in floor.keys:
        return _error(401, "unauthorized")
    if not idem:
        return _error(400, "idempotency_key_required")
    try:
        data = json.loads(body)
    except ValueError:
        return _error(400, "invalid_json")
    if not isinstance(data, dict):
        return _error(422, "invalid_body")
    key = idem.decode()
    loop = asyncio.get_running_loop()
    if path == "/v1/authorizations":
        customer, amount = data.get("customer"), data.get("amount")
        if not isinstance(customer, str) or type(amount) is not int or amount <= 0:
            return _error(422, "invalid_body")
        return await loop.run_in_executor(floor.executor, floor.authorize, key, customer, amount)
    parts = path.split("/")  # "", v1, authorizations, id, settle
    if len(parts) != 5 or parts[4] != "settle":
        return _error(404, "not_found")
    actual = data.get("amount")
    if type(actual) is not int or actual < 0:
        return _error(422, "invalid_body")
    return await loop.run_in_executor(floor.executor, floor.settle, key, parts[3], actual)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor's ASGI application (each uvicorn worker makes its own `Floor`)."""
    global _floor
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _floor = Floor(os.environ[DB_ENV], int(os.environ.get(POOL_ENV, "10")))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http" or _floor is None:
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_BODY:
            status, answer = _error(413, "body_too_large")
            break
    else:
        try:
            status, answer = await _handle(_floor, scope, body)
        except psycopg.Error:
            status, answer = _error(503, "database_unavailable")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def serve(app: str, port: str, workers: str, *, factory: bool = False) -> None:
    """uvicorn over the ASGI application named `app` (with `factory`, the function making
    it), as `creditgate serve` runs it."""
    import uvicorn

    uvicorn.run(
        app,
        factory=factory,
        host="127.0.0.1",
        port=int(port),
        workers=int(workers),
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_worker_healthcheck=30,
    )


def main(argv: list[str]) -> None:
    """`python -m creditgate.bench.floor DSN PORT WORKERS POOL`: serve the floor."""
    dsn, port, workers, pool = argv
    os.environ[DB_ENV] = dsn
    os.environ[POOL_ENV] = pool
    serve("creditgate.bench.floor:app", port, workers)


if __name__ == "__main__":
    main(sys.argv[1:])
