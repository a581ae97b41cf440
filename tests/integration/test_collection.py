"""Collecting the money: plan fees through Stripe (the offline stand-in) and manual invoices,
credit granted on payment, dunning, overage billed in arrears once, the soft cap, and a
test-mode tenant's clock; on both backends, with the books verified after each test."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.event import listen

from creditgate.api import Creditgate, TenantLedger
from creditgate.api.gateway import TenantGateway, authenticate_customer_key
from creditgate.domain.billing import add_months
from creditgate.domain.billing_errors import PeriodNotIssued
from creditgate.domain.errors import IdempotencyConflict, InvalidInput, LiveTenant
from creditgate.services.billing import purchases
from creditgate.storage import collection as store
from creditgate.storage.tables import events
from tests.conftest import FakeClock
from tests.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe, event, invoice_event, sign

INCLUDED = 100_000  # 1,000.00 credits a period
FEE_MINOR = 2000  # $20


def events_of(t: TenantLedger, event_type: str) -> list[dict[str, Any]]:
    with t.cg.db.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.payload)
            .where(events.c.tenant_id == t.tenant_id, events.c.type == event_type)
            .order_by(events.c.id)
        )
        return [r.payload for r in rows]


@pytest.fixture
def sandbox(cg: Creditgate) -> Iterator[TenantLedger]:
    """A fresh test-mode tenant with a `credits` asset (scale 2); verified afterwards."""
    tenant = cg.create_tenant(f"sandbox {uuid.uuid4().hex[:8]}", mode="test")
    t = cg.tenant(tenant.id)
    t.create_asset("credits", 2, "Credits")
    yield t
    report = cg.verify(tenant.id)
    assert report.ok, report.violations


@pytest.fixture
def on_stripe(sandbox: TenantLedger, fake_stripe: FakeStripe) -> TenantLedger:
    sandbox.set_provider_account("stripe", api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    fake_stripe.add_price("price_pro", FEE_MINOR)
    sandbox.create_customer("c1")
    return sandbox


def deliver(t: TenantLedger, body: str) -> Any:
    return t.handle_stripe_webhook(body.encode(), sign(body))


def paid(t: TenantLedger, sub: Any, index: int, **extra: Any) -> Any:
    period = t.subscription(sub.id).periods[index]
    body = invoice_event(
        "paid",
        tenant=t.tenant_id,
        subscription=sub.id,
        subscription_ref=sub.provider_ref,
        period_start=period.period_start,
        amount=FEE_MINOR,
        invoice_id=f"in_{sub.id[-6:]}_{index}",
        **extra,
    )
    return deliver(t, body)


def failed(t: TenantLedger, sub: Any, index: int, **extra: Any) -> Any:
    period = t.subscription(sub.id).periods[index]
    body = invoice_event(
        "payment_failed",
        tenant=t.tenant_id,
        subscription=sub.id,
        subscription_ref=sub.provider_ref,
        period_start=period.period_start,
        amount=FEE_MINOR,
        invoice_id=f"in_{sub.id[-6:]}_{index}",
        **extra,
    )
    return deliver(t, body)


def included_lots(t: TenantLedger, customer: str = "c1") -> list[Any]:
    return [lot for lot in t.lots(customer, include_closed=True) if lot.kind == "included"]


# The test clock


def test_a_live_tenant_cannot_move_its_clock(ledger: TenantLedger, clock: FakeClock) -> None:
    with pytest.raises(LiveTenant):
        ledger.advance_clock(clock.now + timedelta(days=1))
    assert ledger.now() == clock.now


def test_a_test_tenant_moves_its_own_clock_forward_only(
    sandbox: TenantLedger, ledger: TenantLedger, clock: FakeClock
) -> None:
    later = clock.now + timedelta(days=3)
    moved = sandbox.advance_clock(later)
    assert moved.now == later and moved.offset_seconds == Decimal(3 * 86_400)
    assert sandbox.now() == later
    assert ledger.now() == clock.now  # another tenant keeps the server's time
    with pytest.raises(InvalidInput) as refused:
        sandbox.advance_clock(later - timedelta(seconds=1))
    assert refused.value.field == "to"
    clock.advance(hours=1)  # the server's clock runs on, the offset stays
    assert sandbox.now() == later + timedelta(hours=1)


def test_a_retried_advance_answers_the_first_move_under_its_idempotency_key(
    sandbox: TenantLedger, clock: FakeClock
) -> None:
    later = clock.now + timedelta(days=3)
    first = sandbox.advance_clock(later, idempotency_key="adv-1")
    clock.advance(seconds=2)  # the answer was lost; the tenant's clock ran past `later`
    again = sandbox.advance_clock(later, idempotency_key="adv-1")
    assert (again.now, again.offset_seconds) == (first.now, first.offset_seconds)
    assert sandbox.now() == later + timedelta(seconds=2)  # moved once
    with pytest.raises(InvalidInput) as refused:  # without the key, a time now past
        sandbox.advance_clock(later)
    assert refused.value.field == "to"
    with pytest.raises(IdempotencyConflict):
        sandbox.advance_clock(later + timedelta(days=1), idempotency_key="adv-1")


def test_an_advance_through_one_process_is_seen_by_every_other_at_once(
    sandbox: TenantLedger, db_url: str, clock: FakeClock
) -> None:
    other = Creditgate(db_url, clock=clock, migrate=False)  # another server process's
    try:
        elsewhere = other.tenant(sandbox.tenant_id)
        assert elsewhere.now() == clock.now
        later = clock.now + timedelta(days=2)
        sandbox.advance_clock(later)
        assert elsewhere.now() == later
        assert elsewhere.test_clock().offset_seconds == Decimal(2 * 86_400)
        elsewhere.advance_clock(later + timedelta(days=1))  # and back the other way
        assert sandbox.now() == later + timedelta(days=1)
    finally:
        other.close()


def _offset_reads(cg: Creditgate) -> list[str]:
    """The statements that read a tenant's clock offset, from now on."""
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "clock_offset_us" in statement:
            reads.append(statement)

    listen(cg.db.engine, "before_cursor_execute", seen)
    return reads


