"""Members' budgets under chaos: the organizations' setup, what the database and the API say
at the end, and the check of both against the acknowledged history.

Budgets are hard: in every period, held + spent never passes the amount, under concurrency
and crashes alike (DESIGN, "Organizations, members and budgets"). Every call of the history
has a definite answer by the end (an indefinite one was sent again under its key), so what
each period has spent is known exactly: the charges acknowledged in it less their refunds.
When each effect took place is not: only that it fell between its request's first send and
its last answer. The check bounds it both ways:

- at least: whatever was certainly counted at one moment (a hold from its approval's answer
  until its settle or void was sent, or until the end when the final sweep expired it; a
  charge from its answer on, less the refunds that may have begun) must fit the amount; a
  budget passed at any moment shows here;
- at most: a call declined `budget_exceeded` must have met a period that may have had too
  little left (everything that may have been counted while it ran, less the refunds that
  were certainly done; a hold past its TTL counts until a sweep expires it, whatever a
  settle refused as expired said, and when that was is not known: until the end); a decline
  for budget where there was room shows here, as does one for a call under no hard budget,
  or a call past a budget's whole amount not declined so.

Then the readbacks: each member's (and customer's) usage from its API route, once all calls
were answered (spent exactly the model's, held between the holds certainly and possibly
still open, held + spent within the amount); and after the final sweep the usage rows (held
0, spent the model's), the holds' and charges' recorded member and budget periods, and the
ledger: the usage its transactions record for each charge of a member (that member named on
each), summed per period, is the period's spent.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate
from creditgate.chaos.history import OK, REJECTED, UNRESOLVED, History, Op, ended_as
from creditgate.chaos.model import Findings
from creditgate.chaos.workload import ORGANIZATIONS, Client, OrgSpec
from creditgate.domain.ledger import Account, TransactionKind
from creditgate.domain.periods import TOTAL_START, Period, span
from creditgate.storage import tables as t

ASSET = "credits"
BUDGET_EXCEEDED = "budget_exceeded"
NEVER = float("inf")
Key = tuple[str, datetime]  # a budget's id, the start of one of its periods


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


@dataclass(frozen=True)
class BudgetDef:
    """A hard budget as the API answered it when it was set."""

    id: str
    customer: str
    member: str | None  # None: the customer's own
    amount: int
    period: str
    anchor: datetime

    def start(self, at: datetime) -> datetime:
        return span(Period(self.period), self.anchor, at).start

    def owner(self) -> str:
        return f"{self.customer}/{self.member or '*'}"


# Setup


def open_organizations(
    opener: Client, api_key: str, anchor: datetime, orgs: tuple[OrgSpec, ...] = ORGANIZATIONS
) -> list[BudgetDef]:
    """The organizations' opening credit and members over the bank's own path (in its
    history), then their hard budgets (day budgets anchored at `anchor`), before the faults."""
    for org in orgs:
        body: dict[str, Any] = {"asset": ASSET, "amount": org.opening, "kind": "purchased"}
        body["cost_basis"] = "0.01"
        opener.send("grant", org.customer, f"/v1/customers/{org.customer}/grants", body)
        for spec in org.members:
            path = f"/v1/customers/{org.customer}/members"
            new = {"external_id": spec.member, "name": f"chaos member {spec.member}"}
            op = opener.send("member", org.customer, path, new)
            if op.status != 201:
                raise RuntimeError(f"member {spec.member} of {org.customer}: {op.answer}")
    defs = []
    with httpx.Client(
        verify=tls_context(), headers={"Authorization": f"Bearer {api_key}"}, timeout=10.0
    ) as http:
        for org in orgs:
            owned: list[tuple[str | None, str, int]] = [
                (m.member, m.period, m.amount) for m in org.members if m.period
            ]
            if org.own is not None:
                owned.append((None, *org.own))
            for member, period, amount in owned:
                path = f"/v1/customers/{org.customer}"
                path += f"/members/{member}" if member else ""
                body = {"amount": amount, "period": period, "mode": "hard"}
                if period != "total":
                    body["anchor"] = anchor.isoformat()
                budget = _put(http, opener.shared.bases, f"{path}/budgets/{ASSET}", body)
                defs.append(
                    BudgetDef(
                        budget["id"],
                        org.customer,
                        budget["member"],
                        budget["amount"],
                        budget["period"],
                        _ts(budget["anchor"]),
                    )
                )
    return defs


def _put(
    http: httpx.Client, bases: Callable[[], list[str]], path: str, body: dict[str, Any]
) -> Any:
    key = f"chaos-budget-{random.getrandbits(64):016x}"
    for _ in range(100):
        try:
            response = http.put(
                random.choice(bases()) + path, json=body, headers={"Idempotency-Key": key}
            )
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code < 500:
            if response.status_code != 200:
                raise RuntimeError(f"PUT {path}: {response.status_code} {response.text[:300]}")
            return response.json()
        time.sleep(0.1)
    raise RuntimeError(f"PUT {path}: no answer")


# What the API and the database say


@dataclass(frozen=True)
class UsageRead:
    """One period of one budget, as its owner's usage route answered."""

    spent: int
    held: int
    remaining: int
    amount: int


