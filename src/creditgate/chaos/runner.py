"""`creditgate chaos`: the bank workload with crashes, cut connections and clock faults,
overspend races and hostile input against real server processes; one line of figures.

Phases, on one database (SQLite file or PostgreSQL):
1. start `servers` `creditgate serve` processes sharing the database and a clock file;
2. overspend races (block and overdraft; authorizations, charges, both) across them;
3. the bank workload: `clients` threads over HTTP while the clock moves forward (and now
   and then back), servers are SIGKILLed and restarted, and on PostgreSQL connections are
   terminated mid-transaction; beside it, `collect_clients` threads collect money on a
   test-mode tenant (collection.py), with crashes aimed at their requests; the same
   clients also call for organizations' members under hard budgets (workload.py), some
   of those calls with crashes aimed at them too;
4. every operation left without an answer is retried with its idempotency key; then each
   member's (and organization's) usage is read from its API route (budgets.py);
5. hostile input over every operation on a tenant of its own;
6. the servers stop, the clock moves past every hold's TTL, a final sweep runs, and the
   database is compared with the reference model built from the acknowledged history, and
   checked by `verify` (DESIGN's invariants 1-4, 6 and 7); invariant 8 is the model's
   lost/duplicated count. The members' budgets are checked against the history, the usage
   read back and the ledger (budgets.py): never past a hard budget in any period.

The seed fixes each client's sequence of operations and each fault's timing; thread
interleaving and the servers' scheduling are the machine's, so a failing seed is rerun to
reproduce, usually within a few runs.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import shutil
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from creditgate.api import Creditgate, TenantLedger
from creditgate.api.clock import FileOffsetClock
from creditgate.chaos import budgets, collection, wire
from creditgate.chaos.cluster import CRASH_EVERY, Cluster, Crasher, CrashTurns
from creditgate.chaos.history import OK, REJECTED, UNRESOLVED, History, Op
from creditgate.chaos.model import ReferenceModel, ServerState
from creditgate.chaos.patroni import Failover, PatroniCluster
from creditgate.chaos.races import RaceResult, race
from creditgate.chaos.workload import (
    DEFAULT_WALLETS,
    ORG_TTL,
    ORGANIZATIONS,
    Client,
    Clients,
    WalletSpec,
)
from creditgate.domain.ledger import Account, TransactionKind
from creditgate.storage import tables as t

MAX_TTL = max(600, ORG_TTL)  # the workload's longest hold TTL, seconds
DAY_TURNS_AFTER = timedelta(minutes=8)  # the members' day budgets turn this far into the run
FAILOVER_SECONDS = 12  # no failover starts closer than this to the clients' end
MAX_EXTRA_SECONDS = 240  # the longest the clients wait past `seconds` for `min_failovers`


@dataclass
class ChaosOptions:
    backend: str = "sqlite"
    seconds: float = 60.0
    seed: int | None = None
    clients: int = 12
    servers: int = 2
    pool_size: int = 8  # each server's database connections
    crash_every: tuple[float, float] | None = (2.0, 6.0)
    cut_every: tuple[float, float] | None = (1.0, 4.0)  # PostgreSQL only
    clock_tick: float = 0.2
    race_rounds: int = 1
    race_balance: int = 500  # each race's wallet; it fits balance / 10 debits (plus overdraft)
    hostile_share: float = 0.15  # of `seconds`
    # Bad inputs tried at the least, past the hostile share of the time if need be: a short
    # run on a loaded machine would otherwise try too few to say much.
    hostile_at_least: int = 60
    db: str | None = None
    # "patroni": a 3-node Patroni cluster of its own (chaos/patroni.py), made to fail over
    # every so often: its primary's PostgreSQL SIGKILLed, its leader's Patroni SIGKILLed, a
    # planned switchover, in turn. Seconds between one failover settling and the next.
    cluster: str | None = None
    failover_every: tuple[float, float] = (8.0, 16.0)
    failover_kinds: tuple[str, ...] = ("primary_killed", "switchover", "patroni_killed")
    min_failovers: int = 0  # the bank workload runs on (up to 4 minutes more) until so many
    collect_clients: int = 2  # clients of the test-mode tenant collecting money (0: none)
    # At most one crash aimed at a request this often, seconds, the collection's and the
    # members' in turn: a short run needs them closer to give each party its turn.
    aimed_crash_every: float = CRASH_EVERY


@dataclass
class ChaosReport:
    backend: str
    seed: int
    seconds: float
    operations_acknowledged: int = 0
    bank_seconds: float = 0.0  # how long the bank workload's clients ran
    bank_operations_per_second: float = 0.0  # operations answered per second in that time
    bank_operations_by_minute: list[int] = field(default_factory=list)  # answered, per minute
    operations_declined_or_rejected: int = 0
    operations_unresolved: int = 0
    rejected_by_kind: dict[str, int] = field(default_factory=dict)  # "settle 409 code": count
    indefinite_outcomes: int = 0
    indefinite_committed_before_retry: int = 0
    crashes_survived: int = 0
    failed_starts: int = 0  # restarts that met a cut connection, exited and were started again
    connections_cut: int = 0
    clock_jumps_back: int = 0
    clock_offset_seconds: int = 0
    invariant_violations: int = 0
    lost_effects: int = 0
    duplicated_effects: int = 0
    replays_checked: int = 0
    races: int = 0
    races_exact: int = 0
    bad_inputs_tried: int = 0
    bad_input_failures: int = 0
    server_errors: int = 0
    unavailable_503: int = 0
    transport_errors: int = 0
    harness_errors: int = 0  # a fault thread that failed: the run proves less than it says
    failovers: int = 0  # a new primary each time (patroni cluster only)
    failovers_by_kind: dict[str, int] = field(default_factory=dict)
    # Per failover: the longest time no operation was answered, from the fault until the
    # cluster had its standbys back (seconds); its median and maximum.
    unavailable_seconds: list[float] = field(default_factory=list)
    # Per failover: "kind old->new: unavailable U s, settled in S s" (S: until the old
    # primary was a streaming standby again).
    failover_log: list[str] = field(default_factory=list)
    unavailable_p50_seconds: float = 0.0
    unavailable_max_seconds: float = 0.0
    checked: dict[str, int] = field(default_factory=dict)
    # The collection tenant's operations: acknowledged per kind, `<kind>_indefinite` those
    # an attempt of which a crash or a cut left without an answer, refused and unanswered
    # ones as `<kind>_rejected` and `<kind>_unresolved` (each with its `_indefinite`),
    # `aimed_crashes`.
    collection: dict[str, int] = field(default_factory=dict)
    # The organizations' calls (members under hard budgets), likewise; `declined_<reason>`
    # per decline reason, `aimed_crashes`, `budgets` (hard budgets set).
    members: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # Where the servers' logs were kept: a run that failed keeps them (a passing run's are
    # removed with its working folder).
    server_logs: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.invariant_violations == 0
            and self.lost_effects == 0
            and self.duplicated_effects == 0
            and self.operations_unresolved == 0
            and self.races_exact == self.races
            and self.bad_input_failures == 0
            and self.server_errors == 0
            and self.harness_errors == 0
        )

    def line(self) -> str:
        failovers = (
            f"failovers={self.failovers} unavailable_p50={self.unavailable_p50_seconds:.1f}s "
            f"unavailable_max={self.unavailable_max_seconds:.1f}s "
            if self.backend == "patroni"
            else ""
        )
        return (
            f"chaos backend={self.backend} seed={self.seed} seconds={self.seconds:.0f} "
            f"acknowledged={self.operations_acknowledged} {failovers}"
            f"crashes_survived={self.crashes_survived} connections_cut={self.connections_cut} "
            f"indefinite={self.indefinite_outcomes} "
            f"invariant_violations={self.invariant_violations} lost={self.lost_effects} "
            f"duplicated={self.duplicated_effects} races_exact={self.races_exact}/{self.races} "
            f"bad_inputs={self.bad_inputs_tried} bad_input_failures={self.bad_input_failures} "
            f"5xx={self.server_errors} (503 refusals {self.unavailable_503}) "
            f"member_ops={self.member_operations} "
            f"budget_periods={self.checked.get('budget_periods', 0)} "
            f"{'PASS' if self.ok else 'FAIL'}"
            + (f" server_logs={self.server_logs}" if self.server_logs else "")
        )

    @property
    def member_operations(self) -> int:
        """The organizations' authorizations, charges, settles, voids and refunds acknowledged."""
        kinds = ("authorize", "charge", "settle", "void", "refund")
        return sum(self.members.get(kind, 0) for kind in kinds)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