def test_a_live_tenants_transactions_never_read_its_clock_once_its_key_is_verified(
    cg: Creditgate, db_url: str, clock: FakeClock
) -> None:
    tenant, key = cg.create_tenant_with_key(f"live {uuid.uuid4().hex[:8]}")
    sandbox, _ = cg.create_tenant_with_key(f"sandbox {uuid.uuid4().hex[:8]}", mode="test")
    assert key.key is not None
    fresh = Creditgate(db_url, clock=clock, migrate=False)  # a process that knows no tenant
    try:
        reads = _offset_reads(fresh)
        fresh.authenticate(key.key)
        live = TenantLedger(fresh, tenant.id)
        live.create_asset("credits", 2)
        live.create_customer("c1")
        live.grant("c1", "credits", 1_000)
        assert live.now() == clock.now
        assert reads == []
        # Unverified, a live tenant is read once; a test-mode tenant in every transaction.
        unverified = TenantLedger(fresh, sandbox.id)
        unverified.now()
        unverified.now()
        unverified.test_clock()  # the transaction's own read serves the answer
        assert len(reads) == 3
        other = Creditgate(db_url, clock=clock, migrate=False)
        try:
            reads = _offset_reads(other)
            TenantLedger(other, tenant.id).now()
            TenantLedger(other, tenant.id).now()
            assert len(reads) == 1
        finally:
            other.close()
        # A customer's gateway key verified tells of its tenant too.
        customer_key = TenantGateway(cg.tenant(tenant.id)).create_customer_key("c1").key
        assert customer_key is not None
        gateway = Creditgate(db_url, clock=clock, migrate=False)
        try:
            reads = _offset_reads(gateway)
            authenticate_customer_key(gateway, customer_key)
            TenantLedger(gateway, tenant.id).now()
            assert reads == []
        finally:
            gateway.close()
    finally:
        fresh.close()


