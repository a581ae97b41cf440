"""What a guard bills: a flat-priced action with no usage, a settle charged short, a call
left unbilled; warnings on the "creditgate_sdk" logger, named errors in strict mode."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

from creditgate_sdk import (
    AsyncClient,
    ChargeShortfall,
    Client,
    InvalidRequest,
    UnbilledCall,
)
from tests.sdk.conftest import client_over
from tests.sdk.fakes import FakeCreditgate

START = 10_000


@pytest.fixture
def strict(fake: FakeCreditgate) -> Iterator[Client]:
    with client_over(fake, strict=True) as client:
        yield client


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "creditgate_sdk" and r.levelno == logging.WARNING
    ]


# A flat-priced action settles with no usage.


def test_a_flat_priced_action_settles_with_no_usage(plain: Client, fake: FakeCreditgate) -> None:
    with plain.guard("cust_42", "image.upscale") as g:
        assert g.amount == 300
        settlement = g.settle()
    (settle,) = fake.calls("POST", r"/v1/authorizations/.*/settle")
    assert fake.body(settle) == {"action": "image.upscale"}  # no usage: the card prices it
    assert settlement.charge.amount == 300 and g.status == "settled"
    assert fake.available() == START - 300 and g.usage is None


@pytest.mark.anyio
async def test_an_async_flat_priced_action_settles_with_no_usage(
    aplain: AsyncClient, fake: FakeCreditgate
) -> None:
    async with aplain.guard("cust_42", "image.upscale") as g:
        settlement = await g.settle()
    assert settlement.charge.amount == 300 and fake.available() == START - 300


def test_an_action_priced_by_usage_still_needs_its_usage(
    plain: Client, fake: FakeCreditgate
) -> None:
    with pytest.raises(InvalidRequest) as refused:  # noqa: SIM117
        with plain.guard("cust_42", "chat.completion", max_tokens=100) as g:
            g.settle()
    assert refused.value.field == "quantities"
    assert g.status == "voided" and fake.available() == START


# A settle charged short of its usage.


def short_settle(client: Client) -> None:
    """A hold of 40 on a wallet of 10,000 settled with usage priced at 12,000."""
    with client.guard("cust_42", "chat.completion", max_tokens=100) as g:
        g.settle(output_tokens=30_000)


def test_a_shortfall_is_logged(
    plain: Client, fake: FakeCreditgate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "creditgate_sdk")
    with plain.guard("cust_42", "chat.completion", max_tokens=100) as g:
        settlement = g.settle(output_tokens=30_000)
    assert (settlement.charge.amount, settlement.charge.shortfall) == (START, 2_000)
    (warning,) = warnings_of(caplog)
    assert f"authorization {settlement.authorization.id} settled short" in warning
    assert "took 10000 of the 12000 credits" in warning and "2000 went unbilled" in warning
    assert g.status == "settled"


def test_a_settle_without_shortfall_logs_nothing(
    plain: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "creditgate_sdk")
    with plain.guard("cust_42", "chat.completion", max_tokens=100) as g:
        g.settle(output_tokens=10)
    assert warnings_of(caplog) == []


def test_a_strict_guard_raises_on_a_shortfall_after_settling(
    strict: Client, fake: FakeCreditgate
) -> None:
    with pytest.raises(ChargeShortfall) as short:
        short_settle(strict)
    error = short.value
    assert (error.shortfall, error.charge.amount, error.charge.requested) == (2_000, START, 12_000)
    assert error.settlement.authorization.status == "settled"
    # The charge stands: one settle, nothing voided.
    assert len(fake.charges) == 1 and fake.available() == 0
    assert fake.calls("POST", r"/v1/authorizations/.*/void") == []


def test_strict_is_chosen_per_guard_over_the_clients_default(
    plain: Client, strict: Client, fake: FakeCreditgate
) -> None:
    with pytest.raises(ChargeShortfall):  # noqa: SIM117
        with plain.guard("cust_42", "chat.completion", max_tokens=100, strict=True) as g:
            g.settle(output_tokens=30_000)
    fake.balances["cust_42"] = 100
    with strict.guard("cust_42", "chat.completion", max_tokens=100, strict=False) as lenient:
        lenient.settle(output_tokens=1_000)  # 400 on a wallet of 100: logged only
    assert lenient.settlement is not None and lenient.settlement.charge.shortfall == 300


@pytest.mark.anyio
async def test_an_async_strict_guard_raises_on_a_shortfall(
    aplain: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "creditgate_sdk")
    with pytest.raises(ChargeShortfall):
        async with aplain.guard("cust_42", "chat.completion", max_tokens=100, strict=True) as g:
            await g.settle(output_tokens=30_000)
    assert len(warnings_of(caplog)) == 1


def test_a_guarded_function_can_be_strict(plain: Client) -> None:
    @plain.guarded("chat.completion", customer="cust_42", max_tokens=100, strict=True)
    def call() -> dict[str, int]:
        return {"input_tokens": 0, "output_tokens": 30_000}

    with pytest.raises(ChargeShortfall):
        call()


# A call left unbilled.


def test_leaving_without_settle_or_void_warns_that_the_call_went_unbilled(
    plain: Client, fake: FakeCreditgate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "creditgate_sdk")
    with plain.guard("cust_42", "image.upscale") as g:
        pass
    assert g.status == "voided" and fake.available() == START
    (warning,) = warnings_of(caplog)
    assert g.authorization is not None
    assert f"authorization {g.authorization.id} was left without settle or void" in warning
    assert "went unbilled" in warning


def test_a_strict_guard_left_without_settle_or_void_raises(
    strict: Client, fake: FakeCreditgate
) -> None:
    with pytest.raises(UnbilledCall) as unbilled, strict.guard("cust_42", "image.upscale") as g:
        pass
    assert g.status == "voided" and fake.available() == START  # voided first
    assert unbilled.value.authorization.status == "voided"


def test_a_void_or_a_failed_call_is_not_an_unbilled_call(
    strict: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "creditgate_sdk")
    with strict.guard("cust_42", "image.upscale") as voided:
        voided.void()
    with pytest.raises(TimeoutError), strict.guard("cust_42", "image.upscale") as failed:
        raise TimeoutError("the model did not answer")
    assert (voided.status, failed.status) == ("voided", "voided")
    assert warnings_of(caplog) == []


@pytest.mark.anyio
async def test_an_async_guard_left_without_settle_warns(
    aplain: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "creditgate_sdk")
    async with aplain.guard("cust_42", "image.upscale"):
        pass
    (warning,) = warnings_of(caplog)
    assert "went unbilled" in warning


def test_a_guard_garbage_collected_with_its_hold_pending_warns(
    plain: Client, fake: FakeCreditgate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "creditgate_sdk")
    guard = plain.guard("cust_42", "image.upscale")
    guard.__enter__()  # entered, never left: e.g. a generator abandoned mid-call
    assert guard.authorization is not None
    hold = guard.authorization.id
    del guard
    gc.collect()
    (warning,) = warnings_of(caplog)
    assert f"garbage-collected with authorization {hold} pending" in warning
    assert "went unbilled" in warning
    assert fake.holds[hold].status == "pending"  # it expires after its TTL


def test_a_resolved_guard_collected_later_says_nothing(
    plain: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "creditgate_sdk")
    with plain.guard("cust_42", "image.upscale") as guard:
        guard.settle()
    del guard
    gc.collect()
    assert warnings_of(caplog) == []
