"""Packs and purchases through the manual provider, money top-ups with an exchange rate,
campaign codes, and the consumption order per lot kind."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from creditgate.api import TenantLedger
from creditgate.domain.billing_errors import (
    CampaignExhausted,
    CampaignExpired,
    CampaignLimitReached,
    NoExchangeRate,
    PackNotActive,
    PurchaseNotPending,
    UnknownCampaign,
)
from creditgate.domain.errors import InvalidInput
from tests.conftest import FakeClock
from tests.integration.test_plans import events_of


@pytest.fixture
def shop(ledger: TenantLedger) -> TenantLedger:
    ledger.create_customer("c1")
    ledger.create_pack(
        "starter", asset="credits", amount=10_000, price="25.00", expires_after_days=30
    )
    return ledger


def test_a_pack_bought_partly_used_and_expired(shop: TenantLedger, clock: FakeClock) -> None:
    purchase = shop.buy("c1", pack="starter")
    assert (purchase.status, purchase.provider, purchase.lot_id) == ("pending", "manual", None)
    # Pending credit is not credit.
    assert shop.wallet("c1").balances == [] or shop.wallet("c1").balance("credits").posted == 0
    assert shop.authorize("c1", "credits", 1).approved is False
    paid = shop.mark_paid(purchase.id)
    assert paid.status == "paid" and paid.paid_at == clock.now and paid.lot_id is not None
    # Marking it paid again grants nothing more.
    assert shop.mark_paid(purchase.id) == paid
    with pytest.raises(PurchaseNotPending):
        shop.mark_failed(purchase.id)
    (lot,) = shop.lots("c1")
    assert (lot.kind, lot.amount, lot.cost_basis) == ("purchased", 10_000, Decimal("0.25"))
    assert lot.expires_at == clock.now + timedelta(days=30)
    assert lot.metadata["purchase"] == purchase.id

    clock.advance(days=10)
    shop.charge("c1", "credits", 3_500)
    clock.advance(days=21)
    report = shop.run_sweeps()
    assert (report.lots_expired, report.credit_expired) == (1, 6_500)
    (expired,) = shop.lots("c1", include_closed=True)
    assert (expired.status, expired.consumed, expired.expired, expired.remaining) == (
        "expired",
        3_500,
        6_500,
        0,
    )
    assert shop.wallet("c1").balance("credits").posted == 0
    (event,) = events_of(shop, "topup.succeeded")
    assert event["purchase"] == purchase.id and event["lot"] == lot.id


def test_a_failed_invoice_grants_nothing(shop: TenantLedger) -> None:
    purchase = shop.buy("c1", pack="starter", idempotency_key="buy-1")
    assert shop.buy("c1", pack="starter", idempotency_key="buy-1").id == purchase.id
    failed = shop.mark_failed(purchase.id, reason="invoice unpaid after 30 days")
    assert (failed.status, failed.failure_reason) == ("failed", "invoice unpaid after 30 days")
    assert shop.lots("c1", include_closed=True) == []
    (event,) = events_of(shop, "topup.failed")
    assert event["reason"] == "invoice unpaid after 30 days"
    # An operator may still record the money arriving late.
    assert shop.mark_paid(purchase.id).status == "paid"
    assert shop.wallet("c1").balance("credits").posted == 10_000


def test_money_top_ups_into_usd_and_into_credits_at_the_tenant_rate(shop: TenantLedger) -> None:
    shop.create_asset("USD", 2, "US dollars")
    usd = shop.mark_paid(shop.buy("c1", asset="USD", price="12.34").id)
    assert (usd.asset, usd.amount) == ("USD", 1_234)
    with pytest.raises(NoExchangeRate):
        shop.buy("c1", asset="credits", price="10")
    shop.set_exchange_rate("usd", "credits", "40")  # $1 buys 40 credits
    bought = shop.mark_paid(shop.buy("c1", asset="credits", price="10.00").id)
    assert (bought.amount, bought.currency) == (40_000, "USD")  # 400.00 credits
    lot = next(x for x in shop.lots("c1") if x.asset == "credits")
    assert lot.cost_basis == Decimal("0.025")
    usd_lot = next(x for x in shop.lots("c1") if x.asset == "USD")
    assert usd_lot.cost_basis == Decimal(1)
    with pytest.raises(InvalidInput):
        shop.buy("c1", asset="credits", price="10.001")  # below a cent
    with pytest.raises(InvalidInput):
        shop.buy("c1", pack="starter", asset="credits", price="10")


def test_a_pack_no_longer_sold_cannot_be_bought(shop: TenantLedger) -> None:
    started = shop.buy("c1", pack="starter")
    shop.set_pack_active("starter", False)
    assert shop.packs() == []
    with pytest.raises(PackNotActive):
        shop.buy("c1", pack="starter")
    # A purchase made before still completes.
    assert shop.mark_paid(started.id).status == "paid"


def test_campaign_codes_limits_and_expiry(shop: TenantLedger, clock: FakeClock) -> None:
    ends = clock.now + timedelta(days=7)
    shop.create_campaign("launch", asset="credits", amount=500, expires_at=ends)
    shop.create_campaign(
        "twice", asset="credits", amount=100, per_customer_limit=2, credit_valid_days=3
    )
    shop.create_campaign("few", asset="credits", amount=1, max_redemptions=1)
    shop.create_customer("c2")
    first = shop.redeem("c1", "LAUNCH", idempotency_key="r1")
    assert shop.redeem("c1", "LAUNCH", idempotency_key="r1") == first
    assert (first.lot.kind, first.lot.expires_at, first.lot.cost_basis) == (
        "promotional",
        ends,
        Decimal(0),
    )
    with pytest.raises(CampaignLimitReached):
        shop.redeem("c1", "launch")
    assert [shop.redeem("c1", "twice").seq for _ in range(2)] == [1, 2]
    with pytest.raises(CampaignLimitReached):
        shop.redeem("c1", "twice")
    assert shop.redeem("c2", "twice").lot.expires_at == clock.now + timedelta(days=3)
    shop.redeem("c1", "few")
    with pytest.raises(CampaignExhausted):
        shop.redeem("c2", "few")
    with pytest.raises(UnknownCampaign):
        shop.redeem("c1", "nope")
    clock.advance(days=8)
    with pytest.raises(CampaignExpired):
        shop.redeem("c2", "launch")
    campaigns = {c.code: c.redemptions for c in shop.campaigns()}
    assert campaigns == {"FEW": 1, "LAUNCH": 1, "TWICE": 3}


def test_campaign_limit_holds_under_concurrency(shop: TenantLedger) -> None:
    shop.create_campaign("race", asset="credits", amount=100, per_customer_limit=3)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def redeem() -> None:
        barrier.wait()
        try:
            shop.redeem("c1", "race")
            outcomes.append("ok")
        except CampaignLimitReached:
            outcomes.append("limit")

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["limit"] * 5 + ["ok"] * 3
    assert shop.wallet("c1").balance("credits").posted == 300
    assert len(shop.lots("c1")) == 3


def test_consumption_order_per_kind(shop: TenantLedger) -> None:
    order = shop.consumption_order()
    assert {k.kind for k in order.data} == {
        "included",
        "promotional",
        "purchased",
        "refund",
        "adjustment",
    }
    assert all(k.is_default and k.priority == 0 for k in order.data)
    shop.set_kind_priority("purchased", 20)
    order = shop.set_kind_priority("promotional", 0)
    assert [k.kind for k in order.data][-1] == "purchased"
    # Paid credit is used last; free credit first, whatever their expiry.
    shop.mark_paid(shop.buy("c1", pack="starter").id)
    shop.create_campaign("free", asset="credits", amount=1_000)
    shop.redeem("c1", "free")
    explicit = shop.grant("c1", "credits", 5, kind="purchased", priority=1)
    assert explicit.priority == 1  # a grant naming its priority keeps it
    lots = shop.lots("c1")
    assert [(x.kind, x.priority) for x in lots] == [
        ("promotional", 0),
        ("purchased", 1),
        ("purchased", 20),
    ]
    charge = shop.charge("c1", "credits", 1_500)
    assert [d.amount for d in charge.draws] == [1_000, 5, 495]
    with pytest.raises(InvalidInput):
        shop.set_kind_priority("gift", 1)
