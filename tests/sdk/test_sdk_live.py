"""End to end: the SDK against a live `creditgate serve` process, on SQLite and PostgreSQL:
the session's served creditgate (tests/served.py), with a tenant of this module's own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

import creditgate_sdk as sdk
from creditgate_sdk import AsyncClient, AsyncGuard, ChargeEvent, Client, Guard, RetryPolicy
from tests.sdk import llm_objects as llm
from tests.sdk.conftest import RATE
from tests.served import Served

GRANTED = 10_000


@dataclass(frozen=True)
class Live:
    backend: str
    base_url: str
    api_key: str


@pytest.fixture(scope="module")
def live(served: Served) -> Live:
    """A tenant of this module's own, with a `credits` asset, in the session's served
    creditgate on the backend (tests/served.py)."""
    tenant = served.tenant("sdk live")
    return Live(served.backend, served.base, tenant.key)


@pytest.fixture
def cg(live: Live) -> Iterator[Client]:
    with Client(live.base_url, live.api_key, price=RATE) as client:
        yield client


@pytest.fixture
def customer(cg: Client) -> str:
    """A new customer with 10,000 purchased minor units of credit."""
    customer = f"cust_{uuid.uuid4().hex[:10]}"
    cg.create_customer(customer, name="Ada", metadata={"plan": "pro"})
    cg.grant(customer, "credits", GRANTED, kind="purchased", cost_basis="0.0025")
    return customer


def _available(cg: Client, customer: str) -> int:
    return cg.wallet(customer).balance("credits").available


def test_customers_wallets_and_grants(cg: Client, customer: str) -> None:
    found = cg.customer(customer)
    assert found.external_id == customer and found.metadata == {"plan": "pro"}
    balance = cg.wallet(customer).balance("credits")
    assert (balance.posted, balance.held, balance.available, balance.scale) == (
        GRANTED,
        0,
        GRANTED,
        2,
    )
    (lot,) = cg.grants(customer)
    assert lot.kind == "purchased" and lot.remaining == GRANTED
    assert lot.cost_basis == Decimal("0.0025")
    assert any(a.code == "credits" for a in cg.assets())
    with pytest.raises(sdk.AlreadyExists):
        cg.create_customer(customer)


def test_authorize_settle_and_void(cg: Client, customer: str) -> None:
    auth = cg.authorize(customer, "credits", 3_000, ttl_seconds=120, metadata={"req": "1"})
    assert (auth.status, auth.approved, auth.available) == ("pending", True, GRANTED - 3_000)
    assert cg.wallet(customer).balance("credits").held == 3_000

    settled = cg.settle(auth.id, 2_200, action="chat.completion")
    assert settled.authorization.status == "settled" and settled.charge.amount == 2_200
    assert [d.cost_basis for d in settled.charge.draws] == [Decimal("0.0025")]
    assert _available(cg, customer) == GRANTED - 2_200
    with pytest.raises(sdk.HoldAlreadySettled):
        cg.settle(auth.id, 1)

    other = cg.authorize(customer, "credits", 500)
    assert cg.void(other.id).status == "voided"
    assert cg.authorization(other.id).status == "voided"
    with pytest.raises(sdk.HoldAlreadyVoided):
        cg.void(other.id)
    assert _available(cg, customer) == GRANTED - 2_200


def test_members_budgets_and_usage(cg: Client, customer: str) -> None:
    alice = cg.create_member(customer, "alice", name="Alice", metadata={"team": "ml"})
    assert (alice.status, alice.metadata) == ("active", {"team": "ml"})
    budget = cg.set_budget(customer, "credits", 1_000, period="day", member="alice")
    assert (budget.member, budget.mode, budget.thresholds) == ("alice", "hard", ())
    with cg.guard(customer, amount=600, member="alice") as g:
        assert g.authorization is not None and g.authorization.member == "alice"
        g.settle(amount=500)
    refused = cg.charge(customer, "credits", 600, member="alice")
    assert (refused.status, refused.decline_reason) == ("declined", "budget_exceeded")
    (period,) = cg.usage(customer, member="alice").data
    assert (period.spent, period.held, period.remaining) == (500, 0, 500)
    cg.set_budget(customer, "credits", 10_000, period="total")
    assert [b.period for b in cg.budgets(customer)] == ["total"]
    cg.delete_budget(customer, "credits")
    assert cg.budgets(customer) == []
    assert cg.update_member(customer, "alice", active=False).status == "inactive"
    assert cg.remove_member(customer, "alice").status == "removed"
    assert cg.members(customer) == [] and len(cg.members(customer, include_removed=True)) == 1
    with pytest.raises(sdk.UnknownMember):
        cg.authorize(customer, "credits", 1, member="bob")
    with pytest.raises(sdk.MemberRemoved):
        cg.set_budget(customer, "credits", 1, period="day", member="alice")


def test_a_guarded_function_counts_in_its_member_budget(cg: Client, customer: str) -> None:
    for member in ("ada", "bob"):
        cg.create_member(customer, member)
        cg.set_budget(customer, "credits", 1_000, period="day", member=member)
    calls: list[str | None] = []

    @cg.guarded(amount=600)
    def ask(customer: str, prompt: str, member: str | None = None) -> None:
        Guard.current().settle(amount=400)
        calls.append(member)

    @cg.guarded(amount=600, member=lambda customer, user: user["id"])
    def ask_as(customer: str, user: dict[str, str]) -> None:
        Guard.current().settle(amount=400)
        calls.append(user["id"])

    ask(customer, "hello", member="ada")  # from the function's own `member` argument
    ask_as(customer, {"id": "bob"})  # from `member=`, a function of the arguments
    ask(customer, "again", member="ada")
    with pytest.raises(sdk.Declined) as declined:  # 800 spent, 600 more does not fit
        ask(customer, "once more", member="ada")
    assert declined.value.authorization.decline_reason == "budget_exceeded"
    assert "member ada's budget has 200 of 1000 credits left" in str(declined.value)
    ask(customer, "no member")  # the customer's own call: no budget of ada's or bob's
    assert calls == ["ada", "bob", "ada", None]
    spent = {m: cg.usage(customer, member=m).data[0].spent for m in ("ada", "bob")}
    assert spent == {"ada": 800, "bob": 400}


@pytest.mark.anyio
async def test_async_members_and_policy_thresholds(live: Live, customer: str) -> None:
    async with AsyncClient(live.base_url, live.api_key) as cg:
        await cg.create_member(customer, "bob")
        await cg.set_budget(customer, "credits", 300, period="week", member="bob")
        charge = await cg.charge(customer, "credits", 200, member="bob")
        assert charge.member == "bob"
        usage = await cg.usage(customer, member="bob")
        assert usage.data[0].spent == 200
        policy = await cg.set_policy(customer, "credits", "block", thresholds=[5_000, 1_000])
        assert policy.thresholds == (5_000, 1_000)

        @cg.guarded(amount=100, member="bob")
        async def ask(customer: str) -> None:
            await AsyncGuard.current().settle(amount=100)

        with pytest.raises(sdk.Declined):  # 200 + 100 held fits; the settle makes 300
            await ask(customer)
            await ask(customer)
        assert (await cg.usage(customer, member="bob")).data[0].spent == 300


def test_a_decline_is_an_answer(cg: Client, customer: str) -> None:
    auth = cg.authorize(customer, "credits", GRANTED + 1)
    assert (auth.status, auth.approved, auth.decline_reason) == (
        "declined",
        False,
        "insufficient_funds",
    )
    assert auth.available == GRANTED


def test_idempotency_keys_replay_and_conflict(cg: Client, customer: str) -> None:
    key = f"req-{uuid.uuid4().hex}"
    first = cg.authorize(customer, "credits", 1_000, idempotency_key=key)
    assert cg.authorize(customer, "credits", 1_000, idempotency_key=key).id == first.id
    with pytest.raises(sdk.IdempotencyConflict):
        cg.authorize(customer, "credits", 2_000, idempotency_key=key)
    assert cg.wallet(customer).balance("credits").held == 1_000


def test_the_guard_around_real_llm_responses(cg: Client, customer: str) -> None:
    completion = llm.chat_completion(prompt=1_200, completion=300, cached=1_000)
    with cg.guard(
        customer, "chat.completion", model="gpt-4.1", input_tokens=1_200, max_tokens=800
    ) as g:
        assert cg.wallet(customer).balance("credits").held == 440
        g.settle(completion)
    assert g.settlement is not None and g.settlement.charge.amount == 165
    assert g.settlement.charge.metadata["usage"]["cached_tokens"] == 1_000
    assert _available(cg, customer) == GRANTED - 165

    ran = False
    with pytest.raises(sdk.Declined) as declined:  # noqa: SIM117
        with cg.guard(customer, "image.generate", amount=GRANTED):
            ran = True
    assert not ran and declined.value.available == GRANTED - 165

    with pytest.raises(TimeoutError), cg.guard(customer, amount=1_000):
        raise TimeoutError("the model did not answer")
    balance = cg.wallet(customer).balance("credits")
    assert (balance.held, balance.available) == (0, GRANTED - 165)


@pytest.mark.anyio
async def test_the_async_guard_over_a_streamed_anthropic_message(live: Live, customer: str) -> None:
    async with AsyncClient(live.base_url, live.api_key, price=RATE) as acg:
        async with acg.guard(customer, "chat.completion", max_tokens=1_000) as g:
            for event in llm.message_stream(600, 70, cache_read=400):
                g.observe(event)
            settlement = await g.settle()
        assert settlement.charge.amount == 60 + 10 + 28
        wallet = await acg.wallet(customer)
    assert wallet.balance("credits").available == GRANTED - 98


def test_charges_one_at_a_time_and_in_batches(cg: Client, customer: str) -> None:
    charge = cg.charge(customer, "credits", 500, action="tts.speak")
    assert (charge.status, charge.amount) == ("posted", 500)
    declined = cg.charge(customer, "credits", GRANTED)
    assert declined.status == "declined" and declined.amount == 0

    events = [
        ChargeEvent(customer=customer, asset="credits", amount=100, action="tts.speak"),
        ChargeEvent(customer="nobody_at_all", asset="credits", amount=100),
    ]
    key = f"batch-{uuid.uuid4().hex}"
    posted, failed = cg.charge_batch(events, idempotency_key=key)
    assert posted.status == "posted" and posted.charge is not None
    assert failed.status == "error" and failed.error is not None
    assert failed.error.code == "unknown_customer"
    assert cg.charge_batch(events, idempotency_key=key)[0] == posted
    assert _available(cg, customer) == GRANTED - 600


def test_the_ledger_pages_through_every_transaction(cg: Client, customer: str) -> None:
    for amount in (10, 20, 30):
        cg.charge(customer, "credits", amount)
    page = cg.ledger(customer, limit=2)
    assert len(page.data) == 2 and page.next_cursor is not None
    every = list(cg.iter_ledger(customer, asset="credits", page_size=2))
    assert len(every) == 4  # the grant and three charges
    assert sum(t.wallet_change for t in every) == GRANTED - 60


def test_errors_arrive_as_their_own_exceptions(live: Live, cg: Client, customer: str) -> None:
    with pytest.raises(sdk.UnknownCustomer):
        cg.wallet(f"nobody_{uuid.uuid4().hex[:6]}")
    with pytest.raises(sdk.UnknownAuthorization):
        cg.authorization("hld_doesnotexist")
    with pytest.raises(sdk.UnknownAsset):
        cg.authorize(customer, "gems", 1)
    with pytest.raises(sdk.InvalidRequest) as invalid:
        cg.authorize(customer, "credits", 0)
    assert invalid.value.status == 422 and invalid.value.field == "amount"
    no_retry = RetryPolicy(max_retries=0)
    with (
        Client(live.base_url, "cg_not_a_key", retry=no_retry) as stranger,
        pytest.raises(sdk.Unauthorized),
    ):
        stranger.wallet(customer)


def test_policies_and_voided_grants(cg: Client, customer: str) -> None:
    policy = cg.set_policy(customer, "credits", "overdraft", overdraft_limit=5_000)
    assert (policy.policy, policy.overdraft_limit) == ("overdraft", 5_000)
    overdrawn = cg.authorize(customer, "credits", GRANTED + 4_000)
    assert overdrawn.approved and overdrawn.available == -4_000
    cg.void(overdrawn.id)

    lot = cg.grant(customer, "credits", 2_000, kind="promotional")
    voided = cg.void_grant(lot.id, reason="granted by mistake")
    assert voided.status == "voided" and voided.remaining == 0
    with pytest.raises(sdk.GrantNotActive):
        cg.void_grant(lot.id)


# Pricing by the server's rate card

LIVE_CARD: dict[str, Any] = {
    "asset": "credits",
    "credit_value_usd": "0.01",
    "actions": {
        "chat.completion": {
            "prices": [
                {
                    "match": {"model": "gpt-4.1"},
                    "per_unit": {
                        "input_tokens": "0.002",
                        "cached_tokens": "0.0005",
                        "output_tokens": "0.008",
                    },
                    "vendor": {"llm": {"provider": "openai"}},
                },
                {
                    "match": {"model": "claude-sonnet-4-5"},
                    "per_unit": {
                        "input_tokens": "0.003",
                        "cached_tokens": "0.0003",
                        "output_tokens": "0.015",
                    },
                    "vendor": {"llm": {"provider": "anthropic"}},
                },
                {
                    "match": {"model": "acme-llm-1"},
                    "per_unit": {"input_tokens": "0.001", "output_tokens": "0.001"},
                    "vendor": {"llm": {}},
                },
            ]
        },
        "image.generate": {"prices": [{"flat": "4", "vendor": {"flat": "0.04"}}]},
    },
}


@pytest.fixture
def plain(live: Live) -> Iterator[Client]:
    """A client with no price of its own: its guards are priced by the server's rate card."""
    with Client(live.base_url, live.api_key) as client:
        yield client


