"""Rate cards: publishing versions, finding the one in effect, and quoting an action.

A version is immutable once published. Each process keeps parsed versions in memory: by id
for ever (a hold settles with the version it was authorized under), and the list of a
card's versions for a couple of seconds, so a version published by another process is
seen within that time; one published here is seen at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from creditgate.domain.errors import InvalidInput
from creditgate.domain.pricing import (
    Quote,
    RateCard,
    TokenPrices,
    parse_model_prices,
    parse_rate_card,
)
from creditgate.domain.pricing_errors import NoPrice
from creditgate.ids import new_id
from creditgate.services import vendor_cost
from creditgate.services.context import Idempotent, Tx
from creditgate.services.results import RateCardVersion
from creditgate.storage.tables import model_prices as model_prices_table
from creditgate.storage.tables import rate_cards

DEFAULT_CARD = "default"
LIST_TTL_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class CardVersion:
    id: str
    name: str
    version: int
    effective_at: datetime
    spec: RateCard
    raw: dict[str, Any]

    def result(self) -> RateCardVersion:
        return RateCardVersion(
            id=self.id,
            name=self.name,
            version=self.version,
            effective_at=self.effective_at,
            spec=self.raw,
        )


class _Cache:
    def __init__(self) -> None:
        self.by_id: dict[str, CardVersion] = {}
        self.lists: dict[tuple[str, str], tuple[float, list[CardVersion]]] = {}
        self.model_prices: dict[tuple[str, str], tuple[float, list[Any]]] = {}
        self.lock = threading.Lock()

    def forget(self, tenant_id: str, name: str) -> None:
        with self.lock:
            self.lists.pop((tenant_id, name), None)


_cache = _Cache()


def _version(row: Any) -> CardVersion:
    found = _cache.by_id.get(row.id)
    if found is None:
        found = CardVersion(
            row.id, row.name, row.version, row.effective_at, parse_rate_card(row.spec), row.spec
        )
        _cache.by_id[row.id] = found
    return found


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 100 or not name.isprintable():
        raise InvalidInput("rate_card must be 1-100 printable characters", field="rate_card")
    return name


def publish(
    tx: Tx,
    *,
    spec: dict[str, Any],
    name: str = DEFAULT_CARD,
    effective_at: datetime | None = None,
    idempotency_key: str | None = None,
) -> RateCardVersion:
    """Publish the next version of a card; it applies to authorizations from `effective_at`."""
    name = _check_name(name)
    parsed = parse_rate_card(spec)
    tx.asset(parsed.asset)
    if effective_at is not None and (
        not isinstance(effective_at, datetime) or effective_at.tzinfo is None
    ):
        raise InvalidInput("effective_at must be a timezone-aware timestamp", field="effective_at")
    idem = Idempotent(
        tx,
        idempotency_key,
        "rate_card.publish",
        {"name": name, "spec": parsed.spec(), "at": effective_at},
    )
    if (replayed := idem.replay(RateCardVersion)) is not None:
        return replayed
    when = effective_at or tx.now
    if when < tx.now:
        raise InvalidInput("effective_at must not be in the past", field="effective_at")
    latest = tx.conn.execute(
        select(func.max(rate_cards.c.version)).where(
            rate_cards.c.tenant_id == tx.tenant_id, rate_cards.c.name == name
        )
    ).scalar()
    canonical = parsed.spec()  # JSON-safe: decimals as exact strings
    version = CardVersion(new_id("rc"), name, (latest or 0) + 1, when, parsed, canonical)
    tx.conn.execute(
        insert(rate_cards).values(
            tenant_id=tx.tenant_id,
            id=version.id,
            name=name,
            version=version.version,
            effective_at=when,
            spec=canonical,
            created_at=tx.now,
        )
    )
    _cache.forget(tx.tenant_id, name)
    return idem.record(version.result())


def versions(tx: Tx, name: str = DEFAULT_CARD) -> list[CardVersion]:
    key = (tx.tenant_id, name)
    cached = _cache.lists.get(key)
    if cached is not None and time.monotonic() - cached[0] < LIST_TTL_SECONDS:
        return cached[1]
    rows = tx.conn.execute(
        select(rate_cards)
        .where(rate_cards.c.tenant_id == tx.tenant_id, rate_cards.c.name == name)
        .order_by(rate_cards.c.version)
    ).all()
    found = [_version(r) for r in rows]
    with _cache.lock:
        _cache.lists[key] = (time.monotonic(), found)
    return found


def list_versions(tx: Tx, *, name: str | None = None) -> list[RateCardVersion]:
    query = select(rate_cards).where(rate_cards.c.tenant_id == tx.tenant_id)
    if name is not None:
        query = query.where(rate_cards.c.name == _check_name(name))
    rows = tx.conn.execute(query.order_by(rate_cards.c.name, rate_cards.c.version)).all()
    return [_version(r).result() for r in rows]


def in_effect(tx: Tx, name: str = DEFAULT_CARD, at: datetime | None = None) -> CardVersion:
    when = at or tx.now
    current = None
    for version in versions(tx, _check_name(name)):
        if version.effective_at <= when:
            current = version
    if current is None:
        raise NoPrice(f"no rate card {name!r} is in effect", field="rate_card")
    return current


def by_id(tx: Tx, card_id: str) -> CardVersion:
    found = _cache.by_id.get(card_id)
    if found is not None:
        return found
    row = tx.conn.execute(
        select(rate_cards).where(rate_cards.c.id == card_id, rate_cards.c.tenant_id == tx.tenant_id)
    ).one()
    return _version(row)


def model_prices(tx: Tx) -> dict[str, TokenPrices]:
    """The tenant's own model prices in effect now (model name in lower case)."""
    key = (tx.tenant_id, "")
    cached = _cache.model_prices.get(key)
    if cached is not None and time.monotonic() - cached[0] < LIST_TTL_SECONDS:
        rows = cached[1]
    else:
        rows = list(
            tx.conn.execute(
                select(model_prices_table)
                .where(model_prices_table.c.tenant_id == tx.tenant_id)
                .order_by(model_prices_table.c.effective_at, model_prices_table.c.id)
            )
        )
        with _cache.lock:
            _cache.model_prices[key] = (time.monotonic(), rows)
    found: dict[str, TokenPrices] = {}
    for row in rows:
        if row.effective_at <= tx.now:
            found[row.model.lower()] = TokenPrices(
                input_mtok=row.input_mtok,
                output_mtok=row.output_mtok,
                cache_read_mtok=row.cache_read_mtok,
            )
    return found


