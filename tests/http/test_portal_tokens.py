"""Portal and dashboard tokens: signed, expiring, scoped; CSRF tokens bound to one session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from creditgate.portal.tokens import PORTAL_TTL, TokenRefused, Tokens
from creditgate.portal.web import accent_colours, contrast, money, ratio, units, usd

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_a_portal_token_names_its_tenant_and_customer_until_it_expires() -> None:
    tokens = Tokens("s3cret")
    token, expires_at = tokens.portal_token("ten_1", "alice", now=NOW, return_url="https://a.b")
    assert expires_at == NOW + PORTAL_TTL
    session = tokens.portal_session(token, now=NOW + PORTAL_TTL - timedelta(seconds=1))
    assert (session.tenant_id, session.customer, session.return_url) == (
        "ten_1",
        "alice",
        "https://a.b",
    )
    with pytest.raises(TokenRefused) as refused:
        tokens.portal_session(token, now=NOW + PORTAL_TTL)
    assert refused.value.reason == "expired"


@pytest.mark.parametrize("tamper", ["other-secret", "payload", "dashboard", "empty"])
def test_forged_or_misused_tokens_are_refused(tamper: str) -> None:
    tokens = Tokens("s3cret")
    token, _ = tokens.portal_token("ten_1", "alice", now=NOW)
    if tamper == "other-secret":
        token, _ = Tokens("guess").portal_token("ten_1", "bob", now=NOW)
    elif tamper == "payload":
        forged, _ = tokens.portal_token("ten_1", "bob", now=NOW)
        token = forged.split(".")[0] + "." + token.split(".")[1]
    elif tamper == "dashboard":  # a portal token is no dashboard session, nor the reverse
        with pytest.raises(TokenRefused):
            tokens.dashboard_session(token, now=NOW)
        token = tokens.dashboard_token("ten_1", "key_1", now=NOW)
    else:
        token = ""
    with pytest.raises(TokenRefused):
        tokens.portal_session(token, now=NOW)


def test_a_csrf_token_belongs_to_one_session() -> None:
    tokens = Tokens("s3cret")
    a, _ = tokens.portal_token("ten_1", "alice", now=NOW)
    b, _ = tokens.portal_token("ten_1", "bob", now=NOW)
    assert tokens.csrf_ok(a, tokens.csrf(a))
    assert not tokens.csrf_ok(a, tokens.csrf(b))
    assert not tokens.csrf_ok(a, None)
    assert not Tokens("other").csrf_ok(a, tokens.csrf(a))


def test_amounts_and_prices_as_shown() -> None:
    assert units(1_234_567, 2) == "12,345.67"
    assert units(-500, 2) == "-5.00"
    assert units(7, 0) == "7"
    assert money("9") == "9.00"
    assert money("9.000000000") == "9.00"
    # Shown to the currency's minor unit, rounded half to even from the Decimal.
    assert money("0.005") == "0.00" and money("0.015") == "0.02"
    assert money("1234.5") == "1,234.50" and money("1200", "JPY") == "1,200"
    # Dollars in the dashboard: the sign before the symbol, always two decimals.
    assert (usd("-0.07"), usd("5.3395"), usd("-0.004")) == ("-$0.07", "$5.34", "$0.00")
    assert (ratio("2.5"), ratio("2.123456"), ratio("2.125")) == ("2.50", "2.12", "2.12")


def test_text_on_the_tenants_accent_stays_readable() -> None:
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert accent_colours("#4f46e5") == {"on_accent": "#ffffff", "link": "#4f46e5"}
    light = accent_colours("#0d9488")  # teal: white text on it is under 4.5
    assert light["on_accent"] == "#111111" and contrast("#0d9488", "#111111") >= 4.5
    assert light["link"] != "#0d9488"