@dataclass
class Setup:
    tenant_id: str
    key: str
    race_key: str
    hostile_tenant: str
    hostile_key: str
    collect: collection.CollectSetup | None = None
    budget_defs: list[budgets.BudgetDef] = field(default_factory=list)  # set over HTTP (_bank)


ORG_WALLETS = tuple(WalletSpec(org.customer, "block") for org in ORGANIZATIONS)


def _seed(cg: Creditgate) -> Setup:
    tenant, created = cg.create_tenant_with_key("chaos bank")
    ledger = TenantLedger(cg, tenant.id)
    ledger.create_asset("credits", 0, "Credits")
    for wallet in (*DEFAULT_WALLETS, *ORG_WALLETS):
        ledger.create_customer(wallet.customer)
        limit = wallet.overdraft_limit if wallet.policy == "overdraft" else None
        ledger.set_policy(wallet.customer, "credits", wallet.policy, overdraft_limit=limit)
    ledger.create_pack("chaos100", asset="credits", amount=100, price="1.00")
    race_tenant, race_key = cg.create_tenant_with_key("chaos races")
    TenantLedger(cg, race_tenant.id).create_asset("credits", 0, "Credits")
    hostile, hostile_key = cg.create_tenant_with_key("chaos hostile input")
    assert created.key and race_key.key and hostile_key.key
    setup = Setup(tenant.id, created.key, race_key.key, hostile.id, hostile_key.key)
    setup.collect = collection.seed(cg)
    return setup


