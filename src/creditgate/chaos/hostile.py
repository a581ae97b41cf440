"""Hostile input over every operation of a running server's OpenAPI document.

`run_hostile` reads `GET /openapi.json`, builds a plausible request for each operation (the
seeded customer, asset and grant from `prepare_tenant`, ids the server handed out, the
schema's examples), and sends it mutated in one way at a time: huge, negative and
non-finite numbers, floats for integers, wrong types, unicode (RTL overrides, emoji, NUL,
lone surrogate escapes), strings of 10 kB to 2 MB, injection strings, path traversal and
odd ids in paths, missing and extra fields, malformed JSON, wrong content types, bad
Idempotency-Key headers and, now and then, a missing or bad Authorization header.

Each answer is judged against what the API promises: never a 5xx; a 422 names the input at
fault in `field`; a refused request (4xx) leaves the tenant's state as it was, compared by
`snapshot()` taken before and after. A request that turns out valid (2xx) is fine: the
baseline moves on. The tenant should see no other activity meanwhile (no other clients, no
hold of its own reaching its TTL); a change that goes on by itself after a refusal is taken
for such activity, not counted.

No request leaves the machine: URLs in bodies point at a closed loopback port, and the one
operation that could make the server call a payment provider is never sent.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import func, literal, select, union_all

from creditgate.adapters.outbound import tls_context
from creditgate.api import Creditgate
from creditgate.storage import tables

CUSTOMER = "hostile_c1"
ASSET = "credits"
# Webhook and redirect URLs: a closed port on this machine, so nothing is ever delivered.
LOOPBACK_URL = "http://127.0.0.1:9/hostile"
# Configuring a payment provider would let a later request call it over the network.
SKIPPED_OPERATIONS = frozenset({("PUT", "/v1/payment-providers/{provider}")})
MAX_FAILURES = 20

_PREPARE_CARD = {
    "asset": ASSET,
    "credit_value_usd": "0.01",
    "actions": {
        "chat.completion": {"prices": [{"per_unit": {"input_tokens": "0.002"}, "flat": "1"}]}
    },
}

_LONE_SURROGATE = "\x00hostile-lone-surrogate\x00"  # replaced by `\ud800` in the JSON text

HOSTILE_NUMBERS: list[Any] = [
    2**63,
    2**63 - 1,
    2**64,
    -(2**63) - 1,
    -1,
    0,
    10**30,
    -(10**40),
    1.5,
    -0.5,
    1e308,
    -1e308,
    5e-324,
    1.0,
    float("nan"),
    float("inf"),
    float("-inf"),
]
HOSTILE_TYPES: list[Any] = [[], [1, "a", None], {}, {"a": {"b": [1]}}, True, False, None]
HOSTILE_STRINGS: list[str] = [
    "",
    " ",
    "\t\n",
    "\u202ecod.exe\u202c",  # right-to-left override
    "مرحبا بالعالم",
    "😀🔥💳" * 5,
    "a\x00b",
    "\x00",
    "\ufeffbom",
    "zero\u200bwidth",
    "e\u0301\u0301\u0301",
    "\U0010ffff",
    _LONE_SURROGATE,
    "' OR '1'='1",
    "1; DROP TABLE customers;--",
    '" OR ""="',
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "{{7*7}}${7*7}",
    "$(rm -rf /)",
    "`id`; ls -la | cat",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "%00%2e%2e%2f",
    "\r\nX-Injected: yes",
    "NaN",
    "Infinity",
    "-0",
    "1e999",
    "0x7fffffffffffffff",
    "\uff19\uff19\uff19",  # full-width digits
    "null",
    "true",
    "\\",
    '"',
    "cust_42",
    "credits",
]
LONG_STRING_SIZES = (10_000, 100_000, 1_100_000, 2_000_000)
EXTRA_FIELD_NAMES = ["extra", "__proto__", "constructor", "$where", "id'--", "ünïcödé", "x" * 300]
BAD_IDEMPOTENCY_KEYS: list[bytes] = [
    b"",
    b"k" * 256,
    b"k" * 5_000,
    b"\x01\x02\x03",
    b"tab\there",
    b"\xff\xfe\xfd",
    b"\xc3\xa9t\xc3\xa9",
    b" ",
]
BAD_AUTHORIZATIONS: list[bytes | None] = [
    None,
    b"",
    b"Bearer",
    b"Bearer ",
    b"Basic dXNlcjpwYXNz",
    b"Bearer cg_aaaaaaaa_" + b"A" * 43,
    b"Bearer cg_" + b"a" * 5_000,
    b"Bearer \xff\xfe",
    b"Bearer ' OR '1'='1",
    b"bearer cg_zzzzzzzz_../../etc/passwd",
]
BAD_PATH_VALUES = [
    "..",
    "../../etc/passwd",
    "%2e%2e%2f%2e%2e%2f",
    "a" * 300,
    "a" * 5_000,
    "%00",
    "x%00y",
    "' OR 1=1 --",
    "<script>",
    "😀",
    "%F0%9F%98%80",
    "%ED%A0%80",  # an encoded lone surrogate
    "%FF%FE",
    "-1",
    "0",
    "9223372036854775808",
    "null",
    " ",
    "a b",
    "a/b",
    "cus_does_not_exist",
]
MALFORMED_BODIES: list[bytes] = [
    b"{",
    b'{"a":',
    b'{"a": 1,,}',
    b"{'single': 'quotes'}",
    b'{"a": 1}{"b": 2}',
    b"\xff\xfe\x00{",
    b"\xef\xbb\xbf{}",
    b'{"amount": 1e999999}',
    b'{"amount": -}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'"\\ud800"',
    b"nul",
    b"\x00\x00\x00\x00",
]
CONTENT_TYPES: list[bytes | None] = [
    None,
    b"text/plain",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=xyz",
    b"application/xml",
    b"application/json; charset=utf-16",
    b"application/jsonx",
    b"*/*",
    b"\xff",
]


@dataclass
class HostileReport:
    tried: int = 0  # hostile requests sent
    server_errors: int = 0  # 5xx answers
    unnamed: int = 0  # 4xx problem answers for bad fields that do not name the field
    changed_on_reject: int = 0  # a rejected (4xx) request that changed the tenant's state
    failures: list[str] = field(default_factory=list)  # first ~20 descriptions

    def fail(self, description: str) -> None:
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(description)


# The tenant's state


def _tenant_tables() -> list[Any]:
    return [t for t in tables.metadata.sorted_tables if "tenant_id" in t.c]


def fingerprint(cg: Creditgate, tenant_id: str) -> tuple[object, ...]:
    """Row counts of every tenant-scoped table and the sums of the tenant's balances (plus
    pending holds, revoked keys and credit left in lots, which updates alone change)."""
    counted = _tenant_tables()
    balances, holds, lots, keys = (
        tables.wallet_balances,
        tables.holds,
        tables.lots,
        tables.api_keys,
    )
    counts = union_all(
        *(
            select(literal(t.name).label("name"), func.count().label("n")).where(
                t.c.tenant_id == tenant_id
            )
            for t in counted
        )
    )
    sums = select(
        func.coalesce(func.sum(balances.c.posted), 0),
        func.coalesce(func.sum(balances.c.held), 0),
        func.coalesce(func.sum(balances.c.debt), 0),
    ).where(balances.c.tenant_id == tenant_id)
    pending = select(func.count()).where(
        holds.c.tenant_id == tenant_id, holds.c.status == "pending"
    )
    remaining = select(func.coalesce(func.sum(lots.c.remaining), 0)).where(
        lots.c.tenant_id == tenant_id
    )
    revoked = select(func.count()).where(
        keys.c.tenant_id == tenant_id, keys.c.revoked_at.is_not(None)
    )

    def read(conn: Any) -> tuple[object, ...]:
        rows = sorted((str(name), int(n)) for name, n in conn.execute(counts))
        posted, held, debt = conn.execute(sums).one()
        return (
            tuple(rows),
            ("balances", int(posted), int(held), int(debt)),
            ("pending_holds", int(conn.execute(pending).scalar_one())),
            ("lots_remaining", int(conn.execute(remaining).scalar_one())),
            ("revoked_keys", int(conn.execute(revoked).scalar_one())),
        )

    result: tuple[object, ...] = cg.db.run(read, read_only=True)
    return result


# Seeding


def prepare_tenant(base_url: str, api_key: str) -> None:
    """Through the API: the asset, customer, grant, rate card and pack that the generator's
    plausible requests name. Idempotent: run it again and nothing more is created."""
    headers = {"Authorization": f"Bearer {api_key}"}
    steps: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/assets", {"code": ASSET, "scale": 2, "name": "Credits"}, "asset"),
        ("/v1/customers", {"id": CUSTOMER, "name": "Hostile"}, "customer"),
        (
            f"/v1/customers/{CUSTOMER}/grants",
            {"asset": ASSET, "amount": 10**9, "kind": "purchased", "cost_basis": "0.01"},
            "grant",
        ),
        ("/v1/rate-cards", {"spec": _PREPARE_CARD, "name": "default"}, "card"),
        ("/v1/packs", {"code": "hostile", "asset": ASSET, "amount": 100, "price": "1"}, "pack"),
    ]
    with httpx.Client(verify=tls_context(), base_url=base_url, headers=headers, timeout=30) as http:
        for path, body, name in steps:
            key = f"hostile-prepare-{name}"
            response = http.post(path, json=body, headers={"Idempotency-Key": key})
            if response.status_code not in (200, 201, 409):
                raise RuntimeError(
                    f"preparing the hostile tenant: POST {path} answered "
                    f"{response.status_code}: {response.text[:300]}"
                )


# The OpenAPI document


@dataclass
class _Operation:
    method: str
    path: str
    parameters: list[dict[str, Any]]
    body: dict[str, Any] | None  # the JSON body's schema, refs resolved lazily

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class _Attempt:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[bytes, bytes]
    content: bytes | None
    target: str | None  # the input the mutation is about, when there is one
    kind: str

    def describe(self, status: int | str, answer: str) -> str:
        body = b"" if self.content is None else self.content
        shown = body[:160] + (b"..." if len(body) > 160 else b"")
        query = f"?{self.query}" if self.query else ""
        return (
            f"{self.method} {self.path[:160]}{query} [{self.kind}] body={shown!r} "
            f"-> {status} {answer[:240]}"
        )


class _Schema:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, schema: Any, depth: int = 0) -> dict[str, Any]:
        while isinstance(schema, dict) and "$ref" in schema and depth < 50:
            node: Any = self.document
            for part in str(schema["$ref"]).lstrip("#/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
            depth += 1
        return schema if isinstance(schema, dict) else {}

    def operations(self) -> list[_Operation]:
        found = []
        for path, item in self.document.get("paths", {}).items():
            for method, operation in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                if (method.upper(), path) in SKIPPED_OPERATIONS:
                    continue
                content = (operation.get("requestBody") or {}).get("content", {})
                body = content.get("application/json", {}).get("schema")
                found.append(
                    _Operation(method.upper(), path, list(operation.get("parameters", [])), body)
                )
        return found


# Plausible values


_CANDIDATE_TEXT = ["hostile_1", "1", "USD", ASSET, "x", "pro", "#4f46e5", "2030-01-01"]


def _text_for(schema: dict[str, Any]) -> str:
    pattern = schema.get("pattern")
    if schema.get("format") == "date-time":
        return "2030-01-01T00:00:00Z"
    if pattern:
        for candidate in _CANDIDATE_TEXT:
            try:
                if re.fullmatch(pattern, candidate):
                    return candidate
            except re.error:
                break
        if "https?" in pattern:
            return LOOPBACK_URL
    return "hostile"


class _Values:
    """Plausible values for a schema: what the seeded tenant has, else the examples."""

    def __init__(self, schema: _Schema, rng: random.Random) -> None:
        self.schema = schema
        self.rng = rng
        self.ids: dict[str, list[str]] = {}
        self.counter = 0

    def fresh(self, prefix: str = "h") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}_{self.rng.randrange(10**6)}"

    def by_name(self, name: str) -> Any:
        lowered = name.lower()
        if lowered == "customer":
            return CUSTOMER
        if lowered == "asset":
            return ASSET
        if lowered.endswith("url"):
            return LOOPBACK_URL
        if lowered in ("pack", "plan"):
            return "hostile"
        return None

    def value(self, raw: Any, name: str = "", depth: int = 0) -> Any:
        schema = self.schema.resolve(raw)
        hinted = self.by_name(name)
        if hinted is not None:
            return hinted
        if depth > 8:
            return None
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        examples = schema.get("examples")
        if isinstance(examples, list) and examples:
            return _no_urls(examples[0])
        if "example" in schema:
            return _no_urls(schema["example"])
        if schema.get("default") is not None:
            return _no_urls(schema["default"])
        for key in ("anyOf", "oneOf", "allOf"):
            options = [self.schema.resolve(o) for o in schema.get(key, [])]
            options = [o for o in options if o.get("type") != "null"]
            if options:
                return self.value(options[0], name, depth + 1)
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            out = {}
            for prop in schema.get("required", []):
                out[prop] = self.value(properties.get(prop, {}), prop, depth + 1)
            for prop, sub in properties.items():
                if prop not in out and self.rng.random() < 0.3:
                    out[prop] = self.value(sub, prop, depth + 1)
            if name == "" and "id" in out and isinstance(out["id"], str):
                out["id"] = self.fresh()  # a new customer rather than a conflict
            if "code" in out and isinstance(out["code"], str) and name == "":
                out["code"] = self.fresh("code")
            return out
        if kind == "array":
            count = max(1, int(schema.get("minItems", 0)))
            return [self.value(schema.get("items", {}), name, depth + 1) for _ in range(count)]
        if kind == "string":
            return _text_for(schema)
        if kind == "integer":
            low = int(schema.get("minimum", 0))
            high = int(schema.get("maximum", 10**6))
            return min(max(1, low), high)
        if kind == "number":
            return 1
        if kind == "boolean":
            return False
        return None

    def path_value(self, operation: _Operation, name: str) -> str:
        hinted = self.by_name(name)
        if hinted is not None:
            return str(hinted)
        known = self.ids.get(_collection(operation.path, name), [])
        if known and self.rng.random() < 0.8:
            return self.rng.choice(known)
        return "hostile_missing_1"

    def harvest(self, operation: _Operation, answer: Any) -> None:
        if operation.method != "POST" or not isinstance(answer, dict):
            return
        object_id = answer.get("id")
        static = [part for part in operation.path.split("/") if part and "{" not in part]
        if isinstance(object_id, str) and static and len(object_id) <= 64:
            known = self.ids.setdefault(f"/v1/{static[-1]}", [])
            if object_id not in known:
                known.append(object_id)
                del known[:-50]


def _collection(path: str, name: str) -> str:
    """The collection a path parameter's ids come from: `/v1/grants` for `{grant}`."""
    parts = path.split("/")
    marker = "{" + name + "}"
    index = parts.index(marker) if marker in parts else len(parts)
    return "/".join(parts[:index])