def test_advancing_the_clock_expires_holds_and_lots_as_if_the_time_had_passed(
    sandbox: TenantLedger, clock: FakeClock
) -> None:
    sandbox.create_customer("c1")
    sandbox.grant("c1", "credits", 1_000, expires_at=clock.now + timedelta(days=2))
    sandbox.authorize("c1", "credits", 300, ttl_seconds=60, idempotency_key="h1")
    report = sandbox.advance_clock(clock.now + timedelta(days=3))
    assert report.sweeps.holds_expired == 1 and report.sweeps.lots_expired == 1
    assert sandbox.wallet("c1").balance("credits").available == 0


# Plans collected through Stripe


def test_an_unknown_or_mismatched_stripe_price_is_refused_naming_the_field(
    on_stripe: TenantLedger, fake_stripe: FakeStripe
) -> None:
    with pytest.raises(InvalidInput) as unknown:
        on_stripe.create_plan(
            "pro", asset="credits", included=INCLUDED, fee="20", stripe_price="price_nope"
        )
    assert unknown.value.field == "stripe_price"
    with pytest.raises(InvalidInput) as wrong_fee:
        on_stripe.create_plan(
            "pro", asset="credits", included=INCLUDED, fee="25", stripe_price="price_pro"
        )
    assert wrong_fee.value.field == "stripe_price"
    assert on_stripe.plans() == []


def test_subscribing_creates_the_stripe_subscription_and_credit_waits_for_invoice_paid(
    on_stripe: TenantLedger, fake_stripe: FakeStripe
) -> None:
    on_stripe.create_plan(
        "pro", asset="credits", included=INCLUDED, fee="20", stripe_price="price_pro"
    )
    sub = on_stripe.subscribe("c1", "pro", idempotency_key="s1")
    again = on_stripe.subscribe("c1", "pro", idempotency_key="s1")
    assert sub.provider_ref is not None and again.provider_ref == sub.provider_ref
    assert len(fake_stripe.subscriptions) == 1
    made = fake_stripe.subscriptions[sub.provider_ref]
    assert made["metadata"]["creditgate_subscription"] == sub.id
    # A test-mode tenant on Stripe test keys gets its customers on a Stripe test clock.
    assert len(fake_stripe.test_clocks) == 1
    assert sub.payment_status == "awaiting_payment"
    assert sub.periods[0].fee_status == "open" and sub.periods[0].lot_id is None
    assert on_stripe.wallet("c1").balance("credits").available == 0

    first = paid(on_stripe, sub, 0, event_id="evt_paid_0")
    assert (first.outcome, first.subscription_id) == ("paid", sub.id)
    assert deliver_again(on_stripe, sub, "evt_paid_0").outcome == "duplicate"
    # The same payment told again under another event id grants nothing more.
    assert paid(on_stripe, sub, 0).outcome == "already_paid"
    # A failure arriving after the payment (out of order) cannot undo it.
    assert failed(on_stripe, sub, 0).outcome == "already_paid"
    assert on_stripe.wallet("c1").balance("credits").available == INCLUDED
    now = on_stripe.subscription(sub.id)
    assert now.payment_status == "paid" and now.periods[0].fee_status == "paid"
    assert len(events_of(on_stripe, "subscription.paid")) == 1
    invoices = on_stripe.invoices("c1")
    assert [(i.kind, i.status, i.amount) for i in invoices] == [("plan_fee", "paid", Decimal(20))]
    assert invoices[0].pay_url and invoices[0].pay_url.startswith("https://invoice.stripe.com/")


def deliver_again(t: TenantLedger, sub: Any, event_id: str) -> Any:
    period = t.subscription(sub.id).periods[0]
    body = invoice_event(
        "paid",
        tenant=t.tenant_id,
        subscription=sub.id,
        subscription_ref=sub.provider_ref,
        period_start=period.period_start,
        amount=FEE_MINOR,
        invoice_id=f"in_{sub.id[-6:]}_0",
        event_id=event_id,
    )
    return deliver(t, body)


