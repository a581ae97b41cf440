"""Refunds of purchases: unused credit voided and its money paid back (manual and Stripe),
consumed credit only on request, partial refunds with their rounding, and `verify` tying
every paid purchase out to the money received and refunded."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from creditgate.api import Creditgate, TenantLedger
from creditgate.cli import main
from creditgate.domain.billing_errors import (
    PaymentProviderError,
    PurchaseNotRefundable,
    RefundNotCovered,
    UnknownPurchase,
)
from creditgate.domain.errors import IdempotencyConflict, InvalidInput
from creditgate.storage.tables import ledger_entries, purchase_refunds, purchases
from tests.conftest import FakeClock
from tests.integration.test_plans import events_of
from tests.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe, event, sign

PAYMENTS_CHECK = "7 paid purchases"


@pytest.fixture
def shop(ledger: TenantLedger) -> TenantLedger:
    ledger.create_customer("c1")
    ledger.create_pack("starter", asset="credits", amount=10_000, price="25.00")  # $0.25 each
    return ledger


def paid(t: TenantLedger, pack: str = "starter", customer: str = "c1") -> str:
    purchase = t.buy(customer, pack=pack)
    return t.mark_paid(purchase.id).id


def lot_of(t: TenantLedger, purchase_id: str) -> Any:
    lot_id = t.purchase(purchase_id).lot_id
    return next(x for x in t.lots("c1", include_closed=True) if x.id == lot_id)


def test_a_part_used_purchase_refunded_voids_its_unused_credit_and_pays_its_money_back(
    shop: TenantLedger, clock: FakeClock
) -> None:
    start = clock.now
    purchase = paid(shop)
    clock.advance(days=1)
    shop.charge("c1", "credits", 3_500)
    clock.advance(days=1)
    refund = shop.refund_purchase(purchase, reason="customer asked")
    assert (refund.amount, refund.unused, refund.consumed) == (6_500, 6_500, 0)
    assert (refund.money, refund.currency, refund.status) == (Decimal("16.25"), "USD", "succeeded")
    assert (refund.provider, refund.provider_ref, refund.reason) == (
        "manual",
        None,
        "customer asked",
    )
    lot = lot_of(shop, purchase)
    assert (lot.remaining, lot.consumed, lot.voided) == (0, 3_500, 6_500)
    assert shop.wallet("c1").balance("credits").posted == 0
    after = shop.purchase(purchase)
    assert (after.status, after.refunded, after.refunded_money) == ("paid", 6_500, Decimal("16.25"))
    (created,) = events_of(shop, "refund.created")
    assert created["refund"] == refund.id and created["purchase"] == purchase
    assert (created["amount"], created["money"], created["reason"]) == (
        6_500,
        "16.25",
        "customer asked",
    )
    newest = shop.ledger("c1").data[0]
    assert (newest.kind, newest.reference_id, newest.wallet_change) == (
        "purchase_refund",
        refund.id,
        -6_500,
    )
    assert shop.purchase_refunds(purchase) == [refund]

    # The money: $25 received, $8.75 earned from what was used, $16.25 paid back.
    end = clock.advance(seconds=1)
    (line,) = shop.revenue_report(start=start, end=end).lines
    assert (line.sold, line.recognized, line.purchases_refunded) == (
        Decimal("25"),
        Decimal("8.75"),
        Decimal("16.25"),
    )
    assert line.voided == line.refunded == line.breakage == line.closing_deferred == 0

    # What is left was used: refunding it must be asked for.
    with pytest.raises(InvalidInput) as info:
        shop.refund_purchase(purchase, reason="again")
    assert info.value.field == "amount" and "include_consumed" in info.value.message


def test_partial_refunds_round_half_even_on_the_running_total_and_add_up_to_the_price(
    shop: TenantLedger,
) -> None:
    shop.create_pack("odd", asset="credits", amount=300, price="10.00")  # $3.333… a credit
    purchase = paid(shop, "odd")
    money = [shop.refund_purchase(purchase, amount=100, reason="part").money for _ in range(3)]
    # 3.333… -> 3.33; 6.666… -> 6.67 (3.34 more); 10.00 (3.33 more): never past the price.
    assert money == [Decimal("3.33"), Decimal("3.34"), Decimal("3.33")]
    assert shop.purchase(purchase).refunded_money == Decimal("10.00")
    with pytest.raises(InvalidInput) as info:
        shop.refund_purchase(purchase, amount=1, reason="more")
    assert info.value.field == "amount"

    # A refund worth less than a cent pays nothing back: refused, nothing changes.
    shop.create_pack("cheap", asset="credits", amount=200_000, price="9.99")
    cheap = paid(shop, "cheap")
    with pytest.raises(InvalidInput) as info:
        shop.refund_purchase(cheap, amount=1, reason="one hundredth of a credit")
    assert info.value.field == "amount"
    assert shop.purchase(cheap).refunded == 0
    # 0.00005 a hundredth: 101 hundredths come to 0.00505, half-even to 0.01.
    assert shop.refund_purchase(cheap, amount=101, reason="x").money == Decimal("0.01")


def test_consumed_credit_is_refunded_only_on_request_and_debited_again_per_the_policy(
    shop: TenantLedger, clock: FakeClock
) -> None:
    start = clock.now
    purchase = paid(shop)
    shop.charge("c1", "credits", 8_000)
    promo = shop.grant("c1", "credits", 1_000)
    with pytest.raises(InvalidInput) as info:
        shop.refund_purchase(purchase, amount=3_000, reason="too much")
    assert info.value.field == "amount" and "include_consumed" in info.value.message

    # Under block, the 8,000 used must be debited again and only 1,000 is there: refused.
    before = shop.wallet("c1").balance("credits")
    with pytest.raises(RefundNotCovered) as refused:
        shop.refund_purchase(purchase, include_consumed=True, reason="outage")
    assert refused.value.field == "amount"
    assert shop.wallet("c1").balance("credits") == before
    assert shop.purchase_refunds(purchase) == []

    shop.set_policy("c1", "credits", "allow")
    refund = shop.refund_purchase(purchase, include_consumed=True, reason="outage")
    assert (refund.amount, refund.unused, refund.consumed, refund.money) == (
        10_000,
        2_000,
        8_000,
        Decimal("25.00"),
    )
    # The usage is paid again: the other lot first, the rest as debt.
    balance = shop.wallet("c1").balance("credits")
    assert (balance.posted, balance.debt) == (-7_000, 7_000)
    lots = {x.id: x for x in shop.lots("c1", include_closed=True)}
    assert lots[promo.id].consumed == 1_000
    lot = lot_of(shop, purchase)
    assert (lot.remaining, lot.consumed, lot.voided) == (0, 0, 10_000)
    assert shop.purchase(purchase).refunded_money == Decimal("25.00")
    with pytest.raises(InvalidInput):
        shop.refund_purchase(purchase, include_consumed=True, reason="nothing left")

    end = clock.advance(seconds=1)
    (line,) = shop.revenue_report(start=start, end=end).lines
    # $20 earned on the 8,000 used, given back by the refund with the rest of the $25.
    assert (line.sold, line.recognized, line.refunded, line.purchases_refunded) == (
        Decimal("25"),
        Decimal("20"),
        Decimal("20"),
        Decimal("25"),
    )
    assert line.closing_deferred == 0
    # The next pack pays the debt first: that usage is earned again, from it.
    paid(shop)
    assert shop.wallet("c1").balance("credits").posted == 3_000
    (later,) = shop.revenue_report(start=end, end=clock.advance(seconds=1)).lines
    assert (later.sold, later.recognized, later.closing_deferred) == (
        Decimal("25"),
        Decimal("17.5"),
        Decimal("7.5"),
    )


def test_credit_held_by_an_open_hold_stays_with_the_hold(shop: TenantLedger) -> None:
    purchase = paid(shop)
    hold = shop.authorize("c1", "credits", 4_000)
    first = shop.refund_purchase(purchase, reason="unused part")
    assert (first.amount, first.money) == (6_000, Decimal("15.00"))
    assert shop.settle(hold.id, 3_000).authorization.status == "settled"
    second = shop.refund_purchase(purchase, reason="left after the call")
    assert (second.amount, second.money) == (1_000, Decimal("2.50"))
    assert shop.wallet("c1").balance("credits").posted == 0


def test_refund_replays_conflicts_and_bad_input(shop: TenantLedger) -> None:
    purchase = paid(shop)
    first = shop.refund_purchase(purchase, amount=1_000, reason="r", idempotency_key="k1")
    again = shop.refund_purchase(purchase, amount=1_000, reason="r", idempotency_key="k1")
    assert again == first and len(shop.purchase_refunds(purchase)) == 1
    assert shop.purchase(purchase).refunded == 1_000
    with pytest.raises(IdempotencyConflict):
        shop.refund_purchase(purchase, amount=2_000, reason="r", idempotency_key="k1")

    pending = shop.buy("c1", pack="starter")
    with pytest.raises(PurchaseNotRefundable) as not_paid:
        shop.refund_purchase(pending.id, reason="never paid")
    assert not_paid.value.field == "purchase"
    with pytest.raises(UnknownPurchase):
        shop.refund_purchase("pur_missing", reason="x")
    for bad, field in [
        ({"reason": " "}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": "x", "amount": 0}, "amount"),
        ({"reason": "x", "amount": 9_001}, "amount"),
        ({"reason": "x", "include_consumed": "yes"}, "include_consumed"),
        ({"reason": "x", "metadata": [1]}, "metadata"),
    ]:
        with pytest.raises(InvalidInput) as info:
            shop.refund_purchase(purchase, **bad)
        assert info.value.field == field, bad
    assert shop.purchase(purchase).refunded == 1_000
    assert shop.wallet("c1").balance("credits").posted == 9_000


# Stripe


@pytest.fixture
def stripe_shop(shop: TenantLedger, fake_stripe: FakeStripe) -> TenantLedger:
    shop.set_provider_account("stripe", api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    return shop


def paid_through_stripe(t: TenantLedger, pack: str = "starter") -> str:
    purchase = t.buy("c1", pack=pack, provider="stripe", success_url="https://example.com/ok")
    body = event("checkout_session_completed", purchase=purchase.id, tenant=t.tenant_id)
    outcome = t.handle_stripe_webhook(body.encode(), sign(body))
    assert outcome.outcome == "completed"
    done = t.purchase(purchase.id)
    assert done.status == "paid" and done.payment_ref == "pi_3QxYzAbCdEfGhIjK0aBcDeFg"
    return done.id


def test_stripe_refund_pays_back_through_the_payment_intent(
    stripe_shop: TenantLedger, fake_stripe: FakeStripe
) -> None:
    purchase = paid_through_stripe(stripe_shop)
    stripe_shop.charge("c1", "credits", 3_500)
    refund = stripe_shop.refund_purchase(purchase, reason="requested by customer")
    assert (refund.status, refund.money, refund.provider) == (
        "succeeded",
        Decimal("16.25"),
        "stripe",
    )
    assert refund.provider_ref is not None and refund.provider_ref.startswith("re_offline")
    (sent,) = fake_stripe.calls("/v1/refunds")
    assert sent["form"]["payment_intent"] == "pi_3QxYzAbCdEfGhIjK0aBcDeFg"
    assert sent["form"]["amount"] == "1625"
    assert sent["form"]["metadata[creditgate_refund]"] == refund.id
    assert sent["form"]["metadata[creditgate_purchase]"] == purchase
    assert sent["idempotency_key"] == f"creditgate-refund-{refund.id}"
    assert stripe_shop.wallet("c1").balance("credits").posted == 0


def test_a_refund_stripe_refuses_gives_the_credit_back(
    stripe_shop: TenantLedger, fake_stripe: FakeStripe, clock: FakeClock
) -> None:
    start = clock.now
    purchase = paid_through_stripe(stripe_shop)
    stripe_shop.charge("c1", "credits", 2_000)
    fake_stripe.refuse_refunds = True  # refunded in Stripe's dashboard already
    refund = stripe_shop.refund_purchase(purchase, reason="duplicate")
    assert refund.status == "failed" and refund.failure_reason is not None
    assert "charge_already_refunded" in refund.failure_reason
    lot = lot_of(stripe_shop, purchase)
    assert (lot.remaining, lot.voided) == (8_000, 0)
    assert stripe_shop.wallet("c1").balance("credits").posted == 8_000
    after = stripe_shop.purchase(purchase)
    assert (after.refunded, after.refunded_money) == (0, Decimal(0))
    (failed,) = events_of(stripe_shop, "refund.failed")
    assert failed["refund"] == refund.id and failed["lot"] == lot.id
    assert len(events_of(stripe_shop, "refund.created")) == 1
    (line,) = stripe_shop.revenue_report(start=start, end=clock.advance(seconds=1)).lines
    assert line.purchases_refunded == 0 and line.closing_deferred == Decimal("20")


def test_a_lost_stripe_answer_is_asked_again_as_the_same_refund(
    stripe_shop: TenantLedger, fake_stripe: FakeStripe
) -> None:
    purchase = paid_through_stripe(stripe_shop)
    fake_stripe.fail_next = 10  # Stripe answers 500: the outcome is unknown
    with pytest.raises(PaymentProviderError):
        stripe_shop.refund_purchase(purchase, amount=4_000, reason="r", idempotency_key="r1")
    (waiting,) = stripe_shop.purchase_refunds(purchase)
    assert waiting.status == "pending"
    # The credit is taken meanwhile, and counted refunded: it cannot be spent or refunded twice.
    assert stripe_shop.wallet("c1").balance("credits").posted == 6_000
    assert stripe_shop.purchase(purchase).refunded == 4_000
    fake_stripe.fail_next = 0
    done = stripe_shop.refund_purchase(purchase, amount=4_000, reason="r", idempotency_key="r1")
    assert (done.id, done.status) == (waiting.id, "succeeded")
    keys = {r["idempotency_key"] for r in fake_stripe.calls("/v1/refunds")}
    assert keys == {f"creditgate-refund-{waiting.id}"}
    # A refund still waiting is asked again before the purchase is refunded any further.
    fake_stripe.fail_next = 10
    with pytest.raises(PaymentProviderError):
        stripe_shop.refund_purchase(purchase, amount=1_000, reason="more")
    fake_stripe.fail_next = 0
    more = stripe_shop.refund_purchase(purchase, amount=500, reason="more still")
    statuses = [(r.amount, r.status) for r in stripe_shop.purchase_refunds(purchase)]
    assert statuses == [(4_000, "succeeded"), (1_000, "succeeded"), (500, "succeeded")]
    assert more.money == Decimal("1.25")
    assert stripe_shop.purchase(purchase).refunded_money == Decimal("13.75")


def test_a_refused_refund_of_a_lot_that_closed_meanwhile_comes_back_as_a_refund_lot(
    stripe_shop: TenantLedger, fake_stripe: FakeStripe, clock: FakeClock
) -> None:
    stripe_shop.create_pack("monthly", asset="credits", amount=10_000, price="25.00",
                            expires_after_days=30)  # fmt: skip
    stripe_shop.set_policy("c1", "credits", "allow")
    purchase = paid_through_stripe(stripe_shop, "monthly")
    stripe_shop.charge("c1", "credits", 8_000)
    fake_stripe.fail_next = 10
    with pytest.raises(PaymentProviderError):
        stripe_shop.refund_purchase(
            purchase, include_consumed=True, reason="r", idempotency_key="k"
        )
    balance = stripe_shop.wallet("c1").balance("credits")
    assert (balance.posted, balance.debt) == (-8_000, 8_000)  # the usage, charged again
    clock.advance(days=31)
    stripe_shop.run_sweeps()
    assert lot_of(stripe_shop, purchase).status == "expired"
    fake_stripe.fail_next = 0
    fake_stripe.refuse_refunds = True
    refund = stripe_shop.refund_purchase(
        purchase, include_consumed=True, reason="r", idempotency_key="k"
    )
    assert refund.status == "failed"
    # The credit comes back to a new lot with the same cost basis, and pays the debt first.
    (back,) = [x for x in stripe_shop.lots("c1") if x.kind == "refund"]
    assert (back.amount, back.consumed, back.remaining) == (10_000, 8_000, 2_000)
    assert back.cost_basis == Decimal("0.25") and back.metadata["refund_reversed"] == refund.id
    balance = stripe_shop.wallet("c1").balance("credits")
    assert (balance.posted, balance.debt) == (2_000, 0)
    assert stripe_shop.purchase(purchase).refunded_money == 0


def test_a_stripe_refund_paid_out_later_is_processing(
    stripe_shop: TenantLedger, fake_stripe: FakeStripe
) -> None:
    purchase = paid_through_stripe(stripe_shop)
    fake_stripe.refund_status = "pending"
    refund = stripe_shop.refund_purchase(purchase, reason="bank transfer back")
    assert refund.status == "processing" and refund.provider_ref is not None
    assert stripe_shop.purchase(purchase).refunded_money == Decimal("25.00")


# Invariant 7 against the payments


def test_verify_ties_each_paid_purchase_out_to_the_money(cg: Creditgate) -> None:
    """Each corruption of what was paid or refunded is caught, then put back."""
    t = cg.tenant(cg.create_tenant("verify purchases").id)
    t.create_asset("credits", 2)
    t.create_customer("c1")
    t.create_pack("starter", asset="credits", amount=10_000, price="25.00")
    purchase = paid(t)
    t.charge("c1", "credits", 1_000)
    refund = t.refund_purchase(purchase, amount=3_000, reason="part")
    report = cg.verify(t.tenant_id)
    assert report.ok, report.violations
    (check,) = [c for c in report.checks if c.name.startswith(PAYMENTS_CHECK)]
    assert check.checked == 1

    corruptions = [
        (purchases, "price", Decimal("26.00"), purchase),  # more money received than paid
        (purchases, "refunded_money", Decimal("7.49"), purchase),
        (purchase_refunds, "money", Decimal("7.51"), refund.id),
        (purchase_refunds, "status", "failed", refund.id),  # a refund that never happened
        (purchases, "refunded", 2_999, purchase),
    ]
    for table, column, value, row_id in corruptions:
        with cg.db.engine.begin() as conn:
            kept = conn.execute(select(table.c[column]).where(table.c.id == row_id)).scalar_one()
            conn.execute(update(table).where(table.c.id == row_id).values({column: value}))
        try:
            broken = cg.verify(t.tenant_id)
            assert not broken.ok, column
            assert any(v.startswith(PAYMENTS_CHECK) for v in broken.violations), broken.violations
            assert any(purchase in v for v in broken.violations)
        finally:
            with cg.db.engine.begin() as conn:
                conn.execute(update(table).where(table.c.id == row_id).values({column: kept}))
    assert cg.verify(t.tenant_id).ok

    # The ledger no longer says the credit went out as refunded: it disagrees.
    lot_id = lot_of(t, purchase).id

    def relabel(old: str, new: str) -> None:
        with cg.db.engine.begin() as conn:
            conn.execute(
                update(ledger_entries)
                .where(ledger_entries.c.lot_id == lot_id, ledger_entries.c.account == old)
                .values(account=new)
            )

    relabel("refunded", "voided")
    try:
        broken = cg.verify(t.tenant_id)
        assert any(v.startswith(PAYMENTS_CHECK) for v in broken.violations), broken.violations
    finally:
        relabel("voided", "refunded")
    assert cg.verify(t.tenant_id).ok


def test_cli_refunds_a_purchase_and_verify_prints_the_payments_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def cli(*args: str, code: int = 0) -> str:
        monkeypatch.setattr(sys, "argv", ["creditgate", *args, "--db", db])
        exit_code = 0
        try:
            main()
        except SystemExit as exc:
            exit_code = int(exc.code or 0)
        out, err = capsys.readouterr()
        assert exit_code == code, (out, err)
        return out + err

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    with Creditgate(db) as cg:
        t = cg.tenant(cg.create_tenant("CLI AI").id)
        t.create_asset("credits", 2)
        t.create_customer("c1")
        t.create_pack("starter", asset="credits", amount=10_000, price="25.00")
        purchase = paid(t)
        t.charge("c1", "credits", 2_500)
    out = cli("billing", "packs", "refund", purchase, "--reason", "asked", "--amount", "1000")
    assert "succeeded" in out and "2.5" in out
    refund = json.loads(cli("billing", "packs", "refund", purchase, "--reason", "rest", "--json"))
    assert (refund["amount"], refund["money"], refund["status"]) == (6_500, "16.25", "succeeded")
    listed = json.loads(cli("billing", "packs", "refunds", purchase, "--json"))
    assert [r["amount"] for r in listed["data"]] == [1_000, 6_500]
    error = cli("billing", "packs", "refund", purchase, "--reason", "more", code=1)
    assert "include_consumed" in error
    assert cli("billing", "packs", "refund", purchase, "--reason", " ", code=1)
    report = json.loads(cli("verify", "--json"))
    assert report["ok"] is True
    (check,) = [c for c in report["checks"] if c["name"].startswith(PAYMENTS_CHECK)]
    assert check["checked"] == 1
    assert PAYMENTS_CHECK in cli("verify")
