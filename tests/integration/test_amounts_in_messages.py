"""Amounts in the services' own messages are written in the asset's units, as a person reads
them: 176 minor units of an asset with 2 decimals are "1.76 credits", never "176 credits"."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from creditgate.api import Creditgate, TenantLedger
from creditgate.domain.errors import CreditgateError
from creditgate.storage.tables import lots


def refused(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(CreditgateError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value.message


def test_refund_and_policy_refusals_name_amounts_in_the_assets_units(
    ledger: TenantLedger,
) -> None:
    ledger.create_customer("c1")
    ledger.create_pack("starter", asset="credits", amount=10_000, price="25.00")
    purchase = ledger.mark_paid(ledger.buy("c1", pack="starter").id)
    charge = ledger.charge("c1", "credits", 176, action="chat.completion")

    message = refused(ledger.refund_purchase, purchase.id, reason="x", amount=20_000)
    assert "has 98.24 credits to refund, not 200.00 credits" in message
    message = refused(ledger.refund_charge, charge.id, reason="x", amount=200)
    assert message == f"charge {charge.id} has 1.76 credits left to refund, not 2.00 credits"

    ledger.create_customer("c2", policy="overdraft", overdraft_limit=500)
    ledger.charge("c2", "credits", 450)
    message = refused(ledger.set_policy, "c2", "credits", "block")
    assert message.startswith("available is -4.50 credits, below this policy's floor of 0.00")


def test_verify_names_amounts_in_the_assets_units(cg: Creditgate, ledger: TenantLedger) -> None:
    ledger.create_customer("c1")
    lot = ledger.grant("c1", "credits", 1_000)
    with cg.db.engine.begin() as conn:
        conn.execute(update(lots).where(lots.c.id == lot.id).values(remaining=1_176))
    violations = cg.verify(ledger.tenant_id).violations
    assert any(
        f"lot {lot.id} remaining 11.76 credits outside 0..10.00 credits" in v for v in violations
    ), violations
    with cg.db.engine.begin() as conn:
        conn.execute(update(lots).where(lots.c.id == lot.id).values(remaining=1_000))
