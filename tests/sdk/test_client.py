"""The HTTP client: idempotency keys, retries, timeouts, error mapping, requests and results."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

import creditgate_sdk as sdk
from creditgate.services import results
from creditgate.services.pricing import margin
from creditgate_sdk import AsyncClient, Client, RetryPolicy
from tests.sdk.conftest import NO_WAIT
from tests.sdk.fakes import API_KEY, BASE_URL, FakeCreditgate, answer, problem
from tests.sdk.test_models import sample

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, **options: Any) -> Client:
    options.setdefault("retry", NO_WAIT)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Client(BASE_URL, API_KEY, http_client=http, **options)


class Recorder:
    """A handler that answers from a list and keeps every request."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    return waited


# Idempotency keys


def test_each_write_gets_its_own_generated_key_and_reads_get_none(
    cg: Client, fake: FakeCreditgate
) -> None:
    cg.authorize("cust_42", "credits", 100)
    cg.authorize("cust_42", "credits", 100)
    cg.wallet("cust_42")

    posts = fake.calls("POST", "/v1/authorizations")
    keys = [r.headers["idempotency-key"] for r in posts]
    assert len(set(keys)) == 2 and all(len(k) >= 32 for k in keys)
    (get,) = fake.calls("GET", "/v1/customers/cust_42/wallet")
    assert "idempotency-key" not in get.headers
    assert get.headers["authorization"] == f"Bearer {API_KEY}"
    assert get.headers["user-agent"].startswith(f"creditgate-sdk-python/{sdk.__version__}")


def test_a_given_key_replays_the_first_answer(cg: Client, fake: FakeCreditgate) -> None:
    first = cg.authorize("cust_42", "credits", 700, idempotency_key="req-1")
    again = cg.authorize("cust_42", "credits", 700, idempotency_key="req-1")
    assert again == first
    assert fake.available() == 10_000 - 700
    assert [r.headers["idempotency-key"] for r in fake.requests] == ["req-1", "req-1"]


def test_the_same_key_with_another_body_is_a_conflict(cg: Client, fake: FakeCreditgate) -> None:
    cg.authorize("cust_42", "credits", 700, idempotency_key="req-1")
    with pytest.raises(sdk.IdempotencyConflict) as caught:
        cg.authorize("cust_42", "credits", 900, idempotency_key="req-1")
    assert caught.value.status == 409 and caught.value.field == "idempotency_key"
    assert fake.available() == 10_000 - 700


# Retries


def test_a_connection_error_is_retried_with_the_same_key(cg: Client, fake: FakeCreditgate) -> None:
    fake.fail_with = [httpx.ConnectError("refused")]
    auth = cg.authorize("cust_42", "credits", 300)
    assert auth.approved
    keys = {r.headers["idempotency-key"] for r in fake.requests}
    assert len(fake.requests) == 2 and len(keys) == 1


def test_an_answer_lost_after_the_effect_is_replayed_not_applied_twice(
    cg: Client, fake: FakeCreditgate
) -> None:
    fake.lose_answers = 1
    auth = cg.authorize("cust_42", "credits", 2_500)
    assert len(fake.requests) == 2
    assert list(fake.holds) == [auth.id]
    assert fake.available() == 10_000 - 2_500


def test_5xx_answers_are_retried_until_one_succeeds(cg: Client, fake: FakeCreditgate) -> None:
    auth = cg.authorize("cust_42", "credits", 300)
    fake.fail_with = [500, 503]
    cg.settle(auth.id, 250)
    settles = fake.calls("POST", r"/v1/authorizations/.*/settle")
    assert len(settles) == 3 and len({r.headers["idempotency-key"] for r in settles}) == 1
    assert fake.available() == 10_000 - 250


def test_retries_are_bounded_then_the_last_error_is_raised(
    cg: Client, fake: FakeCreditgate
) -> None:
    fake.fail_with = [503, 503, 503, 503]
    with pytest.raises(sdk.ServiceUnavailable) as caught:
        cg.wallet("cust_42")
    assert caught.value.status == 503
    assert len(fake.requests) == 3  # the first try and max_retries=2