def _committed(cg: Creditgate, tenant_id: str) -> Any:
    def committed(key: str) -> bool:
        try:
            row = cg.db.run(
                lambda conn: conn.execute(
                    select(t.idempotency_keys.c.key).where(
                        t.idempotency_keys.c.tenant_id == tenant_id,
                        t.idempotency_keys.c.key == key,
                    )
                ).first(),
                read_only=True,
            )
        except Exception:
            return False  # the database itself was cut: unknown, counted as not yet
        return row is not None

    return committed


class Faults:
    """The fault threads: clock moves, crashes, connection cuts, failovers (patroni)."""

    def __init__(
        self,
        cluster: Cluster,
        options: ChaosOptions,
        seed: int,
        url: str,
        patroni: PatroniCluster | None = None,
    ) -> None:
        self.cluster = cluster
        self.patroni = patroni
        self.clients_end = float("inf")  # time.monotonic() the bank workload's clients stop
        self.options = options
        self.rng = random.Random(f"{seed}:faults")
        self.url = url
        self.stop = threading.Event()
        self.max_offset = Decimal(0)
        self.jumps_back = 0
        self.cuts = 0
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> None:
        self._spawn(self._clock)
        if self.options.crash_every:
            self._spawn(self._crashes)
        if self.options.cut_every and self.url.startswith("postgresql") and not self.patroni:
            self._spawn(self._cuts)
        if self.patroni is not None:
            self._spawn(self._failovers)

    def _spawn(self, target: Any) -> None:
        thread = threading.Thread(target=self._guard, args=(target,), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guard(self, target: Any) -> None:
        try:
            target()
        except Exception as exc:  # a fault thread's own failure fails the run
            self.errors.append(f"{target.__name__}: {exc!r}")

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)

    def _clock(self) -> None:
        rng = random.Random(self.rng.random())
        offset = self.cluster.offset_seconds
        ticks = 0
        while not self.stop.wait(self.options.clock_tick):
            ticks += 1
            # A tenth of the ticks, and the third of every run (a short one has one too).
            if rng.random() < 0.1 or ticks == 3:
                offset -= Decimal(rng.randint(1, 60))  # a clock fault: time goes back
                self.jumps_back += 1
            else:
                offset += Decimal(rng.randint(2, 30))
            self.cluster.set_offset(offset)
            self.max_offset = max(self.max_offset, offset)

    def _crashes(self) -> None:
        rng = random.Random(self.rng.random())
        low, high = self.options.crash_every or (1.0, 1.0)
        while not self.stop.wait(rng.uniform(low, high)):
            if time.monotonic() - self.cluster.last_crash < low:
                continue  # a crash aimed at a request came first: it stands in for this one
            self.cluster.crash_one(rng)

    def _failovers(self) -> None:
        assert self.patroni is not None
        patroni = self.patroni
        rng = random.Random(self.rng.random())
        faults = {
            "primary_killed": patroni.kill_primary_postgres,
            "switchover": patroni.switchover,
            "patroni_killed": patroni.kill_patroni_leader,
        }
        kinds = self.options.failover_kinds
        low, high = self.options.failover_every
        n = 0
        # None so late that its window would be measured with no one asking (but the clients
        # wait for `min_failovers`).
        while not self.stop.wait(rng.uniform(low, high)) and (
            time.monotonic() < self.clients_end - FAILOVER_SECONDS
            or len(patroni.failovers) < self.options.min_failovers
        ):
            faults[kinds[n % len(kinds)]]()
            n += 1

    def _cuts(self) -> None:
        import psycopg

        rng = random.Random(self.rng.random())
        low, high = self.options.cut_every or (1.0, 1.0)
        dsn = self.url.replace("postgresql+psycopg://", "postgresql://")
        states = "('active', 'idle in transaction')" if rng.random() < 0.7 else "('idle')"
        while not self.stop.wait(rng.uniform(low, high)):
            query = (
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                f"AND backend_type = 'client backend' AND state IN {states}"
            )
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute(query).fetchone()
            self.cuts += int(row[0]) if row else 0


