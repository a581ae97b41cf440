"""Overspend races: bursts of concurrent authorizations and charges on one wallet, spread
over several server processes. The number approved must be exactly what the balance (and
the overdraft limit) allows, every time; for a member under a hard budget smaller than the
balance, exactly what the budget allows, and its usage then shows no more."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from creditgate.adapters.outbound import tls_context


@dataclass
class RaceResult:
    policy: str
    kind: str
    balance: int
    limit: int
    amount: int
    requests: int
    approved: int
    expected: int
    available_after: int
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # (A budget race's `available_after` is what its budget has left.)
        floor = -self.limit if self.policy == "overdraft" else 0
        return self.approved == self.expected and self.available_after >= floor and not self.errors


def _post(
    http: httpx.Client, bases: list[str], path: str, body: dict[str, object], rng: random.Random
) -> httpx.Response:
    key = f"race-{uuid.uuid4().hex}"
    deadline = time.monotonic() + 60
    while True:
        try:
            response = http.post(
                rng.choice(bases) + path, json=body, headers={"Idempotency-Key": key}
            )
            if response.status_code != 503 or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.01 + rng.random() * 0.05)


def race(
    bases: list[str],
    api_key: str,
    *,
    policy: str,
    kind: str,  # authorize | charge | mixed
    balance: int,
    amount: int,
    limit: int = 0,
    threads: int = 32,
    seed: int = 0,
    budget: int | None = None,
) -> RaceResult:
    """`budget`: the calls name a member of the customer under a hard total budget of this
    much (less than the balance), which decides how many fit."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {api_key}"}
    customer = f"race-{policy}-{kind}-{uuid.uuid4().hex[:8]}"
    fits = (balance + limit) // amount
    if budget is not None:
        fits = min(fits, budget // amount)
    requests = fits * 2 + threads
    with httpx.Client(verify=tls_context(), headers=headers, timeout=30.0) as setup:
        body: dict[str, object] = {"id": customer, "policy": policy}
        if policy == "overdraft":
            body["overdraft_limit"] = limit
        r = _post(setup, bases, "/v1/customers", body, rng)
        r.raise_for_status()
        r = _post(
            setup,
            bases,
            f"/v1/customers/{customer}/grants",
            {"asset": "credits", "amount": balance, "kind": "purchased", "cost_basis": "0.01"},
            rng,
        )
        r.raise_for_status()
        if budget is not None:
            members = f"/v1/customers/{customer}/members"
            r = _post(setup, bases, members, {"external_id": "racer"}, rng)
            r.raise_for_status()
            spec = {"amount": budget, "period": "total", "mode": "hard"}
            r = setup.put(f"{bases[0]}{members}/racer/budgets/credits", json=spec)
            r.raise_for_status()
    approved = 0
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        nonlocal approved
        wrng = random.Random(f"{seed}:{n}")
        mine = [i for i in range(requests) if i % threads == n]
        with httpx.Client(verify=tls_context(), headers=headers, timeout=30.0) as http:
            start.wait()
            for i in mine:
                as_charge = kind == "charge" or (kind == "mixed" and i % 2 == 1)
                body: dict[str, object] = {"customer": customer, "asset": "credits"}
                body["amount"] = amount
                if budget is not None:
                    body["member"] = "racer"
                if as_charge:
                    response = _post(http, bases, "/v1/charges", body, wrng)
                else:
                    response = _post(http, bases, "/v1/authorizations", body, wrng)
                if response.status_code >= 300:
                    with lock:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                answer = response.json()
                ok = answer["status"] == "posted" if as_charge else answer["approved"]
                if ok:
                    with lock:
                        approved += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    with httpx.Client(verify=tls_context(), headers=headers, timeout=30.0) as http:
        wallet = http.get(f"{bases[0]}/v1/customers/{customer}/wallet").json()
        available = next(b["available"] for b in wallet["balances"] if b["asset"] == "credits")
        if budget is not None:
            usage = http.get(f"{bases[0]}/v1/customers/{customer}/members/racer/usage").json()
            (period,) = usage["data"]
            if period["held"] + period["spent"] != approved * amount:
                errors.append(f"budget usage {period} after {approved} approved of {amount}")
            available = min(available, period["remaining"])
    return RaceResult(
        "budget" if budget is not None else policy,
        kind,
        balance if budget is None else budget,
        limit,
        amount,
        requests,
        approved,
        fits,
        available,
        errors,
    )
