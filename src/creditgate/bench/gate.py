"""`creditgate bench gate`: authorize + settle pairs through creditgate, against the same
database effects written as minimal raw SQL on the plain driver, in the same process."""

from __future__ import annotations

import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from creditgate.api import Creditgate, TenantLedger
from creditgate.storage.ids import new_id

GRANT = 10**15
HOLD = 1_000
ACTUAL = 800


def _setup(cg: Creditgate, label: str) -> tuple[TenantLedger, str]:
    tenant = cg.create_tenant(f"bench {label}")
    t = cg.tenant(tenant.id)
    t.create_asset("credits", 2)
    customer = f"bench-{uuid.uuid4().hex[:8]}"
    t.create_customer(customer)
    t.grant(customer, "credits", GRANT, kind="purchased", cost_basis=Decimal("0.01"))
    return t, customer


def creditgate_pair(t: TenantLedger, customer: str) -> Callable[[int], None]:
    def pair(i: int) -> None:
        auth = t.authorize(customer, "credits", HOLD, idempotency_key=f"a{i}")
        t.settle(auth.id, ACTUAL, idempotency_key=f"s{i}")

    return pair


PRICED_CARD = {
    "asset": "credits",
    "credit_value_usd": "0.01",
    "actions": {
        "chat.completion": {
            "prices": [
                {
                    "match": {"model": "gpt-4.1"},
                    "per_unit": {"input_tokens": "0.0002", "output_tokens": "0.0008"},
                    "minimum": "1",
                    "vendor": {"llm": {"provider": "openai"}},
                }
            ]
        }
    },
}


def priced_pair(t: TenantLedger, customer: str) -> Callable[[int], None]:
    """A chat completion held at input + max_tokens and settled from the actual usage."""
    dims = {"model": "gpt-4.1"}

    def pair(i: int) -> None:
        auth = t.authorize(
            customer,
            action="chat.completion",
            dimensions=dims,
            quantities={"input_tokens": 1_200, "output_tokens": 800},
            idempotency_key=f"pa{i}",
        )
        t.settle(
            auth.id,
            quantities={"input_tokens": 1_200, "output_tokens": 310},
            idempotency_key=f"ps{i}",
        )

    return pair