@pytest.fixture
def card(plain: Client) -> str:
    """A rate card of the test's own (tests share the tenant), published as version 1."""
    name = f"live-{uuid.uuid4().hex[:8]}"
    version = plain.publish_rate_card(LIVE_CARD, name=name)
    assert (version.name, version.version) == (name, 1)
    return name


def test_a_priced_guard_holds_and_settles_by_one_card_version(
    plain: Client, customer: str, card: str
) -> None:
    completion = llm.chat_completion(prompt=1_200, completion=300, cached=1_000)
    with plain.guard(
        customer,
        "chat.completion",
        model="gpt-4.1",
        input_tokens=1_200,
        max_tokens=800,
        rate_card=card,
    ) as g:
        # 1,200 x 0.002 + 800 x 0.008 = 8.8 credits
        assert g.amount == 880 and plain.wallet(customer).balance("credits").held == 880
        # A version published while the model runs does not reprice this call.
        doubled = json.loads(json.dumps(LIVE_CARD).replace('"0.008"', '"0.016"'))
        assert plain.publish_rate_card(doubled, name=card).version == 2
        g.settle(completion)
    assert g.settlement is not None and g.authorization is not None
    charge = g.settlement.charge
    # OpenAI counts the 1,000 cached tokens inside its 1,200: 200 x 0.002 + 1,000 x 0.0005
    # + 300 x 0.008 = 3.3 credits, priced by version 1, the hold's.
    assert charge.amount == 330 and charge.rate_card_version == 1
    assert charge.rate_card_id == g.authorization.rate_card_id is not None
    assert charge.quantities == {
        "input_tokens": "200",
        "output_tokens": "300",
        "cached_tokens": "1000",
    }
    assert charge.model == "gpt-4.1" and charge.price is not None
    assert charge.price["units"] == "3.3"
    # gpt-4.1 at $2/M input, $0.50/M cached, $8/M output; 3.3 credits bought at $0.0025.
    assert charge.vendor_cost == Decimal("0.0033") and charge.revenue == Decimal("0.00825")
    assert _available(plain, customer) == GRANTED - 330

    with plain.guard(
        customer, "chat.completion", model="gpt-4.1", max_tokens=800, rate_card=card
    ) as later:
        assert later.amount == 1_280  # 800 x 0.016: the next call is priced by version 2
        later.settle(amount=0)
    assert [v.version for v in plain.rate_cards(name=card)] == [1, 2]