def _resolve(clients: Clients, history: History, seed: int, deadline: float) -> None:
    """Send every unanswered operation again, with its key, until it has an answer."""
    clients.retry_until = deadline
    client = Client(clients, -1, random.Random(f"{seed}:resolve"))
    try:
        for op in history.ops:
            if op.outcome == UNRESOLVED:
                retried = _send_with_key(client, op)
                op.outcome, op.status, op.answer = retried.outcome, retried.status, retried.answer
                op.attempts += retried.attempts
                op.finished_at = time.monotonic()  # its effect, if any, came by now
    finally:
        client.http.close()


def _send_with_key(client: Client, op: Op) -> Op:
    shared = client.shared
    copy = Op(op.kind, op.key, op.wallet, op.path, op.body)
    delay = 0.05
    while time.monotonic() < shared.retry_until:
        copy.attempts += 1
        try:
            response = client.http.post(
                client.rng.choice(shared.bases()) + op.path,
                json=op.body,
                headers={"Idempotency-Key": op.key},
            )
        except wire.TransportError:
            response = None
        if response is not None and response.status_code < 500:
            copy.status = response.status_code
            copy.outcome = OK if response.status_code < 300 else REJECTED
            copy.answer = response.json()
            return copy
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    return copy


def _server_state(cg: Creditgate, tenant_id: str) -> ServerState:
    def read(conn: Any) -> ServerState:
        lots = {
            r.id: dict(r._mapping)
            for r in conn.execute(select(t.lots).where(t.lots.c.tenant_id == tenant_id))
        }
        holds = {
            r.id: dict(r._mapping)
            for r in conn.execute(
                select(t.holds).where(
                    t.holds.c.tenant_id == tenant_id, t.holds.c.status != "declined"
                )
            )
        }
        charges = {
            r.id: dict(r._mapping)
            for r in conn.execute(select(t.charges).where(t.charges.c.tenant_id == tenant_id))
        }
        balances = {
            r.external_id: dict(r._mapping)
            for r in conn.execute(
                select(
                    t.customers.c.external_id,
                    t.wallet_balances.c.posted,
                    t.wallet_balances.c.held,
                    t.wallet_balances.c.debt,
                )
                .join(
                    t.wallet_balances,
                    (t.wallet_balances.c.wallet_id == t.customers.c.wallet_id)
                    & (t.wallet_balances.c.tenant_id == t.customers.c.tenant_id),
                )
                .where(t.customers.c.tenant_id == tenant_id, t.wallet_balances.c.asset == "credits")
            )
        }
        e, x = t.ledger_entries, t.ledger_transactions
        moved = (
            select(x.c.kind, e.c.lot_id, func.sum(e.c.amount).label("amount"))
            .join(x, (x.c.id == e.c.transaction_id) & (x.c.tenant_id == e.c.tenant_id))
            .where(
                e.c.tenant_id == tenant_id,
                e.c.account == Account.WALLET.value,
                e.c.lot_id.is_not(None),
                x.c.kind.in_([TransactionKind.EXPIRE.value, TransactionKind.GRANT.value]),
                (x.c.kind == TransactionKind.EXPIRE.value) | (e.c.amount < 0),
            )
            .group_by(x.c.kind, e.c.lot_id)
        )
        expired: dict[str, int] = {}
        repaid: dict[str, int] = {}
        for row in conn.execute(moved):
            target = expired if row.kind == TransactionKind.EXPIRE.value else repaid
            target[row.lot_id] = -int(row.amount)
        keys = set(
            conn.execute(
                select(t.idempotency_keys.c.key).where(t.idempotency_keys.c.tenant_id == tenant_id)
            ).scalars()
        )
        return ServerState(lots, holds, charges, balances, expired, repaid, keys)

    return cg.db.run(read, read_only=True)


@contextmanager
def _database(options: ChaosOptions) -> Iterator[tuple[str, PatroniCluster | None]]:
    if options.cluster == "patroni":
        with PatroniCluster() as patroni:
            yield patroni.create_database("creditgate_chaos"), patroni
        return
    if options.cluster is not None:
        raise ValueError(f"unknown cluster {options.cluster!r}: the one there is is patroni")
    from creditgate.bench.target import bench_database

    with bench_database(options.backend, options.db) as url:
        yield url, None