def test_backoff_grows_between_tries(sleeps: list[float]) -> None:
    recorder = Recorder(problem(502, "bad_gateway", "upstream"))
    policy = RetryPolicy(max_retries=3, initial_backoff=0.1, max_backoff=0.3)
    with client_for(recorder, retry=policy) as cg, pytest.raises(sdk.ServerError):
        cg.assets()
    assert len(recorder.requests) == 4 and len(sleeps) == 3
    for wait, ceiling in zip(sleeps, [0.1, 0.2, 0.3], strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_429_waits_as_long_as_retry_after_says(sleeps: list[float]) -> None:
    busy = problem(429, "too_many_requests", "slow down")
    busy.headers["Retry-After"] = "2"
    ok = httpx.Response(200, json={"data": []})
    recorder = Recorder(busy, ok)
    with client_for(recorder) as cg:
        assert cg.assets() == []
    assert sleeps == [2.0]


def test_retry_after_as_an_http_date_is_honoured(sleeps: list[float]) -> None:
    busy = problem(503, "unavailable", "busy")
    later = datetime.now(UTC) + timedelta(seconds=5)
    busy.headers["Retry-After"] = format_datetime(later, usegmt=True)
    with client_for(Recorder(busy, httpx.Response(200, json={"data": []}))) as cg:
        cg.assets()
    (wait,) = sleeps
    assert 3 <= wait <= 5


def test_a_retry_after_past_the_cap_is_raised_at_once(sleeps: list[float]) -> None:
    busy = problem(429, "too_many_requests", "come back in two minutes")
    busy.headers["Retry-After"] = "120"
    recorder = Recorder(busy)
    with client_for(recorder) as cg, pytest.raises(sdk.RateLimited) as caught:
        cg.assets()
    assert caught.value.retry_after == 120 and len(recorder.requests) == 1 and sleeps == []


def test_a_4xx_is_not_retried(cg: Client, fake: FakeCreditgate) -> None:
    with pytest.raises(sdk.UnknownCustomer) as caught:
        cg.authorize("nobody", "credits", 1)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        404,
        "unknown_customer",
        "customer",
    )
    assert isinstance(caught.value, sdk.NotFound) and len(fake.requests) == 1


# Timeouts and connection failures, over real sockets


@pytest.fixture
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    listener.close()
    for conn in accepted:
        conn.close()


def test_a_server_that_does_not_answer_times_out_after_each_try(
    silent_server: tuple[int, list[socket.socket]],
) -> None:
    port, accepted = silent_server
    retry = RetryPolicy(max_retries=1, initial_backoff=0.0)
    started = time.monotonic()
    with (
        Client(f"http://127.0.0.1:{port}", API_KEY, timeout=0.2, retry=retry) as cg,
        pytest.raises(sdk.APITimeoutError) as caught,
    ):
        cg.authorize("cust_42", "credits", 100)
    assert time.monotonic() - started < 3
    assert isinstance(caught.value, sdk.APIConnectionError)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    deadline = time.monotonic() + 2  # the accepting thread may trail the client a little
    while len(accepted) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(accepted) == 2  # one connection per try


def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    retry = RetryPolicy(max_retries=1, initial_backoff=0.0)
    with (
        Client(f"http://127.0.0.1:{port}", API_KEY, retry=retry) as cg,
        pytest.raises(sdk.APIConnectionError) as caught,
    ):
        cg.wallet("cust_42")
    assert caught.value.status is None and caught.value.code == "connection_error"