@pytest.mark.anyio
async def test_an_async_priced_guard_over_a_streamed_anthropic_message(
    live: Live, customer: str, card: str
) -> None:
    async with (
        AsyncClient(live.base_url, live.api_key) as acg,
        acg.guard(
            customer,
            "chat.completion",
            model="claude-sonnet-4-5",
            input_tokens=1_000,
            max_tokens=1_000,
            rate_card=card,
        ) as g,
    ):
        assert g.amount == 1_800  # 1,000 x 0.003 + 1,000 x 0.015
        for event in llm.message_stream(600, 70, cache_read=400):
            g.observe(event)
        settlement = await g.settle()
    # Anthropic's 600 input tokens already leave out the 400 read from the cache.
    assert settlement.charge.quantities == {
        "input_tokens": "600",
        "output_tokens": "70",
        "cached_tokens": "400",
    }
    assert settlement.charge.amount == 180 + 105 + 12
    assert settlement.charge.vendor_cost == Decimal("0.00297")


def test_quotes_charges_model_prices_and_the_margin_report(
    plain: Client, customer: str, card: str
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    quoted = plain.quote(
        "chat.completion", {"model": "gpt-4.1"}, {"input_tokens": 1_000}, rate_card=card
    )
    assert (quoted.amount, quoted.units, quoted.rate_card_version) == (200, Decimal(2), 1)
    assert quoted.vendor_cost is not None and quoted.vendor_cost.usd == Decimal("0.002")
    with pytest.raises(sdk.NoPrice) as no_price:
        plain.charge(customer, action="video.render", rate_card=card)
    assert no_price.value.field == "action"

    images = [
        ChargeEvent(customer=customer, action="image.generate", rate_card=card) for _ in range(3)
    ]
    assert [item.charge.amount for item in plain.charge_batch(images) if item.charge] == [400] * 3

    # A model the price table does not know has no vendor cost until the tenant prices it.
    usage = {"input_tokens": 1_000, "output_tokens": 1_000}
    dims = {"model": "acme-llm-1"}
    unknown = plain.charge(
        customer, action="chat.completion", dimensions=dims, quantities=usage, rate_card=card
    )
    assert unknown.amount == 200 and unknown.vendor_cost is None
    price = plain.set_model_price("ACME-LLM-1", input_mtok="1", output_mtok=Decimal("3"))
    assert (price.model, price.input_mtok, price.output_mtok) == ("acme-llm-1", 1, 3)
    known = plain.charge(
        customer, action="chat.completion", dimensions=dims, quantities=usage, rate_card=card
    )
    assert known.vendor_cost == Decimal("0.004")

    report = plain.margin_report(
        start=started,
        end=datetime.now(UTC) + timedelta(seconds=1),
        by="customer",
        rate_card=card,
    )
    (row,) = [r for r in report.report.rows if r.key == customer]
    # 3 images (12 credits, $0.12 of cost) and 4 credits of acme-llm-1 ($0.004 of cost, and
    # one charge whose cost was unknown), bought at $0.0025 a credit.
    assert (row.charges, row.amount, row.cost_unknown) == (5, 1_600, 1)
    assert row.revenue == Decimal("0.04") and row.vendor_cost == Decimal("0.124")
    assert row.margin == Decimal("-2.1")
    assert report.card is not None and report.card.credit_value_usd == Decimal("0.01")


def test_customer_gateway_keys(cg: Client, customer: str) -> None:
    limit = {"asset": "credits", "amount": 5_000, "period": "week"}
    key = f"gwkey-{uuid.uuid4().hex}"
    created = cg.create_gateway_key(
        customer, name="their app", spend_limit=limit, models=["gpt-4.1"], idempotency_key=key
    )
    assert created.key is not None and created.key.startswith(f"cgk_{created.prefix}_")
    assert created.customer == customer and created.models == ("gpt-4.1",)
    assert created.spend_limit == sdk.GatewayKeyLimit(asset="credits", amount=5_000, period="week")
    assert created.usage is not None and created.usage.remaining == 5_000
    assert created.usage.period_start.weekday() == 0  # a week starts on Monday
    replayed = cg.create_gateway_key(
        customer, name="their app", spend_limit=limit, models=["gpt-4.1"], idempotency_key=key
    )
    assert replayed.id == created.id and replayed.key is None

    plain = cg.create_gateway_key(customer)
    assert plain.spend_limit is None and plain.models is None and plain.usage is None
    assert [k.id for k in cg.gateway_keys(customer)] == [created.id, plain.id]
    assert all(k.key is None for k in cg.gateway_keys(customer))

    revoked = cg.revoke_gateway_key(customer, created.id)
    assert revoked.revoked_at is not None and revoked.key is None
    assert cg.revoke_gateway_key(customer, created.id).revoked_at == revoked.revoked_at
    with pytest.raises(sdk.NotFound):
        cg.revoke_gateway_key(customer, "gwk_none")
    with pytest.raises(sdk.UnknownCustomer):
        cg.gateway_keys(f"nobody_{uuid.uuid4().hex[:6]}")
    with pytest.raises(sdk.UnknownAsset):
        cg.create_gateway_key(customer, spend_limit={"asset": "gems", "amount": 1})


@pytest.mark.anyio
async def test_customer_gateway_keys_async(live: Live, customer: str) -> None:
    async with AsyncClient(live.base_url, live.api_key) as acg:
        created = await acg.create_gateway_key(
            customer, spend_limit={"asset": "credits", "amount": 100, "period": "total"}
        )
        assert created.key is not None and created.usage is not None
        assert created.usage.period_end is None
        (listed,) = [k for k in await acg.gateway_keys(customer) if k.id == created.id]
        assert listed.prefix == created.prefix and listed.key is None
        revoked = await acg.revoke_gateway_key(customer, created.id)
    assert revoked.revoked_at is not None