def _no_urls(value: Any) -> Any:
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return LOOPBACK_URL
    if isinstance(value, dict):
        return {k: _no_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_urls(v) for v in value]
    return value


# Mutations


Path = tuple[str | int, ...]


def _leaves(value: Any, prefix: Path = (), depth: int = 0) -> Iterator[Path]:
    if isinstance(value, dict) and depth < 4:
        for key, item in value.items():
            yield (*prefix, key)
            yield from _leaves(item, (*prefix, key), depth + 1)
    elif isinstance(value, list) and depth < 4:
        for index, item in enumerate(value[:3]):
            yield (*prefix, index)
            yield from _leaves(item, (*prefix, index), depth + 1)


def _dotted(path: Path) -> str:
    return ".".join(str(part) for part in path)


def _set(value: Any, path: Path, new: Any, *, delete: bool = False) -> Any:
    node = value
    for part in path[:-1]:
        node = node[part]
    last = path[-1]
    if delete:
        del node[last]
    else:
        node[last] = new
    return value


def _dumps(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False)  # NaN and Infinity as JS-style tokens
    text = text.replace(json.dumps(_LONE_SURROGATE)[1:-1], "\\ud800")
    return text.encode("utf-8", "surrogatepass")


def _hostile_value(rng: random.Random) -> tuple[Any, str]:
    roll = rng.random()
    if roll < 0.3:
        value: Any = rng.choice(HOSTILE_NUMBERS)
        return value, f"number {value!r}"
    if roll < 0.45:
        value = rng.choice(HOSTILE_TYPES)
        return value, f"wrong type {type(value).__name__}"
    if roll < 0.9:
        value = rng.choice(HOSTILE_STRINGS)
        return value, f"string {value[:30]!r}"
    size = rng.choice(LONG_STRING_SIZES)
    return rng.choice("Aé😀") * size, f"string of {size} characters"


