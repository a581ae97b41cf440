"""Demo data: a tenant with credits, USD and custom assets, rate cards, packs on sale,
customers with stacked lots, and priced usage so balances and margin reports have something
to show. README.md's examples run against it: its rate card is part of `DEMO_CARD`, its
customers are `DEMO_CUSTOMERS` and its portal sells `DEMO_PACKS`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from creditgate.api import Creditgate
from creditgate.portal.reads import save_branding
from creditgate.services.results import Tenant

DEMO_TENANT_ID = "ten_demo"

# The price list of the products creditgate is made for, in one card; README.md shows the
# card's gpt-4.1 and ultra-image prices as its example card.
DEMO_CARD: dict[str, Any] = {
    "asset": "credits",
    "credit_value_usd": "0.10",
    "rounding": "up",
    "actions": {
        "image.generate": {
            "prices": [
                {"match": {"quality": "standard"}, "flat": "1", "vendor": {"flat": "0.04"}},
                {"match": {"quality": "ultra"}, "flat": "20", "vendor": {"flat": "0.60"}},
            ]
        },
        "tts.speak": {
            "prices": [
                {
                    "match": {"model": "multilingual"},
                    "per_unit": {"characters": "1"},
                    "vendor": {"per_unit": {"characters": "0.0003"}},
                },
                {
                    "match": {"model": "flash"},
                    "per_unit": {"characters": "0.5"},
                    "vendor": {"per_unit": {"characters": "0.00015"}},
                },
            ]
        },
        "app.change": {
            "prices": [
                {"match": {"complexity": "simple"}, "flat": "0.5", "vendor": {"flat": "0.02"}},
                {"match": {"complexity": "auth_flow"}, "flat": "1.2", "vendor": {"flat": "0.05"}},
            ]
        },
        "chat.completion": {
            "prices": [
                {
                    "match": {"model": "claude-sonnet-4"},
                    "per_unit": {
                        "input_tokens": "0.0006",
                        "cached_tokens": "0.00006",
                        "cache_write_tokens": "0.00075",
                        "output_tokens": "0.003",
                    },
                    "minimum": "1",
                    "vendor": {"llm": {"provider": "anthropic"}},
                },
                {
                    "match": {"model": "gpt-4.1"},
                    "per_unit": {
                        "input_tokens": "0.0004",
                        "cached_tokens": "0.0001",
                        "cache_write_tokens": "0.0004",
                        "output_tokens": "0.0016",
                    },
                    "minimum": "1",
                    "vendor": {"llm": {"provider": "openai"}},
                },
            ]
        },
    },
}

# A $20 USD pool (micro-dollars) charged at the providers' API rates.
API_POOL_CARD: dict[str, Any] = {
    "asset": "api_usd",
    "credit_value_usd": "1",
    "actions": {
        "chat.completion": {"prices": [{"vendor_multiple": "1", "vendor": {"llm": {}}}]},
    },
}


# The demo's customers, by id, and what each shows.
DEMO_CUSTOMERS: dict[str, str] = {
    "cust_alice": "Alice (Pro plan)",
    "cust_bob": "Bob (pay as you go)",
    "cust_carol": "Carol (trial)",
}

# The packs the demo's portal sells (code, name, credits in minor units, price in USD).
DEMO_PACKS: tuple[tuple[str, str, int, str], ...] = (
    ("small", "Small", 10_000, "9"),
    ("large", "Large", 100_000, "80"),
)


def seed_demo(cg: Creditgate) -> Tenant:
    """Create the demo tenant once; running it again leaves the data as it is."""
    existing = [t for t in cg.tenants() if t.id == DEMO_TENANT_ID]
    if existing:
        return existing[0]
    tenant = cg.create_tenant("Demo AI", tenant_id=DEMO_TENANT_ID)
    t = cg.tenant(tenant.id)
    now = cg.clock()
    t.create_asset("credits", 2, "Credits")
    t.create_asset("USD", 2, "US dollars")
    t.create_asset("api_usd", 6, "API pool (USD, micro-dollars)")
    t.create_asset("gpu_minutes", 0, "GPU minutes")
    t.publish_rate_card(DEMO_CARD)
    t.publish_rate_card(API_POOL_CARD, name="api-pool")
    # The demo's portal sells packs without Stripe: purchases count as paid at once.
    save_branding(cg, tenant.id, name="Demo AI", portal_demo_payments=True)
    for code, name, amount, price in DEMO_PACKS:
        t.create_pack(code, asset="credits", amount=amount, price=price, name=name)

    t.create_customer("cust_alice", name=DEMO_CUSTOMERS["cust_alice"])
    t.grant(
        "cust_alice", "credits", 200_000, kind="included", priority=0,
        expires_at=now + timedelta(days=30), cost_basis=Decimal("0.01"),
        metadata={"plan": "pro"}, idempotency_key="demo-alice-included",
    )  # fmt: skip
    t.grant(
        "cust_alice", "credits", 50_000, kind="promotional", priority=0,
        expires_at=now + timedelta(days=7), metadata={"campaign": "WELCOME"},
    )  # fmt: skip
    t.grant(
        "cust_alice", "credits", 10_000, kind="purchased", priority=10,
        cost_basis=Decimal("0.25"), metadata={"pack": "100 credits for $25"},
    )  # fmt: skip
    t.grant("cust_alice", "gpu_minutes", 120, kind="included", cost_basis=Decimal("0.05"))
    for tokens_in, tokens_out, model in (
        (1_200, 310, "claude-sonnet-4"),
        (5_000, 1_800, "gpt-4.1"),
        (800, 120, "claude-sonnet-4"),
    ):
        auth = t.authorize(
            "cust_alice",
            action="chat.completion",
            dimensions={"model": model},
            quantities={"input_tokens": tokens_in, "output_tokens": 800},
        )
        t.settle(auth.id, quantities={"input_tokens": tokens_in, "output_tokens": tokens_out})
    t.charge("cust_alice", action="image.generate", dimensions={"quality": "ultra"})
    t.charge(
        "cust_alice", action="tts.speak", dimensions={"model": "flash"},
        quantities={"characters": 1_001},
    )  # fmt: skip

    t.create_customer(
        "cust_bob", name=DEMO_CUSTOMERS["cust_bob"], policy="overdraft", overdraft_limit=5_000
    )
    t.grant("cust_bob", "credits", 2_000, kind="purchased", cost_basis=Decimal("0.25"))
    t.grant("cust_bob", "USD", 2_000, kind="purchased", cost_basis=Decimal("0.01"))
    t.grant("cust_bob", "api_usd", 20_000_000, kind="purchased", cost_basis=Decimal("0.000001"))
    for quality in ("standard", "standard", "ultra"):
        t.charge("cust_bob", action="image.generate", dimensions={"quality": quality})
    t.charge(
        "cust_bob", action="chat.completion", rate_card="api-pool",
        dimensions={"model": "gpt-4.1"}, quantities={"input_tokens": 1_000, "output_tokens": 500},
    )  # fmt: skip

    t.create_customer("cust_carol", name=DEMO_CUSTOMERS["cust_carol"])
    t.grant(
        "cust_carol", "credits", 3_000, kind="promotional",
        expires_at=now + timedelta(days=14), metadata={"campaign": "TRIAL"},
    )  # fmt: skip
    t.charge("cust_carol", action="app.change", dimensions={"complexity": "simple"})
    t.charge("cust_carol", action="app.change", dimensions={"complexity": "auth_flow"})
    t.authorize("cust_carol", "credits", 1_000, ttl_seconds=900)
    return tenant
