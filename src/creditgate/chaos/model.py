"""The reference model: the acknowledged history replayed single-threaded, then compared
with what the database holds.

Client-driven effects come from the answers the clients received (grants, holds, charges
with the lots they drew, refunds with the lots they credited, paid top-ups). Three effects
happen inside the server without a client asking: holds expiring, lots expiring, and a new
lot paying a wallet's debt as it is granted. Those are taken from the ledger and checked
against the rules (nothing expires before its time or twice; debt is only repaid as far as
there was debt). Every balance the database holds must then equal the model's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from creditgate.chaos.history import OK, Op

FIRST_FAILURES = 30


@dataclass
class ModelLot:
    wallet: str
    amount: int
    expires_at: datetime | None
    consumed: int = 0
    refunded: int = 0


@dataclass
class ModelHold:
    wallet: str
    amount: int
    status: str = "pending"
    charge_id: str | None = None


@dataclass
class ModelCharge:
    wallet: str
    amount: int
    debt: int
    refunded: int = 0


@dataclass
class ServerState:
    """What the database holds for the tenant after the final sweep."""

    lots: dict[str, dict[str, Any]]
    holds: dict[str, dict[str, Any]]  # approved ones (declines reserve nothing)
    charges: dict[str, dict[str, Any]]
    balances: dict[str, dict[str, Any]]  # by customer external id
    expired_by_lot: dict[str, int]  # sum of expiry postings per lot
    repaid_by_lot: dict[str, int]  # debt paid from a lot as it was granted
    keys: set[str]  # idempotency keys recorded


@dataclass
class Findings:
    violations: list[str] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def fail(self, message: str, kind: str = "violation") -> None:
        if kind == "lost":
            self.lost += 1
        elif kind == "duplicated":
            self.duplicated += 1
        if len(self.violations) < FIRST_FAILURES or kind == "violation":
            self.violations.append(f"{kind}: {message}")

    @property
    def invariant_violations(self) -> int:
        return sum(1 for v in self.violations if v.startswith("violation"))


def _order(op: Op) -> tuple[int, int]:
    return (0 if op.kind in ("grant", "pay") else 1, op.seq)


def _ts(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


class ReferenceModel:
    def __init__(self, policies: dict[str, tuple[str, int]]) -> None:
        self.policies = policies  # customer -> (policy, overdraft limit)
        self.lots: dict[str, ModelLot] = {}
        self.holds: dict[str, ModelHold] = {}
        self.charges: dict[str, ModelCharge] = {}
        self.debt: dict[str, int] = defaultdict(int)
        self.findings = Findings()

    # Replay

    def replay(self, ops: list[Op]) -> None:
        # Lots first: an operation whose answer was lost in a crash completes, on its retry,
        # after operations that already drew from the lot it made.
        done = sorted((o for o in ops if o.outcome == OK and o.answer is not None), key=_order)
        for op in done:
            assert op.answer is not None
            getattr(self, f"_apply_{op.kind}")(op, op.answer)
            self.findings.checked["acknowledged"] += 1

    def _new_lot(self, lot_id: str, wallet: str, amount: int, expires_at: Any) -> None:
        if lot_id in self.lots:
            self.findings.fail(f"lot {lot_id} acknowledged twice", "duplicated")
            return
        self.lots[lot_id] = ModelLot(wallet, amount, _ts(expires_at))

    def _apply_grant(self, op: Op, answer: dict[str, Any]) -> None:
        if answer["amount"] != op.body["amount"]:
            self.findings.fail(
                f"grant {answer['id']} of {op.body['amount']} made {answer['amount']}"
            )
        self._new_lot(answer["id"], op.wallet, answer["amount"], answer.get("expires_at"))

    def _apply_authorize(self, op: Op, answer: dict[str, Any]) -> None:
        if not answer["approved"]:
            return
        if answer["amount"] != op.body["amount"]:
            self.findings.fail(
                f"hold {answer['id']} holds {answer['amount']} of {op.body['amount']}"
            )
        if answer["id"] in self.holds:
            self.findings.fail(f"hold {answer['id']} acknowledged twice", "duplicated")
        self.holds[answer["id"]] = ModelHold(op.wallet, answer["amount"])

    def _charge(self, op: Op, charge: dict[str, Any]) -> None:
        drawn = sum(d["amount"] for d in charge["draws"])
        if drawn + charge["debt"] != charge["amount"]:
            self.findings.fail(f"charge {charge['id']}: draws {drawn} + debt != {charge['amount']}")
        policy, _ = self.policies[op.wallet]
        if policy == "block" and charge["debt"]:
            self.findings.fail(f"charge {charge['id']} left debt {charge['debt']} under block")
        if charge["id"] in self.charges:
            self.findings.fail(f"charge {charge['id']} acknowledged twice", "duplicated")
            return
        self.charges[charge["id"]] = ModelCharge(op.wallet, charge["amount"], charge["debt"])
        self.debt[op.wallet] += charge["debt"]
        for draw in charge["draws"]:
            lot = self.lots.get(draw["lot_id"])
            if lot is None:
                self.findings.fail(f"charge {charge['id']} drew from unknown lot {draw['lot_id']}")
                continue
            lot.consumed += draw["amount"]

    def _apply_settle(self, op: Op, answer: dict[str, Any]) -> None:
        hold_id = answer["authorization"]["id"]
        hold = self.holds.get(hold_id)
        if hold is None:
            self.findings.fail(f"settled hold {hold_id} was never approved")
            return
        if hold.status != "pending":
            self.findings.fail(f"hold {hold_id} settled after it was {hold.status}")
            return
        hold.status = "settled"
        hold.charge_id = answer["charge"]["id"]
        self._charge(op, answer["charge"])

    def _apply_void(self, op: Op, answer: dict[str, Any]) -> None:
        hold = self.holds.get(answer["id"])
        if hold is None:
            self.findings.fail(f"voided hold {answer['id']} was never approved")
            return
        if hold.status != "pending":
            self.findings.fail(f"hold {answer['id']} voided after it was {hold.status}")
            return
        hold.status = "voided"

    def _apply_charge(self, op: Op, answer: dict[str, Any]) -> None:
        if answer["status"] == "posted":
            self._charge(op, answer)

    def _apply_refund(self, op: Op, answer: dict[str, Any]) -> None:
        charge = self.charges.get(answer["charge_id"])
        if charge is None:
            self.findings.fail(f"refund of unknown charge {answer['charge_id']}")
            return
        charge.refunded += answer["amount"]
        if charge.refunded > charge.amount:
            self.findings.fail(f"charge {answer['charge_id']} refunded past its amount")
        # (Order-free: a refund whose answer was lost in a crash completes later in the
        # history than the refunds that followed it, so only the final sum is compared.)
        for line in answer["lines"]:
            if line["lot_id"] is None and line["to_lot"] is None:
                self.debt[op.wallet] -= line["amount"]
            elif line["lot_id"] is None:  # debt already paid off: back as a new lot
                self._new_lot(line["to_lot"], op.wallet, line["amount"], None)
            elif line["to_lot"] == line["lot_id"]:
                self.lots[line["lot_id"]].refunded += line["amount"]
            else:
                self._new_lot(line["to_lot"], op.wallet, line["amount"], None)

    def _apply_member(self, op: Op, answer: dict[str, Any]) -> None:
        pass  # an organization's member: no credit moves (chaos/budgets.py checks its calls)

    def _apply_purchase(self, op: Op, answer: dict[str, Any]) -> None:
        pass  # pending until paid: no credit yet

    def _apply_pay(self, op: Op, answer: dict[str, Any]) -> None:
        if answer["status"] != "paid" or answer["lot_id"] is None:
            self.findings.fail(f"purchase {answer['id']} marked paid is {answer['status']}")
            return
        if answer["lot_id"] not in self.lots:  # a replayed mark-paid answers the same lot
            self._new_lot(answer["lot_id"], op.wallet, answer["amount"], None)

    # Compare

    def compare(
        self,
        server: ServerState,
        *,
        acknowledged_keys: set[str],
        latest_clock: datetime,
        final_clock: datetime,
    ) -> Findings:
        """`latest_clock`: no server's clock read later than this before the final sweep;
        `final_clock`: the final sweep ran at or after this time."""
        f = self.findings
        for key in acknowledged_keys - server.keys:
            f.fail(f"acknowledged idempotency key {key} is not recorded", "lost")
        self._compare_lots(server, latest_clock, final_clock)
        self._compare_holds(server, latest_clock)
        self._compare_charges(server)
        self._compare_wallets(server)
        return f

    def _compare_lots(self, server: ServerState, latest: datetime, final: datetime) -> None:
        f = self.findings
        for lot_id in server.lots.keys() - self.lots.keys():
            f.fail(f"lot {lot_id} exists without an acknowledged grant", "duplicated")
        repaid_by_wallet: dict[str, int] = defaultdict(int)
        for lot_id, lot in self.lots.items():
            row = server.lots.get(lot_id)
            if row is None:
                f.fail(f"acknowledged lot {lot_id} is missing", "lost")
                continue
            f.checked["lots"] += 1
            repaid = server.repaid_by_lot.get(lot_id, 0)
            repaid_by_wallet[lot.wallet] += repaid
            expired = server.expired_by_lot.get(lot_id, 0)
            if row["amount"] != lot.amount:
                f.fail(f"lot {lot_id} amount {row['amount']}, acknowledged {lot.amount}")
            if row["consumed"] != lot.consumed + repaid:
                f.fail(
                    f"lot {lot_id} consumed {row['consumed']}, acknowledged draws "
                    f"{lot.consumed} + debt repaid {repaid}"
                )
            if row["refunded"] != lot.refunded:
                f.fail(f"lot {lot_id} refunded {row['refunded']}, acknowledged {lot.refunded}")
            if row["expired"] != expired:
                f.fail(f"lot {lot_id} expired {row['expired']}, its postings say {expired}")
            expected = lot.amount - lot.consumed - repaid - expired - row["voided"] + lot.refunded
            if row["remaining"] != expected or not 0 <= expected <= lot.amount:
                f.fail(f"lot {lot_id} remaining {row['remaining']}, model {expected}")
            expires_at = _ts(row["expires_at"])
            if expired and (expires_at is None or expires_at > latest):
                f.fail(f"lot {lot_id} expired {expired} before its time {expires_at}")
            if expires_at is not None and expires_at <= final and row["remaining"] != 0:
                f.fail(f"lot {lot_id} past its expiry still holds {row['remaining']}")
        self.repaid_by_wallet = repaid_by_wallet

    def _compare_holds(self, server: ServerState, latest: datetime) -> None:
        f = self.findings
        for hold_id in server.holds.keys() - self.holds.keys():
            f.fail(f"hold {hold_id} exists without an acknowledged approval", "duplicated")
        for hold_id, hold in self.holds.items():
            row = server.holds.get(hold_id)
            if row is None:
                f.fail(f"acknowledged hold {hold_id} is missing", "lost")
                continue
            f.checked["holds"] += 1
            status = row["status"]
            if hold.status == "pending":
                # Approved and never settled or voided by an acknowledged request: it must
                # have expired, and not before its time.
                expires_at = _ts(row["expires_at"])
                if status != "expired":
                    f.fail(f"hold {hold_id} left unresolved by clients is {status}")
                elif expires_at is not None and expires_at > latest:
                    f.fail(f"hold {hold_id} expired before its time")
            elif status != hold.status:
                kind = "lost" if status in ("pending", "expired") else "violation"
                f.fail(f"hold {hold_id} acknowledged {hold.status} is {status}", kind)
            elif hold.status == "settled" and row["charge_id"] != hold.charge_id:
                f.fail(
                    f"hold {hold_id} settled by {row['charge_id']}, acknowledged {hold.charge_id}"
                )

    def _compare_charges(self, server: ServerState) -> None:
        f = self.findings
        for charge_id in server.charges.keys() - self.charges.keys():
            f.fail(f"charge {charge_id} exists without an acknowledged request", "duplicated")
        for charge_id, charge in self.charges.items():
            row = server.charges.get(charge_id)
            if row is None:
                f.fail(f"acknowledged charge {charge_id} is missing", "lost")
                continue
            f.checked["charges"] += 1
            got = (row["amount"], row["debt"], row["refunded"])
            want = (charge.amount, charge.debt, charge.refunded)
            if got != want:
                kind = "lost" if row["refunded"] < charge.refunded else "violation"
                f.fail(f"charge {charge_id} (amount, debt, refunded) {got}, model {want}", kind)

    def _compare_wallets(self, server: ServerState) -> None:
        f = self.findings
        for customer, (policy, limit) in self.policies.items():
            row = server.balances.get(customer)
            remaining = sum(
                server.lots[i]["remaining"]
                for i, lot in self.lots.items()
                if lot.wallet == customer and i in server.lots
            )
            debt = self.debt[customer] - self.repaid_by_wallet.get(customer, 0)
            posted, held, server_debt = (
                (row["posted"], row["held"], row["debt"]) if row else (0, 0, 0)
            )
            f.checked["wallets"] += 1
            if held != 0:
                f.fail(f"wallet {customer} holds {held} with every hold resolved")
            if server_debt != debt or debt < 0:
                f.fail(f"wallet {customer} debt {server_debt}, model {debt}")
            if posted != remaining - debt:
                f.fail(f"wallet {customer} posted {posted}, model {remaining - debt}")
            if policy == "block" and posted < 0:
                f.fail(f"wallet {customer} under block is at {posted}")
            if policy == "overdraft" and posted < -limit:
                f.fail(f"wallet {customer} is at {posted}, past its overdraft limit {limit}")