class _Generator:
    def __init__(self, schema: _Schema, api_key: str, rng: random.Random) -> None:
        self.schema = schema
        self.api_key = api_key
        self.rng = rng
        self.values = _Values(schema, rng)

    def attempt(self, operation: _Operation) -> _Attempt:
        rng = self.rng
        base_body = (
            self.values.value(operation.body)
            if operation.body is not None and rng.random() < 0.97
            else None
        )
        path_values = {
            p["name"]: self.values.path_value(operation, p["name"])
            for p in operation.parameters
            if p.get("in") == "path"
        }
        query: dict[str, str] = {}
        for p in operation.parameters:
            if p.get("in") == "query" and (p.get("required") or rng.random() < 0.3):
                text = _query_text(self.values.value(p.get("schema", {}), p["name"]))
                if text is not None:
                    query[str(p["name"])] = text
        headers: dict[bytes, bytes] = {b"Authorization": f"Bearer {self.api_key}".encode()}
        if operation.method != "GET":
            headers[b"Idempotency-Key"] = f"hostile-{uuid.uuid4().hex}".encode()
        body_bytes = None if base_body is None else _dumps(base_body)
        if body_bytes is not None:
            headers[b"Content-Type"] = b"application/json"
        attempt = _Attempt(operation.method, "", query, headers, body_bytes, None, "plausible")

        kinds = ["idempotency", "auth", "content_type", "malformed", "whole_body", "method"]
        weights = [1.0, 0.5, 1.0, 1.5, 1.0, 0.3]
        if isinstance(base_body, dict | list) and base_body:
            kinds += ["body_value", "body_missing", "body_extra", "long_string"]
            weights += [8.0, 1.5, 1.5, 1.0]
        elif operation.body is not None:
            kinds += ["body_extra"]
            weights += [1.0]
        query_params = [p for p in operation.parameters if p.get("in") == "query"]
        if query_params:
            kinds.append("query_value")
            weights.append(3.0)
        if path_values:
            kinds.append("path_value")
            weights.append(3.0)
        kind = rng.choices(kinds, weights)[0]
        self._mutate(kind, attempt, base_body, query_params, path_values)
        attempt.path = _format(operation.path, path_values)
        return attempt

    def _mutate(
        self,
        kind: str,
        attempt: _Attempt,
        body: Any,
        query_params: list[dict[str, Any]],
        path_values: dict[str, str],
    ) -> None:
        rng = self.rng
        if kind == "body_value":
            path = rng.choice(list(_leaves(body)))
            value, what = _hostile_value(rng)
            attempt.content = _dumps(_set(body, path, value))
            attempt.target, attempt.kind = _dotted(path), f"{_dotted(path)} = {what}"
        elif kind == "long_string":
            path = rng.choice(list(_leaves(body)))
            size = rng.choice(LONG_STRING_SIZES)
            attempt.content = _dumps(_set(body, path, "x" * size))
            attempt.target, attempt.kind = _dotted(path), f"{_dotted(path)} = {size} characters"
        elif kind == "body_missing":
            path = (rng.choice(list(body)),) if isinstance(body, dict) else (0,)
            attempt.content = _dumps(_set(body, path, None, delete=True))
            attempt.target, attempt.kind = _dotted(path), f"{_dotted(path)} left out"
        elif kind == "body_extra":
            name = rng.choice(EXTRA_FIELD_NAMES)
            value, what = _hostile_value(rng) if rng.random() < 0.5 else (1, "1")
            extended = dict(body) if isinstance(body, dict) else {}
            extended[name] = value
            attempt.content = _dumps(extended)
            attempt.headers[b"Content-Type"] = b"application/json"
            attempt.target, attempt.kind = name, f"extra field {name[:20]!r} = {what}"
        elif kind == "whole_body":
            whole, what = _hostile_value(rng)
            attempt.content = _dumps(whole)
            attempt.headers[b"Content-Type"] = b"application/json"
            attempt.target, attempt.kind = "body", f"body = {what}"
        elif kind == "malformed":
            attempt.content = rng.choice(MALFORMED_BODIES)
            attempt.headers[b"Content-Type"] = b"application/json"
            attempt.kind = "malformed JSON"
        elif kind == "content_type":
            content_type = rng.choice(CONTENT_TYPES)
            if content_type is None:
                attempt.headers.pop(b"Content-Type", None)
            else:
                attempt.headers[b"Content-Type"] = content_type
            if attempt.content is None:
                attempt.content = b"hostile=1"
            attempt.kind = f"Content-Type {content_type!r}"
        elif kind == "idempotency":
            key = rng.choice(BAD_IDEMPOTENCY_KEYS)
            attempt.headers[b"Idempotency-Key"] = key
            attempt.target = "idempotency_key"
            attempt.kind = f"Idempotency-Key {key[:20]!r} ({len(key)} bytes)"
        elif kind == "auth":
            header = rng.choice(BAD_AUTHORIZATIONS)
            if header is None:
                attempt.headers.pop(b"Authorization")
            else:
                attempt.headers[b"Authorization"] = header
            attempt.kind = (
                "no Authorization" if header is None else f"Authorization {header[:30]!r}"
            )
        elif kind == "method":
            attempt.method = rng.choice(["PATCH", "TRACE", "PROPFIND", "DELETE", "PUT"])
            attempt.kind = f"method {attempt.method}"
        elif kind == "query_value":
            param = rng.choice(query_params)
            value, what = _hostile_value(rng)
            text = _query_text(value)
            attempt.query[param["name"]] = "" if text is None else text[:10_000]
            attempt.target, attempt.kind = param["name"], f"?{param['name']} = {what}"
        elif kind == "path_value":
            name = rng.choice(list(path_values))
            raw = rng.choice(BAD_PATH_VALUES)
            path_values[name] = raw if rng.random() < 0.5 else quote(raw, safe="")
            attempt.target, attempt.kind = name, f"{{{name}}} = {raw[:30]!r}"


