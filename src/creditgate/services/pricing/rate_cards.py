"""Rate cards: publishing versions, finding the one in effect, and quoting an action.

A version is immutable once published. Each process keeps parsed versions in memory: by id
for ever (a hold settles with the version it was authorized under), and a tenant's lists of
card versions and model prices together with the tenant's pricing version they were read at
(`tenants.pricing_version`, raised by every publish). A transaction uses the lists only at
the pricing version the database has: on PostgreSQL it trusts the process's last known one
and checks it with the commit (no round trip of its own; if a publish came between, the
check fails and the transaction runs again carefully, reading the new version first);
elsewhere it reads the version before pricing. So a version effective at T prices every
authorization that starts at or after T, in every process, once its publish is answered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update

from creditgate.domain.errors import CreditgateError, InvalidInput
from creditgate.domain.pricing import (
    DEFAULT_RATE_CARD,
    Quote,
    RateCard,
    TokenPrices,
    parse_model_prices,
    parse_rate_card,
)
from creditgate.domain.pricing_errors import NoPrice, UnpricedCost
from creditgate.services.context import Idempotent, PricingStamp, Tx
from creditgate.services.pricing import vendor_cost
from creditgate.services.results import PublishedRateCard, RateCardVersion
from creditgate.services.wallet import can_move_at_commit
from creditgate.storage.database import GuardMissed
from creditgate.storage.guards import require_rows
from creditgate.storage.ids import new_id
from creditgate.storage.prepared import Prepared
from creditgate.storage.tables import model_prices as model_prices_table
from creditgate.storage.tables import rate_cards, tenants

DEFAULT_CARD = DEFAULT_RATE_CARD


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
        # tenant -> the last pricing version this process read from the database
        self.stamps: dict[str, int] = {}
        # (tenant, card name) -> (pricing version, the card's versions as read at it)
        self.lists: dict[tuple[str, str], tuple[int, list[CardVersion]]] = {}
        # tenant -> (pricing version, its model price rows as read at it)
        self.model_prices: dict[str, tuple[int, list[Any]]] = {}
        self.lock = threading.Lock()

    def forget(self, tenant_id: str) -> None:
        """After a publish: the next transaction reads the tenant's pricing version anew."""
        with self.lock:
            self.stamps.pop(tenant_id, None)


_cache = _Cache()

_STAMP = Prepared(select(tenants.c.pricing_version).where(tenants.c.id == bindparam("tenant")))
# With the commit: fails the transaction (to be run again carefully) if the tenant's pricing
# version is no longer the one the transaction priced at.
_SAME_STAMP = Prepared(
    select(
        require_rows(
            select(tenants.c.id)
            .where(
                tenants.c.id == bindparam("tenant"),
                tenants.c.pricing_version == bindparam("stamp"),
            )
            .subquery()
        )
    )
)
_RAISE_STAMP = Prepared(
    update(tenants)
    .where(tenants.c.id == bindparam("tenant"))
    .values(pricing_version=tenants.c.pricing_version + 1)
)


def _stamp(tx: Tx, *, read: bool = False) -> int:
    """The tenant's pricing version this transaction prices at (see the module docstring);
    with `read`, as read from the database now rather than checked at the commit."""
    if tx.pricing_stamp is not None:
        return tx.pricing_stamp.version
    known = _cache.stamps.get(tx.tenant_id)
    if known is not None and not read and can_move_at_commit(tx):
        tx.uow.defer(_SAME_STAMP, {"tenant": tx.tenant_id, "stamp": known})
        tx.pricing_stamp = PricingStamp(known, read=False)
        return known
    stamp = _read_stamp(tx)
    tx.pricing_stamp = PricingStamp(stamp, read=True)
    return stamp


def _read_stamp(tx: Tx) -> int:
    stamp = int(_STAMP.rows(tx.conn, {"tenant": tx.tenant_id})[0].pricing_version)
    with _cache.lock:
        _cache.stamps[tx.tenant_id] = stamp
    return stamp


@contextmanager
def confirming(tx: Tx) -> Iterator[None]:
    """Around pricing: a failure (no card in effect, no price, an unknown quantity…) is an
    answer with no commit to check the stamp it trusted. If that stamp is out of date, the
    failure may come from cards since replaced: the transaction runs again carefully."""
    try:
        yield
    except CreditgateError:
        trusted = tx.pricing_stamp
        if trusted is not None and not trusted.read and _read_stamp(tx) != trusted.version:
            raise GuardMissed from None
        raise


def _raise_stamp(tx: Tx) -> None:
    """A publish: every process's cached lists for the tenant are out of date at its commit.

    The update locks the tenant's row until the commit, so publishes of one tenant take turns.
    A transaction that prices after it must have read its stamp first (`_stamp(read=True)`):
    a stamp checked at the commit would find this transaction's own raise.
    """
    _RAISE_STAMP.execute(tx.conn, {"tenant": tx.tenant_id})
    _cache.forget(tx.tenant_id)


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
    strict: bool = False,
    idempotency_key: str | None = None,
) -> PublishedRateCard:
    """Publish the next version of a card; it applies to authorizations from `effective_at`.

    The answer warns of quantities the card prices at 0 that its LLM vendor charges for
    (`unpriced_costs`); with `strict`, such a card is refused (UnpricedCost) and nothing is
    published.
    """
    name = _check_name(name)
    parsed = parse_rate_card(spec)
    tx.asset(parsed.asset)
    if effective_at is not None and (
        not isinstance(effective_at, datetime) or effective_at.tzinfo is None
    ):
        raise InvalidInput("effective_at must be a timezone-aware timestamp", field="effective_at")
    request = {"name": name, "spec": parsed.spec(), "at": effective_at}
    idem = Idempotent(
        tx, idempotency_key, "rate_card.publish", {**request, "strict": True} if strict else request
    )
    if (replayed := idem.replay(PublishedRateCard)) is not None:
        return replayed
    when = effective_at or tx.now
    if when < tx.now:
        raise InvalidInput("effective_at must not be in the past", field="effective_at")
    _stamp(tx, read=True)
    warnings = vendor_cost.unpriced_costs(parsed, model_prices=model_prices(tx), at=when)
    if strict and warnings:
        raise UnpricedCost(
            "the card prices at 0 what its vendor charges for: "
            + "; ".join(str(w) for w in warnings),
            field=warnings[0].field,
        )
    _raise_stamp(tx)
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
    published = PublishedRateCard(
        **version.result().model_dump(), warnings=[str(w) for w in warnings]
    )
    return idem.record(published)


def versions(tx: Tx, name: str = DEFAULT_CARD) -> list[CardVersion]:
    key = (tx.tenant_id, name)
    stamp = _stamp(tx)
    cached = _cache.lists.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    # Read after the stamp: it may include a version newer than the stamp, never miss one.
    rows = tx.conn.execute(
        select(rate_cards)
        .where(rate_cards.c.tenant_id == tx.tenant_id, rate_cards.c.name == name)
        .order_by(rate_cards.c.version)
    ).all()
    found = [_version(r) for r in rows]
    with _cache.lock:
        _cache.lists[key] = (stamp, found)
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
    with confirming(tx):
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
    stamp = _stamp(tx)
    cached = _cache.model_prices.get(tx.tenant_id)
    if cached is not None and cached[0] == stamp:
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
            _cache.model_prices[tx.tenant_id] = (stamp, rows)
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
    _raise_stamp(tx)


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
    with confirming(tx):
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
