"""Routes for pricing: rate card versions, quotes, model price overrides and margin reports."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from creditgate.domain.errors import CreditgateError, InvalidInput, UnknownAsset
from creditgate.domain.pricing import DEFAULT_RATE_CARD
from creditgate.domain.pricing_errors import NoPrice, UnpricedCost, VendorCostUnknown
from creditgate.http import schemas
from creditgate.http.answers import AssetQuery, IdempotencyKey, answer
from creditgate.http.auth import Ledger
from creditgate.http.bodies import ExactJsonRoute
from creditgate.http.models import (
    NewModelPrice,
    NewRateCard,
    QuoteRequest,
    RateCardList,
    RateCardName,
    SignedDecimal,
    Timestamp,
)
from creditgate.http.reference import errors
from creditgate.services.pricing import margin

_NO_CARD = (422, NoPrice.code, "no rate card of this name is in effect")

router = APIRouter(prefix="/v1", route_class=ExactJsonRoute)

DEFAULT_PERIOD = timedelta(days=30)


@router.post(
    "/rate-cards",
    status_code=201,
    response_model=schemas.PublishedRateCard,
    tags=["pricing"],
    summary="Publish a rate card version",
    responses=errors(UnknownAsset, UnpricedCost),
)
def publish_rate_card(
    body: NewRateCard, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Publish the next version of a card. It prices authorizations from `effective_at` on
    (one effective now: every authorization after this answer, on every server); a hold
    settles by the version it was authorized with, and no charge is ever repriced.
    `warnings` names each quantity the card prices at 0 that its LLM vendor charges for
    (with `strict`, such a card is refused)."""
    try:
        version = t.publish_rate_card(
            body.spec,
            name=body.name,
            effective_at=body.effective_at,
            strict=body.strict,
            idempotency_key=idempotency_key,
        )
    except CreditgateError as exc:
        raise _in_body(exc) from None
    return answer(version, 201)


def _in_body(exc: CreditgateError) -> CreditgateError:
    """The same failure, its field named as in the request: paths in the card under `spec`."""
    if exc.field in (None, "effective_at", "idempotency_key"):
        return exc
    field = "name" if exc.field == "rate_card" else f"spec.{exc.field}"
    return type(exc)(exc.message, field=field)


@router.get(
    "/rate-cards",
    response_model=schemas.RateCardListAnswer,
    tags=["pricing"],
    summary="List rate card versions",
    responses=errors(),
)
def list_rate_cards(
    t: Ledger,
    name: Annotated[RateCardName | None, Query(description="Only this card's versions")] = None,
) -> Response:
    """Every version of the tenant's cards (or of the card `name`), oldest first, with the
    time each took effect: the history of what was charged when."""
    return answer(RateCardList(data=t.rate_cards(name=name)))


@router.post(
    "/rate-cards/quote",
    response_model=schemas.PriceQuote,
    tags=["pricing"],
    summary="Quote an action's price",
    responses=errors(_NO_CARD, VendorCostUnknown),
)
def quote(body: QuoteRequest, t: Ledger, idempotency_key: IdempotencyKey = None) -> Response:
    """What an action costs, line by line, with its vendor cost, by the card version in effect
    now (or at `at`). A quote changes nothing: use it to show a price before a call, or to
    check a card before publishing it."""
    priced = t.price_quote(
        body.action, body.dimensions, body.quantities, rate_card=body.rate_card, at=body.at
    )
    return answer(priced)


@router.post(
    "/model-prices",
    status_code=201,
    response_model=schemas.ModelPrice,
    tags=["pricing"],
    summary="Set an LLM model's price",
    responses=errors(),
)
def set_model_price(
    body: NewModelPrice, t: Ledger, idempotency_key: IdempotencyKey = None
) -> Response:
    """Price an LLM model yourself (USD per million tokens), in place of the maintained price
    table, for the vendor cost of charges from `effective_at` on."""
    price = t.set_model_price(
        body.model,
        input_mtok=body.input_mtok,
        output_mtok=body.output_mtok,
        cache_read_mtok=body.cache_read_mtok,
        provider=body.provider,
        effective_at=body.effective_at,
        idempotency_key=idempotency_key,
    )
    return answer(price, 201)


@router.get(
    "/reports/margin",
    response_model=schemas.FullMarginReport,
    tags=["reports"],
    summary="Margin report",
    responses=errors(UnknownAsset, _NO_CARD),
)
def margin_report(
    t: Ledger,
    start: Annotated[
        Timestamp | None,
        Query(alias="from", description="Start, inclusive (default: 30 days before `to`)"),
    ] = None,
    end: Annotated[Timestamp | None, Query(alias="to", description="End, exclusive")] = None,
    by: Annotated[
        Literal["action", "model", "customer", "member", "day"],
        Query(
            description="What the report's rows are grouped by; `member`: each customer's "
            "members (charges naming no member in one row with a null key)"
        ),
    ] = "action",
    asset: AssetQuery = None,
    rate_card: Annotated[
        RateCardName, Query(description="The card whose ratios are reported")
    ] = DEFAULT_RATE_CARD,
    worst: Annotated[
        int,
        Query(ge=1, le=margin.MAX_WORST, description="How many worst-margin customers to list"),
    ] = margin.DEFAULT_WORST,
    change: Annotated[
        SignedDecimal, Query(description="What-if change of vendor prices: 0.2 is +20%")
    ] = "0.2",
    target: Annotated[SignedDecimal, Query(description="Target gross margin: 0.5 is 50%")] = "0.5",
) -> Response:
    """Revenue, vendor cost and gross margin of the period's charges grouped `by`; margin across
    customers; the rate card's worst credit-to-cost ratio per action; and what falls below the
    target margin if vendor prices change. Money is in US dollars, margins are fractions
    (0.5 is 50%). The period is `from` (default: 30 days before `to`) to `to` (default: now)."""
    until = end or t.now()
    since = start or until - DEFAULT_PERIOD
    if since >= until:
        raise InvalidInput("from must be before to", field="from")
    report = t.margin_report(
        start=since,
        end=until,
        by=by,
        asset=asset,
        rate_card=rate_card,
        worst=worst,
        change=Decimal(change),
        target=Decimal(target),
    )
    return answer(report)