def test_a_payment_that_arrives_before_the_renewal_ran_finds_its_period(
    on_stripe: TenantLedger, clock: FakeClock
) -> None:
    on_stripe.create_plan(
        "pro", asset="credits", included=INCLUDED, fee="20", stripe_price="price_pro"
    )
    sub = on_stripe.subscribe("c1", "pro", idempotency_key="s1")
    paid(on_stripe, sub, 0)
    # A month on, Stripe's invoice for period 1 arrives before the worker renewed.
    clock.set(add_months(sub.current_period_start, 1) + timedelta(minutes=1))
    start = add_months(sub.current_period_start, 1)
    body = invoice_event(
        "paid",
        tenant=on_stripe.tenant_id,
        subscription=sub.id,
        subscription_ref=sub.provider_ref,
        period_start=start,
        amount=FEE_MINOR,
        invoice_id="in_next",
    )
    assert deliver(on_stripe, body).outcome == "paid"
    after = on_stripe.subscription(sub.id)
    assert [p.fee_status for p in after.periods] == ["paid", "paid"]
    assert after.periods[1].lot_id is not None
    assert on_stripe.renew_due().renewed == 0  # already issued by the event


def test_an_invoice_for_a_period_not_started_here_changes_nothing_until_it_has(
    on_stripe: TenantLedger, clock: FakeClock
) -> None:
    on_stripe.create_plan(
        "pro", asset="credits", included=INCLUDED, fee="20", stripe_price="price_pro"
    )
    sub = on_stripe.subscribe("c1", "pro", idempotency_key="s1")
    start = add_months(sub.current_period_start, 1)
    body = invoice_event(
        "paid",
        tenant=on_stripe.tenant_id,
        subscription=sub.id,
        subscription_ref=sub.provider_ref,
        period_start=start,
        amount=FEE_MINOR,
        invoice_id="in_early",
        event_id="evt_early",
    )
    with pytest.raises(PeriodNotIssued):
        deliver(on_stripe, body)
    assert len(on_stripe.subscription(sub.id).periods) == 1
    clock.set(start + timedelta(seconds=1))
    assert deliver(on_stripe, body).outcome == "paid"  # Stripe's retry of the same event
    assert on_stripe.subscription(sub.id).periods[1].fee_status == "paid"


def test_a_year_of_monthly_renewals_with_one_failed_and_retried_payment(
    on_stripe: TenantLedger, clock: FakeClock
) -> None:
    on_stripe.create_plan(
        "pro", asset="credits", included=INCLUDED, fee="20", stripe_price="price_pro"
    )
    sub = on_stripe.subscribe("c1", "pro", idempotency_key="s1")
    anchor = sub.current_period_start
    for month in range(12):
        if month:
            on_stripe.advance_clock(add_months(anchor, month) + timedelta(minutes=5))
        if month == 5:
            assert failed(on_stripe, sub, month).outcome == "failed"
            state = on_stripe.subscription(sub.id)
            assert state.payment_status == "past_due"
            assert state.payment_failure_reason == "card_declined"
            assert state.periods[month].lot_id is None
            assert on_stripe.wallet("c1").balance("credits").available == 0
            # Stripe retries three days later and the card goes through.
            on_stripe.advance_clock(add_months(anchor, month) + timedelta(days=3))
        assert paid(on_stripe, sub, month).outcome == "paid"
        assert on_stripe.wallet("c1").balance("credits").available == INCLUDED
    final = on_stripe.subscription(sub.id)
    assert len(final.periods) == 12
    assert all(p.fee_status == "paid" and p.lot_id for p in final.periods)
    assert final.payment_status == "paid"
    assert len(included_lots(on_stripe)) == 12
    failures = events_of(on_stripe, "subscription.payment_failed")
    assert [(f["period"], f["reason"]) for f in failures] == [(5, "card_declined")]
    assert len(events_of(on_stripe, "subscription.paid")) == 12
    report = on_stripe.revenue_report(start=anchor, end=add_months(anchor, 12))
    (line,) = report.collection
    assert (line.fees_invoiced, line.fees_received, line.fees_unpaid) == (240, 240, 0)
    assert line.included_granted == Decimal(240)  # every period's credit, at its value
    assert [p.included_granted for p in report.fee_periods] == [INCLUDED] * 12


