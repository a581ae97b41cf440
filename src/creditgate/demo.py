"""Demo data: a tenant with credits, USD and a custom asset, customers and stacked lots."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from creditgate.api import Creditgate
from creditgate.services.results import Tenant

DEMO_TENANT_ID = "ten_demo"


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
    t.create_asset("gpu_minutes", 0, "GPU minutes")

    t.create_customer("cust_alice", name="Alice (Pro plan)")
    t.grant(
        "cust_alice",
        "credits",
        200_000,
        kind="included",
        priority=0,
        expires_at=now + timedelta(days=30),
        cost_basis=Decimal("0.01"),
        metadata={"plan": "pro"},
        idempotency_key="demo-alice-included",
    )
    t.grant(
        "cust_alice",
        "credits",
        50_000,
        kind="promotional",
        priority=0,
        expires_at=now + timedelta(days=7),
        metadata={"campaign": "WELCOME"},
    )
    t.grant(
        "cust_alice",
        "credits",
        10_000,
        kind="purchased",
        priority=10,
        cost_basis=Decimal("0.25"),
        metadata={"pack": "100 credits for $25"},
    )
    t.grant("cust_alice", "gpu_minutes", 120, kind="included", cost_basis=Decimal("0.05"))
    for units in (1_250, 830, 2_000):
        auth = t.authorize("cust_alice", "credits", units + 500)
        t.settle(auth.id, units, action="chat.completion")

    t.create_customer(
        "cust_bob", name="Bob (pay as you go)", policy="overdraft", overdraft_limit=5_000
    )
    t.grant("cust_bob", "credits", 2_000, kind="purchased", cost_basis=Decimal("0.25"))
    t.grant("cust_bob", "USD", 2_000, kind="purchased", cost_basis=Decimal("0.01"))
    t.charge("cust_bob", "credits", 3_500, action="image.generate")

    t.create_customer("cust_carol", name="Carol (trial)")
    t.grant(
        "cust_carol",
        "credits",
        3_000,
        kind="promotional",
        expires_at=now + timedelta(days=14),
        metadata={"campaign": "TRIAL"},
    )
    t.authorize("cust_carol", "credits", 1_000, ttl_seconds=900)
    return tenant
