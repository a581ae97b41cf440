"""Auto top-up: once per crossing under concurrent charges and workers, never while one is in
flight, within a monthly limit; Stripe off-session payments, declines with backoff, and a
payment whose outcome was lost charged again under the same idempotency key."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from creditgate.api import TenantLedger
from creditgate.services.billing.auto_top_up import STALE_AFTER
from tests.conftest import FakeClock
from tests.integration.test_plans import events_of
from tests.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe

THRESHOLD = 5_000


@pytest.fixture
def wallet(ledger: TenantLedger) -> TenantLedger:
    ledger.create_customer("c1")
    ledger.create_pack("refill", asset="credits", amount=10_000, price="25.00")
    ledger.grant("c1", "credits", 10_000, kind="purchased", cost_basis="0.25")
    return ledger


def available(t: TenantLedger) -> int:
    return t.wallet("c1").balance("credits").available


def concurrently(*jobs: object, times: int = 4) -> None:
    """Run each job `times` times, all threads released at once."""
    work = [job for job in jobs for _ in range(times)]
    barrier = threading.Barrier(len(work))
    errors: list[BaseException] = []

    def run(job: object) -> None:
        barrier.wait()
        try:
            job()  # type: ignore[operator]
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_one_purchase_per_crossing_under_concurrent_charges(
    wallet: TenantLedger, clock: FakeClock
) -> None:
    wallet.set_auto_top_up(
        "c1", "credits", threshold=THRESHOLD, pack="refill", provider="manual", monthly_limit=2
    )
    assert wallet.run_auto_top_ups().started == 0  # above the threshold: nothing to do
    # Eight charges of 1,000 take 10,000 down past 5,000 while workers scan.
    concurrently(
        lambda: wallet.charge("c1", "credits", 1_000),
        lambda: wallet.run_auto_top_ups(),
        times=8,
    )
    wallet.run_auto_top_ups()
    assert available(wallet) == 2_000
    (first,) = wallet.purchases("c1")
    assert (first.status, first.origin, first.amount) == ("pending", "auto_top_up", 10_000)
    (setting,) = wallet.auto_top_ups("c1")
    assert setting.in_flight_purchase_id == first.id and not setting.armed

    # Still below, still in flight: no second purchase however often it runs.
    concurrently(lambda: wallet.run_auto_top_ups(), times=4)
    wallet.charge("c1", "credits", 1_000)
    assert wallet.run_auto_top_ups().started == 0
    assert len(wallet.purchases("c1")) == 1

    # Paid: the credit arrives, the balance is back above and the payment re-armed it, so
    # the next crossing fires (in the charge that makes it).
    wallet.mark_paid(first.id)
    assert available(wallet) == 11_000
    (setting,) = wallet.auto_top_ups("c1")
    assert setting.armed and setting.in_flight_purchase_id is None
    wallet.charge("c1", "credits", 7_000)
    concurrently(lambda: wallet.run_auto_top_ups(), times=4)
    second = wallet.purchases("c1")[0]
    assert second.id != first.id and second.status == "pending"
    assert len(wallet.purchases("c1")) == 2
    wallet.mark_paid(second.id)

    # The monthly limit (2) is reached: the third crossing buys nothing and says so.
    wallet.charge("c1", "credits", 12_000)
    assert events_of(wallet, "topup.failed")[-1]["reason"] == "monthly_limit_reached"
    report = wallet.run_auto_top_ups()
    assert (report.started, report.capped) == (0, 0)  # once per crossing
    assert len(wallet.purchases("c1")) == 2
    assert len(events_of(wallet, "topup.failed")) == 1
    # A new month, a new crossing: it fires again.
    clock.set(datetime(2026, 2, 1, 0, 5, tzinfo=UTC))
    wallet.grant("c1", "credits", 10_000)
    wallet.charge("c1", "credits", 9_000)
    assert len(wallet.purchases("c1")) == 3
    assert wallet.run_auto_top_ups().started == 0  # an invoice: nothing to send


def test_stripe_off_session_top_up_declines_back_off_and_succeed(
    wallet: TenantLedger, clock: FakeClock, fake_stripe: FakeStripe
) -> None:
    wallet.set_provider_account("stripe", api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    wallet.save_payment_method(
        "c1", "stripe", "pm_1QxYzAbCdEfGhIjKlMnOpQr", customer_ref="cus_RaBcDeFgHiJkLm"
    )
    wallet.set_auto_top_up("c1", "credits", threshold=THRESHOLD, pack="refill")
    wallet.charge("c1", "credits", 6_000)

    fake_stripe.decline = True
    report = wallet.run_auto_top_ups()
    assert (report.started, report.failed) == (1, 1)
    (declined,) = wallet.purchases("c1")
    assert declined.status == "failed" and declined.failure_reason is not None
    assert "card_declined" in declined.failure_reason
    assert events_of(wallet, "topup.failed")[-1]["purchase"] == declined.id
    (setting,) = wallet.auto_top_ups("c1")
    assert setting.failures == 1 and setting.backoff_until == clock.now + timedelta(minutes=5)
    assert setting.month_count == 0  # a failed purchase does not count
    # Backing off: nothing is tried again yet.
    clock.advance(minutes=4)
    assert wallet.run_auto_top_ups().started == 0

    fake_stripe.decline = False
    clock.advance(minutes=2)
    report = wallet.run_auto_top_ups()
    assert (report.started, report.succeeded) == (1, 1)
    paid = wallet.purchases("c1")[0]
    assert paid.status == "paid" and paid.payment_ref is not None
    assert available(wallet) == 14_000
    (intent, retry) = fake_stripe.calls("/v1/payment_intents")
    assert retry["form"]["off_session"] == "true" and retry["form"]["confirm"] == "true"
    assert retry["form"]["payment_method"] == "pm_1QxYzAbCdEfGhIjKlMnOpQr"
    assert retry["form"]["customer"] == "cus_RaBcDeFgHiJkLm"
    assert (retry["form"]["amount"], retry["form"]["currency"]) == ("2500", "usd")
    assert retry["idempotency_key"] == f"creditgate-topup-{paid.id}"
    assert intent["idempotency_key"] == f"creditgate-topup-{declined.id}"
    (setting,) = wallet.auto_top_ups("c1")
    assert (setting.failures, setting.in_flight_purchase_id) == (0, None)
    assert events_of(wallet, "topup.succeeded")[-1]["purchase"] == paid.id


def test_a_lost_answer_is_charged_again_as_the_same_payment(
    wallet: TenantLedger, clock: FakeClock, fake_stripe: FakeStripe
) -> None:
    wallet.set_provider_account("stripe", api_key=API_KEY)
    wallet.save_payment_method("c1", "stripe", "pm_card_visa")
    wallet.set_auto_top_up("c1", "credits", threshold=THRESHOLD, pack="refill")
    wallet.charge("c1", "credits", 6_000)
    fake_stripe.fail_next = 10  # Stripe answers 500: the outcome is unknown
    report = wallet.run_auto_top_ups()
    assert (report.started, report.pending) == (1, 1)
    (purchase,) = wallet.purchases("c1")
    assert purchase.status == "pending"
    assert wallet.run_auto_top_ups().started == 0  # in flight: nothing new
    fake_stripe.fail_next = 0
    clock.advance(seconds=STALE_AFTER.total_seconds() + 1)
    report = wallet.run_auto_top_ups()
    assert (report.started, report.succeeded) == (0, 1)
    assert wallet.purchase(purchase.id).status == "paid"
    keys = {r["idempotency_key"] for r in fake_stripe.calls("/v1/payment_intents")}
    assert keys == {f"creditgate-topup-{purchase.id}"}
    assert available(wallet) == 14_000
