"""An in-memory stand-in for the gate's HTTP API, for the SDK's unit tests over MockTransport.

It answers with the server's own result models serialized as the API does, keeps one wallet
balance per customer, replays idempotent writes like the server, and fails on request:
`fail_with` queues statuses or transport errors to answer before doing anything, and
`lose_answers` applies a write and then loses its answer (a timeout after the effect).

A request without an amount is priced like the server's rate card would: `CARD` gives each
action a flat price and a price per unit of each quantity it knows (in minor units), a
settle of a priced hold is priced by the same card (with no quantities at all, only an
action the card prices flat), and what the card cannot price is the server's `no_price` or
`invalid_input` problem. A settle above what the wallet can pay (its hold and what is
available) takes what it can and answers the rest as `shortfall`, as a `block` wallet does.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx

from creditgate.services import results

API_KEY = "cg_test_key"
BASE_URL = "http://creditgate.test"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

# The server's code for acting on a hold that is no longer pending, by its status.
RESOLVED = {
    "settled": "hold_already_settled",
    "voided": "hold_already_voided",
    "expired": "hold_expired",
    "declined": "hold_not_pending",
}


# action -> (flat, price per unit of each quantity), in minor units of credits. The token
# quantities are the server's disjoint ones: input_tokens excludes cache reads and writes.
CARD: dict[str, tuple[Decimal, dict[str, Decimal]]] = {
    "chat.completion": (
        Decimal(0),
        {
            "input_tokens": Decimal("0.1"),
            "output_tokens": Decimal("0.4"),
            "cached_tokens": Decimal("0.025"),
            "cache_write_tokens": Decimal("0.125"),
        },
    ),
    "image.generate": (Decimal(250), {"images": Decimal(100)}),
    "image.upscale": (Decimal(300), {}),
}
CARD_ID = "rc_fake"


def problem(status: int, code: str, detail: str, field: str | None = None) -> httpx.Response:
    body = {
        "type": f"urn:creditgate:problem:{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
        "field": field,
    }
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def answer(result: results.Result, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status,
        content=result.model_dump_json(),
        headers={"content-type": "application/json"},
    )


@dataclass
class Hold:
    id: str
    customer: str
    asset: str
    amount: int
    requested: int
    status: str
    decline_reason: str | None
    metadata: dict[str, Any]
    charge_id: str | None = None
    available: int = 0
    action: str | None = None
    dimensions: dict[str, str] | None = None
    quantities: dict[str, str] | None = None
    rate_card_id: str | None = None


@dataclass
class FakeCreditgate:
    balances: dict[str, int] = field(default_factory=lambda: {"cust_42": 10_000})
    held: dict[str, int] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    charges: list[results.Charge] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    fail_with: list[int | Exception] = field(default_factory=list)
    lose_answers: int = 0
    _replies: dict[str, tuple[str, httpx.Response]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    # What the tests look at

    def available(self, customer: str = "cust_42") -> int:
        return self.balances[customer] - self.held.get(customer, 0)

    def calls(self, method: str, path_pattern: str) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.method == method and re.fullmatch(path_pattern, r.url.path)
        ]

    @staticmethod
    def body(request: httpx.Request) -> Any:
        return json.loads(request.content) if request.content else None

    # The transport

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_with:
            failure = self.fail_with.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return problem(failure, "unavailable", "try again", None)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return problem(401, "unauthenticated", "a valid API key is required")
        key = request.headers.get("idempotency-key")
        fingerprint = f"{request.method} {request.url.path} {request.content.decode()}"
        if key is not None and key in self._replies:
            first, response = self._replies[key]
            if first != fingerprint:
                return problem(409, "idempotency_conflict", "key reused", "idempotency_key")
            return httpx.Response(
                response.status_code, content=response.content, headers=response.headers
            )
        response = self._route(request)
        if key is not None and response.status_code < 500:
            self._replies[key] = (fingerprint, response)
        if self.lose_answers and request.method == "POST":
            self.lose_answers -= 1
            raise httpx.ReadTimeout("answer lost", request=request)
        return response

    def _route(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if method == "POST" and path == "/v1/authorizations":
            return self._authorize(self.body(request))
        if m := re.fullmatch(r"/v1/authorizations/([^/]+)/settle", path):
            return self._settle(m[1], self.body(request))
        if m := re.fullmatch(r"/v1/authorizations/([^/]+)/void", path):
            return self._void(m[1])
        if m := re.fullmatch(r"/v1/authorizations/([^/]+)", path):
            hold = self.holds.get(m[1])
            if hold is None:
                return problem(404, "unknown_hold", "no such authorization", "authorization")
            return answer(self._authorization(hold))
        if m := re.fullmatch(r"/v1/customers/([^/]+)/wallet", path):
            if m[1] not in self.balances:
                return problem(404, "unknown_customer", f"customer {m[1]!r}", "customer")
            return answer(self._wallet(m[1]))
        return problem(404, "not_found", "no such endpoint")

    def _next(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):04d}"

    def _authorization(self, hold: Hold) -> results.Authorization:
        return results.Authorization(
            id=hold.id,
            customer=hold.customer,
            asset=hold.asset,
            status=hold.status,
            approved=hold.status != "declined",
            amount=hold.amount,
            requested=hold.requested,
            decline_reason=hold.decline_reason,
            available=hold.available,
            created_at=NOW,
            expires_at=NOW + timedelta(minutes=10),
            resolved_at=None if hold.status == "pending" else NOW,
            charge_id=hold.charge_id,
            metadata=hold.metadata,
            action=hold.action,
            dimensions=hold.dimensions,
            quantities=hold.quantities,
            rate_card_id=hold.rate_card_id,
        )

    @staticmethod
    def price(action: str | None, quantities: dict[str, Any]) -> int | httpx.Response:
        """The card's price, or the problem the server would answer."""
        if action not in CARD:
            return problem(422, "no_price", f"no price for action {action!r}", "action")
        flat, per_unit = CARD[action]
        total = flat
        for name, count in quantities.items():
            if name not in per_unit:
                field = f"quantities.{name}"
                return problem(422, "invalid_input", f"{action} has no quantity {name!r}", field)
            total += per_unit[name] * Decimal(count)
        return int(total.to_integral_value(rounding=ROUND_HALF_EVEN))

    def _authorize(self, body: dict[str, Any]) -> httpx.Response:
        customer = body["customer"]
        if customer not in self.balances:
            return problem(404, "unknown_customer", f"customer {customer!r}", "customer")
        priced = "amount" not in body
        if priced:
            amount = self.price(body.get("action"), body.get("quantities") or {})
            if isinstance(amount, httpx.Response):
                return amount
        else:
            amount = body["amount"]
        approved = amount <= self.available(customer)
        if approved:
            self.held[customer] = self.held.get(customer, 0) + amount
        hold = Hold(
            id=self._next("hld"),
            customer=customer,
            asset=body.get("asset") or "credits",
            amount=amount if approved else 0,
            requested=amount,
            status="pending" if approved else "declined",
            decline_reason=None if approved else "insufficient_funds",
            metadata=body.get("metadata") or {},
            available=self.available(customer),
            action=body.get("action"),
            dimensions=body.get("dimensions"),
            quantities={k: str(v) for k, v in body["quantities"].items()} if priced else None,
            rate_card_id=CARD_ID if priced else None,
        )
        self.holds[hold.id] = hold
        return answer(self._authorization(hold), 201)

    def _claim(self, hold_id: str, status: str) -> Hold | httpx.Response:
        hold = self.holds.get(hold_id)
        if hold is None:
            return problem(404, "unknown_hold", "no such authorization", "authorization")
        if hold.status != "pending":
            return problem(409, RESOLVED[hold.status], f"already {hold.status}", "authorization")
        hold.status = status
        self.held[hold.customer] -= hold.amount
        return hold

    def _settle(self, hold_id: str, body: dict[str, Any]) -> httpx.Response:
        found = self.holds.get(hold_id)
        quantities = body.get("quantities")
        amount: int | httpx.Response
        if quantities is None and "amount" not in body and found and found.rate_card_id:
            if CARD.get(found.action or "", (0, {"?": 0}))[1]:
                detail = f"{found.action} is priced by usage: settle it with its quantities"
                return problem(422, "invalid_input", detail, "quantities")
            quantities = {}
        if quantities is None:
            amount = body["amount"]
        elif found is not None and found.rate_card_id is None:
            return problem(422, "invalid_input", "not priced by a rate card", "quantities")
        else:
            amount = self.price(found.action if found else None, quantities)
            if isinstance(amount, httpx.Response):
                return amount
        hold = self._claim(hold_id, "settled")
        if isinstance(hold, httpx.Response):
            return hold
        debit = min(amount, self.available(hold.customer))
        self.balances[hold.customer] -= debit
        hold.charge_id = self._next("chg")
        hold.available = self.available(hold.customer)
        charge = results.Charge(
            id=hold.charge_id,
            status="posted",
            decline_reason=None,
            customer=hold.customer,
            asset=hold.asset,
            hold_id=hold.id,
            requested=amount,
            amount=debit,
            debt=0,
            shortfall=amount - debit,
            draws=[],
            action=body.get("action") or hold.action,
            metadata=body.get("metadata") or hold.metadata,
            created_at=NOW,
            available=hold.available,
            model=(hold.dimensions or {}).get("model"),
            dimensions=hold.dimensions,
            quantities=None if quantities is None else {k: str(v) for k, v in quantities.items()},
            price=None if quantities is None else {"amount": amount},
            rate_card_id=None if quantities is None else hold.rate_card_id,
            rate_card_version=None if quantities is None else 1,
            vendor_cost=None if body.get("vendor_cost") is None else Decimal(body["vendor_cost"]),
        )
        self.charges.append(charge)
        settlement = results.Settlement(authorization=self._authorization(hold), charge=charge)
        return answer(settlement)

    def _void(self, hold_id: str) -> httpx.Response:
        hold = self._claim(hold_id, "voided")
        if isinstance(hold, httpx.Response):
            return hold
        hold.available = self.available(hold.customer)
        return answer(self._authorization(hold))

    def _wallet(self, customer: str) -> results.Wallet:
        balance = results.AssetBalance(
            asset="credits",
            scale=2,
            posted=self.balances[customer],
            held=self.held.get(customer, 0),
            available=self.available(customer),
            debt=0,
            policy="block",
            overdraft_limit=0,
            low_balance_threshold=None,
        )
        return results.Wallet(customer=customer, wallet_id="wal_1", balances=[balance])