# Error mapping


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (422, "invalid_input", sdk.InvalidRequest),
        (422, "amount_overflow", sdk.AmountOverflow),
        (422, "no_price", sdk.NoPrice),
        (422, "vendor_cost_unknown", sdk.VendorCostUnknown),
        (400, "malformed_json", sdk.InvalidRequest),
        (401, "unauthenticated", sdk.Unauthorized),
        (403, "forbidden", sdk.PermissionDenied),
        (404, "unknown_asset", sdk.UnknownAsset),
        (404, "unknown_hold", sdk.UnknownAuthorization),
        (404, "unknown_lot", sdk.UnknownGrant),
        (404, "not_found", sdk.NotFound),
        (409, "already_exists", sdk.AlreadyExists),
        (409, "idempotency_conflict", sdk.IdempotencyConflict),
        (409, "hold_not_pending", sdk.HoldNotPending),
        (409, "hold_already_settled", sdk.HoldAlreadySettled),
        (409, "hold_already_voided", sdk.HoldAlreadyVoided),
        (409, "hold_expired", sdk.HoldExpired),
        (409, "lot_not_active", sdk.GrantNotActive),
        (409, "a_code_added_later", sdk.Conflict),
        (429, "too_many_requests", sdk.RateLimited),
        (500, "internal_error", sdk.ServerError),
        (503, "database_unavailable", sdk.ServiceUnavailable),
        (418, "teapot", sdk.CreditgateError),
    ],
)
def test_each_problem_code_raises_its_own_exception(
    status: int, code: str, expected: type[sdk.CreditgateError]
) -> None:
    failing = problem(status, code, "what went wrong", "amount")
    failing.headers["X-Request-Id"] = "req_abc"
    with (
        client_for(Recorder(failing), retry=RetryPolicy(max_retries=0)) as cg,
        pytest.raises(sdk.CreditgateError) as caught,
    ):
        cg.charge("cust_42", "credits", 5)
    error = caught.value
    assert type(error) is expected
    assert (error.status, error.code, error.field) == (status, code, "amount")
    assert error.message == "what went wrong" and error.request_id == "req_abc"
    assert error.problem is not None and error.problem.type == f"urn:creditgate:problem:{code}"
    assert str(error) == f"{status} {code}: what went wrong (field 'amount')"


def test_validation_problems_keep_every_failing_field() -> None:
    body = {
        "type": "urn:creditgate:problem:invalid_input",
        "title": "Invalid input",
        "status": 422,
        "detail": "amount: must be greater than 0",
        "code": "invalid_input",
        "field": "amount",
        "errors": [
            {"field": "amount", "detail": "amount: must be greater than 0"},
            {"field": "asset", "detail": "asset: required"},
        ],
    }
    with (
        client_for(Recorder(httpx.Response(422, json=body))) as cg,
        pytest.raises(sdk.InvalidRequest) as caught,
    ):
        cg.charge("cust_42", "credits", 0)
    assert caught.value.problem is not None
    assert [e.field for e in caught.value.problem.errors] == ["amount", "asset"]


def test_an_error_page_that_is_not_json_still_raises_by_status() -> None:
    page = httpx.Response(502, text="<html>Bad Gateway</html>")
    with (
        client_for(Recorder(page), retry=RetryPolicy(max_retries=0)) as cg,
        pytest.raises(sdk.ServerError) as caught,
    ):
        cg.wallet("cust_42")
    assert caught.value.status == 502 and "Bad Gateway" in caught.value.message


def test_an_error_body_of_another_shape_still_raises_by_status() -> None:
    odd = httpx.Response(409, json=["not", "a", "problem"])
    with client_for(Recorder(odd)) as cg, pytest.raises(sdk.Conflict) as caught:
        cg.charge("cust_42", "credits", 1)
    assert caught.value.status == 409 and caught.value.code == "conflict"


def test_a_success_without_json_is_an_unexpected_response() -> None:
    with (
        client_for(Recorder(httpx.Response(200, text="ok"))) as cg,
        pytest.raises(sdk.UnexpectedResponse),
    ):
        cg.wallet("cust_42")


def test_a_wrong_api_key_is_unauthorized(fake: FakeCreditgate) -> None:
    http = httpx.Client(transport=httpx.MockTransport(fake.handler))
    with Client(BASE_URL, "cg_wrong", http_client=http) as cg, pytest.raises(sdk.Unauthorized):
        cg.wallet("cust_42")