def set_model_price(
    tx: Tx,
    *,
    model: str,
    input_mtok: Any,
    output_mtok: Any,
    cache_read_mtok: Any = None,
    provider: str | None = None,
    effective_at: datetime | None = None,
) -> None:
    """Override a model's price (USD per million tokens) for charges from `effective_at` on."""
    if provider is not None and (
        not isinstance(provider, str) or not 1 <= len(provider) <= 100 or not provider.isprintable()
    ):
        raise InvalidInput("provider must be 1-100 printable characters", field="provider")
    if effective_at is not None and (
        not isinstance(effective_at, datetime) or effective_at.tzinfo is None
    ):
        raise InvalidInput("effective_at must be a timezone-aware timestamp", field="effective_at")
    parsed = parse_model_prices(
        {
            model: {
                "input_mtok": input_mtok,
                "output_mtok": output_mtok,
                **({"cache_read_mtok": cache_read_mtok} if cache_read_mtok is not None else {}),
            }
        }
    )[model.lower()]
    tx.conn.execute(
        insert(model_prices_table).values(
            tenant_id=tx.tenant_id,
            id=new_id("mp"),
            provider=provider,
            model=model.lower(),
            input_mtok=parsed.input_mtok,
            output_mtok=parsed.output_mtok,
            cache_read_mtok=parsed.cache_read_mtok,
            effective_at=effective_at or tx.now,
            created_at=tx.now,
        )
    )
    with _cache.lock:
        _cache.model_prices.pop((tx.tenant_id, ""), None)


def price(
    tx: Tx,
    card: CardVersion,
    *,
    action: str,
    dimensions: dict[str, Any] | None,
    quantities: dict[str, Any] | None,
    vendor_cost_usd: Any = None,
) -> Quote:
    """Price an action by one card version, with its vendor cost."""
    return vendor_cost.quote(
        card.spec,
        action,
        dimensions or {},
        quantities or {},
        asset=tx.asset(card.spec.asset),
        vendor_cost_usd=vendor_cost_usd,
        model_prices=model_prices(tx),
        at=tx.now,
    )


def quote(
    tx: Tx,
    *,
    action: str,
    dimensions: dict[str, Any] | None = None,
    quantities: dict[str, Any] | None = None,
    rate_card: str = DEFAULT_CARD,
    at: datetime | None = None,
) -> Quote:
    """What an action would cost now (or at `at`), by the card version in effect then."""
    card = in_effect(tx, rate_card, at)
    return price(tx, card, action=action, dimensions=dimensions, quantities=quantities)