def test_credit_granted_before_payment_is_withheld_after_the_grace_period(
    on_stripe: TenantLedger, clock: FakeClock
) -> None:
    on_stripe.create_plan(
        "pro",
        asset="credits",
        included=INCLUDED,
        fee="20",
        stripe_price="price_pro",
        grant_before_payment=True,
        grace_days=3,
    )
    sub = on_stripe.subscribe("c1", "pro", idempotency_key="s1")
    assert on_stripe.wallet("c1").balance("credits").available == INCLUDED
    on_stripe.charge("c1", "credits", 30_000, idempotency_key="use")
    failed(on_stripe, sub, 0)
    on_stripe.advance_clock(clock.now + timedelta(days=2))
    assert on_stripe.wallet("c1").balance("credits").available == 70_000  # still in grace
    report = on_stripe.advance_clock(clock.now + timedelta(days=4))
    assert report.billing.renewals.withheld == 1
    assert on_stripe.wallet("c1").balance("credits").available == 0
    assert on_stripe.subscription(sub.id).periods[0].withheld == 70_000
    assert events_of(on_stripe, "subscription.credit_withheld")[0]["withheld"] == 70_000
    # Paid at last: what was withheld comes back.
    assert paid(on_stripe, sub, 0).outcome == "paid"
    assert on_stripe.wallet("c1").balance("credits").available == 70_000
    assert on_stripe.subscription(sub.id).periods[0].withheld == 0


def test_stripe_ending_the_subscription_ends_it_here(on_stripe: TenantLedger) -> None:
    on_stripe.create_plan(
        "pro", asset="credits", included=INCLUDED, fee="20", stripe_price="price_pro"
    )
    sub = on_stripe.subscribe("c1", "pro", idempotency_key="s1")
    body = event("payment_intent_succeeded")
    data = __import__("json").loads(body)
    data["type"] = "customer.subscription.deleted"
    data["id"] = "evt_sub_deleted"
    data["data"]["object"] = {
        "id": sub.provider_ref,
        "object": "subscription",
        "metadata": {"creditgate_tenant": on_stripe.tenant_id},
    }
    outcome = deliver(on_stripe, __import__("json").dumps(data))
    assert outcome.outcome == "canceled"
    assert on_stripe.subscription(sub.id).status == "canceled"


# Manual invoices


def test_manual_plan_invoices_grant_credit_when_an_operator_marks_them_paid(
    sandbox: TenantLedger, clock: FakeClock
) -> None:
    sandbox.create_customer("c1")
    sandbox.create_plan("team", asset="credits", included=INCLUDED, fee="50", collection="manual")
    sub = sandbox.subscribe("c1", "team", idempotency_key="s1")
    invoice = sandbox.invoices("c1")[0]
    assert (invoice.status, invoice.amount, invoice.provider) == ("open", Decimal(50), "manual")
    assert sandbox.wallet("c1").balance("credits").available == 0
    failed_once = sandbox.mark_invoice_failed(invoice.id, reason="bounced", idempotency_key="f1")
    assert failed_once.status == "failed"
    assert sandbox.subscription(sub.id).payment_status == "past_due"
    done = sandbox.mark_invoice_paid(invoice.id, idempotency_key="p1")
    assert sandbox.mark_invoice_paid(invoice.id, idempotency_key="p1") == done
    assert sandbox.mark_invoice_paid(invoice.id, idempotency_key="p2").status == "paid"
    assert sandbox.wallet("c1").balance("credits").available == INCLUDED
    assert sandbox.subscription(sub.id).payment_status == "paid"
    # The next period's invoice opens at renewal, its credit waiting for it.
    sandbox.advance_clock(add_months(sub.current_period_start, 1) + timedelta(minutes=1))
    state = sandbox.subscription(sub.id)
    assert state.payment_status == "awaiting_payment"
    assert [i.status for i in sandbox.invoices("c1")] == ["open", "paid"]
    assert sandbox.wallet("c1").balance("credits").available == 0