# Requests and results


def test_a_decline_is_an_answer_not_an_exception(cg: Client, fake: FakeCreditgate) -> None:
    auth = cg.authorize("cust_42", "credits", 20_000)
    assert (auth.status, auth.approved, auth.decline_reason) == (
        "declined",
        False,
        "insufficient_funds",
    )
    assert auth.available == 10_000 and auth.requested == 20_000


def test_ids_are_escaped_into_the_path() -> None:
    recorder = Recorder(answer(sample(results.Wallet)))
    with client_for(recorder) as cg:
        cg.wallet("team/a b?")
    assert recorder.requests[0].url.raw_path == b"/v1/customers/team%2Fa%20b%3F/wallet"


def test_bodies_leave_out_unset_options_and_send_exact_values() -> None:
    recorder = Recorder(answer(sample(results.Lot), 201))
    expires = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    with client_for(recorder) as cg:
        lot = cg.grant(
            "cust_42", "credits", 5_000, kind="purchased", cost_basis="0.0025", expires_at=expires
        )
    assert isinstance(lot, sdk.Lot)
    request = recorder.requests[0]
    assert request.method == "POST" and request.url.path == "/v1/customers/cust_42/grants"
    assert FakeCreditgate.body(request) == {
        "asset": "credits",
        "amount": 5_000,
        "kind": "purchased",
        "cost_basis": "0.0025",
        "expires_at": "2026-12-31T23:59:00+00:00",
    }


def test_floats_and_naive_times_are_refused_before_sending() -> None:
    recorder = Recorder(answer(sample(results.Lot), 201))
    with client_for(recorder) as cg:
        with pytest.raises(TypeError, match="never float"):
            cg.grant("cust_42", "credits", 1, cost_basis=0.25)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timezone-aware"):
            cg.grant("cust_42", "credits", 1, expires_at=datetime(2026, 1, 1))
    assert recorder.requests == []


def test_every_endpoint_has_its_method_and_path() -> None:
    recorder = Recorder(httpx.Response(200, json={}))
    calls: list[tuple[Callable[[Client], Any], str, str]] = [
        (lambda c: c.create_asset("credits", 2, "Credits"), "POST", "/v1/assets"),
        (lambda c: c.assets(), "GET", "/v1/assets"),
        (lambda c: c.create_customer("c1", policy="allow"), "POST", "/v1/customers"),
        (lambda c: c.customer("c1"), "GET", "/v1/customers/c1"),
        (lambda c: c.wallet("c1"), "GET", "/v1/customers/c1/wallet"),
        (
            lambda c: c.set_policy("c1", "credits", "block"),
            "PUT",
            "/v1/customers/c1/policies/credits",
        ),
        (lambda c: c.grant("c1", "credits", 1), "POST", "/v1/customers/c1/grants"),
        (lambda c: c.grants("c1", asset="credits"), "GET", "/v1/customers/c1/grants"),
        (lambda c: c.void_grant("lot_1", reason="typo"), "POST", "/v1/grants/lot_1/void"),
        (lambda c: c.authorize("c1", "credits", 1), "POST", "/v1/authorizations"),
        (lambda c: c.authorization("hld_1"), "GET", "/v1/authorizations/hld_1"),
        (lambda c: c.settle("hld_1", 1), "POST", "/v1/authorizations/hld_1/settle"),
        (lambda c: c.void("hld_1"), "POST", "/v1/authorizations/hld_1/void"),
        (lambda c: c.charge("c1", "credits", 1), "POST", "/v1/charges"),
        (lambda c: c.charge_batch([]), "POST", "/v1/charges/batch"),
        (lambda c: c.ledger("c1", limit=5), "GET", "/v1/customers/c1/ledger"),
        (lambda c: c.publish_rate_card({"asset": "credits"}), "POST", "/v1/rate-cards"),
        (lambda c: c.rate_cards(name="default"), "GET", "/v1/rate-cards"),
        (lambda c: c.quote("image.generate"), "POST", "/v1/rate-cards/quote"),
        (
            lambda c: c.set_model_price("gpt-4.1", input_mtok=2, output_mtok=8),
            "POST",
            "/v1/model-prices",
        ),
        (lambda c: c.margin_report(by="model"), "GET", "/v1/reports/margin"),
    ]
    with client_for(recorder) as cg:
        for call, _, _ in calls:
            with pytest.raises(sdk.UnexpectedResponse):  # the recorder answers {}
                call(cg)
    sent = [(r.method, r.url.path) for r in recorder.requests]
    assert sent == [(method, path) for _, method, path in calls]
    writes = [r for r in recorder.requests if r.method in ("POST", "PUT")]
    assert all("idempotency-key" in r.headers for r in writes)


