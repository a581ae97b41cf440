"""Webhook rules: endpoint URLs, event types, the retry schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from creditgate.domain.errors import InvalidInput
from creditgate.domain.webhooks import (
    EVENT_TYPES,
    JITTER,
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    check_event_types,
    check_url,
    retry_delay,
    subscribes,
)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/creditgate",
        "http://127.0.0.1:8080/hook?tenant=acme",
        "https://[::1]:8443/h",
        "HTTPS://hooks.example.com",
    ],
)
def test_http_and_https_urls_are_taken_as_given(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://hooks.example.com/x", "https:// or http://"),
        ("file:///etc/passwd", "https:// or http://"),
        ("hooks.example.com/x", "https:// or http://"),
        ("https://user@hooks.example.com/x", "credentials"),
        ("https://user:pw@hooks.example.com/x", "credentials"),
        ("https://:pw@hooks.example.com/x", "credentials"),
        ("https:///x", "host"),
        ("https://hooks.example.com:70000/x", "not a valid URL"),
        ("https://hooks.example.com:0/x", "port 0"),
        ("https://hooks.example.com/x#frag", "fragment"),
        ("https://hooks.example.com/a b", "without spaces"),
        ("https://hooks.example.com/\u00e9", "ASCII"),
        ("https://hooks.example.com/" + "a" * 2048, "at most 2048"),
        ("", "required"),
    ],
)
def test_other_urls_are_refused_with_the_reason(url: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as refused:
        check_url(url)
    assert refused.value.field == "url"


def test_event_types_are_known_deduplicated_and_sorted() -> None:
    assert check_event_types(None) == [] == check_event_types([])
    assert check_event_types(["balance.low", "authorization.declined", "balance.low"]) == [
        "authorization.declined",
        "balance.low",
    ]
    with pytest.raises(InvalidInput, match=r"'balance\.lo' is not an event type"):
        check_event_types(["balance.lo"])
    with pytest.raises(InvalidInput, match="a value is not an event type"):
        check_event_types(["\x00"])
    with pytest.raises(InvalidInput, match="a list"):
        check_event_types("balance.low")


def test_an_empty_subscription_takes_every_type() -> None:
    assert all(subscribes([], t) for t in EVENT_TYPES)
    assert subscribes(["balance.low"], "balance.low")
    assert not subscribes(["balance.low"], "balance.depleted")


def test_the_schedule_retries_for_about_a_day_then_gives_up() -> None:
    waits = [retry_delay(n, 0.0) for n in range(1, MAX_ATTEMPTS)]
    assert waits == list(RETRY_DELAYS)
    assert waits[:6] == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
    ]
    assert timedelta(hours=23) < sum(RETRY_DELAYS, timedelta()) <= timedelta(hours=24)
    assert retry_delay(MAX_ATTEMPTS, 0.0) is None
    assert retry_delay(0, 0.0) is None


def test_jitter_spreads_each_wait_by_a_bounded_share() -> None:
    assert retry_delay(2, -1.0) == timedelta(minutes=5) * (1 - JITTER)
    assert retry_delay(2, 1.0) == timedelta(minutes=5) * (1 + JITTER)
    assert retry_delay(2, 7.0) == retry_delay(2, 1.0)  # clamped
