"""`creditgate bench hot-wallet`: many clients debiting one wallet at once under `block`.

Clients run in several processes (the GIL would otherwise serialize them) with threads in
each; every debit is a `charge` (authorize and settle in one transaction) with its own
idempotency key. The wallet holds exactly `expected_approved` debits' worth of credit.

With `members`, the wallet is an organization's: the clients are spread over that many
members, each under a hard daily budget, so every debit also counts in its member's budget
row in the same transaction. The budgets share the wallet's credit exactly (the first
members take the remainder), so a drained run is limited by both at once.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

from creditgate.api import Creditgate
from creditgate.bench.http import merged

DEBIT = 100


def _client_process(
    url: str,
    tenant_id: str,
    customer: str,
    threads: int,
    go: Any,
    start: Any,
    seconds: float,
    ready: Any,
    out: Any,
    proc: int,
    members: list[str],
    first_client: int,
) -> None:
    cg = Creditgate(url, migrate=False, pool_size=threads)
    t = cg.tenant(tenant_id)
    results: list[tuple[str, int, int, float, int]] = []
    lock = threading.Lock()
    warmed = threading.Barrier(threads + 1)

    def client(n: int) -> None:
        member = members[(first_client + n) % len(members)] if members else None
        approved = declined = errors = 0
        last_ok = 0.0
        i = 0
        t.wallet(customer)  # a connection of its own, statements compiled
        warmed.wait()
        go.wait()
        start_at = start.value
        while time.time() < start_at:
            time.sleep(0.0005)
        deadline = start_at + seconds
        while time.time() < deadline:
            try:
                result = t.charge(
                    customer,
                    "credits",
                    DEBIT,
                    member=member,
                    idempotency_key=f"p{proc}-c{n}-{i}",
                )
            except Exception:
                errors += 1
            else:
                if result.status == "posted":
                    approved += 1
                    last_ok = time.time()
                else:
                    declined += 1
            i += 1
        with lock:
            results.append((member or "", approved, declined, last_ok, errors))

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    warmed.wait()
    ready.put(proc)
    for w in workers:
        w.join()
    stats = dict(cg.db.stats)
    cg.close()
    out.put((results, stats))


def run_hot_wallet(
    url: str, clients: int, seconds: float, *, processes: int = 4, members: int = 0
) -> dict[str, Any]:
    cg = Creditgate(url)
    tenant = cg.create_tenant("bench hot wallet")
    t = cg.tenant(tenant.id)
    t.create_asset("credits", 2)
    customer = f"hot-{uuid.uuid4().hex[:8]}"
    t.create_customer(customer)
    # Enough credit for 1,500 debits a second: a faster run drains it and must then decline.
    expected = int(1_500 * seconds)
    t.grant(customer, "credits", expected * DEBIT, kind="purchased", cost_basis=Decimal("0.01"))
    names = [f"member-{m}" for m in range(members)]
    allowed = {
        name: expected // members + (1 if m < expected % members else 0)
        for m, name in enumerate(names)
    }
    for name in names:
        t.create_member(customer, name)
        t.set_budget(customer, "credits", allowed[name] * DEBIT, period="day", member=name)
    processes = max(1, min(processes, clients))
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    ctx = mp.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    start = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=_client_process,
            args=(
                url,
                tenant.id,
                customer,
                n,
                go,
                start,
                seconds,
                ready,
                out,
                i,
                names,
                sum(per[:i]),
            ),
        )
        for i, n in enumerate(per)
    ]
    for p in procs:
        p.start()
    for _ in procs:  # every client connected and warmed before the clock starts
        ready.get()
    start_at = time.time() + 0.2
    start.value = start_at
    go.set()
    answers = [out.get() for _ in procs]
    results = [r for found, _ in answers for r in found]
    # How the calls went through: transactions shared, and reruns after a missed guard.
    stats = merged([counted for _, counted in answers])
    for p in procs:
        p.join()
    approved = sum(r[1] for r in results)
    declined = sum(r[2] for r in results)
    errors = sum(r[4] for r in results)
    last_ok = max((r[3] for r in results), default=start_at)
    per_member = {name: sum(r[1] for r in results if r[0] == name) for name in names}
    # A member never gets past its budget, whatever the wallet has left.
    over_budget = sum(max(0, per_member[name] - allowed[name]) for name in names)
    wallet = t.wallet(customer).balance("credits")
    report = cg.verify(tenant.id)
    durability = cg.db.durability()
    cg.close()
    elapsed = max(1e-9, last_ok - start_at) if approved else seconds
    # Never more debits than the credit allows; a drained wallet approved exactly that many.
    expected_approved = expected if approved + declined >= expected else approved + declined
    overdrafts = max(0, approved - expected) + (1 if wallet.available < 0 else 0) + over_budget
    return {
        "benchmark": "hot-wallet",
        "backend": "postgres" if url.startswith("postgresql") else "sqlite",
        "durability": durability,
        "clients": clients,
        "processes": processes,
        "members": members,
        "seconds": seconds,
        "approved": approved,
        "declined": declined,
        "errors": errors,
        "approved_per_s": round(approved / elapsed, 1),
        "expected_approved": expected_approved,
        "overdrafts": overdrafts,
        "final_available": wallet.available,
        "ledger_debited_matches": wallet.posted == (expected - approved) * DEBIT,
        "verified": report.ok,
        **stats,
        **({"approved_per_member": per_member, "over_budget": over_budget} if names else {}),
    }