# Overage in arrears


@pytest.fixture
def metered(sandbox: TenantLedger) -> TenantLedger:
    sandbox.create_customer("c1")
    sandbox.create_plan("payg", asset="credits", included=10_000, fee="10", overage_policy="allow")
    sandbox.set_overage("credits", price="0.05", currency="USD", on_failure="block")
    return sandbox


def test_debt_at_the_period_end_is_billed_once_and_payment_closes_it(
    metered: TenantLedger, clock: FakeClock
) -> None:
    sub = metered.subscribe("c1", "payg", idempotency_key="s1")
    metered.charge("c1", "credits", 14_000, idempotency_key="use")  # 40.00 credits of debt
    assert metered.wallet("c1").balance("credits").debt == 4_000
    assert metered.bill_overage().billed == 0  # the period has not ended
    end = sub.current_period_end
    first = metered.advance_clock(end + timedelta(minutes=1))
    assert first.billing.overage.billed == 1
    assert metered.bill_overage().billed == 0  # once per cycle, however often it runs
    bills = [i for i in metered.invoices("c1") if i.kind == "overage"]
    assert [(b.status, b.debt, b.amount) for b in bills] == [("open", 4_000, Decimal("2"))]
    billed = events_of(metered, "overage.billed")
    assert [(b["debt"], b["amount"]) for b in billed] == [(4_000, "2")]
    # The renewal's included credit paid the debt down first: the payment's credit stays.
    metered.mark_paid(bills[0].id, idempotency_key="pay")
    assert metered.wallet("c1").balance("credits").debt == 0
    assert events_of(metered, "overage.paid")[0]["purchase"] == bills[0].id
    report = metered.revenue_report(start=sub.current_period_start, end=end + timedelta(days=2))
    (line,) = report.collection
    assert (line.overage_billed, line.overage_collected, line.overage_unpaid) == (2, 2, 0)


def test_a_cycle_billed_and_paid_is_not_billed_again_when_debt_comes_back(
    metered: TenantLedger,
) -> None:
    sub = metered.subscribe("c1", "payg", idempotency_key="s1")
    metered.charge("c1", "credits", 14_000, idempotency_key="use")  # 4_000 of debt
    metered.advance_clock(sub.current_period_end + timedelta(minutes=1))
    (bill,) = [i for i in metered.invoices("c1") if i.kind == "overage"]
    metered.mark_paid(bill.id, idempotency_key="pay")  # 10_000 available after it
    metered.charge("c1", "credits", 12_000, idempotency_key="more")  # new debt, same cycle
    assert metered.bill_overage().billed == 0  # it waits for this cycle's end
    metered.set_overage("credits", price="0.05", threshold=1_000)
    assert metered.bill_overage().billed == 1  # or a threshold
    debts = [i.debt for i in metered.invoices("c1") if i.kind == "overage"]
    assert sorted(debts) == [2_000, 4_000]  # type: ignore[type-var]


def test_a_threshold_bills_debt_before_the_period_ends(metered: TenantLedger) -> None:
    metered.set_overage("credits", price="0.05", threshold=2_000)
    metered.subscribe("c1", "payg", idempotency_key="s1")
    metered.charge("c1", "credits", 11_000, idempotency_key="a")
    assert metered.bill_overage().billed == 0  # 1,000 owed: under the threshold
    metered.charge("c1", "credits", 2_000, idempotency_key="b")
    assert metered.bill_overage().billed == 1  # 3,000 owed
    assert metered.bill_overage().billed == 0  # all of it billed


