"""`bench http --floor --lean`: creditgate's own ledger behind the floor's raw ASGI handling.

What a lighter HTTP stack for the hot routes could buy, measured before one is built (issue
20: "if a lighter ASGI stack for the /v1 API is what gets to the targets, propose it with
measurements before moving"). The floor's request handling (`floor.app`: the bearer key
looked up in a set, the Idempotency-Key, a JSON body checked by hand, the call handed to a
pool of threads with `run_in_executor`) serves `POST /v1/authorizations` and `POST
/v1/authorizations/{id}/settle`, and the work is creditgate's: `TenantLedger.authorize` and
`.settle`, on creditgate's schema, answered with creditgate's own JSON of the result.

Everything between uvicorn and the ledger that `creditgate serve` does and this does not is
what a leaner stack would have to do more cheaply, not leave out: key verification against
the database (here a set filled at start), validation by the route's models, the middleware
(request id, log line, metrics, body deadline, the in-flight limit, error answers). Not a
product: a yardstick.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from creditgate.api import Creditgate, TenantLedger
from creditgate.bench import floor
from creditgate.domain.errors import CreditgateError

DB_ENV = "CREDITGATE_LEAN_DB"  # creditgate's database URL, for the workers
KEY_ENV = "CREDITGATE_LEAN_KEY"  # the tenant's API key, the only one served
POOL_ENV = "CREDITGATE_LEAN_POOL"


class LedgerFloor:
    """The floor's interface (`keys`, `executor`, `authorize`, `settle`) answered by one
    tenant's `TenantLedger`."""

    def __init__(self, url: str, key: str, pool: int) -> None:
        self.cg = Creditgate(url, pool_size=pool)
        self.ledger = TenantLedger(self.cg, self.cg.authenticate(key).tenant_id)
        self.keys = {key}
        self.executor = ThreadPoolExecutor(pool, thread_name_prefix="lean")

    def authorize(self, key: str, customer: str, amount: int) -> tuple[int, bytes]:
        try:
            held = self.ledger.authorize(customer, "credits", amount, idempotency_key=key)
        except CreditgateError as exc:
            return _refused(exc)
        return 201, held.model_dump_json().encode()

    def settle(self, key: str, hold: str, actual: int) -> tuple[int, bytes]:
        try:
            settled = self.ledger.settle(hold, actual, idempotency_key=key)
        except CreditgateError as exc:
            return _refused(exc)
        return 200, settled.model_dump_json().encode()

    def close(self) -> None:
        self.executor.shutdown()
        self.cg.close()


def _refused(exc: CreditgateError) -> tuple[int, bytes]:
    return 409, b'{"error":{"code":"%s"}}' % exc.code.encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor's ASGI application over a `LedgerFloor` (each worker makes its own)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                floor._floor = LedgerFloor(  # type: ignore[assignment]
                    os.environ[DB_ENV], os.environ[KEY_ENV], int(os.environ.get(POOL_ENV, "10"))
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                served = floor._floor
                if isinstance(served, LedgerFloor):
                    served.close()
                floor._floor = None
                await send({"type": "lifespan.shutdown.complete"})
                return
    await floor.app(scope, receive, send)


def main(argv: list[str]) -> None:
    """`python -m creditgate.bench.lean URL PORT WORKERS POOL KEY`: serve it."""
    url, port, workers, pool, key = argv
    os.environ[DB_ENV] = url
    os.environ[POOL_ENV] = pool
    os.environ[KEY_ENV] = key
    floor.serve("creditgate.bench.lean:app", port, workers)


if __name__ == "__main__":
    main(sys.argv[1:])
