"""Auto top-up decided by the balance movements themselves: the movement that lifts available
to the threshold re-arms, the one that takes it below buys, whatever the worker samples;
one purchase per crossing, one in flight, within the monthly limit; and a debit that crosses
nothing does no auto top-up work."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from creditgate.api import TenantLedger
from creditgate.services.billing.results import AutoTopUp, Purchase
from tests.conftest import FakeClock
from tests.integration.test_plans import events_of

THRESHOLD = 1_000


@pytest.fixture
def shop(ledger: TenantLedger) -> TenantLedger:
    """c1 holds 1,100 credits; a pack sells 160 for $1.60; auto top-up below 1,000."""
    ledger.create_customer("c1")
    ledger.create_pack("small", asset="credits", amount=160, price="1.60")
    ledger.grant("c1", "credits", 1_100, kind="purchased", cost_basis="0.01")
    ledger.set_auto_top_up("c1", "credits", threshold=THRESHOLD, pack="small", provider="manual")
    return ledger


def available(t: TenantLedger) -> int:
    return t.wallet("c1").balance("credits").available


def setting(t: TenantLedger) -> AutoTopUp:
    (found,) = t.auto_top_ups("c1")
    return found


def pending(t: TenantLedger) -> list[Purchase]:
    return [p for p in t.purchases("c1") if p.status == "pending"]


@pytest.fixture
def worker(shop: TenantLedger) -> Iterator[None]:
    """The auto top-up worker running flat out for the whole test, as a server's would."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                shop.run_auto_top_ups()
            except BaseException as exc:  # surfaced at the end
                errors.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    yield
    stop.set()
    thread.join()
    assert not errors, errors


def test_the_crossing_right_after_a_paid_top_up_buys_again(shop: TenantLedger) -> None:
    shop.charge("c1", "credits", 200)  # 1,100 -> 900: the charge itself buys
    (first,) = pending(shop)
    assert (first.origin, first.amount) == ("auto_top_up", 160)
    assert not setting(shop).armed and setting(shop).in_flight_purchase_id == first.id

    shop.mark_paid(first.id)  # 900 -> 1,060: the payment frees the slot and re-arms
    assert available(shop) == 1_060
    after_payment = setting(shop)
    assert after_payment.armed and after_payment.in_flight_purchase_id is None
    shop.charge("c1", "credits", 160)  # 1,060 -> 900, before any worker has looked

    (second,) = pending(shop)
    assert second.id != first.id
    now = setting(shop)
    assert (now.armed, now.in_flight_purchase_id, now.month_count) == (False, second.id, 2)
    # Still below and in flight: more charges buy nothing more.
    shop.charge("c1", "credits", 100)
    assert shop.run_auto_top_ups().started == 0
    assert pending(shop) == [second]


def test_every_crossing_buys_once_while_a_worker_samples_throughout(
    shop: TenantLedger, worker: None
) -> None:
    shop.charge("c1", "credits", 200)
    for _ in range(12):
        (in_flight,) = pending(shop)
        shop.mark_paid(in_flight.id)  # to 1,060
        shop.charge("c1", "credits", 160)  # and straight back to 900
        (bought,) = pending(shop)
        assert bought.id != in_flight.id
    assert available(shop) == 900
    assert len(shop.purchases("c1")) == 13
    assert len(events_of(shop, "topup.succeeded")) == 12


