"""The bank workload: clients over HTTP doing random money operations on a few wallets.

Each client has its own random generator (seeded from the run's seed), its own open holds
and its own charges. Every write carries an idempotency key; an attempt that ends without
an answer (connection refused or cut, timeout, 503) is retried with the same key, on any
server, until an answer comes or the run's grace period ends.

Beside the wallets, organizations (`ORGANIZATIONS`): customers whose members draw on one
wallet under hard budgets (a day, a total; one has a budget of its own as a whole). The same
clients authorize and charge naming a member (now and then none, or past a budget's amount),
settle, void and refund those as any other; some of these calls have a crash aimed at the
server they go to (`Clients.crasher`). Their holds mostly live longer than the run
(`ORG_TTL`), so the check (chaos/budgets.py) knows how long each held its budget.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from creditgate.chaos import wire
from creditgate.chaos.cluster import Crasher
from creditgate.chaos.history import OK, REJECTED, History, Op

Committed = Callable[[str], bool]  # was this idempotency key applied (read off the database)?


@dataclass(frozen=True)
class WalletSpec:
    customer: str
    policy: str  # block | overdraft | allow
    overdraft_limit: int = 0


# Sixteen wallets: most under block, some overdraft (two limits), two allow. Few enough that
# clients collide on them all the time; enough that the run is not one queue.
DEFAULT_WALLETS = tuple(
    WalletSpec(f"w{n}", "block")
    if n % 8 < 5
    else WalletSpec(f"w{n}", "overdraft", 2_000 if n % 8 == 5 else 500)
    if n % 8 < 7
    else WalletSpec(f"w{n}", "allow")
    for n in range(16)
)


@dataclass(frozen=True)
class MemberSpec:
    member: str  # its external id
    period: str | None  # its hard budget's: day | total; None: no budget of its own
    amount: int = 0


@dataclass(frozen=True)
class OrgSpec:
    """An organization: a customer (under block) whose members draw on its wallet."""

    customer: str
    opening: int  # its opening grant
    members: tuple[MemberSpec, ...]
    own: tuple[str, int] | None = None  # the customer's own hard budget: period, amount


# One rich organization whose members' budgets decide; one poorer, with a budget of its own
# as a whole (every call on it counts there, naming a member or not), whose wallet runs dry
# too. Day budgets turn `DAY_TURNS_AFTER` into the run (server time), and again a day later.
ORGANIZATIONS = (
    OrgSpec(
        "org0",
        40_000,
        (
            MemberSpec("ada", "day", 1_500),
            MemberSpec("bob", "day", 900),
            MemberSpec("cyd", "total", 4_000),
            MemberSpec("dee", "total", 2_000),
        ),
    ),
    OrgSpec(
        "org1",
        5_000,
        (
            MemberSpec("eve", "day", 1_200),
            MemberSpec("fay", "total", 3_000),
            MemberSpec("gus", None),  # the organization's own budget only
        ),
        own=("day", 5_000),
    ),
)
ORG_TTL = 3 * 3600  # most organization holds' TTL, seconds: longer than a short run's clock
ORG_SHORT_TTL = (30, 600)  # the others', which expire while the run goes on
AIM_SHARE = 0.3  # of an organization's calls: a crash is aimed at their server (if due)

# Relative weights of the operations a client picks.
WEIGHTS = {
    "grant": 8,
    "authorize": 30,
    "settle": 24,
    "void": 8,
    "charge": 22,
    "refund": 6,
    "top_up": 3,
    # Organizations: calls naming a member (settled, voided, refunded as the others are).
    "member_authorize": 14,
    "member_charge": 8,
    "org_grant": 2,
}


@dataclass
class Clients:
    bases: Callable[[], list[str]]
    key: str
    history: History
    now: Callable[[], datetime]  # the servers' clock as the run sets it
    committed: Committed
    wallets: tuple[WalletSpec, ...] = DEFAULT_WALLETS
    retry_until: float = 0.0  # monotonic time after which an op stops being retried
    stop: threading.Event = field(default_factory=threading.Event)
    orgs: tuple[OrgSpec, ...] = ()  # organizations whose members the clients call for
    crasher: Crasher | None = None  # aims crashes at some organization calls

    def run_client(self, n: int, seed: int, deadline: float) -> None:
        Client(self, n, random.Random(f"{seed}:{n}")).run(deadline)


class Client:
    def __init__(self, shared: Clients, n: int, rng: random.Random) -> None:
        self.shared = shared
        self.n = n
        self.rng = rng
        self.http = wire.Client(
            {"Authorization": f"Bearer {shared.key}"}, timeout=10.0, connect_timeout=2.0
        )
        self.holds: list[tuple[str, str, int]] = []  # id, wallet, amount
        self.charges: list[list[Any]] = []  # id, wallet, amount, refunded
        self.count = 0

    def run(self, deadline: float) -> None:
        kinds = list(WEIGHTS)
        weights = [WEIGHTS[k] for k in kinds]
        try:
            while time.monotonic() < deadline and not self.shared.stop.is_set():
                kind = self.rng.choices(kinds, weights)[0]
                getattr(self, f"do_{kind}")()
        finally:
            self.http.close()

    # Operations

    def _wallet(self) -> str:
        return self.rng.choice(self.shared.wallets).customer

    def do_grant(self) -> None:
        wallet = self._wallet()
        body: dict[str, Any] = {
            "asset": "credits",
            "amount": self.rng.randint(100, 3_000),
            "kind": self.rng.choice(["promotional", "purchased", "included"]),
        }
        if body["kind"] == "purchased":
            body["cost_basis"] = "0.01"
        if self.rng.random() < 0.7:
            later = timedelta(seconds=self.rng.randint(60, 3_600))
            body["expires_at"] = (self.shared.now() + later).isoformat()
        self.send("grant", wallet, f"/v1/customers/{wallet}/grants", body)

    def do_authorize(self) -> None:
        wallet = self._wallet()
        body = {
            "customer": wallet,
            "asset": "credits",
            "amount": self.rng.randint(1, 400),
            "ttl_seconds": self.rng.randint(30, 600),
        }
        op = self.send("authorize", wallet, "/v1/authorizations", body)
        if op.outcome == OK and op.answer and op.answer.get("approved"):
            self.holds.append((op.answer["id"], wallet, op.answer["amount"]))

    def _pop_hold(self) -> tuple[str, str, int] | None:
        if not self.holds:
            return None
        return self.holds.pop(self.rng.randrange(len(self.holds)))

    def do_settle(self) -> None:
        hold = self._pop_hold()
        if hold is None:
            return self.do_authorize()
        hold_id, wallet, amount = hold
        actual = self.rng.randint(0, amount * 3 // 2 + 1)
        path = f"/v1/authorizations/{hold_id}/settle"
        op = self.send("settle", wallet, path, {"amount": actual}, first=self._aim(wallet))
        if op.outcome == OK and op.answer:
            charge = op.answer["charge"]
            if charge["amount"] > 0:
                self.charges.append([charge["id"], wallet, charge["amount"], 0])

    def do_void(self) -> None:
        hold = self._pop_hold()
        if hold is None:
            return self.do_authorize()
        hold_id, wallet, _ = hold
        self.send("void", wallet, f"/v1/authorizations/{hold_id}/void", {})

    def do_charge(self) -> None:
        wallet = self._wallet()
        body = {"customer": wallet, "asset": "credits", "amount": self.rng.randint(1, 300)}
        op = self.send("charge", wallet, "/v1/charges", body)
        answer = op.answer
        if op.outcome == OK and answer and answer["status"] == "posted" and answer["amount"] > 0:
            self.charges.append([answer["id"], wallet, answer["amount"], 0])

    def do_refund(self) -> None:
        open_ = [c for c in self.charges if c[3] < c[2]]
        if not open_:
            return self.do_charge()
        charge = self.rng.choice(open_)
        left = charge[2] - charge[3]
        amount = left if self.rng.random() < 0.3 else self.rng.randint(1, left)
        body = {"amount": amount, "reason": "chaos: customer complained"}
        op = self.send("refund", charge[1], f"/v1/charges/{charge[0]}/refunds", body)
        if op.outcome == OK and op.answer:
            charge[3] = op.answer["charge_refunded"]

    # Organizations

    def _aim(self, wallet: str) -> str | None:
        """For some organization calls, the server to send them to, crashed just after."""
        crasher = self.shared.crasher
        if crasher is None or wallet not in {o.customer for o in self.shared.orgs}:
            return None
        return crasher.aim(self.shared.bases(), AIM_SHARE, self.rng)

    def _org_call(self) -> tuple[str, dict[str, Any]]:
        """A call on an organization: for a member (now and then none), mostly small, now and
        then past most budgets' whole amount."""
        org = self.rng.choice(self.shared.orgs)
        small = self.rng.random() >= 0.03
        amount = self.rng.randint(1, 400) if small else self.rng.randint(900, 1_300)
        body: dict[str, Any] = {"customer": org.customer, "asset": "credits", "amount": amount}
        if self.rng.random() >= 0.15:
            body["member"] = self.rng.choice(org.members).member
        return org.customer, body

    def do_member_authorize(self) -> None:
        if not self.shared.orgs:
            return self.do_authorize()
        wallet, body = self._org_call()
        short = self.rng.random() < 0.15
        body["ttl_seconds"] = self.rng.randint(*ORG_SHORT_TTL) if short else ORG_TTL
        op = self.send("authorize", wallet, "/v1/authorizations", body, first=self._aim(wallet))
        if op.outcome == OK and op.answer and op.answer.get("approved"):
            self.holds.append((op.answer["id"], wallet, op.answer["amount"]))

    def do_member_charge(self) -> None:
        if not self.shared.orgs:
            return self.do_charge()
        wallet, body = self._org_call()
        op = self.send("charge", wallet, "/v1/charges", body, first=self._aim(wallet))
        answer = op.answer
        if op.outcome == OK and answer and answer["status"] == "posted" and answer["amount"] > 0:
            self.charges.append([answer["id"], wallet, answer["amount"], 0])

    def do_org_grant(self) -> None:
        if not self.shared.orgs:
            return self.do_grant()
        wallet = self.rng.choice(self.shared.orgs).customer
        body = {"asset": "credits", "amount": self.rng.randint(500, 3_000), "kind": "promotional"}
        self.send("grant", wallet, f"/v1/customers/{wallet}/grants", body)

    def do_top_up(self) -> None:
        wallet = self._wallet()
        body = {"pack": "chaos100", "provider": "manual"}
        op = self.send("purchase", wallet, f"/v1/customers/{wallet}/purchases", body)
        if op.outcome == OK and op.answer:
            self.send("pay", wallet, f"/v1/purchases/{op.answer['id']}/mark-paid", {})

    # Transport

    def send(
        self, kind: str, wallet: str, path: str, body: dict[str, Any], *, first: str | None = None
    ) -> Op:
        """`first`: the server the first attempt goes to (by default, any)."""
        op = Op(kind, f"chaos-{uuid.uuid4().hex}", wallet, path, body)
        op.started_at = time.monotonic()
        shared = self.shared
        delay = 0.02
        failed: str | None = None
        while True:
            op.attempts += 1
            bases = shared.bases()
            # After a failure, another server: the one that failed may be down.
            base = first or self.rng.choice([b for b in bases if b != failed] or bases)
            first = None
            try:
                response = self.http.post(
                    base + path, json=body, headers={"Idempotency-Key": op.key}
                )
            except wire.ConnectError:
                # Refused before anything was sent (the server is down): not indefinite.
                shared.history.transport_error()
                failed = base
                if time.monotonic() > shared.retry_until:
                    break
                time.sleep(delay * (0.5 + self.rng.random()))
                continue
            except wire.TransportError:
                shared.history.transport_error()
                response = None
                failed = base
            if response is not None and response.status_code < 500:
                op.status = response.status_code
                op.outcome = OK if response.status_code < 300 else REJECTED
                try:
                    op.answer = response.json()
                except ValueError:
                    op.answer = None
                break
            if response is not None:
                if response.status_code == 503:
                    shared.history.unavailable()
                else:
                    text = response.text[:300]
                    shared.history.server_error(f"{response.status_code} {path}: {text}")
            if not op.indefinite:
                op.indefinite = True
                op.committed_before_retry = shared.committed(op.key)
            if time.monotonic() > shared.retry_until:
                break  # unresolved: the final read classifies it
            time.sleep(delay * (0.5 + self.rng.random()))
            delay = min(delay * 2, 0.25)
        shared.history.finish(op)
        self.count += 1
        return op


def utc(ts: str) -> datetime:
    return datetime.fromisoformat(ts).astimezone(UTC)