def run_chaos(options: ChaosOptions, progress: Any = None) -> ChaosReport:
    seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
    backend = "patroni" if options.cluster == "patroni" else options.backend
    report = ChaosReport(backend, seed, options.seconds)
    started = time.monotonic()

    def say(message: str) -> None:
        if progress is not None:
            progress(f"[{time.monotonic() - started:6.1f}s] {message}")

    with _database(options) as (url, patroni):
        with Creditgate(url) as cg:
            setup = _seed(cg)
        cluster = Cluster(url, size=options.servers, pool_size=options.pool_size)
        try:
            cluster.start()
            say(f"{options.servers} servers up on {backend}; seed {seed}")
            _races(cluster, setup, options, seed, report, say)
            hostile_seconds = options.seconds * options.hostile_share
            bank_seconds = max(
                options.seconds * 0.5,
                options.seconds - (time.monotonic() - started) - hostile_seconds,
            )
            bank_started = time.monotonic()
            history, faults, clients, collect = _bank(
                cluster, setup, options, seed, url, bank_seconds, say, patroni
            )
            if patroni is not None:
                _unavailability(patroni.failovers, history, faults.clients_end, report)
                say(
                    f"failovers: {report.failovers} {report.failovers_by_kind}, unavailable "
                    f"{report.unavailable_p50_seconds:.1f}s (p50) "
                    f"{report.unavailable_max_seconds:.1f}s (max)"
                )
            ran = max(bank_seconds, faults.clients_end - bank_started)  # min_failovers: longer
            report.bank_seconds = round(min(ran, time.monotonic() - bank_started), 1)
            answered = history.acknowledged()
            report.bank_operations_per_second = round(
                len(answered) / max(report.bank_seconds, 1.0), 1
            )
            report.bank_operations_by_minute = _per_minute(answered, bank_started)
            replays = _replays(clients, history, seed, sample=300)
            report.replays_checked = replays.replayed + replays.conflicts_tried
            report.duplicated_effects += len(replays.failures)
            report.failures.extend(replays.failures[:20])
            if collect is not None:
                more = _replays(collect.clients, collect.replayable(), seed, sample=60)
                report.replays_checked += more.replayed + more.conflicts_tried
                report.duplicated_effects += len(more.failures)
                report.failures.extend(more.failures[:20])
            say(f"replays: {replays.replayed} replayed, {replays.conflicts_tried} conflicts")
            usage = _read_usage(cluster, setup, faults)
            _hostile(
                cluster, setup, url, seed, hostile_seconds, options.hostile_at_least, report, say
            )
        finally:
            cluster.stop()
        _final(url, cluster, setup, history, faults, clients, report, say, collect, usage)
        report.seconds = time.monotonic() - started
        if report.ok and not report.failures:
            shutil.rmtree(cluster.workdir, ignore_errors=True)
        else:
            report.server_logs = str(cluster.workdir)
    return report


def _read_usage(
    cluster: Cluster, setup: Setup, faults: Faults
) -> tuple[dict[budgets.Key, budgets.UsageRead], datetime]:
    """The members' usage from their routes, every call answered, with the servers' clock at
    the latest it has been (so their current periods are the latest any call counted in)."""
    cluster.set_offset(faults.max_offset)
    found = budgets.read_usage(cluster.bases(), setup.key, setup.budget_defs)
    # No server's clock read later than this while the routes answered.
    clock = datetime.now(UTC) + timedelta(seconds=float(faults.max_offset))
    return found, clock


def _unavailability(
    failovers: list[Failover], history: History, clients_end: float, report: ChaosReport
) -> None:
    """Per failover, the longest stretch in which no operation got an answer, from the fault
    until the cluster had its standbys back (a few seconds more, the next fault, or the
    clients' end)."""
    answered = sorted(op.finished_at for op in history.acknowledged())
    windows = []
    for n, failover in enumerate(failovers):
        end = min(failover.settled_at + 5.0, clients_end)
        if n + 1 < len(failovers):
            end = min(end, failovers[n + 1].started_at)
        times = [failover.started_at, *(t for t in answered if failover.started_at < t < end)]
        times.append(end)
        window = round(max(b - a for a, b in itertools.pairwise(times)), 2)
        windows.append(window)
        report.failover_log.append(
            f"{failover.kind} {failover.old_leader}->{failover.new_leader}: unavailable "
            f"{window:.2f}s, settled in {failover.settled_at - failover.started_at:.1f}s"
        )
    report.failovers = len(failovers)
    report.failovers_by_kind = dict(Counter(f.kind for f in failovers))
    report.unavailable_seconds = windows
    if windows:
        report.unavailable_p50_seconds = round(statistics.median(windows), 2)
        report.unavailable_max_seconds = max(windows)