def test_a_bill_paid_while_the_biller_reads_is_not_billed_again(
    metered: TenantLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The biller reads a wallet's debt and the debt already billed of it as of one moment:
    a bill paid between the two reads is in both or in neither, never billed a second time."""
    metered.set_overage("credits", price="0.05", threshold=2_000)
    metered.subscribe("c1", "payg", idempotency_key="s1")
    metered.charge("c1", "credits", 13_000, idempotency_key="a")  # 3,000 owed
    assert metered.bill_overage().billed == 1
    (bill,) = [i for i in metered.invoices("c1") if i.kind == "overage"]
    paying: list[threading.Thread] = []
    outcome: list[object] = []

    def pay() -> None:
        try:
            outcome.append(metered.mark_paid(bill.id, idempotency_key="pay"))
        except Exception as exc:  # the test reads it below
            outcome.append(exc)

    read_billed = store.open_billed_debt

    def paid_in_between(conn: Any, wallet_id: str, asset: str) -> int:
        if not paying:  # the first wallet read: its bill is paid now, from elsewhere
            paying.append(threading.Thread(target=pay))
            paying[0].start()
            paying[0].join(2.0)  # it waits on the biller's lock, or it has committed
        return read_billed(conn, wallet_id, asset)

    monkeypatch.setattr(store, "open_billed_debt", paid_in_between)
    assert metered.bill_overage().billed == 0
    paying[0].join(30.0)
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    monkeypatch.undo()
    bills = [i for i in metered.invoices("c1") if i.kind == "overage"]
    assert [(b.status, b.debt) for b in bills] == [("paid", 3_000)]
    assert metered.wallet("c1").balance("credits").debt == 0
    assert metered.bill_overage().billed == 0


def test_a_failed_overage_payment_stops_the_wallet_by_the_tenants_rule(
    metered: TenantLedger, clock: FakeClock
) -> None:
    sub = metered.subscribe("c1", "payg", idempotency_key="s1")
    metered.charge("c1", "credits", 14_000, idempotency_key="use")
    clock.set(sub.current_period_end + timedelta(minutes=1))
    assert metered.bill_overage().billed == 1  # billed before the renewal's credit
    bill = next(i for i in metered.invoices("c1") if i.kind == "overage")
    metered.mark_failed(bill.id, reason="no funds", idempotency_key="f")
    failure = events_of(metered, "overage.payment_failed")[0]
    assert failure["wallet_stopped"] == "overdraft"
    balance = metered.wallet("c1").balance("credits")
    assert (balance.policy, balance.overdraft_limit) == ("overdraft", 4_000)
    declined = metered.authorize("c1", "credits", 1, idempotency_key="more")
    assert declined.status == "declined"
    # Written off: the debt leaves the wallet worth nothing, and the wallet blocks.
    metered.write_off(bill.id, idempotency_key="w")
    balance = metered.wallet("c1").balance("credits")
    assert (balance.debt, balance.policy) == (0, "block")
    report = metered.revenue_report(
        start=sub.current_period_start, end=sub.current_period_end + timedelta(days=1)
    )
    (line,) = report.collection
    assert (line.overage_billed, line.overage_written_off, line.overage_collected) == (2, 2, 0)


def test_overage_billed_through_stripe_once_under_a_crash_between_billing_and_recording(
    sandbox: TenantLedger,
    fake_stripe: FakeStripe,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox.set_provider_account("stripe", api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    sandbox.create_customer("c1", policy="allow")
    sandbox.save_payment_method("c1", "stripe", "pm_card_visa", customer_ref="cus_1")
    sandbox.set_overage("credits", price="0.05", provider="stripe")
    sandbox.charge("c1", "credits", 4_000, idempotency_key="use")
    month = datetime(clock.now.year, clock.now.month, 1, tzinfo=UTC)
    sandbox.advance_clock(add_months(month, 1) - timedelta(minutes=1))
    real = purchases.complete_purchase
    crashes = {"left": 1}

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        if crashes["left"]:
            crashes["left"] -= 1
            raise RuntimeError("the process died after Stripe took the money")
        return real(*args, **kwargs)

    monkeypatch.setattr(purchases, "complete_purchase", crash_once)
    with pytest.raises(RuntimeError):
        sandbox.advance_clock(add_months(month, 1) + timedelta(minutes=1))
    assert sandbox.wallet("c1").balance("credits").debt == 4_000
    assert len(fake_stripe.calls("/v1/payment_intents")) == 1
    # The next round bills nothing new, and sends the unanswered bill again two minutes on.
    report = sandbox.advance_clock(add_months(month, 1) + timedelta(minutes=4))
    assert (report.billing.overage.billed, report.billing.overage.sent) == (0, 1)
    intents = fake_stripe.calls("/v1/payment_intents")
    assert len(intents) == 2 and len({c["idempotency_key"] for c in intents}) == 1
    assert sandbox.wallet("c1").balance("credits").debt == 0
    bills = [i for i in sandbox.invoices("c1") if i.kind == "overage"]
    assert [(b.status, b.amount) for b in bills] == [("paid", Decimal(2))]
    # Stripe's own event for the same payment changes nothing more.
    body = event(
        "payment_intent_succeeded",
        purchase=bills[0].id,
        tenant=sandbox.tenant_id,
        amount=200,
        amount_received=200,
        id=bills[0].provider_ref,
    )
    assert deliver(sandbox, body).outcome == "already_paid"
    assert sandbox.bill_overage().billed == 0


# The soft cap


def test_a_soft_cap_lets_usage_past_zero_and_tells_once_per_crossing(
    sandbox: TenantLedger,
) -> None:
    sandbox.create_customer("c1", policy="soft_cap", overdraft_limit=500)
    sandbox.grant("c1", "credits", 1_000)
    for n in range(3):
        assert sandbox.charge("c1", "credits", 400, idempotency_key=f"u{n}").status == "posted"
    assert sandbox.wallet("c1").balance("credits").available == -200
    reached = events_of(sandbox, "balance.soft_cap_reached")
    assert [(r["available"], r["limit"]) for r in reached] == [(-200, 500)]
    declined = sandbox.authorize("c1", "credits", 400, idempotency_key="over")
    assert declined.status == "declined"
    sandbox.grant("c1", "credits", 1_000)  # back above zero, then below again
    sandbox.charge("c1", "credits", 900, idempotency_key="again")
    assert len(events_of(sandbox, "balance.soft_cap_reached")) == 2


def test_a_plan_gives_its_subscribers_a_soft_cap(sandbox: TenantLedger) -> None:
    sandbox.create_customer("c2")
    sandbox.create_plan(
        "capped", asset="credits", included=1_000, fee="5", overage_policy="soft_cap",
        overdraft_limit=300,
    )  # fmt: skip
    sandbox.subscribe("c2", "capped", idempotency_key="s2")
    balance = sandbox.wallet("c2").balance("credits")
    assert (balance.policy, balance.overdraft_limit) == ("soft_cap", 300)
    sandbox.charge("c2", "credits", 1_200, idempotency_key="past")
    assert [e["available"] for e in events_of(sandbox, "balance.soft_cap_reached")] == [-200]
    assert sandbox.authorize("c2", "credits", 101, idempotency_key="no").status == "declined"


def test_concurrent_billing_runs_bill_a_cycle_once(metered: TenantLedger, clock: FakeClock) -> None:
    for customer in ("c2", "c3"):
        metered.create_customer(customer, policy="allow")
        metered.charge(customer, "credits", 3_000, idempotency_key=f"use-{customer}")
    month = datetime(clock.now.year, clock.now.month, 1, tzinfo=UTC)
    clock.set(add_months(month, 1) + timedelta(minutes=1))
    start = threading.Barrier(4)
    billed: list[int] = []

    def run() -> None:
        start.wait()
        billed.append(metered.bill_overage().billed)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(billed) == 2  # one bill per wallet, whichever run made it
    bills = [i for c in ("c2", "c3") for i in metered.invoices(c) if i.kind == "overage"]
    assert sorted(b.debt for b in bills if b.debt is not None) == [3_000, 3_000]