def _query_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.replace(_LONE_SURROGATE, "\\ud800")
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def _format(template: str, values: dict[str, str]) -> str:
    path = template
    for name, value in values.items():
        encoded = value if "%" in value or "/" in value else quote(value, safe="")
        path = path.replace("{" + name + "}", encoded)
    return path


# Judging


def _normal(name: str) -> str:
    return name.lower().replace("-", "_")


def _named_fields(problem: dict[str, Any]) -> list[str]:
    named = [problem.get("field")]
    for error in problem.get("errors") or []:
        if isinstance(error, dict):
            named.append(error.get("field"))
    return [_normal(n) for n in named if isinstance(n, str) and n]


def _unnamed(response: httpx.Response) -> bool:
    """A 422 (or a 400 about an input) whose problem does not name the input at fault."""
    if response.status_code not in (400, 422):
        return False
    try:
        problem = response.json()
    except ValueError:
        # A 400 that is not a problem comes from the HTTP parser (a control character in a
        # header...): the message itself is malformed, no field is at fault.
        return response.status_code == 422
    if not isinstance(problem, dict):
        return True
    if response.status_code == 400 and not problem.get("errors"):
        return False  # malformed JSON, a bad Content-Length...: about the request as a whole
    return not _named_fields(problem)


def _send(http: httpx.Client, attempt: _Attempt) -> httpx.Response:
    return http.request(
        attempt.method,
        attempt.path,
        params=attempt.query or None,
        headers=attempt.headers,
        content=attempt.content,
    )