def _per_minute(ops: list[Op], started: float) -> list[int]:
    counts: list[int] = []
    for op in ops:
        minute = int((op.finished_at - started) // 60)
        counts.extend([0] * (minute + 1 - len(counts)))
        counts[minute] += 1
    return counts


def _races(
    cluster: Cluster,
    setup: Setup,
    options: ChaosOptions,
    seed: int,
    report: ChaosReport,
    say: Any,
) -> None:
    results: list[RaceResult] = []
    for round_ in range(options.race_rounds):
        for policy, limit in (("block", 0), ("overdraft", 300)):
            for kind in ("authorize", "charge", "mixed"):
                result = race(
                    cluster.bases(),
                    setup.race_key,
                    policy=policy,
                    kind=kind,
                    balance=options.race_balance + 7 * round_,
                    amount=10,
                    limit=limit,
                    seed=seed + round_,
                )
                results.append(result)
        # A member under a hard budget well inside the balance: the budget decides.
        for kind in ("authorize", "mixed"):
            result = race(
                cluster.bases(),
                setup.race_key,
                policy="block",
                kind=kind,
                balance=options.race_balance * 4,
                amount=10,
                seed=seed + round_,
                budget=options.race_balance - 3 * round_ - 5,
            )
            results.append(result)
    for result in results:
        if not result.ok:
            report.failures.append(
                f"race {result.policy}/{result.kind}: approved {result.approved}, expected "
                f"{result.expected}, available after {result.available_after}, "
                f"errors {result.errors[:3]}"
            )
    report.races = len(results)
    report.races_exact = sum(r.ok for r in results)
    say(f"races: {report.races_exact}/{report.races} exact")


def _bank(
    cluster: Cluster,
    setup: Setup,
    options: ChaosOptions,
    seed: int,
    url: str,
    seconds: float,
    say: Any,
    patroni: PatroniCluster | None = None,
) -> tuple[History, Faults, Clients, collection.Workload | None]:
    history = History()
    checker = Creditgate(url, migrate=False, pool_size=2)

    def now() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=float(cluster.offset_seconds))

    deadline = time.monotonic() + seconds
    clients = Clients(
        bases=cluster.bases,
        key=setup.key,
        history=history,
        now=now,
        committed=_committed(checker, setup.tenant_id),
        retry_until=deadline + 30,
    )
    # Opening balances, through the same path as everything else.
    opener = Client(clients, -1, random.Random(f"{seed}:open"))
    for wallet in DEFAULT_WALLETS:
        body = {"asset": "credits", "amount": 5_000, "kind": "purchased", "cost_basis": "0.01"}
        opener.send("grant", wallet.customer, f"/v1/customers/{wallet.customer}/grants", body)
    # The organizations: their members and hard budgets, day ones turning during the run.
    setup.budget_defs = budgets.open_organizations(opener, setup.key, now() + DAY_TURNS_AFTER)
    opener.http.close()
    collect = None
    # The aimed crashes take turns: the collection's requests, the members' calls.
    turns = CrashTurns(parties=2, every=options.aimed_crash_every)
    if setup.collect is not None and options.collect_clients:
        collect = collection.open_books(
            setup.collect,
            cluster.bases,
            _committed(checker, setup.collect.tenant_id),
            cluster.crash_one,
            seed,
            deadline,
            turns,
            cluster.freeze,
        )
    else:
        turns.parties = 1
    party = turns.parties - 1
    rng = random.Random(f"{seed}:members:crash")
    clients.orgs = ORGANIZATIONS
    clients.crasher = Crasher(cluster.crash_one, rng, turns, party=party, freeze=cluster.freeze)
    faults = Faults(cluster, options, seed, url, patroni)
    faults.clients_end = deadline
    faults.start()
    if collect is not None:
        collect.start(options.collect_clients, seed, deadline)
    # With `min_failovers`, the clients go on past `seconds` until that many have settled.
    waits = patroni is not None and options.min_failovers > 0
    last = deadline + MAX_EXTRA_SECONDS if waits else deadline
    threads = [
        threading.Thread(target=clients.run_client, args=(n, seed, last), daemon=True)
        for n in range(options.clients)
    ]
    for thread in threads:
        thread.start()
    if waits:
        assert patroni is not None
        while time.monotonic() < last and (
            time.monotonic() < deadline or len(patroni.failovers) < options.min_failovers
        ):
            time.sleep(0.1)
        faults.clients_end = time.monotonic()
        clients.retry_until = faults.clients_end + 30
        clients.stop.set()
    for thread in threads:
        thread.join()
    if clients.crasher is not None:
        clients.crasher.join()
    if collect is not None:
        collect.join()  # its aimed crashes too, before the servers are brought up
    faults.join()
    if patroni is not None:
        patroni.wait_healthy()
    cluster.ensure_up()
    say(f"bank workload done: {len(history.ops)} operations, {cluster.crashes} crashes")
    _resolve(clients, history, seed, time.monotonic() + 120)
    if collect is not None:
        _resolve(collect.clients, collect.history, seed, time.monotonic() + 120)
    checker.close()
    return history, faults, clients, collect


