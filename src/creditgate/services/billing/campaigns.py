"""Promotional campaigns: a code that grants promotional credit, with limits and an expiry.

The per-customer limit holds under concurrency because each redemption takes the next
number of (campaign, wallet) as its key and numbers past the limit are refused: two
concurrent redemptions cannot both take the last number. The total limit is a conditional
update of the campaign's counter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from creditgate.domain.amounts import MAX_BALANCE, check_amount, check_asset_code
from creditgate.domain.billing_errors import (
    CampaignExhausted,
    CampaignExpired,
    CampaignLimitReached,
    UnknownCampaign,
)
from creditgate.domain.errors import AlreadyExists, InvalidInput
from creditgate.domain.grants import GrantRequest
from creditgate.domain.lots import LotKind
from creditgate.services.billing._shared import MAX_COUNT, MAX_DAYS, check_code, check_count
from creditgate.services.billing.requests import NewCampaign
from creditgate.services.billing.results import Campaign, Redemption
from creditgate.services.catalog.catalog import check_external_id, check_name
from creditgate.services.context import Idempotent, Tx
from creditgate.services.ledger import grants
from creditgate.storage import billing as store
from creditgate.storage.database import RetryTransaction
from creditgate.storage.ids import new_id
from creditgate.storage.tables import campaign_redemptions, campaigns


def _result(row: Any) -> Campaign:
    return Campaign(
        id=row.id,
        code=row.code,
        name=row.name,
        asset=row.asset,
        amount=row.amount,
        per_customer_limit=row.per_customer_limit,
        max_redemptions=row.max_redemptions,
        redemptions=row.redemptions,
        expires_at=row.expires_at,
        credit_valid_days=row.credit_valid_days,
        created_at=row.created_at,
    )


def _normal(code: str) -> str:
    # Codes are typed by people: matched without regard to case.
    return code.upper()


def create_campaign(
    tx: Tx, *, campaign: NewCampaign, idempotency_key: str | None = None
) -> Campaign:
    """A code worth `amount` of promotional credit.

    No redemption after `expires_at`; the credit expires `credit_valid_days` after it is
    redeemed, or else at `expires_at` (never, without either).
    """
    code = _normal(check_code(campaign.code))
    name = check_name(campaign.name, "name", required=False)
    tx.asset(check_asset_code(campaign.asset))
    amount = check_amount(campaign.amount)
    if amount > MAX_BALANCE:
        raise InvalidInput(f"amount must be at most {MAX_BALANCE}", field="amount")
    limit = check_count(
        campaign.per_customer_limit, "per_customer_limit", minimum=1, maximum=MAX_COUNT
    )
    total = check_count(
        campaign.max_redemptions, "max_redemptions", minimum=1, maximum=2**31 - 1, optional=True
    )
    days = check_count(
        campaign.credit_valid_days, "credit_valid_days", minimum=1, maximum=MAX_DAYS, optional=True
    )
    expires_at = campaign.expires_at
    if expires_at is not None and (not isinstance(expires_at, datetime) or not expires_at.tzinfo):
        raise InvalidInput("expires_at must be a timezone-aware timestamp", field="expires_at")
    request = {
        "code": code,
        "name": name,
        "asset": campaign.asset,
        "amount": amount,
        "per_customer_limit": limit,
        "max_redemptions": total,
        "expires_at": expires_at,
        "credit_valid_days": days,
    }
    idem = Idempotent(tx, idempotency_key, "campaign.create", request)
    if (replayed := idem.replay(Campaign)) is not None:
        return replayed
    if expires_at is not None and expires_at <= tx.now:
        raise InvalidInput("expires_at must be in the future", field="expires_at")
    if store.code_taken(tx.conn, campaigns, tx.tenant_id, code):
        raise AlreadyExists(f"campaign {code!r} already exists", field="code")
    campaign_id = new_id("cmp")
    store.insert_row(
        tx.conn,
        campaigns,
        {
            **request,
            "tenant_id": tx.tenant_id,
            "id": campaign_id,
            "redemptions": 0,
            "created_at": tx.now,
        },
    )
    return idem.record(_result(store.row_by_id(tx.conn, campaigns, campaign_id)))


def list_campaigns(tx: Tx) -> list[Campaign]:
    return [_result(r) for r in store.list_by_code(tx.conn, campaigns, tx.tenant_id)]


def redeem(tx: Tx, *, customer: str, code: str, idempotency_key: str | None = None) -> Redemption:
    """Grant a campaign's promotional credit to a customer, within the campaign's limits."""
    wallet_id = tx.wallet_id(check_external_id(customer))
    if not isinstance(code, str) or not 1 <= len(code) <= 64 or not code.isprintable():
        raise InvalidInput("code must be 1-64 printable characters", field="code")
    idem = Idempotent(tx, idempotency_key, "campaign.redeem", {"customer": customer, "code": code})
    if (replayed := idem.replay(Redemption)) is not None:
        return replayed
    row = store.campaign_by_code(tx.conn, tx.tenant_id, _normal(code))
    if row is None:
        raise UnknownCampaign(f"no campaign has the code {code!r}", field="code")
    if row.expires_at is not None and row.expires_at <= tx.now:
        raise CampaignExpired(f"campaign {row.code} ended at {row.expires_at}", field="code")
    used = store.redemptions_by(tx.conn, row.id, wallet_id)
    if used >= row.per_customer_limit:
        raise CampaignLimitReached(
            f"customer {customer!r} has redeemed {row.code} {used} of "
            f"{row.per_customer_limit} times allowed",
            field="code",
        )
    if not store.count_redemption(tx.conn, row.id, row.max_redemptions):
        raise CampaignExhausted(f"campaign {row.code} has no redemptions left", field="code")
    expires = row.expires_at
    if row.credit_valid_days is not None:
        expires = tx.now + timedelta(days=row.credit_valid_days)
    lot = grants.grant(
        tx,
        GrantRequest(
            customer=customer,
            asset=row.asset,
            amount=row.amount,
            kind=LotKind.PROMOTIONAL,
            expires_at=expires,
            metadata={"campaign": row.id, "code": row.code},
        ),
    )
    seq = used + 1
    taken = store.insert_once(
        tx.conn,
        campaign_redemptions,
        {
            "tenant_id": tx.tenant_id,
            "wallet_id": wallet_id,
            "campaign_id": row.id,
            "seq": seq,
            "customer": customer,
            "lot_id": lot.id,
            "created_at": tx.now,
        },
    )
    if not taken:
        # A concurrent redemption took this number: start over and count again.
        raise RetryTransaction
    return idem.record(
        Redemption(campaign_id=row.id, code=row.code, customer=customer, seq=seq, lot=lot)
    )