def test_concurrent_debits_across_the_threshold_buy_once(shop: TenantLedger, worker: None) -> None:
    shop.charge("c1", "credits", 100)  # 1,000: armed, nothing bought
    assert setting(shop).armed and pending(shop) == []
    barrier = threading.Barrier(8)

    def debit(n: int) -> None:
        barrier.wait()
        if n % 2:
            shop.charge("c1", "credits", 20, idempotency_key=f"d{n}")
        else:
            shop.authorize("c1", "credits", 20, idempotency_key=f"d{n}")

    threads = [threading.Thread(target=debit, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert available(shop) == 840
    assert len(pending(shop)) == 1
    assert setting(shop).month_count == 1


def test_holds_and_their_release_cross_the_threshold_too(
    shop: TenantLedger, clock: FakeClock
) -> None:
    hold = shop.authorize("c1", "credits", 150)  # 1,100 -> 950 available: buys
    (first,) = pending(shop)
    shop.void(hold.id)  # back to 1,100: re-armed, though the purchase is still in flight
    assert setting(shop).armed and setting(shop).in_flight_purchase_id == first.id
    shop.authorize("c1", "credits", 150, ttl_seconds=60)  # a crossing while one is in flight
    assert pending(shop) == [first]  # never two in flight
    clock.advance(seconds=61)
    shop.run_sweeps()  # the hold expires: 1,100 again
    shop.mark_paid(first.id)  # 1,260
    shop.charge("c1", "credits", 300)  # 960: the next crossing buys
    assert len(pending(shop)) == 1 and pending(shop)[0].id != first.id


def test_the_monthly_limit_stops_a_crossing_once_and_says_so(shop: TenantLedger) -> None:
    shop.set_auto_top_up(
        "c1", "credits", threshold=THRESHOLD, pack="small", provider="manual", monthly_limit=1
    )
    shop.charge("c1", "credits", 200)  # buys the month's one
    shop.mark_paid(pending(shop)[0].id)
    shop.charge("c1", "credits", 160)  # crosses at the limit: refused, said once
    assert pending(shop) == []
    (capped,) = events_of(shop, "topup.failed")
    assert capped["reason"] == "monthly_limit_reached" and capped["purchase"] is None
    shop.charge("c1", "credits", 10)
    assert shop.run_auto_top_ups().capped == 0
    assert len(events_of(shop, "topup.failed")) == 1
    # The next crossing is refused too, and said again: once per crossing.
    shop.grant("c1", "credits", 500)
    shop.charge("c1", "credits", 500)
    assert [e["reason"] for e in events_of(shop, "topup.failed")] == ["monthly_limit_reached"] * 2


@pytest.mark.parametrize("why", ["pack_not_active", "provider_not_configured"])
def test_a_crossing_that_cannot_buy_never_fails_the_debit(shop: TenantLedger, why: str) -> None:
    if why == "pack_not_active":
        shop.set_pack_active("small", active=False)
    else:
        shop.set_provider_account("stripe", api_key="sk_test_x")
        shop.set_auto_top_up("c1", "credits", threshold=THRESHOLD, pack="small")
        shop.set_provider_account("stripe", api_key=None)
    charged = shop.charge("c1", "credits", 200)
    assert charged.status == "posted" and available(shop) == 900
    assert shop.purchases("c1") == []
    (failed,) = events_of(shop, "topup.failed")
    assert (failed["reason"], failed["origin"]) == (why, "auto_top_up")
    assert not setting(shop).armed  # said once for this crossing


def test_a_setting_changed_above_its_threshold_is_armed(shop: TenantLedger) -> None:
    shop.charge("c1", "credits", 200)  # 900: bought, disarmed
    shop.mark_failed(pending(shop)[0].id)  # failed: re-armed, backing off
    shop.set_auto_top_up("c1", "credits", threshold=500, pack="small", provider="manual")
    assert setting(shop).armed
    shop.set_auto_top_up(
        "c1", "credits", threshold=500, pack="small", provider="manual", enabled=False
    )
    shop.charge("c1", "credits", 500)  # 400: disabled, nothing happens
    assert pending(shop) == [] and setting(shop).armed


def careful_reruns(t: TenantLedger) -> int:
    return int(t.cg.db.stats["careful_reruns"])


def test_a_debit_crossing_nothing_stays_on_the_one_round_trip_path(
    shop: TenantLedger, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("the one-round-trip path is PostgreSQL's")
    shop.create_customer("plain")
    shop.grant("plain", "credits", 10_000)
    before = careful_reruns(shop)
    shop.charge("plain", "credits", 100)  # no auto top-up
    shop.charge("c1", "credits", 50)  # auto top-up, far from its threshold: 1,050
    assert careful_reruns(shop) == before
    shop.charge("c1", "credits", 100)  # crosses: the careful path buys
    assert careful_reruns(shop) == before + 1
    assert len(pending(shop)) == 1
    shop.charge("c1", "credits", 100)  # below, crossing nothing
    assert careful_reruns(shop) == before + 1


def test_verify_names_a_setting_disarmed_at_or_above_its_threshold(shop: TenantLedger) -> None:
    from sqlalchemy import update

    from creditgate.storage.tables import auto_top_ups, wallet_balances

    def set_row(table: Any, **values: Any) -> None:
        shop.cg.db.run(
            lambda conn: conn.execute(
                update(table).where(table.c.tenant_id == shop.tenant_id).values(**values)
            )
        )

    set_row(auto_top_ups, armed=0)
    found = shop.cg.verify(shop.tenant_id).violations
    # In the asset's units (credits have 2 decimals), as a person reads them.
    assert any("is disarmed at 11.00 credits, at or above 10.00 credits" in v for v in found), found
    set_row(auto_top_ups, armed=1)
    set_row(wallet_balances, top_up_threshold=None)
    found = shop.cg.verify(shop.tenant_id).violations
    assert any("carries threshold none, its setting 10.00 credits" in v for v in found), found
    set_row(wallet_balances, top_up_threshold=THRESHOLD)