@dataclass
class ReplayCheck:
    replayed: int = 0
    conflicts_tried: int = 0
    failures: list[str] = field(default_factory=list)


def _replays(clients: Clients, history: History, seed: int, sample: int) -> ReplayCheck:
    """Invariant 5 from outside: an acknowledged request sent again with its key answers the
    first answer and changes nothing; the key with another body is a 409, never applied."""
    rng = random.Random(f"{seed}:replay")
    done = [op for op in history.ops if op.outcome == OK and op.answer is not None]
    check = ReplayCheck()
    client = Client(clients, -2, rng)
    clients.retry_until = time.monotonic() + 120
    try:
        for op in rng.sample(done, min(sample, len(done))):
            again = _send_with_key(client, op)
            check.replayed += 1
            if again.status != op.status or again.answer != op.answer:
                check.failures.append(
                    f"replay of {op.kind} {op.key}: {again.status} {again.answer} "
                    f"after {op.status} {op.answer}"
                )
            if "amount" in op.body and isinstance(op.body["amount"], int):
                other = Op(op.kind, op.key, op.wallet, op.path, {**op.body})
                other.body["amount"] += 1
                conflict = _send_with_key(client, other)
                check.conflicts_tried += 1
                if conflict.status != 409:
                    check.failures.append(
                        f"{op.kind} {op.key} with another body answered {conflict.status}"
                    )
    finally:
        client.http.close()
    return check


def _hostile(
    cluster: Cluster,
    setup: Setup,
    url: str,
    seed: int,
    seconds: float,
    at_least: int,
    report: ChaosReport,
    say: Any,
) -> None:
    if seconds <= 0:
        return
    from creditgate.chaos import hostile

    base = cluster.bases()[0]
    hostile.prepare_tenant(base, setup.hostile_key)
    with Creditgate(url, migrate=False, pool_size=2) as cg:
        result = hostile.run_hostile(
            base,
            setup.hostile_key,
            lambda: hostile.fingerprint(cg, setup.hostile_tenant),
            random.Random(f"{seed}:hostile"),
            seconds=seconds,
            at_least=at_least,
        )
    report.bad_inputs_tried = result.tried
    report.bad_input_failures = result.server_errors + result.unnamed + result.changed_on_reject
    report.failures.extend(f"bad input: {f}" for f in result.failures[:10])
    say(f"hostile input: {result.tried} requests, {report.bad_input_failures} failures")


def _final(
    url: str,
    cluster: Cluster,
    setup: Setup,
    history: History,
    faults: Faults,
    clients: Clients,
    report: ChaosReport,
    say: Any,
    collect: collection.Workload | None = None,
    usage: tuple[dict[budgets.Key, budgets.UsageRead], datetime] | None = None,
) -> None:
    # Past every hold's TTL, then one last sweep in-process on the same clock file.
    final_offset = faults.max_offset + MAX_TTL + 60
    cluster.set_offset(final_offset)
    clock = FileOffsetClock(cluster.clock_file)
    with Creditgate(url, clock=clock) as cg:
        final_clock = clock()
        ledger = TenantLedger(cg, setup.tenant_id)
        for _ in range(5):
            swept = ledger.run_sweeps()
            if not (swept.holds_expired or swept.lots_expired or swept.lots_activated):
                break
        latest_clock = clock()
        state = _server_state(cg, setup.tenant_id)
        orgs = {org.customer for org in ORGANIZATIONS}
        budget_rows = budgets.read_rows(cg, setup.tenant_id, orgs)
        collected = _collect_final(cg, setup, collect)
        verified = cg.verify()
    wallets = (*DEFAULT_WALLETS, *ORG_WALLETS)
    policies = {w.customer: (w.policy, w.overdraft_limit) for w in wallets}
    model = ReferenceModel(policies)
    model.replay(history.ops)
    acknowledged = {op.key for op in history.ops if op.outcome == OK}
    findings = model.compare(
        state, acknowledged_keys=acknowledged, latest_clock=latest_clock, final_clock=final_clock
    )
    ops = history.ops
    report.operations_acknowledged = sum(op.outcome == OK for op in ops)
    report.operations_declined_or_rejected = sum(
        op.outcome == REJECTED or (op.answer or {}).get("status") == "declined" for op in ops
    )
    report.operations_unresolved = sum(op.outcome == UNRESOLVED for op in ops)
    rejected = Counter(
        f"{op.kind} {op.status} {(op.answer or {}).get('code', '')}".strip()
        for op in ops
        if op.outcome == REJECTED
    )
    report.rejected_by_kind = dict(rejected.most_common())
    report.indefinite_outcomes = sum(op.indefinite for op in ops)
    report.indefinite_committed_before_retry = sum(bool(op.committed_before_retry) for op in ops)
    report.crashes_survived = cluster.crashes
    report.failed_starts = cluster.failed_starts
    report.connections_cut = faults.cuts
    report.clock_jumps_back = faults.jumps_back
    report.clock_offset_seconds = int(final_offset)
    report.invariant_violations = findings.invariant_violations + len(verified.violations)
    report.lost_effects = findings.lost
    report.duplicated_effects += findings.duplicated
    counters = history.counters
    report.server_errors += counters.server_errors
    report.unavailable_503 = counters.unavailable
    report.transport_errors = counters.transport_errors
    report.checked = dict(findings.checked) | {"verify_checks": len(verified.checks)}
    report.failures.extend(findings.violations)
    report.failures.extend(f"verify: {v}" for v in verified.violations[:20])
    report.failures.extend(counters.failures)
    report.failures.extend(f"fault thread: {e}" for e in faults.errors)
    report.harness_errors = len(faults.errors)
    if collected is not None and collect is not None:
        _report_collection(report, collect, collected)
    _report_budgets(report, setup, history, clients, usage, budget_rows, final_clock)
    if report.operations_unresolved:
        report.failures.append(f"{report.operations_unresolved} operations never answered")
    say(report.line())