def read_usage(bases: list[str], api_key: str, defs: list[BudgetDef]) -> dict[Key, UsageRead]:
    """Every budget's periods from `GET …/members/{m}/usage` (`GET …/usage` for a customer's
    own), as many as the route gives."""
    found: dict[Key, UsageRead] = {}
    owners = {(d.customer, d.member) for d in defs}
    ids = {d.id for d in defs}
    with httpx.Client(
        verify=tls_context(), headers={"Authorization": f"Bearer {api_key}"}, timeout=30.0
    ) as http:
        for customer, member in sorted(owners, key=lambda o: (o[0], o[1] or "")):
            path = f"/v1/customers/{customer}"
            path += f"/members/{member}/usage" if member else "/usage"
            answer = _get(http, bases, path + "?periods=24")
            for row in answer["data"]:
                if row["budget"] not in ids:
                    continue
                start = TOTAL_START if row["period_start"] is None else _ts(row["period_start"])
                found[(row["budget"], start)] = UsageRead(
                    row["spent"], row["held"], row["remaining"], row["amount"]
                )
    return found


def _get(http: httpx.Client, bases: list[str], path: str) -> Any:
    for attempt in range(100):
        try:
            response = http.get(bases[attempt % len(bases)] + path)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            return response.json()
        if response is not None and response.status_code < 500:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        time.sleep(0.1)
    raise RuntimeError(f"GET {path}: no answer")


@dataclass
class BudgetRows:
    """What the database holds for the budgets after the final sweep."""

    usage: dict[Key, dict[str, Any]]  # budget_usage rows: held, spent, cap
    holds: dict[str, dict[str, Any]]  # holds of the organizations: member, budgets, status
    charges: dict[str, dict[str, Any]]  # their charges: member, budgets, amount, refunded
    # Per charge: the usage its ledger transactions (the charge's and its refunds') record,
    # and the members they name.
    ledger_usage: dict[str, int] = field(default_factory=dict)
    ledger_members: dict[str, set[str | None]] = field(default_factory=dict)


