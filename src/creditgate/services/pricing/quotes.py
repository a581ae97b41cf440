"""Pricing as the API answers it: a quote with the card version that made it, and a tenant's
model price override set idempotently."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from creditgate.domain.errors import InvalidInput
from creditgate.domain.pricing import TokenPrices, parse_model_prices
from creditgate.services.context import Idempotent, Tx
from creditgate.services.pricing import rate_cards
from creditgate.services.results import ModelPrice, PriceQuote

MAX_PROVIDER = 100  # model_prices.provider is VARCHAR(100)


def quote(
    tx: Tx,
    *,
    action: str,
    dimensions: dict[str, Any] | None = None,
    quantities: dict[str, Any] | None = None,
    rate_card: str = rate_cards.DEFAULT_CARD,
    at: datetime | None = None,
) -> PriceQuote:
    """What an action would cost now (or at `at`), and by which version of the card."""
    card = rate_cards.in_effect(tx, rate_card, at)
    priced = rate_cards.price(tx, card, action=action, dimensions=dimensions, quantities=quantities)
    return PriceQuote.model_validate(
        {"rate_card_id": card.id, "rate_card_version": card.version, **priced.snapshot()}
    )


def set_model_price(
    tx: Tx,
    *,
    model: str,
    input_mtok: Decimal | str | int,
    output_mtok: Decimal | str | int,
    cache_read_mtok: Decimal | str | int | None = None,
    provider: str | None = None,
    effective_at: datetime | None = None,
    idempotency_key: str | None = None,
) -> ModelPrice:
    """Override a model's price for charges from `effective_at` (default now) on."""
    if provider is not None and (
        not isinstance(provider, str)
        or not 1 <= len(provider) <= MAX_PROVIDER
        or not provider.isprintable()
    ):
        raise InvalidInput(
            f"provider must be 1-{MAX_PROVIDER} printable characters", field="provider"
        )
    if effective_at is not None and (
        not isinstance(effective_at, datetime) or effective_at.tzinfo is None
    ):
        raise InvalidInput("effective_at must be a timezone-aware timestamp", field="effective_at")
    prices = _token_prices(model, input_mtok, output_mtok, cache_read_mtok)
    request = {
        "model": model,
        "input_mtok": input_mtok,
        "output_mtok": output_mtok,
        "cache_read_mtok": cache_read_mtok,
        "provider": provider,
        "effective_at": effective_at,
    }
    idem = Idempotent(tx, idempotency_key, "model_price.set", request)
    if (replayed := idem.replay(ModelPrice)) is not None:
        return replayed
    rate_cards.set_model_price(
        tx,
        model=model,
        input_mtok=input_mtok,
        output_mtok=output_mtok,
        cache_read_mtok=cache_read_mtok,
        provider=provider,
        effective_at=effective_at,
    )
    return idem.record(
        ModelPrice(
            model=model.lower(),
            provider=provider,
            input_mtok=prices.input_mtok,
            output_mtok=prices.output_mtok,
            cache_read_mtok=prices.cache_read_mtok,
            effective_at=effective_at or tx.now,
        )
    )


def _token_prices(
    model: object, input_mtok: Any, output_mtok: Any, cache_read_mtok: Any
) -> TokenPrices:
    """The prices parsed as a rate card's model_prices are, with faults named by field."""
    if not isinstance(model, str):
        raise InvalidInput("model must be 1-200 printable characters", field="model")
    fields = {"input_mtok": input_mtok, "output_mtok": output_mtok}
    if cache_read_mtok is not None:
        fields["cache_read_mtok"] = cache_read_mtok
    prefix = f"model_prices.{model}"
    try:
        return parse_model_prices({model: fields})[model.lower()]
    except InvalidInput as exc:
        if exc.field is not None and exc.field.startswith(prefix + "."):
            field = exc.field.removeprefix(prefix + ".")
            raise InvalidInput(exc.message.replace(prefix + ".", ""), field=field) from None
        raise InvalidInput(exc.message.replace(prefix, "model"), field="model") from None
