"""A rate card version another process publishes prices the very next authorization here,
though this process keeps its cards in memory."""

from __future__ import annotations

from typing import Any

import pytest

from creditgate.api import TenantLedger
from creditgate.domain.pricing_errors import NoPrice
from creditgate.services.pricing import rate_cards


def card(credits: str) -> dict[str, Any]:
    return {"asset": "credits", "actions": {"image.generate": {"prices": [{"flat": credits}]}}}


def elsewhere(ledger: TenantLedger, publish: Any) -> Any:
    """Publish as another server process would: this process keeps what it knew."""
    known = rate_cards._cache.stamps[ledger.tenant_id]
    published = publish()
    rate_cards._cache.stamps[ledger.tenant_id] = known
    return published


def published_elsewhere(ledger: TenantLedger, spec: dict[str, Any]) -> str:
    return str(elsewhere(ledger, lambda: ledger.publish_rate_card(spec)).id)


def authorize(ledger: TenantLedger, key: str) -> Any:
    return ledger.authorize("c1", action="image.generate", idempotency_key=key)


def test_a_version_published_by_another_process_prices_the_next_authorization(
    ledger: TenantLedger,
) -> None:
    ledger.create_customer("c1")
    ledger.grant("c1", "credits", 100_000, kind="purchased", cost_basis="0.01")
    with pytest.raises(NoPrice):  # no card yet, as this process now knows
        authorize(ledger, "none")
    first = published_elsewhere(ledger, card("1"))
    for i in range(3):  # this process now holds version 1 and the stamp it was read at
        held = authorize(ledger, f"a{i}")
        assert (held.rate_card_id, held.amount) == (first, 100)

    second = published_elsewhere(ledger, card("2"))
    held = authorize(ledger, "b0")
    assert (held.rate_card_id, held.amount) == (second, 200)
    third = published_elsewhere(ledger, card("3"))
    charged = ledger.charge("c1", action="image.generate", idempotency_key="c0")
    assert (charged.rate_card_id, charged.amount) == (third, 300)
    quoted = ledger.quote("image.generate")
    assert quoted.amount == 300

    # Model prices are read the same way: one set elsewhere applies here at once.
    ledger.publish_rate_card(CHAT, name="chat")
    assert ledger.quote("image.generate").amount == 300  # known here: no model prices
    elsewhere(
        ledger, lambda: ledger.set_model_price("my-model", input_mtok="1000000", output_mtok="0")
    )
    held = ledger.authorize(
        "c1",
        action="chat.completion",
        dimensions={"model": "my-model"},
        quantities={"input_tokens": 1},
        rate_card="chat",
        idempotency_key="m0",
    )
    assert held.amount == 10_000  # $1 at $0.01 a credit


# Priced from the vendor's cost: a model price set elsewhere changes the price at once.
CHAT = {
    "asset": "credits",
    "credit_value_usd": "0.01",
    "actions": {
        "chat.completion": {
            "prices": [{"vendor_multiple": "1", "vendor": {"llm": {"provider": "x"}}}]
        }
    },
}