def read_rows(cg: Creditgate, tenant_id: str, customers: Iterable[str]) -> BudgetRows:
    names = list(customers)

    def read(conn: Any) -> BudgetRows:
        wallets = {
            r.wallet_id
            for r in conn.execute(
                select(t.customers.c.wallet_id).where(
                    t.customers.c.tenant_id == tenant_id, t.customers.c.external_id.in_(names)
                )
            )
        }
        u = t.budget_usage
        usage = {
            (r.budget_id, _ts(r.period_start)): {"held": r.held, "spent": r.spent, "cap": r.cap}
            for r in conn.execute(
                select(u).where(u.c.tenant_id == tenant_id, u.c.wallet_id.in_(wallets))
            )
        }
        h, c = t.holds, t.charges
        holds = {
            r.id: dict(r._mapping)
            for r in conn.execute(
                select(h.c.id, h.c.member, h.c.budgets, h.c.status, h.c.resolved_at).where(
                    h.c.tenant_id == tenant_id, h.c.wallet_id.in_(wallets)
                )
            )
        }
        charges = {
            r.id: dict(r._mapping)
            for r in conn.execute(
                select(c.c.id, c.c.member, c.c.budgets, c.c.amount, c.c.refunded).where(
                    c.c.tenant_id == tenant_id, c.c.wallet_id.in_(wallets)
                )
            )
        }
        e, x = t.ledger_entries, t.ledger_transactions
        moved = (
            select(x.c.reference_id, x.c.member, func.sum(e.c.amount).label("amount"))
            .join(x, (x.c.id == e.c.transaction_id) & (x.c.tenant_id == e.c.tenant_id))
            .where(
                e.c.tenant_id == tenant_id,
                x.c.wallet_id.in_(wallets),
                e.c.account == Account.USAGE.value,
                x.c.kind.in_([TransactionKind.CHARGE.value, TransactionKind.REFUND.value]),
            )
            .group_by(x.c.reference_id, x.c.member)
        )
        ledger_usage: dict[str, int] = defaultdict(int)
        ledger_members: dict[str, set[str | None]] = defaultdict(set)
        for row in conn.execute(moved):
            ledger_usage[row.reference_id] += int(row.amount)
            ledger_members[row.reference_id].add(row.member)
        return BudgetRows(usage, holds, charges, dict(ledger_usage), dict(ledger_members))

    return cg.db.run(read, read_only=True)


# The model


@dataclass
class Piece:
    """An amount counted in one period: certainly from `sure_from` until `sure_to`, possibly
    from `maybe_from` until `maybe_to` (monotonic times; a refund's is negative)."""

    amount: int
    sure_from: float
    sure_to: float
    maybe_from: float
    maybe_to: float
    what: str


@dataclass
class _Hold:
    customer: str
    member: str | None
    amount: int
    keys: list[Key]
    approved: Op
    expires_at: datetime
    release: Op | None = None  # the acknowledged settle or void


@dataclass
class _Charge:
    customer: str
    member: str | None
    amount: int
    keys: list[Key]
    made: Op  # the settle or the one-step charge
    refunds: list[tuple[int, Op]] = field(default_factory=list)

    @property
    def refunded(self) -> int:
        return sum(amount for amount, _ in self.refunds)


_NAMED = re.compile(r"\(budget (\S+)\)")


def _may_count(p: Piece, op: Op) -> bool:
    """Whether the piece may have counted at some moment while `op` ran: an addition that
    may have begun and not certainly ended by then, or a refund certainly done before."""
    if p.amount > 0:
        return p.maybe_from <= op.finished_at and p.maybe_to >= op.started_at
    return p.sure_from <= op.started_at