def test_lists_are_read_from_their_data_wrapper() -> None:
    body = {"data": [{"code": "credits", "scale": 2, "name": "Credits"}]}
    with client_for(Recorder(httpx.Response(200, json=body))) as cg:
        assert cg.assets() == [sdk.Asset(code="credits", scale=2, name="Credits")]


def test_the_ledger_is_read_page_after_page() -> None:
    transaction = sample(results.LedgerTransaction).model_dump(mode="json")
    pages = [
        {
            "data": [transaction | {"id": "txn_3"}, transaction | {"id": "txn_2"}],
            "next_cursor": "txn_2",
        },
        {"data": [transaction | {"id": "txn_1"}], "next_cursor": None},
    ]
    recorder = Recorder(*(httpx.Response(200, json=p) for p in pages))
    with client_for(recorder) as cg:
        ids = [t.id for t in cg.iter_ledger("cust_42", asset="credits", page_size=2)]
    assert ids == ["txn_3", "txn_2", "txn_1"]
    assert [dict(r.url.params) for r in recorder.requests] == [
        {"limit": "2", "asset": "credits"},
        {"limit": "2", "cursor": "txn_2", "asset": "credits"},
    ]


def test_a_batch_answers_each_event_with_a_charge_or_a_problem() -> None:
    charge = sample(results.Charge).model_dump(mode="json")
    body = {
        "data": [
            {"idempotency_key": "e1", "status": "posted", "charge": charge, "error": None},
            {
                "idempotency_key": "e2",
                "status": "error",
                "charge": None,
                "error": {
                    "type": "urn:creditgate:problem:unknown_customer",
                    "title": "Unknown customer",
                    "status": 404,
                    "detail": "customer 'ghost' does not exist",
                    "code": "unknown_customer",
                    "field": "customer",
                },
            },
        ]
    }
    recorder = Recorder(httpx.Response(200, json=body))
    events = [
        sdk.ChargeEvent(customer="c1", asset="credits", amount=5, idempotency_key="e1"),
        sdk.ChargeEvent(customer="ghost", asset="credits", amount=5, action="tts.speak"),
    ]
    with client_for(recorder) as cg:
        posted, failed = cg.charge_batch(events)
    assert posted.charge is not None and posted.error is None
    assert failed.error is not None and failed.error.code == "unknown_customer"
    assert failed.error.status == 404 and failed.error.field == "customer"
    sent = FakeCreditgate.body(recorder.requests[0])["events"]
    assert sent[0] == {"customer": "c1", "asset": "credits", "amount": 5, "idempotency_key": "e1"}
    assert sent[1]["action"] == "tts.speak" and len(sent[1]["idempotency_key"]) == 36


def test_base_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITGATE_BASE_URL", "http://env.test/")
    monkeypatch.setenv("CREDITGATE_API_KEY", "cg_env")
    with Client() as cg:
        assert cg.base_url == "http://env.test"
    monkeypatch.delenv("CREDITGATE_API_KEY")
    with pytest.raises(ValueError, match="CREDITGATE_API_KEY"):
        Client()


