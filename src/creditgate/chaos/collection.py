"""Collecting the money under chaos: a test-mode tenant whose plan fees are manual invoices and
whose debt is billed in arrears, driven over HTTP while servers are killed; and the checks.

The tenant ("chaos collect") has subscribers to two manual-collection plans (`allow` and
`overdraft`), two `soft_cap` wallets without a plan, and overage billed through the manual
provider at each cycle's end (and above a threshold). Its clients charge into debt, mark
plan invoices paid or failed (again under new keys: duplicates), mark bills of overage paid
or write them off, and move the tenant's test clock forward a few days at a time, so periods
end, renew and their debt is billed while the servers' own workers bill concurrently. Now and
then a server is SIGKILLed just after an advance or a payment is sent, so crashes land in
the middle of billing and granting.

At the end, beside `verify` (invariants 11 and 12 among them), the history and the database
must agree: an invoice is paid exactly when a mark-paid was acknowledged, and its period's
included credit was granted once iff it was paid while the period lasted; each cycle's debt
was billed at most once, never more debt than was charged; an acknowledged payment or
write-off of a bill stands, its lot of exactly the debt billed; every lot the server made on
its own is one of these; and the lots, charges and balances match the replayed history
exactly as the bank's do (`model.ReferenceModel`).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate, TenantLedger
from creditgate.chaos.cluster import Crash, Crasher, CrashTurns, Freeze
from creditgate.chaos.history import OK, History, Op, ended_as
from creditgate.chaos.model import Findings, ReferenceModel, ServerState
from creditgate.chaos.workload import Client, Clients, WalletSpec
from creditgate.domain.webhooks import EventType
from creditgate.storage import tables as t

ASSET = "credits"
ALLOW_PLAN, OVERDRAFT_PLAN = "chaos-allow", "chaos-overdraft"
OVERDRAFT_LIMIT, SOFT_CAP_LIMIT = 3_000, 1_500
OVERAGE_PRICE, OVERAGE_THRESHOLD = "0.01", 6_000

# Customer -> its plan (None: no subscription, a soft_cap wallet).
SUBSCRIBERS = {"a0": ALLOW_PLAN, "a1": ALLOW_PLAN, "a2": ALLOW_PLAN}
SUBSCRIBERS |= {"o0": OVERDRAFT_PLAN, "o1": OVERDRAFT_PLAN}
SOFT_CAPPED = ("s0", "s1")
WALLETS = (
    *(WalletSpec(c, "allow") for c, p in SUBSCRIBERS.items() if p == ALLOW_PLAN),
    *(
        WalletSpec(c, "overdraft", OVERDRAFT_LIMIT)
        for c in SUBSCRIBERS
        if SUBSCRIBERS[c] != ALLOW_PLAN
    ),
    *(WalletSpec(c, "soft_cap", SOFT_CAP_LIMIT) for c in SOFT_CAPPED),
)

WEIGHTS = {
    "charge": 30,
    "grant": 6,
    "pay_invoice": 14,
    "fail_invoice": 5,
    "pay_bill": 8,
    "write_off": 2,
    "advance": 8,
}
# The first client's opening move: an `allow` wallet charged past its plan's included 2,000
# and the overage threshold, so that every run bills overage (at the threshold, in the next
# billing round) and has a bill to pay or write off, however few moves a short run on a busy
# machine gets; its random moves reach a cycle's end with debt only if they get enough.
OPENING_CHARGE = ("a0", 2_000 + OVERAGE_THRESHOLD + 500)
# Every operation's effect is recorded under its idempotency key. Sent again, all but an
# advance answer their first answer; an advance answers its first move and runs the
# billing round again (which bills and renews nothing twice), so its answer differs.
REPLAYED = {"subscribe", "grant", "charge", "invoice_paid", "invoice_failed", "bill_paid"}
REPLAYED |= {"write_off"}


@dataclass(frozen=True)
class CollectSetup:
    tenant_id: str
    key: str


def seed(cg: Creditgate) -> CollectSetup:
    """The test-mode tenant with its plans, overage price and soft-capped wallets. Customers
    subscribe over HTTP, in `open_books`."""
    tenant, created = cg.create_tenant_with_key("chaos collect", mode="test")
    ledger = TenantLedger(cg, tenant.id)
    ledger.create_asset(ASSET, 0, "Credits")
    ledger.create_plan(
        ALLOW_PLAN, asset=ASSET, included=2_000, fee="10", collection="manual",
        overage_policy="allow",
    )  # fmt: skip
    ledger.create_plan(
        OVERDRAFT_PLAN, asset=ASSET, included=1_000, fee="5", collection="manual",
        overage_policy="overdraft", overdraft_limit=OVERDRAFT_LIMIT,
    )  # fmt: skip
    ledger.set_overage(ASSET, price=OVERAGE_PRICE, provider="manual", threshold=OVERAGE_THRESHOLD)
    for wallet in WALLETS:
        ledger.create_customer(wallet.customer)
    for customer in SOFT_CAPPED:
        ledger.set_policy(customer, ASSET, "soft_cap", overdraft_limit=SOFT_CAP_LIMIT)
    assert created.key
    return CollectSetup(tenant.id, created.key)


class CollectionClient(Client):
    """One client of the collection tenant: the bank's transport, the collection's moves."""

    def __init__(self, shared: Clients, n: int, rng: random.Random, crasher: Crasher) -> None:
        super().__init__(shared, n, rng)
        self.crasher = crasher
        self.reader = httpx.Client(
            verify=tls_context(), headers={"Authorization": f"Bearer {shared.key}"}, timeout=10.0
        )

    def run(self, deadline: float) -> None:
        kinds = list(WEIGHTS)
        weights = [WEIGHTS[k] for k in kinds]
        try:
            if self.n == 0:
                wallet, amount = OPENING_CHARGE
                body = {"customer": wallet, "asset": ASSET, "amount": amount}
                self.send("charge", wallet, "/v1/charges", body)
            while time.monotonic() < deadline and not self.shared.stop.is_set():
                getattr(self, f"do_{self.rng.choices(kinds, weights)[0]}")()
        finally:
            self.http.close()
            self.reader.close()

    def read(self, path: str) -> Any:
        """A GET on any server, tried again while the servers are down; None past the run."""
        while time.monotonic() < self.shared.retry_until:
            try:
                response = self.reader.get(self.rng.choice(self.shared.bases()) + path)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 200:
                return response.json()
            time.sleep(0.05)
        return None

    def _invoices(self, customer: str, kind: str, statuses: tuple[str, ...]) -> list[Any]:
        listed = self.read(f"/v1/customers/{customer}/invoices") or {"data": []}
        return [i for i in listed["data"] if i["kind"] == kind and i["status"] in statuses]

    def do_charge(self) -> None:
        wallet = self.rng.choice(WALLETS).customer
        body = {"customer": wallet, "asset": ASSET, "amount": self.rng.randint(50, 1_200)}
        self.send("charge", wallet, "/v1/charges", body)

    def do_grant(self) -> None:
        wallet = self.rng.choice(SOFT_CAPPED if self.rng.random() < 0.7 else list(SUBSCRIBERS))
        body = {"asset": ASSET, "amount": self.rng.randint(200, 1_500), "kind": "promotional"}
        self.send("grant", wallet, f"/v1/customers/{wallet}/grants", body)

    def do_pay_invoice(self) -> None:
        customer = self.rng.choice(list(SUBSCRIBERS))
        due = self._invoices(customer, "plan_fee", ("open", "failed"))
        if not due:
            # A duplicate: an invoice already paid, marked paid again under a new key.
            due = self._invoices(customer, "plan_fee", ("paid",))[:2]
        if not due:
            return
        invoice = self.rng.choice(due)
        aimed = self.crasher.aim(self.shared.bases(), 0.25, self.rng)
        path = f"/v1/invoices/{invoice['id']}/mark-paid"
        self.send("invoice_paid", customer, path, {}, first=aimed)
        if self.rng.random() < 0.15:
            self.send("invoice_paid", customer, path, {})  # the operator clicked twice

    def do_fail_invoice(self) -> None:
        customer = self.rng.choice(list(SUBSCRIBERS))
        due = self._invoices(customer, "plan_fee", ("open", "failed"))
        if due:
            invoice = self.rng.choice(due)
            body = {"reason": "chaos: card declined"}
            self.send("invoice_failed", customer, f"/v1/invoices/{invoice['id']}/mark-failed", body)

    def _bill(self) -> tuple[str, Any] | None:
        customer = self.rng.choice(WALLETS).customer
        bills = self._invoices(customer, "overage", ("open",))
        return (customer, self.rng.choice(bills)) if bills else None

    def do_pay_bill(self) -> None:
        if (found := self._bill()) is not None:
            customer, bill = found
            path = f"/v1/purchases/{bill['id']}/mark-paid"
            self.send("bill_paid", customer, path, {})
            if self.rng.random() < 0.1:
                self.send("bill_paid", customer, path, {})

    def do_write_off(self) -> None:
        if (found := self._bill()) is not None:
            customer, bill = found
            self.send("write_off", customer, f"/v1/purchases/{bill['id']}/write-off", {})

    def do_advance(self) -> None:
        clock = self.read("/v1/test-clock")
        if clock is None:
            return
        now = datetime.fromisoformat(clock["now"]).astimezone(UTC)
        to = now + timedelta(days=self.rng.randint(2, 12), minutes=self.rng.randint(0, 600))
        aimed = self.crasher.aim(self.shared.bases(), 0.5, self.rng)
        self.send("advance", "-", "/v1/test-clock/advance", {"to": to.isoformat()}, first=aimed)


@dataclass
class Workload:
    """The collection clients of a run, started beside the bank's and joined after it."""

    clients: Clients
    crasher: Crasher
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def history(self) -> History:
        return self.clients.history

    def start(self, count: int, run_seed: int, deadline: float) -> None:
        for n in range(count):
            rng = random.Random(f"{run_seed}:collect:{n}")
            client = CollectionClient(self.clients, n, rng, self.crasher)
            thread = threading.Thread(target=client.run, args=(deadline,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()
        self.crasher.join()

    def replayable(self) -> History:
        """The operations whose replay under their key must answer the first answer."""
        keyed = History()
        keyed.ops = [op for op in self.history.ops if op.kind in REPLAYED]
        return keyed


def open_books(
    setup: CollectSetup,
    bases: Callable[[], list[str]],
    committed: Callable[[str], bool],
    crash: Crash,
    run_seed: int,
    deadline: float,
    turns: CrashTurns | None = None,
    freeze: Freeze | None = None,
) -> Workload:
    """Subscriptions and the soft-capped wallets' opening credit, over HTTP (before faults).
    `turns`: the aimed crashes' schedule, if shared (its party 0); `freeze`: how a server is
    stopped before an aimed crash (see Crasher)."""
    clients = Clients(
        bases=bases,
        key=setup.key,
        history=History(),
        now=lambda: datetime.now(UTC),
        committed=committed,
        wallets=WALLETS,
        retry_until=deadline + 30,
    )
    opener = Client(clients, -1, random.Random(f"{run_seed}:collect:open"))
    for customer, plan in SUBSCRIBERS.items():
        path = f"/v1/customers/{customer}/subscriptions"
        opener.send("subscribe", customer, path, {"plan": plan})
    for customer in SOFT_CAPPED:
        body = {"asset": ASSET, "amount": 2_000, "kind": "promotional"}
        opener.send("grant", customer, f"/v1/customers/{customer}/grants", body)
    opener.http.close()
    rng = random.Random(f"{run_seed}:collect:crash")
    crasher = Crasher(crash, rng, turns, party=0, freeze=freeze)
    return Workload(clients, crasher)


# The state the checks read


@dataclass
class CollectionState:
    periods: list[dict[str, Any]]  # subscription periods with an invoice
    bills: dict[str, dict[str, Any]]  # overage bills by purchase id
    purchases: dict[str, dict[str, Any]]  # purchases of origin overage
    customers: dict[str, str]  # wallet id -> customer
    soft_cap_events: dict[str, int]  # customer -> balance.soft_cap_reached raised


def read_state(cg: Creditgate, tenant_id: str) -> CollectionState:
    def read(conn: Any) -> CollectionState:
        customers = {
            r.wallet_id: r.external_id
            for r in conn.execute(
                select(t.customers.c.wallet_id, t.customers.c.external_id).where(
                    t.customers.c.tenant_id == tenant_id
                )
            )
        }
        periods = [
            dict(r._mapping)
            for r in conn.execute(
                select(t.subscription_periods)
                .where(t.subscription_periods.c.tenant_id == tenant_id)
                .order_by(t.subscription_periods.c.subscription_id, "period_index")
            )
        ]
        bills = {
            r.purchase_id: dict(r._mapping)
            for r in conn.execute(
                select(t.overage_bills).where(t.overage_bills.c.tenant_id == tenant_id)
            )
        }
        purchases = {
            r.id: dict(r._mapping)
            for r in conn.execute(
                select(t.purchases).where(
                    t.purchases.c.tenant_id == tenant_id, t.purchases.c.origin == "overage"
                )
            )
        }
        events = conn.execute(
            select(t.events.c.wallet_id, func.count())
            .where(
                t.events.c.tenant_id == tenant_id,
                t.events.c.type == EventType.BALANCE_SOFT_CAP_REACHED.value,
            )
            .group_by(t.events.c.wallet_id)
        )
        soft = {customers.get(w, w): int(n) for w, n in events}
        return CollectionState(periods, bills, purchases, customers, soft)

    return cg.db.run(read, read_only=True)


def tenant_now(cg: Creditgate, tenant_id: str) -> datetime:
    return TenantLedger(cg, tenant_id).test_clock().now.astimezone(UTC)


# The checks


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


class CollectionModel:
    """The collection tenant's history against its database: plan invoices, bills of
    overage, the lots the server made for them, then the bank's lot/charge/wallet model."""

    def __init__(self, ops: list[Op]) -> None:
        self.done = [op for op in ops if op.outcome == OK and op.answer is not None]
        self.findings = Findings()
        self.policies = {
            w.customer: (("overdraft", w.overdraft_limit) if w.overdraft_limit else (w.policy, 0))
            for w in WALLETS
        }

    def _acknowledged(self, kind: str) -> dict[str, list[Op]]:
        by_id: dict[str, list[Op]] = defaultdict(list)
        for op in self.done:
            if op.kind == kind:
                assert op.answer is not None
                by_id[op.answer["id"]].append(op)
        return by_id

    def check(
        self,
        state: CollectionState,
        server: ServerState,
        *,
        latest_clock: datetime,
        final_clock: datetime,
    ) -> Findings:
        f = self.findings
        made: dict[str, tuple[str, int, Any]] = {}  # lot id -> customer, amount, expires_at
        made |= self._check_invoices(state, server)
        made |= self._check_bills(state, server)
        self._check_soft_cap(state)
        model = ReferenceModel(self.policies)
        model.findings = f
        for lot_id, (customer, amount, expires_at) in made.items():
            model._new_lot(lot_id, customer, amount, expires_at)
        model.replay([op for op in self.done if op.kind in ("grant", "charge")])
        keys = {op.key for op in self.done}
        return model.compare(
            server, acknowledged_keys=keys, latest_clock=latest_clock, final_clock=final_clock
        )

    def _check_invoices(
        self, state: CollectionState, server: ServerState
    ) -> dict[str, tuple[str, int, Any]]:
        f = self.findings
        paid, failed = self._acknowledged("invoice_paid"), self._acknowledged("invoice_failed")
        included = Counter(
            (lot["metadata"].get("subscription"), lot["metadata"].get("period"))
            for lot in server.lots.values()
            if lot["kind"] == "included"
        )
        made: dict[str, tuple[str, int, Any]] = {}
        last_end: dict[str, datetime] = {}
        for period in state.periods:
            invoice, sub = period["invoice_id"], period["subscription_id"]
            customer = state.customers.get(period["wallet_id"], "?")
            f.checked["invoices"] += 1
            start, end = _ts(period["period_start"]), _ts(period["period_end"])
            if sub in last_end and last_end[sub] != start:
                f.fail(f"subscription {sub} period {period['period_index']} starts at {start}, "
                       f"the one before ended {last_end[sub]}")  # fmt: skip
            last_end[sub] = end
            status = period["fee_status"]
            acknowledged = [op for op in paid.get(invoice, []) if op.answer["status"] == "paid"]  # type: ignore[index]
            if acknowledged and status != "paid":
                f.fail(f"invoice {invoice} acknowledged paid is {status}", "lost")
            if status == "paid" and not acknowledged:
                f.fail(f"invoice {invoice} is paid without an acknowledged mark-paid", "duplicated")
            if status == "failed" and not failed.get(invoice):
                f.fail(f"invoice {invoice} failed without an acknowledged mark-failed")
            in_time = status == "paid" and _ts(period["paid_at"]) < end
            grants = included[(sub, period["period_index"])]
            if grants != (1 if in_time else 0):
                kind = "duplicated" if grants > 1 else "violation"
                f.fail(f"invoice {invoice} ({status}, paid in its period: {in_time}) has "
                       f"{grants} included grants", kind)  # fmt: skip
            lot_id = period["lot_id"]
            if in_time and lot_id is not None:
                lot = server.lots.get(lot_id)
                if lot is None or lot["metadata"].get("period") != period["period_index"]:
                    f.fail(f"invoice {invoice}'s lot {lot_id} is not its period's grant")
                else:
                    made[lot_id] = (customer, lot["amount"], lot["expires_at"])
                    f.checked["included_granted"] += 1
            elif lot_id is not None:
                f.fail(f"invoice {invoice} ({status}) has credit {lot_id}")
        return made

    def _check_bills(
        self, state: CollectionState, server: ServerState
    ) -> dict[str, tuple[str, int, Any]]:
        f = self.findings
        made: dict[str, tuple[str, int, Any]] = {}
        charged: dict[str, int] = defaultdict(int)
        for op in self.done:
            if op.kind == "charge" and op.answer and op.answer["status"] == "posted":
                charged[op.wallet] += op.answer["debt"]
        billed: dict[str, int] = defaultdict(int)
        cycles: set[tuple[str, str]] = set()
        for purchase_id in state.purchases.keys() - state.bills.keys():
            f.fail(f"bill {purchase_id} has no cycle: debt billed outside a cycle", "duplicated")
        for purchase_id, bill in state.bills.items():
            purchase = state.purchases.get(purchase_id)
            if purchase is None:
                f.fail(f"overage bill of cycle {bill['cycle']} has no purchase", "lost")
                continue
            f.checked["overage_bills"] += 1
            customer = purchase["customer"]
            cycle = (bill["wallet_id"], bill["cycle"].split(":", 1)[1])
            if bill["cycle"].startswith("period:"):
                if cycle in cycles:
                    f.fail(f"{customer}'s cycle {cycle[1]} billed twice", "duplicated")
                cycles.add(cycle)
            billed[customer] += bill["debt"]
            if purchase["amount"] != bill["debt"]:
                f.fail(f"bill {purchase_id} of {purchase['amount']} for debt {bill['debt']}")
            lot = server.lots.get(purchase["lot_id"]) if purchase["lot_id"] else None
            if purchase["status"] == "paid":
                if lot is None or lot["kind"] != "purchased" or lot["amount"] != bill["debt"]:
                    f.fail(f"paid bill {purchase_id} granted {lot and lot['amount']}")
                else:
                    made[lot["id"]] = (customer, lot["amount"], lot["expires_at"])
            elif purchase["status"] == "written_off" and lot is not None:
                if lot["kind"] != "adjustment" or lot["amount"] > bill["debt"]:
                    f.fail(f"write-off of {purchase_id} closed {lot['amount']} as {lot['kind']}")
                else:
                    made[lot["id"]] = (customer, lot["amount"], lot["expires_at"])
        for kind, status in (("bill_paid", "paid"), ("write_off", "written_off")):
            for purchase_id, ops in self._acknowledged(kind).items():
                answered = [op for op in ops if op.answer and op.answer["status"] == status]
                row = state.purchases.get(purchase_id)
                if answered and (row is None or row["status"] != status):
                    got = row and row["status"]
                    f.fail(f"bill {purchase_id} acknowledged {status} is {got}", "lost")
                f.checked[f"bills_{status}"] += bool(answered)
        for customer, amount in billed.items():
            if amount > charged[customer]:
                f.fail(f"{customer} billed {amount} of debt, charged only {charged[customer]}",
                       "duplicated")  # fmt: skip
        return made

    def _check_soft_cap(self, state: CollectionState) -> None:
        f = self.findings
        for customer in SOFT_CAPPED:
            ops = [op for op in self.done if op.wallet == customer and op.answer]
            into_debt = sum(
                op.kind == "charge" and op.answer["status"] == "posted" and op.answer["debt"] > 0  # type: ignore[index]
                for op in ops
            )
            rises = sum(op.kind in ("grant", "bill_paid") for op in ops)
            raised = state.soft_cap_events.get(customer, 0)
            f.checked["soft_cap_events"] += raised
            if into_debt and not raised:
                f.fail(f"{customer} went past zero under soft_cap with no soft_cap_reached")
            if raised > rises:
                f.fail(f"{customer} raised soft_cap_reached {raised} times, crossing at most "
                       f"{rises} times")  # fmt: skip


def counts_by_outcome(history: History) -> dict[str, int]:
    """Per operation kind: acknowledged (2xx), with how many were cut by a crash or a cut
    connection along the way (`<kind>_indefinite`); refused (4xx) and never answered, with
    how many of those were cut (`<kind>_rejected_indefinite`, `<kind>_unresolved_indefinite`:
    a clock advance cut by a crash may find the clock moved past its time by another client
    when it is sent again, and an operation cut late may have no answer by the run's end)."""
    counts: Counter[str] = Counter()
    for op in history.ops:
        kind = ended_as(op)
        counts[kind] += 1
        if op.indefinite:
            counts[f"{kind}_indefinite"] += 1
    return dict(sorted(counts.items()))