class BudgetModel:
    """The acknowledged calls on the organizations' wallets, per budget period."""

    def __init__(
        self, defs: list[BudgetDef], ops: list[Op], customers: Iterable[str] | None = None
    ) -> None:
        """`customers`: the organizations (by default, those the budgets are of)."""
        self.defs = {d.id: d for d in defs}
        self.customers = set(customers) if customers is not None else {d.customer for d in defs}
        self.findings = Findings()
        self.holds: dict[str, _Hold] = {}
        self.charges: dict[str, _Charge] = {}
        self.declines: list[tuple[Op, list[Key]]] = []
        self._replay(ops)

    def applying(self, customer: str, member: str | None) -> list[BudgetDef]:
        """The hard budgets a call counts against: its member's own and its customer's."""
        return [
            d
            for d in self.defs.values()
            if d.customer == customer and (d.member is None or d.member == member)
        ]

    def _keys(self, customer: str, member: str | None, at: Any) -> list[Key]:
        when = _ts(at)
        return [(d.id, d.start(when)) for d in self.applying(customer, member)]

    # Replay

    def _replay(self, ops: list[Op]) -> None:
        f = self.findings
        mine = [op for op in ops if op.wallet in self.customers]
        answered = [op for op in mine if op.outcome != UNRESOLVED and op.answer is not None]
        for op in answered:
            if op.kind == "authorize" and op.outcome == OK:
                self._authorized(op, op.answer or {})
            elif op.kind == "charge" and op.outcome == OK:
                self._charged(op, op.answer or {})
        holds_by_path = {f"/v1/authorizations/{h}": h for h in self.holds}
        for op in answered:
            hold_id = holds_by_path.get(op.path.rsplit("/", 1)[0])
            if op.kind in ("settle", "void") and hold_id is not None:
                self._released(op, self.holds[hold_id])
        for op in answered:
            if op.kind == "refund" and op.outcome == OK:
                answer = op.answer or {}
                charge = self.charges.get(answer.get("charge_id", ""))
                if charge is not None:
                    charge.refunds.append((answer["amount"], op))
                    if charge.refunded > charge.amount:
                        f.fail(f"charge {answer['charge_id']} refunded past its amount")

    def _check_member(self, op: Op, answer: dict[str, Any]) -> None:
        if answer.get("member") != op.body.get("member"):
            self.findings.fail(
                f"{op.kind} {answer.get('id')} for member {op.body.get('member')} answered "
                f"member {answer.get('member')}"
            )

    def _declined(self, op: Op, answer: dict[str, Any], reason: str | None) -> None:
        """A decline's reason: `budget_exceeded` only under a hard budget; a call past one's
        whole amount declined for budget, whatever the wallet holds."""
        member = op.body.get("member")
        budgets = self.applying(op.wallet, member)
        if reason == BUDGET_EXCEEDED:
            if not budgets:
                self.findings.fail(
                    f"{op.kind} of {op.body['amount']} for {op.wallet}/{member or '*'}, under no "
                    "budget, declined budget_exceeded"
                )
                return
            self.declines.append((op, self._keys(op.wallet, member, answer["created_at"])))
        elif (
            op.kind == "authorize"
            and budgets
            and op.body["amount"] > min(d.amount for d in budgets)
        ):
            # (A one-step charge asks the wallet first: one it cannot pay is declined so.)
            self.findings.fail(
                f"{op.kind} of {op.body['amount']} for {op.wallet}/{member or '*'}, past its "
                f"budget's whole amount, declined {reason}"
            )

    def _past_whole(self, op: Op, what: str) -> None:
        budgets = self.applying(op.wallet, op.body.get("member"))
        if budgets and op.body["amount"] > min(d.amount for d in budgets):
            self.findings.fail(
                f"{what} of {op.body['amount']} for {op.wallet}/{op.body.get('member') or '*'} "
                "went through past its budget's whole amount"
            )

    def _authorized(self, op: Op, answer: dict[str, Any]) -> None:
        self._check_member(op, answer)
        if not answer["approved"]:
            self._declined(op, answer, answer.get("decline_reason"))
            return
        self._past_whole(op, f"hold {answer['id']}")
        member = op.body.get("member")
        keys = self._keys(op.wallet, member, answer["created_at"])
        self.holds[answer["id"]] = _Hold(
            op.wallet, member, answer["amount"], keys, op, _ts(answer["expires_at"])
        )

    def _charged(self, op: Op, answer: dict[str, Any]) -> None:
        self._check_member(op, answer)
        if answer["status"] != "posted":
            self._declined(op, answer, answer.get("decline_reason"))
            return
        self._past_whole(op, f"charge {answer['id']}")
        member = op.body.get("member")
        keys = self._keys(op.wallet, member, answer["created_at"])
        self.charges[answer["id"]] = _Charge(op.wallet, member, answer["amount"], keys, op)

    def _released(self, op: Op, hold: _Hold) -> None:
        if op.outcome == REJECTED:
            # Refused (as past its TTL): the hold's reservation, of the wallet and of its
            # budgets, stands until a sweep expires it, at a time no answer tells.
            return
        hold.release = op
        if op.kind == "settle":
            charge = (op.answer or {})["charge"]
            self.charges[charge["id"]] = _Charge(
                hold.customer, hold.member, charge["amount"], hold.keys, op
            )
            if charge.get("member") != hold.member:
                self.findings.fail(
                    f"settle of {hold.customer}/{hold.member or '*'}'s hold answered charge "
                    f"{charge['id']} of member {charge.get('member')}"
                )

    # The periods

    def pieces(self, sure_open_until: dict[str, float] | None = None) -> dict[Key, list[Piece]]:
        """Every period's pieces. `sure_open_until`: per hold left open by the clients, until
        when it was certainly still open (by default: not at all past its approval)."""
        out: dict[Key, list[Piece]] = defaultdict(list)
        for hold_id, hold in self.holds.items():
            a, r = hold.approved, hold.release
            if r is not None:
                sure_to, maybe_to = r.started_at, r.finished_at
            else:
                sure_to = (sure_open_until or {}).get(hold_id, a.finished_at)
                maybe_to = NEVER
            for key in hold.keys:
                out[key].append(
                    Piece(hold.amount, a.finished_at, sure_to, a.started_at, maybe_to, hold_id)
                )
        for charge_id, charge in self.charges.items():
            c = charge.made
            for key in charge.keys:
                out[key].append(
                    Piece(charge.amount, c.finished_at, NEVER, c.started_at, NEVER, charge_id)
                )
                for amount, r in charge.refunds:
                    what = f"refund of {charge_id}"
                    out[key].append(Piece(-amount, r.finished_at, NEVER, r.started_at, NEVER, what))
        return out

    def spent(self) -> dict[Key, int]:
        """What each period has spent once every call is answered: charges less refunds."""
        out: dict[Key, int] = defaultdict(int)
        for charge in self.charges.values():
            for key in charge.keys:
                out[key] += charge.amount - charge.refunded
        return out

    def open_holds(self, expired_by: datetime) -> tuple[dict[Key, int], dict[Key, int]]:
        """Per period, what the holds the clients left open hold: those certainly still
        open (they expire after `expired_by`, no server's clock yet), and all of them."""
        sure: dict[Key, int] = defaultdict(int)
        maybe: dict[Key, int] = defaultdict(int)
        for hold in self.holds.values():
            if hold.release is not None:
                continue
            for key in hold.keys:
                maybe[key] += hold.amount
                if hold.expires_at > expired_by:
                    sure[key] += hold.amount
        return sure, maybe

    # The checks

    def check(
        self,
        usage: dict[Key, UsageRead] | None,
        usage_clock: datetime | None,
        rows: BudgetRows | None,
        *,
        final_clock: datetime | None = None,
    ) -> Findings:
        """`usage`: the usage routes' answer once every call was answered, read with no
        server's clock past `usage_clock`; `rows`: the database after the final sweep, which
        ran at `final_clock` or later."""
        f = self.findings
        sure_open: dict[str, float] = {}
        if rows is not None and final_clock is not None:
            # A hold the clients left open that the final sweep expired (at `final_clock`,
            # past every server's clock) was open while every call ran.
            for hold_id, hold in self.holds.items():
                row = rows.holds.get(hold_id)
                if hold.release is None and row is not None:
                    resolved = row["resolved_at"]
                    if row["status"] == "expired" and resolved and _ts(resolved) >= final_clock:
                        sure_open[hold_id] = NEVER
        pieces = self.pieces(sure_open)
        spent = self.spent()
        for key in sorted(set(pieces) | set(spent), key=lambda k: (k[0], k[1])):
            budget = self.defs.get(key[0])
            if budget is None:
                f.fail(f"a call counted in unknown budget {key[0]}")
                continue
            f.checked["budget_periods"] += 1
            self._check_at_least(budget, key, pieces.get(key, []))
            if spent.get(key, 0) > budget.amount:
                f.fail(f"{self._name(budget, key)} spent {spent[key]}, past its {budget.amount}")
        self._check_declines(pieces)
        if usage is not None and usage_clock is not None:
            self._check_usage(usage, usage_clock, spent)
        if rows is not None:
            self._check_rows(rows, spent)
        return f

    def _name(self, budget: BudgetDef, key: Key) -> str:
        since = "in total" if budget.period == "total" else f"from {key[1].isoformat()}"
        return f"budget {budget.id} of {budget.owner()} ({budget.period}, {since})"

    def _check_at_least(self, budget: BudgetDef, key: Key, pieces: list[Piece]) -> None:
        """Whatever was certainly counted at one moment fits the amount."""
        events: list[tuple[float, int]] = []
        for p in pieces:
            start, end = (p.sure_from, p.sure_to) if p.amount > 0 else (p.maybe_from, p.maybe_to)
            if start < end:
                events.append((start, p.amount))
                if end != NEVER:
                    events.append((end, -p.amount))
        events.sort()
        level = peak = 0
        n = 0
        while n < len(events):
            moment = events[n][0]
            while n < len(events) and events[n][0] == moment:
                level += events[n][1]
                n += 1
            peak = max(peak, level)
        if peak * 10 >= budget.amount * 9:
            self.findings.checked["budget_periods_near_full"] += 1  # 90% or more at once
        if peak > budget.amount:
            self.findings.fail(
                f"{self._name(budget, key)}: {peak} held and spent at once, past its "
                f"{budget.amount}"
            )

    def _check_declines(self, pieces: dict[Key, list[Piece]]) -> None:
        """A decline for budget met a period that may have had too little left."""
        for op, keys in self.declines:
            answer = op.answer or {}
            named = _NAMED.search(" ".join(answer.get("warnings") or []))
            if named is None:
                self.findings.fail(f"{op.kind} declined for budget names no budget: {answer}")
                continue
            matching = [k for k in keys if k[0] == named.group(1)]
            if not matching:
                self.findings.fail(
                    f"{op.kind} for {op.wallet}/{op.body.get('member') or '*'} declined by budget "
                    f"{named.group(1)}, which it does not count against"
                )
                continue
            key = matching[0]
            budget = self.defs[key[0]]
            amount = op.body["amount"]
            self.findings.checked["budget_declines"] += 1
            if amount > budget.amount:
                continue
            most = sum(p.amount for p in pieces.get(key, []) if _may_count(p, op))
            if most + amount <= budget.amount:
                self.findings.fail(
                    f"{op.kind} of {amount} declined by {self._name(budget, key)}, which held "
                    f"and spent at most {most} while it ran (it said: {answer['warnings'][0]})"
                )

    def _check_usage(
        self, usage: dict[Key, UsageRead], clock: datetime, spent: dict[Key, int]
    ) -> None:
        f = self.findings
        sure, maybe = self.open_holds(clock)
        for key in set(spent) | set(maybe) | set(usage):
            budget = self.defs.get(key[0])
            if budget is None:
                continue
            read = usage.get(key)
            want = spent.get(key, 0)
            if read is None:
                if want or maybe.get(key, 0):
                    f.fail(f"{self._name(budget, key)} is missing from its usage", "lost")
                continue
            f.checked["budget_usage_read"] += 1
            name = self._name(budget, key)
            if read.spent != want:
                kind = "lost" if read.spent < want else "duplicated"
                f.fail(f"{name}: its usage says spent {read.spent}, acknowledged {want}", kind)
            if not sure.get(key, 0) <= read.held <= maybe.get(key, 0):
                f.fail(
                    f"{name}: its usage says held {read.held}, open holds {sure.get(key, 0)} to "
                    f"{maybe.get(key, 0)}"
                )
            if read.held + read.spent > budget.amount or read.amount != budget.amount:
                f.fail(f"{name}: held {read.held} + spent {read.spent} of {read.amount}")
            if read.remaining != max(budget.amount - read.held - read.spent, 0):
                f.fail(f"{name}: remaining {read.remaining} with held {read.held}, spent "
                       f"{read.spent}")  # fmt: skip

    def _check_rows(self, rows: BudgetRows, spent: dict[Key, int]) -> None:
        f = self.findings
        for key in set(spent) | set(rows.usage):
            budget = self.defs.get(key[0])
            if budget is None:
                continue
            row = rows.usage.get(key, {"held": 0, "spent": 0, "cap": budget.amount})
            f.checked["budget_rows"] += 1
            name = self._name(budget, key)
            want = spent.get(key, 0)
            if row["spent"] != want:
                kind = "lost" if row["spent"] < want else "duplicated"
                f.fail(f"{name}: its row has spent {row['spent']}, acknowledged {want}", kind)
            if row["held"] != 0:
                f.fail(f"{name}: its row holds {row['held']} with every hold resolved")
            if row["cap"] != budget.amount or row["held"] + row["spent"] > budget.amount:
                f.fail(f"{name}: its row has held {row['held']} + spent {row['spent']} of cap "
                       f"{row['cap']}")  # fmt: skip
        self._check_recorded(rows)
        self._check_ledger(rows, spent)

    def _check_recorded(self, rows: BudgetRows) -> None:
        """Each hold and charge of a member names it, and the periods the model counts it in."""
        f = self.findings
        pairs: list[tuple[str, dict[str, Any], dict[str, dict[str, Any]]]] = [
            ("hold", self.holds, rows.holds),
            ("charge", self.charges, rows.charges),
        ]
        for kind, mine, found in pairs:
            for item_id, item in mine.items():
                row = found.get(item_id)
                if row is None:
                    f.fail(f"acknowledged {kind} {item_id} is missing", "lost")
                    continue
                periods = sorted((b, _ts(s)) for b, s in row["budgets"] or [])
                if row["member"] != item.member or periods != sorted(item.keys):
                    f.fail(
                        f"{kind} {item_id} of {item.customer}/{item.member or '*'} records member "
                        f"{row['member']} in {periods}, model {sorted(item.keys)}"
                    )

    def _check_ledger(self, rows: BudgetRows, spent: dict[Key, int]) -> None:
        """Per period, the usage the ledger records for the charges the database says were
        spent in it (each transaction naming the charge's member) is what it spent."""
        f = self.findings
        from_ledger: dict[Key, int] = defaultdict(int)
        by_member: dict[tuple[str, str | None], int] = defaultdict(int)
        for charge_id, row in rows.charges.items():
            used = rows.ledger_usage.get(charge_id, 0)
            members = rows.ledger_members.get(charge_id, set())
            if used and members != {row["member"]}:
                f.fail(f"charge {charge_id} of member {row['member']}: its ledger names {members}")
            if used != row["amount"] - row["refunded"]:
                f.fail(f"charge {charge_id}: the ledger used {used}, the charge "
                       f"{row['amount']} less {row['refunded']} refunded")  # fmt: skip
            for budget_id, start in row["budgets"] or []:
                from_ledger[(budget_id, _ts(start))] += used
            charge = self.charges.get(charge_id)
            if charge is not None:
                by_member[(charge.customer, charge.member)] += used
        for key in set(from_ledger) | set(spent):
            budget = self.defs.get(key[0])
            if budget is None:
                continue
            f.checked["budget_ledger_periods"] += 1
            if from_ledger.get(key, 0) != spent.get(key, 0):
                f.fail(f"{self._name(budget, key)}: the ledger records {from_ledger.get(key, 0)}, "
                       f"acknowledged {spent.get(key, 0)}")  # fmt: skip
            if from_ledger.get(key, 0) > budget.amount:
                f.fail(f"{self._name(budget, key)}: the ledger records {from_ledger[key]}, past "
                       f"its {budget.amount}")  # fmt: skip
        for (customer, member), used in by_member.items():
            want = sum(
                c.amount - c.refunded
                for c in self.charges.values()
                if (c.customer, c.member) == (customer, member)
            )
            if used != want:
                f.fail(f"{customer}/{member or '*'}: the ledger records {used} used, "
                       f"acknowledged {want}")  # fmt: skip


def member_counts(history: History, customers: set[str]) -> dict[str, int]:
    """The organizations' calls: acknowledged per kind (with `<kind>_indefinite` those cut
    along the way), and the declines per reason. A call cut and then refused on its retry (a
    settle whose hold expired meanwhile) or never answered counts as cut too, as
    `<kind>_rejected_indefinite` or `<kind>_unresolved_indefinite`."""
    counts: Counter[str] = Counter()
    for op in history.ops:
        if op.wallet not in customers:
            continue
        if op.outcome != OK:
            if op.indefinite:
                counts[f"{ended_as(op)}_indefinite"] += 1
            continue
        counts[op.kind] += 1
        if op.body.get("member"):
            counts[f"{op.kind}_member"] += 1
        if op.indefinite:
            counts[f"{op.kind}_indefinite"] += 1
        answer = op.answer or {}
        if answer.get("approved") is False or answer.get("status") == "declined":
            counts[f"declined_{answer.get('decline_reason')}"] += 1
    return dict(sorted(counts.items()))
