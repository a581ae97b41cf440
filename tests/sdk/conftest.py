"""Fixtures for the SDK's unit tests: clients over MockTransport, backed by an in-memory fake."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from creditgate_sdk import AsyncClient, Client, RetryPolicy, TokenRate
from tests.sdk.fakes import API_KEY, BASE_URL, FakeCreditgate

# No waiting between tries in unit tests; the retry tests check the waits they ask for.
NO_WAIT = RetryPolicy(max_retries=2, initial_backoff=0.0)

# 1 credit (100 minor units) per 1,000 input tokens and 4 credits per 1,000 output tokens.
RATE = TokenRate(input="0.1", output="0.4", cached_input="0.025")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> FakeCreditgate:
    return FakeCreditgate()


@pytest.fixture
def cg(fake: FakeCreditgate) -> Iterator[Client]:
    http = httpx.Client(transport=httpx.MockTransport(fake.handler))
    with Client(BASE_URL, API_KEY, retry=NO_WAIT, price=RATE, http_client=http) as client:
        yield client
    http.close()


@pytest.fixture
async def acg(fake: FakeCreditgate) -> AsyncIterator[AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    async with AsyncClient(BASE_URL, API_KEY, retry=NO_WAIT, price=RATE, http_client=http) as c:
        yield c
    await http.aclose()


@contextlib.contextmanager
def client_over(fake: FakeCreditgate, **options: Any) -> Iterator[Client]:
    """A client whose requests go to the fake, with no waits between its tries."""
    http = httpx.Client(transport=httpx.MockTransport(fake.handler))
    with Client(BASE_URL, API_KEY, retry=NO_WAIT, http_client=http, **options) as client:
        yield client
    http.close()


@pytest.fixture
def plain(fake: FakeCreditgate) -> Iterator[Client]:
    """A client with no price of its own: the (fake) server's card prices its guards."""
    with client_over(fake) as client:
        yield client


@pytest.fixture
async def aplain(fake: FakeCreditgate) -> AsyncIterator[AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    async with AsyncClient(BASE_URL, API_KEY, retry=NO_WAIT, http_client=http) as client:
        yield client
    await http.aclose()
