"""The SDK's result types read exactly what the server's result models write."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import creditgate_sdk as sdk
from creditgate.services import gateway_keys, results
from creditgate.services.billing import results as billing_results
from creditgate.services.ledger import refunds
from creditgate.services.pricing import margin
from creditgate_sdk._decode import decode

PAIRS: list[tuple[type[Any], type[BaseModel]]] = [
    (sdk.Asset, results.AssetInfo),
    (sdk.Customer, results.Customer),
    (sdk.Invoice, billing_results.Invoice),
    (sdk.TestClock, results.TestClock),
    (sdk.Policy, results.Policy),
    (sdk.AssetBalance, results.AssetBalance),
    (sdk.Wallet, results.Wallet),
    (sdk.Lot, results.Lot),
    (sdk.Draw, results.Draw),
    (sdk.Charge, results.Charge),
    (sdk.Authorization, results.Authorization),
    (sdk.Settlement, results.Settlement),
    (sdk.LedgerEntry, results.LedgerEntry),
    (sdk.LedgerTransaction, results.LedgerTransaction),
    (sdk.LedgerPage, results.LedgerPage),
    (sdk.RateCardVersion, results.RateCardVersion),
    (sdk.PublishedRateCard, results.PublishedRateCard),
    (sdk.PriceLine, results.PriceLine),
    (sdk.AppliedMultiplier, results.AppliedMultiplier),
    (sdk.VendorCostInfo, results.VendorCostInfo),
    (sdk.PriceQuote, results.PriceQuote),
    (sdk.ModelPrice, results.ModelPrice),
    (sdk.MarginRow, margin.MarginRow),
    (sdk.MarginReport, margin.MarginReport),
    (sdk.MarginDistribution, margin.MarginDistribution),
    (sdk.RatioCase, margin.RatioCase),
    (sdk.ActionRatio, margin.ActionRatio),
    (sdk.CardRatios, margin.CardRatios),
    (sdk.WhatIfRow, margin.WhatIfRow),
    (sdk.WhatIfCardAction, margin.WhatIfCardAction),
    (sdk.WhatIf, margin.WhatIf),
    (sdk.FullMarginReport, margin.FullMarginReport),
    (sdk.RefundedLine, refunds.RefundedLine),
    (sdk.Refund, refunds.Refund),
    (sdk.Purchase, billing_results.Purchase),
    (sdk.PurchaseRefund, billing_results.PurchaseRefund),
    (sdk.Member, results.Member),
    (sdk.Budget, results.Budget),
    (sdk.BudgetPeriod, results.BudgetPeriod),
    (sdk.MemberUsage, results.MemberUsage),
    (sdk.GatewayKeyLimit, gateway_keys.GatewayKeyLimit),
    (sdk.GatewayKeyUsage, gateway_keys.GatewayKeyUsage),
    (sdk.GatewayKey, gateway_keys.CreatedGatewayKey),  # a listed key: `key` null
]

WHEN = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def sample(annotation: Any, name: str = "") -> Any:
    """A value of every field, none of them left at a default."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return sample(typing.get_args(annotation)[0], name)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return sample(inner, name)
    if origin is list:
        return [sample(typing.get_args(annotation)[0], name)]
    if origin is dict:
        value = typing.get_args(annotation)[1]
        if value is Any:
            return {"source": name, "nested": {"n": 1}}
        return {"source": sample(value, name)}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation(
            **{n: sample(f.annotation, n) for n, f in annotation.model_fields.items()}
        )
    return {
        int: 1234,
        str: f"{name}-value",
        bool: True,
        Decimal: Decimal("0.0025"),
        datetime: WHEN,
    }[annotation]


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return plain(value.model_dump())
    return value


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_each_result_reads_the_servers_json_field_for_field(
    ours: type[Any], theirs: type[BaseModel]
) -> None:
    assert {f.name for f in dataclasses.fields(ours)} == set(theirs.model_fields)
    server = sample(theirs)
    decoded = decode(ours, server.model_dump(mode="json"))
    assert plain(decoded) == plain(server)


def test_unknown_fields_from_a_newer_server_are_ignored() -> None:
    data = results.AssetInfo(code="credits", scale=2, name="Credits").model_dump(mode="json")
    data["introduced_later"] = {"anything": True}
    assert decode(sdk.Asset, data) == sdk.Asset(code="credits", scale=2, name="Credits")


def test_a_missing_required_field_is_an_unexpected_response() -> None:
    with pytest.raises(sdk.UnexpectedResponse, match="scale"):
        decode(sdk.Asset, {"code": "credits"})


def test_a_value_of_the_wrong_type_is_an_unexpected_response() -> None:
    with pytest.raises(sdk.UnexpectedResponse, match=r"Asset\.scale"):
        decode(sdk.Asset, {"code": "credits", "scale": "2"})
    with pytest.raises(sdk.UnexpectedResponse, match="should be a decimal"):
        decode(sdk.Draw, {"lot_id": "lot_1", "amount": 1, "cost_basis": 0.5})  # never a float
    data = sample(results.Authorization).model_dump(mode="json") | {"expires_at": "tomorrow"}
    with pytest.raises(sdk.UnexpectedResponse, match="expires_at is not an ISO 8601 time"):
        decode(sdk.Authorization, data)


def test_decimals_and_times_come_back_exact() -> None:
    lot = decode(sdk.Lot, sample(results.Lot).model_dump(mode="json"))
    assert lot.cost_basis == Decimal("0.0025") and isinstance(lot.cost_basis, Decimal)
    assert lot.effective_at == WHEN and lot.effective_at.tzinfo is not None


def test_wallet_balance_finds_an_asset() -> None:
    wallet = decode(sdk.Wallet, sample(results.Wallet).model_dump(mode="json"))
    assert wallet.balance("asset-value").available == 1234
    with pytest.raises(KeyError):
        wallet.balance("USD")


def test_results_are_frozen() -> None:
    asset = sdk.Asset(code="credits", scale=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        asset.scale = 3  # type: ignore[misc]