def _report_budgets(
    report: ChaosReport,
    setup: Setup,
    history: History,
    clients: Clients,
    usage: tuple[dict[budgets.Key, budgets.UsageRead], datetime] | None,
    rows: budgets.BudgetRows,
    final_clock: datetime,
) -> None:
    read, clock = usage if usage is not None else (None, None)
    orgs = {org.customer for org in ORGANIZATIONS}
    model = budgets.BudgetModel(setup.budget_defs, history.ops, orgs)
    findings = model.check(read, clock, rows, final_clock=final_clock)
    report.invariant_violations += findings.invariant_violations
    report.lost_effects += findings.lost
    report.duplicated_effects += findings.duplicated
    report.failures.extend(f"budget: {v}" for v in findings.violations)
    report.checked |= dict(findings.checked)
    report.members = budgets.member_counts(history, orgs)
    report.members["budgets"] = len(setup.budget_defs)
    crasher = clients.crasher
    if crasher is not None:
        report.members["aimed_crashes"] = crasher.aimed
        report.failures.extend(crasher.errors)
        report.harness_errors += len(crasher.errors)


def _collect_final(
    cg: Creditgate, setup: Setup, collect: collection.Workload | None
) -> tuple[Any, ...] | None:
    """The collection tenant's own final sweep on its own clock, and what it holds then."""
    if setup.collect is None or collect is None:
        return None
    tenant_id = setup.collect.tenant_id
    final_clock = collection.tenant_now(cg, tenant_id)
    ledger = TenantLedger(cg, tenant_id)
    for _ in range(5):
        swept = ledger.run_sweeps()
        if not (swept.holds_expired or swept.lots_expired or swept.lots_activated):
            break
    latest_clock = collection.tenant_now(cg, tenant_id)
    state = _server_state(cg, tenant_id)
    return state, collection.read_state(cg, tenant_id), latest_clock, final_clock


def _report_collection(
    report: ChaosReport, collect: collection.Workload, collected: tuple[Any, ...]
) -> None:
    state, collection_state, latest_clock, final_clock = collected
    findings = collection.CollectionModel(collect.history.ops).check(
        collection_state, state, latest_clock=latest_clock, final_clock=final_clock
    )
    report.invariant_violations += findings.invariant_violations
    report.lost_effects += findings.lost
    report.duplicated_effects += findings.duplicated
    report.failures.extend(f"collection: {v}" for v in findings.violations)
    report.checked |= {f"collect_{k}": v for k, v in findings.checked.items()}
    report.collection = collection.counts_by_outcome(collect.history)
    report.collection["aimed_crashes"] = collect.crasher.aimed
    ops = collect.history.ops
    report.operations_unresolved += sum(op.outcome == UNRESOLVED for op in ops)
    counters = collect.history.counters
    report.server_errors += counters.server_errors
    report.unavailable_503 += counters.unavailable
    report.transport_errors += counters.transport_errors
    report.failures.extend(counters.failures)
    report.failures.extend(collect.crasher.errors)
    report.harness_errors += len(collect.crasher.errors)