# The async client shares every operation; these check its own request loop.


@pytest.mark.anyio
async def test_async_retries_keep_the_key_and_replay(
    acg: AsyncClient, fake: FakeCreditgate
) -> None:
    fake.fail_with = [httpx.ConnectError("refused")]
    fake.lose_answers = 1
    auth = await acg.authorize("cust_42", "credits", 400)
    assert len(fake.requests) == 3
    assert len({r.headers["idempotency-key"] for r in fake.requests}) == 1
    assert list(fake.holds) == [auth.id] and fake.available() == 9_600


@pytest.mark.anyio
async def test_async_errors_and_declines(acg: AsyncClient, fake: FakeCreditgate) -> None:
    declined = await acg.authorize("cust_42", "credits", 50_000)
    assert not declined.approved
    with pytest.raises(sdk.HoldNotPending):
        await acg.settle(declined.id, 1)
    with pytest.raises(sdk.UnknownCustomer):
        await acg.wallet("nobody")
    approved = await acg.authorize("cust_42", "credits", 1_000)
    settled = await acg.settle(approved.id, 600, action="chat.completion")
    assert settled.charge.amount == 600 and settled.authorization.status == "settled"
    assert (await acg.wallet("cust_42")).balance("credits").available == 9_400


@pytest.mark.anyio
async def test_async_retries_are_bounded(fake: FakeCreditgate) -> None:
    fake.fail_with = [502, 502, 502]
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    retry = RetryPolicy(max_retries=1, initial_backoff=0.0)
    async with AsyncClient(BASE_URL, API_KEY, retry=retry, http_client=http) as acg:
        with pytest.raises(sdk.ServerError):
            await acg.wallet("cust_42")
    assert len(fake.requests) == 2


def test_a_decimal_cost_basis_is_sent_as_a_string() -> None:
    recorder = Recorder(answer(sample(results.Lot), 201))
    with client_for(recorder) as cg:
        cg.grant("cust_42", "credits", 10, cost_basis=Decimal("0.10"))
    assert FakeCreditgate.body(recorder.requests[0])["cost_basis"] == "0.10"


# Pricing


def test_priced_requests_send_the_action_and_quantities_and_no_amount() -> None:
    recorder = Recorder(
        answer(sample(results.Authorization), 201),
        answer(sample(results.Settlement)),
        answer(sample(results.Charge), 201),
    )
    with client_for(recorder) as cg:
        cg.authorize(
            "c1",
            action="chat.completion",
            dimensions={"model": "gpt-4.1"},
            quantities={"input_tokens": 1_200, "output_tokens": 800},
            rate_card="enterprise",
        )
        cg.settle("hld_1", quantities={"input_tokens": 1_000, "seconds": Decimal("1.5")})
        cg.charge(
            "c1",
            action="tts.speak",
            quantities={"characters": 1_001},
            vendor_cost=Decimal("0.00018"),
        )
    hold, settle, charge = (FakeCreditgate.body(r) for r in recorder.requests)
    assert hold == {
        "customer": "c1",
        "action": "chat.completion",
        "dimensions": {"model": "gpt-4.1"},
        "quantities": {"input_tokens": 1_200, "output_tokens": 800},
        "rate_card": "enterprise",
    }
    assert settle == {"quantities": {"input_tokens": 1_000, "seconds": "1.5"}}
    assert charge == {
        "customer": "c1",
        "action": "tts.speak",
        "quantities": {"characters": 1_001},
        "vendor_cost": "0.00018",
    }


def test_raw_amounts_keep_their_positional_form() -> None:
    recorder = Recorder(answer(sample(results.Charge), 201))
    with client_for(recorder) as cg:
        cg.charge("c1", "credits", 5, dimensions={"model": "m"}, vendor_cost=1)
    assert FakeCreditgate.body(recorder.requests[0]) == {
        "customer": "c1",
        "asset": "credits",
        "amount": 5,
        "dimensions": {"model": "m"},
        "vendor_cost": "1",
    }