class RawGate:
    """The same rows written and read as creditgate's authorize and settle, as raw SQL."""

    def __init__(self, url: str, tenant_id: str, wallet_id: str, customer: str) -> None:
        self.tenant_id, self.wallet_id, self.customer = tenant_id, wallet_id, customer
        self.pg = url.startswith("postgresql")
        if self.pg:
            import psycopg

            from creditgate.storage.throwaway import libpq_dsn

            self.conn: Any = psycopg.connect(libpq_dsn(url))
            self.p = "%s"
            self.lock = " FOR UPDATE"
        else:
            self.conn = sqlite3.connect(url.split("sqlite:///", 1)[1], isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            from creditgate.storage.database import sqlite_synchronous

            self.conn.execute(f"PRAGMA synchronous={sqlite_synchronous()}")
            self.conn.execute("PRAGMA busy_timeout=30000")
            self.p = "?"
            self.lock = ""

    def _begin(self, cur: Any) -> None:
        if not self.pg:
            cur.execute("BEGIN IMMEDIATE")

    def _now(self) -> Any:
        now = datetime.now(UTC)
        return now if self.pg else now.replace(tzinfo=None).isoformat(" ")

    def sql(self, text: str) -> str:
        return text.replace("?", self.p)

    def pair(self, i: int) -> None:
        q = self.sql
        cur = self.conn.cursor()
        now = self._now()
        hold_id = new_id("hld")
        # authorize
        self._begin(cur)
        cur.execute(
            q(
                "SELECT operation, request_hash, response FROM idempotency_keys "
                "WHERE tenant_id = ? AND key = ?"
            ),
            (self.tenant_id, f"ra{i}"),
        )
        cur.fetchone()
        cur.execute(
            q(
                "UPDATE wallet_balances SET held = held + ?, updated_at = ? "
                "WHERE wallet_id = ? AND asset = ? AND posted - held + overdraft_limit >= ? "
                "RETURNING posted, held"
            ),
            (HOLD, now, self.wallet_id, "credits", HOLD),
        )
        posted, held = cur.fetchone()
        expires = datetime.now(UTC) + timedelta(seconds=600)
        cur.execute(
            q(
                "INSERT INTO holds (tenant_id, wallet_id, id, customer, asset, status, amount, "
                "requested, decline_reason, created_at, expires_at, resolved_at, charge_id, "
                "metadata) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, NULL, ?, ?, NULL, NULL, '{}')"
            ),
            (
                self.tenant_id,
                self.wallet_id,
                hold_id,
                self.customer,
                "credits",
                HOLD,
                HOLD,
                now,
                expires if self.pg else expires.replace(tzinfo=None).isoformat(" "),
            ),
        )
        cur.execute(
            q(
                "INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, "
                "response, created_at) VALUES (?, ?, 'authorization.create', ?, ?, ?)"
            ),
            (self.tenant_id, f"ra{i}", "0" * 64, f'{{"id": "{hold_id}"}}', now),
        )
        self.conn.commit()
        # settle
        charge_id, txn_id = new_id("chg"), new_id("txn")
        self._begin(cur)
        cur.execute(
            q(
                "SELECT operation, request_hash, response FROM idempotency_keys "
                "WHERE tenant_id = ? AND key = ?"
            ),
            (self.tenant_id, f"rs{i}"),
        )
        cur.fetchone()
        cur.execute(
            q(
                "UPDATE holds SET status = 'settled', resolved_at = ?, charge_id = ? "
                "WHERE id = ? AND tenant_id = ? AND status = 'pending' AND expires_at > ? "
                "RETURNING wallet_id, amount"
            ),
            (now, charge_id, hold_id, self.tenant_id, now),
        )
        cur.fetchone()
        cur.execute(
            q(
                "SELECT posted, held, debt FROM wallet_balances WHERE wallet_id = ? AND asset = ?"
                + self.lock
            ),
            (self.wallet_id, "credits"),
        )
        posted, held, debt = cur.fetchone()
        cur.execute(
            q(
                "SELECT id, remaining FROM lots WHERE wallet_id = ? AND asset = ? "
                "AND status = 'active' AND remaining > 0"
            ),
            (self.wallet_id, "credits"),
        )
        lot_id, _remaining = cur.fetchall()[0]
        cur.execute(
            q("UPDATE lots SET remaining = remaining - ?, consumed = consumed + ? WHERE id = ?"),
            (ACTUAL, ACTUAL, lot_id),
        )
        cur.execute(
            q(
                "INSERT INTO charges (tenant_id, wallet_id, id, customer, hold_id, asset, "
                "requested, amount, debt, shortfall, action, metadata, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, NULL, '{}', ?)"
            ),
            (
                self.tenant_id,
                self.wallet_id,
                charge_id,
                self.customer,
                hold_id,
                "credits",
                ACTUAL,
                ACTUAL,
                now,
            ),
        )
        cur.execute(
            q(
                "INSERT INTO ledger_transactions (tenant_id, wallet_id, id, kind, asset, "
                "reference_id, created_at) VALUES (?, ?, ?, 'charge', ?, ?, ?)"
            ),
            (self.tenant_id, self.wallet_id, txn_id, "credits", charge_id, now),
        )
        cur.executemany(
            q(
                "INSERT INTO ledger_entries (tenant_id, wallet_id, transaction_id, seq, "
                "asset, account, lot_id, amount) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            [
                (self.tenant_id, self.wallet_id, txn_id, 0, "credits", "wallet", lot_id, -ACTUAL),
                (self.tenant_id, self.wallet_id, txn_id, 1, "credits", "usage", None, ACTUAL),
            ],
        )
        cur.execute(
            q(
                "UPDATE wallet_balances SET posted = ?, held = ?, debt = ?, "
                "low_balance_alerted = 0, updated_at = ? WHERE wallet_id = ? AND asset = ?"
            ),
            (posted - ACTUAL, held - HOLD, debt, now, self.wallet_id, "credits"),
        )
        cur.execute(
            q(
                "INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, "
                "response, created_at) VALUES (?, ?, 'authorization.settle', ?, ?, ?)"
            ),
            (self.tenant_id, f"rs{i}", "0" * 64, f'{{"id": "{charge_id}"}}', now),
        )
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _measure(fn: Callable[[int], None], seconds: float, start: int) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    i = start
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn(i)
        latencies.append(time.perf_counter() - t0)
        i += 1
    return i - start, latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run_gate(url: str, seconds: float, *, priced: bool = False, rounds: int = 3) -> dict[str, Any]:
    """Alternate rounds of each contender; report medians of their rates and the ratios.

    Contenders: creditgate with raw amounts, the same effects as raw SQL on the plain driver,
    and with `priced`, creditgate pricing each action by a rate card (with its vendor cost).
    """
    cg = Creditgate(url)
    t, customer = _setup(cg, "creditgate")
    raw_t, raw_customer = _setup(cg, "raw")
    wallet_id = raw_t.customer(raw_customer).wallet_id
    raw = RawGate(url, raw_t.tenant_id, wallet_id, raw_customer)
    contenders: dict[str, Callable[[int], None]] = {
        "creditgate": creditgate_pair(t, customer),
        "raw": raw.pair,
    }
    if priced:
        priced_t, priced_customer = _setup(cg, "priced")
        priced_t.publish_rate_card(PRICED_CARD)
        contenders["priced"] = priced_pair(priced_t, priced_customer)
    for fn in contenders.values():
        fn(-1)  # warm caches and compiled statements
    slice_s = seconds / (len(contenders) * rounds)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    latencies: dict[str, list[float]] = {name: [] for name in contenders}
    done = dict.fromkeys(contenders, 0)
    for _ in range(rounds):
        for name, fn in contenders.items():
            count, lat = _measure(fn, slice_s, done[name])
            done[name] += count
            rates[name].append(count / slice_s)
            latencies[name] += lat
    raw.close()
    report = cg.verify()
    durability = cg.db.durability()
    cg.close()
    ops = statistics.median(rates["creditgate"])
    base = statistics.median(rates["raw"])
    result: dict[str, Any] = {
        "benchmark": "gate",
        "backend": "postgres" if url.startswith("postgresql") else "sqlite",
        "durability": durability,
        "seconds": seconds,
        "pairs": done["creditgate"],
        "ops_per_s": round(ops, 1),
        "p50_ms": round(_pct(latencies["creditgate"], 0.50), 3),
        "p99_ms": round(_pct(latencies["creditgate"], 0.99), 3),
        "baseline_ops_per_s": round(base, 1),
        "baseline_p50_ms": round(_pct(latencies["raw"], 0.50), 3),
        "baseline_p99_ms": round(_pct(latencies["raw"], 0.99), 3),
        "ratio": round(ops / base, 3),
    }
    if priced:
        priced_ops = statistics.median(rates["priced"])
        result.update(
            priced_ops_per_s=round(priced_ops, 1),
            priced_p50_ms=round(_pct(latencies["priced"], 0.50), 3),
            priced_p99_ms=round(_pct(latencies["priced"], 0.99), 3),
            priced_ratio=round(priced_ops / base, 3),
            pricing_cost=round(1 - priced_ops / ops, 3),
        )
    result["verified"] = report.ok
    return result