def run_hostile(
    base_url: str,
    api_key: str,
    snapshot: Callable[[], object],
    rng: random.Random,
    *,
    seconds: float,
    max_requests: int | None = None,
    at_least: int = 0,
) -> HostileReport:
    """Send hostile requests over every operation for `seconds`, counted once the server's
    OpenAPI document is read (a server builds it at the first ask: seconds of CPU on a
    loaded machine, which would otherwise eat the run), and past them until `at_least` were
    tried: on a loaded machine a short run's seconds may hold only a few dozen."""
    report = HostileReport()
    with httpx.Client(
        verify=tls_context(), base_url=base_url, timeout=60, follow_redirects=False
    ) as http:
        document = http.get("/openapi.json").raise_for_status().json()
        schema = _Schema(document)
        operations = schema.operations()
        generator = _Generator(schema, api_key, rng)
        baseline = snapshot()
        deadline = time.monotonic() + seconds
        attempts = 0
        while time.monotonic() < deadline or (report.tried < at_least and attempts < 10 * at_least):
            if max_requests is not None and report.tried >= max_requests:
                break
            attempts += 1
            operation = rng.choice(operations)
            attempt = generator.attempt(operation)
            report.tried += 1
            try:
                response = _send(http, attempt)
            except (httpx.LocalProtocolError, httpx.InvalidURL):
                report.tried -= 1  # a header this client will not send: nothing was tried
                continue
            except httpx.TransportError as exc:
                report.server_errors += 1
                report.fail(attempt.describe("no answer", repr(exc)))
                baseline = snapshot()
                continue
            status = response.status_code
            if status >= 500:
                report.server_errors += 1
                report.fail(attempt.describe(status, response.text))
                baseline = snapshot()
                continue
            if status < 400:
                with contextlib.suppress(ValueError):
                    generator.values.harvest(operation, response.json())
                _tidy(http, api_key, operation, response)
                baseline = snapshot()
                continue
            if _unnamed(response):
                report.unnamed += 1
                report.fail(attempt.describe(status, f"(no field named) {response.text}"))
            after = snapshot()
            if after != baseline:
                time.sleep(0.2)
                settled = snapshot()
                if settled == after:
                    report.changed_on_reject += 1
                    report.fail(attempt.describe(status, f"(state changed) {response.text}"))
                baseline = settled
    return report


def _tidy(
    http: httpx.Client, api_key: str, operation: _Operation, response: httpx.Response
) -> None:
    """Delete a webhook endpoint a hostile request happened to create: the server fans events
    out to its endpoints in the background, which would change the state between requests."""
    if operation.method != "POST" or operation.path != "/v1/webhook-endpoints":
        return
    try:
        endpoint = response.json().get("id")
    except (ValueError, AttributeError):
        return
    if isinstance(endpoint, str):
        http.delete(
            f"/v1/webhook-endpoints/{quote(endpoint, safe='')}",
            headers={"Authorization": f"Bearer {api_key}"},
        )