def test_batch_events_may_be_priced() -> None:
    recorder = Recorder(httpx.Response(200, json={"data": []}))
    events = [
        sdk.ChargeEvent(
            customer="c1",
            action="image.generate",
            dimensions={"quality": "ultra"},
            quantities={"images": 2},
            vendor_cost=Decimal("0.30"),
            idempotency_key="e1",
        )
    ]
    with client_for(recorder) as cg:
        assert cg.charge_batch(events) == []
    (sent,) = FakeCreditgate.body(recorder.requests[0])["events"]
    assert sent == {
        "customer": "c1",
        "action": "image.generate",
        "dimensions": {"quality": "ultra"},
        "quantities": {"images": 2},
        "vendor_cost": "0.30",
        "idempotency_key": "e1",
    }


def test_a_rate_card_is_sent_with_exact_decimals_and_read_back() -> None:
    version = results.PublishedRateCard(
        id="rc_1",
        name="default",
        version=3,
        effective_at=datetime(2026, 2, 1, tzinfo=UTC),
        spec={"asset": "credits", "actions": {}},
        warnings=["cache_write_tokens is priced at 0"],
    )
    recorder = Recorder(answer(version, 201))
    card = {
        "asset": "credits",
        "credit_value_usd": Decimal("0.10"),
        "actions": {"tts.speak": {"prices": [{"per_unit": {"characters": Decimal("5E-1")}}]}},
    }
    with client_for(recorder) as cg:
        published = cg.publish_rate_card(
            card, name="default", effective_at=datetime(2026, 2, 1, tzinfo=UTC)
        )
        with pytest.raises(TypeError, match="never float"):
            cg.publish_rate_card({"asset": "credits", "credit_value_usd": 0.1})
    assert published == sdk.PublishedRateCard(
        id="rc_1",
        name="default",
        version=3,
        effective_at=datetime(2026, 2, 1, tzinfo=UTC),
        spec={"asset": "credits", "actions": {}},
        warnings=("cache_write_tokens is priced at 0",),
    )
    assert FakeCreditgate.body(recorder.requests[0]) == {
        "spec": {
            "asset": "credits",
            "credit_value_usd": "0.10",
            "actions": {"tts.speak": {"prices": [{"per_unit": {"characters": "0.5"}}]}},
        },
        "name": "default",
        "effective_at": "2026-02-01T00:00:00+00:00",
    }
    assert len(recorder.requests) == 1


def test_a_quote_is_read_with_exact_decimals() -> None:
    quoted = sample(results.PriceQuote)
    with client_for(Recorder(answer(quoted))) as cg:
        got = cg.quote("chat.completion", {"model": "gpt-4.1"}, {"input_tokens": 10})
    assert got.units == Decimal("0.0025") and got.lines[0].subtotal == Decimal("0.0025")
    assert got.vendor_cost is not None and got.vendor_cost.usd == Decimal("0.0025")


def test_the_margin_report_sends_its_period_as_from_and_to() -> None:
    report = sample(margin.FullMarginReport)
    recorder = Recorder(answer(report))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with client_for(recorder) as cg:
        got = cg.margin_report(
            start=start, end=start + timedelta(days=7), by="model", change=Decimal("0.25")
        )
    assert dict(recorder.requests[0].url.params) == {
        "from": "2026-01-01T00:00:00+00:00",
        "to": "2026-01-08T00:00:00+00:00",
        "by": "model",
        "change": "0.25",
    }
    assert got.report.total.revenue == Decimal("0.0025")
    assert got.card is not None and got.card.actions[0].worst is not None


def test_a_customer_is_created_under_external_id() -> None:
    recorder = Recorder(answer(sample(results.Customer), 201))
    with client_for(recorder) as cg:
        cg.create_customer("cust_42", name="Ada")
    assert FakeCreditgate.body(recorder.requests[0]) == {"external_id": "cust_42", "name": "Ada"}
