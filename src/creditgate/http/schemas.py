"""The answers as the API reference shows them: every field described, with its unit.

Routes answer with the services' results (`answers.answer`); these documented twins only
describe them, as each route's `response_model`. A twin has the same fields, types and
JSON as its model (see `reference.documented`), so the document cannot drift from what is
sent: a field added to a result and not described here fails the OpenAPI lint test.
"""

from __future__ import annotations

from creditgate.http.examples import ANSWERS
from creditgate.http.models import (
    ApiKeyList,
    AssetList,
    BatchItem,
    BatchResult,
    CustomerList,
    LotList,
    RateCardList,
)
from creditgate.http.reference import documented
from creditgate.services import results
from creditgate.services.billing import results as billing
from creditgate.services.ledger import refunds
from creditgate.services.pricing import margin
from creditgate.services.reports import portal, revenue
from creditgate.services.webhooks import endpoints

# Units, said the same way everywhere.
MINOR = "in minor units of the asset (at scale 2, 100 is 1 credit)"
TIME = "ISO 8601 date and time, UTC"
USD = "US dollars, a decimal string"
DECIMAL = "a decimal string"
CUSTOMER = "The customer's own id (`external_id`)"
ASSET = "The asset's code"
METADATA = "Your own JSON object, returned as sent"


# Catalog ------------------------------------------------------------------------------------

AssetInfo = documented(
    results.AssetInfo,
    {
        "code": "The asset's code, e.g. `credits`; requests name the asset by it",
        "scale": "Decimal places of one unit: amounts are integers in minor units, "
        "10^scale per unit (scale 2: 100 minor units are 1 credit)",
        "name": "A display name",
    },
    example=ANSWERS["asset"],
)
Customer = documented(
    results.Customer,
    {
        "id": "creditgate's id for the customer (`cus_…`)",
        "external_id": "Your own id for the customer, as created: every request names the "
        "customer by it",
        "wallet_id": "The customer's wallet (`wal_…`), one per customer, holding every asset",
        "name": "A display name",
        "metadata": METADATA,
        "policy": "The wallet policy new assets start with: `block`, `overdraft` or `allow`",
        "overdraft_limit": "Under `overdraft`: how far below zero the wallet may go, " + MINOR,
        "created_at": "When the customer was created; " + TIME,
    },
    example=ANSWERS["customer"],
)
Policy = documented(
    results.Policy,
    {
        "customer": CUSTOMER,
        "asset": ASSET,
        "policy": "`block` (never below zero), `overdraft` (down to -`overdraft_limit`) or "
        "`allow` (no floor: usage past the balance is recorded as debt)",
        "overdraft_limit": "Under `overdraft`: how far below zero available may go, " + MINOR,
        "low_balance_threshold": "A `balance.low` event is sent when available falls below "
        "it, " + MINOR + "; null: none",
        "thresholds": "Alert thresholds of available, " + MINOR + ", highest first: a "
        "`balance.threshold_crossed` event each time available falls below one",
    },
    example=ANSWERS["policy"],
)
KindPriority = documented(
    results.KindPriority,
    {
        "kind": "A lot kind: included, promotional, purchased, refund or adjustment",
        "priority": "Its default priority: lower is used first",
        "is_default": "Whether it is creditgate's default (not set by the tenant)",
    },
    example=ANSWERS["order"]["data"][0],
)
ConsumptionOrder = documented(
    results.ConsumptionOrder,
    {"data": "Every lot kind with its priority, in the order credit is used"},
    example=ANSWERS["order"],
)

# Wallets and lots ---------------------------------------------------------------------------

AssetBalance = documented(
    results.AssetBalance,
    {
        "asset": ASSET,
        "scale": "The asset's scale: amounts below are integers, 10^scale per unit",
        "posted": "Credit in active lots, less debt, " + MINOR,
        "held": "Credit reserved by pending authorizations, " + MINOR,
        "available": "What the next authorization or charge can use: posted - held, " + MINOR,
        "debt": "Usage charged past the balance (under `overdraft` or `allow`), "
        + MINOR
        + "; paid back from the next credit granted",
        "policy": "The wallet policy for this asset: `block`, `overdraft` or `allow`",
        "overdraft_limit": "Under `overdraft`: how far below zero available may go, " + MINOR,
        "low_balance_threshold": "Below it a `balance.low` event is sent, "
        + MINOR
        + "; null: none",
        "thresholds": "Alert thresholds of available, " + MINOR + ", highest first "
        "(`balance.threshold_crossed`)",
    },
    example=ANSWERS["wallet"]["balances"][0],
)
Wallet = documented(
    results.Wallet,
    {
        "customer": CUSTOMER,
        "wallet_id": "The wallet's id (`wal_…`)",
        "balances": "One balance per asset the wallet has held",
    },
    example=ANSWERS["wallet"],
)
Lot = documented(
    results.Lot,
    {
        "id": "The lot's id (`lot_…`); voiding a grant names it",
        "customer": CUSTOMER,
        "asset": ASSET,
        "kind": "included, promotional, purchased, refund or adjustment",
        "status": "scheduled (`effective_at` ahead), active, expired or voided",
        "amount": "Credit granted, " + MINOR,
        "remaining": "Credit left to use, " + MINOR,
        "consumed": "Credit used by charges, " + MINOR,
        "expired": "Credit lost when the lot expired, " + MINOR,
        "voided": "Credit taken back by a void, " + MINOR,
        "refunded": "Credit given back to it by refunds of charges, " + MINOR,
        "priority": "Burn order: lower is used first, then the soonest to expire, then the oldest",
        "effective_at": "From when the credit counts; " + TIME,
        "expires_at": "When what remains expires; " + TIME + "; null: never",
        "cost_basis": "What one unit of the asset cost you, in `currency`; "
        + DECIMAL
        + " (0 for free credit): revenue is recognized from it as credit is used",
        "currency": "The currency of `cost_basis` (ISO 4217 code)",
        "metadata": METADATA,
        "created_at": "When the lot was granted; " + TIME,
    },
    example=ANSWERS["grant"],
)
LedgerEntry = documented(
    results.LedgerEntry,
    {
        "account": "The account moved: `wallet` (the customer's), or one of the tenant's: "
        "`issued:<lot kind>` (where granted credit comes from), `usage`, `expired`, `voided`, "
        "`refunded`",
        "asset": ASSET,
        "amount": "Signed: negative leaves the account, positive enters it; " + MINOR,
        "lot_id": "The lot moved, for wallet entries; null otherwise",
    },
    example=ANSWERS["ledger"]["data"][0]["entries"][0],
)
LedgerTransaction = documented(
    results.LedgerTransaction,
    {
        "id": "The transaction's id (`txn_…`); a page's `next_cursor`",
        "kind": "grant, charge, expire, void_lot, refund, rollover, purchase_refund or "
        "refund_reversal",
        "asset": ASSET,
        "reference_id": "What caused it: the charge, lot or refund id",
        "created_at": "When it was posted; " + TIME,
        "entries": "Its double entries; they sum to zero",
        "wallet_change": "What it changed the wallet's balance by, signed, " + MINOR,
    },
    example=ANSWERS["ledger"]["data"][0],
)
LedgerPage = documented(
    results.LedgerPage,
    {
        "data": "Transactions, newest first",
        "next_cursor": "Pass it as `cursor` for the next page; null on the last page",
    },
    example=ANSWERS["ledger"],
)

# The gate -----------------------------------------------------------------------------------

Draw = documented(
    results.Draw,
    {
        "lot_id": "The lot drawn from",
        "amount": "Credit taken from it, " + MINOR,
        "cost_basis": "The lot's cost per unit of the asset, in its currency; " + DECIMAL,
    },
    example=ANSWERS["charge"]["draws"][0],
)
PriceLine = documented(
    results.PriceLine,
    {
        "name": "`flat`, a quantity's name (e.g. `input_tokens`), or `vendor_cost`",
        "quantity": "How many, " + DECIMAL,
        "unit_price": "Units of the asset per one, " + DECIMAL,
        "subtotal": "quantity x unit_price, in units of the asset (not minor units); " + DECIMAL,
    },
    example=ANSWERS["quote"]["lines"][0],
)
AppliedMultiplier = documented(
    results.AppliedMultiplier,
    {
        "index": "The multiplier's position in the card's action",
        "match": "The dimensions it matched on",
        "factor": "What the subtotal was multiplied by; " + DECIMAL,
    },
    example={"index": 0, "match": {"quality": "hd"}, "factor": "1.5"},
)
VendorCostInfo = documented(
    results.VendorCostInfo,
    {
        "usd": "What the call cost you, " + USD + "; null when unknown (see `reason`)",
        "source": "Where it came from: explicit (sent with the request), card (the card's "
        "vendor price), tenant_override (your model price), genai_prices (the maintained "
        "price table) or unknown",
        "reason": "Why it is unknown; null when known",
        "provider": "The LLM vendor priced, e.g. `openai`",
        "model": "The model priced, e.g. `gpt-4.1`",
    },
    example=ANSWERS["quote"]["vendor_cost"],
)
PriceQuote = documented(
    results.PriceQuote,
    {
        "rate_card_id": "The card version priced with (`rc_…`)",
        "rate_card_version": "Its version number within the card's name",
        "action": "The action priced",
        "asset": "The asset the card prices in",
        "scale": "The asset's scale: `amount` has 10^scale minor units per unit",
        "rule": "The index of the price rule that matched",
        "match": "The dimensions the rule matched on",
        "dimensions": "The dimensions given",
        "quantities": "The quantities priced, each " + DECIMAL,
        "lines": "The price line by line",
        "multipliers": "Multipliers applied to the subtotal",
        "subtotal": "Σ lines x Π multipliers, before the minimum; units of the asset, " + DECIMAL,
        "minimum": "The rule's minimum price, units of the asset; null: none",
        "units": "The exact price in units of the asset; " + DECIMAL,
        "rounded_units": "`units` rounded to the asset's scale by `rounding`: as charged",
        "amount": "The price as charged, " + MINOR,
        "rounding": "The card's rounding: up (default), down, half_up, half_down or half_even",
        "credit_value_usd": "What one unit of the asset is worth, "
        + USD
        + "; null if the card does not say",
        "vendor_cost": "What the call costs you, and where that figure came from",
    },
    example=ANSWERS["quote"],
)
_CHARGE_FIELDS = {
    "id": "The charge's id (`chg_…`); refunds name it",
    "status": "`posted` (credit taken) or `declined` (nothing taken)",
    "decline_reason": "Why it was declined: insufficient_funds, overdraft_limit_reached, "
    "balance_limit_reached, margin_guard, member_inactive, member_removed or budget_exceeded; "
    "null when posted",
    "customer": CUSTOMER,
    "asset": ASSET,
    "hold_id": "The authorization it settled; null for a one-step charge",
    "requested": "What the usage cost, " + MINOR,
    "amount": "What was charged: requested less any shortfall, " + MINOR,
    "debt": "The part of `amount` past the balance, owed (under overdraft or allow), " + MINOR,
    "shortfall": "Usage the policy did not let be charged (a `charge.shortfall` event), " + MINOR,
    "draws": "The lots the charge drew from, in burn order",
    "action": "What was done, e.g. `chat.completion`",
    "metadata": METADATA,
    "created_at": "When it was charged; " + TIME,
    "available": "The wallet's available balance after it, " + MINOR,
    "model": "The LLM model, when a dimension named it",
    "dimensions": "The dimensions it was priced by",
    "quantities": "The quantities it was priced by, each " + DECIMAL,
    "price": "The price line by line (a price quote), for a charge priced by a rate card",
    "rate_card_id": "The card version it was priced with (`rc_…`)",
    "rate_card_version": "That version's number",
    "vendor_cost": "What the call cost you, " + USD + "; null when unknown",
    "revenue": "What the charge earned: the cost basis of the credit drawn, in its "
    "currency; " + DECIMAL,
    "warnings": "What looks wrong, e.g. a margin guard letting the charge through; for a "
    "charge declined by a budget, what the budget has left",
    "member": "The member of the customer it was for (its `external_id`); null: none named",
}
Charge = documented(results.Charge, _CHARGE_FIELDS, example=ANSWERS["charge"])
Authorization = documented(
    results.Authorization,
    {
        "id": "The authorization's id (`hld_…`): settle or void it by this id",
        "customer": CUSTOMER,
        "asset": ASSET,
        "status": "pending, settled, voided, expired, or declined (nothing was reserved)",
        "approved": "Whether the hold was placed: go ahead with the call only if true",
        "amount": "Credit reserved, " + MINOR + "; 0 when declined",
        "requested": "What was asked for (the amount, or the priced estimate), " + MINOR,
        "decline_reason": "Why it was declined: insufficient_funds, overdraft_limit_reached, "
        "balance_limit_reached, margin_guard, member_inactive, member_removed or "
        "budget_exceeded; null when approved",
        "available": "The wallet's available balance after the hold, " + MINOR,
        "created_at": "When it was placed; " + TIME,
        "expires_at": "When an unsettled hold is released; " + TIME,
        "resolved_at": "When it was settled, voided or expired; " + TIME + "; null while pending",
        "charge_id": "The charge its settlement posted; null until settled",
        "metadata": METADATA,
        "action": "The action priced, for a priced hold",
        "dimensions": "The dimensions it was priced by",
        "quantities": "The estimated quantities it was priced by, each " + DECIMAL,
        "rate_card_id": "The card version it was priced with; settling prices by the same",
        "warnings": "What looks wrong, e.g. an estimate the card prices at 0; for a hold "
        "declined by a budget, what the budget has left",
        "member": "The member of the customer it is for (its `external_id`); null: none named",
    },
    example=ANSWERS["auth"],
)
Settlement = documented(
    results.Settlement,
    {
        "authorization": "The authorization, now settled",
        "charge": "The charge posted for the actual usage",
    },
    example=ANSWERS["settle"],
)
BatchItemAnswer = documented(
    BatchItem,
    {
        "idempotency_key": "The event's own key, as sent",
        "status": "`posted`, `declined` (nothing taken) or `error` (see `error`)",
        "charge": "The charge, when posted or declined",
        "error": "The problem, when the event failed; the other events are not undone",
    },
    example=ANSWERS["batch"]["data"][0],
)
BatchResultAnswer = documented(
    BatchResult,
    {"data": "One result per event, in the order sent"},
    example=ANSWERS["batch"],
)
RefundedLine = documented(
    refunds.RefundedLine,
    {
        "lot_id": "The lot the charge drew from; null for the charge's debt",
        "amount": "Credit given back for it, " + MINOR,
        "to_lot": "The lot credited: the same lot, or a new refund lot if it had closed",
    },
    example=ANSWERS["refund"]["lines"][0],
)
Refund = documented(
    refunds.Refund,
    {
        "id": "The refund's id (`rfd_…`)",
        "charge_id": "The charge refunded",
        "customer": CUSTOMER,
        "asset": ASSET,
        "amount": "Credit given back, " + MINOR,
        "reason": "Why, as sent",
        "lines": "Where the credit went back to",
        "charge_refunded": "Refunded from this charge so far, this refund included, " + MINOR,
        "available": "The wallet's available balance after it, " + MINOR,
    },
    example=ANSWERS["refund"],
)

# API keys -----------------------------------------------------------------------------------

_API_KEY_FIELDS = {
    "id": "The key's id (`key_…`): revoke or rotate it by this id",
    "name": "A name for the key, e.g. where it is used",
    "prefix": "The key's public prefix (`cg_<prefix>_…`), to tell keys apart",
    "created_at": "When it was created; " + TIME,
    "revoked_at": "When it was revoked; " + TIME + "; null while it works",
    "last_used_at": "When it last authenticated a request (updated at most once a "
    "minute); " + TIME + "; null if never",
}
ApiKey = documented(results.ApiKey, _API_KEY_FIELDS, example=ANSWERS["revoke"])
CreatedApiKey = documented(
    results.CreatedApiKey,
    {
        **_API_KEY_FIELDS,
        "key": "The secret: send it as `Authorization: Bearer <key>`. Shown in this answer "
        "only (null when the answer is a replay); it is never stored",
    },
    example=ANSWERS["keys_create"],
)

# Pricing ------------------------------------------------------------------------------------

_CARD_FIELDS = {
    "id": "The version's id (`rc_…`)",
    "name": "The card's name (`default` unless named)",
    "version": "Its version number: 1, 2, … per name",
    "effective_at": "From when it prices authorizations and charges; " + TIME,
    "spec": "The card as published: asset, credit_value_usd, rounding, actions",
}
RateCardVersion = documented(
    results.RateCardVersion, _CARD_FIELDS, example=ANSWERS["cards"]["data"][0]
)
PublishedRateCard = documented(
    results.PublishedRateCard,
    {
        **_CARD_FIELDS,
        "warnings": "What looks wrong in it, e.g. a quantity priced at 0 that its LLM vendor "
        "charges for",
    },
    example=ANSWERS["card"],
)
ModelPrice = documented(
    results.ModelPrice,
    {
        "model": "The LLM model, e.g. `gpt-4.1`",
        "provider": "Its vendor, e.g. `openai`; null: any",
        "input_mtok": "USD per million input tokens; " + DECIMAL,
        "output_mtok": "USD per million output tokens; " + DECIMAL,
        "cache_read_mtok": "USD per million cached input tokens; "
        + DECIMAL
        + "; null: the input price",
        "effective_at": "From when it prices vendor costs; " + TIME,
    },
    example=ANSWERS["modelprice"],
)

# Reports ------------------------------------------------------------------------------------

Shortfall = documented(
    margin.Shortfall,
    {
        "charges": "Charges that could not charge all their usage",
        "amount": "Usage not charged, " + MINOR,
        "credits": "The same in units of the asset; " + DECIMAL,
        "value": "Its worth at the card's credit value (revenue lost at the list price), "
        + USD
        + "; null without a credit value",
    },
    example=ANSWERS["margin"]["report"]["total"]["shortfall"],
)
_MARGIN_ROW = {
    "key": "The action, model, customer, member or day grouped by; null: not recorded",
    "customer": "By member: the customer the member belongs to; null otherwise",
    "charges": "Charges posted",
    "amount": "Credit charged, " + MINOR,
    "credits": "The same in units of the asset; " + DECIMAL,
    "revenue": "What the charges earned (cost basis of the credit drawn), " + USD,
    "vendor_cost": "What the calls cost you, where known, " + USD,
    "cost_unknown": "Charges without a known vendor cost (left out of `vendor_cost`)",
    "gross_margin": "revenue - vendor_cost, " + USD,
    "margin": "gross_margin / revenue, a fraction (0.5 is 50%); null without revenue",
    "loss": "Whether vendor cost is above revenue (with no revenue: any cost)",
    "list_value": "credits x the card's credit value, " + USD + "; null without one",
    "credit_to_cost": "list_value / vendor_cost, a ratio; null without either",
    "shortfall": "Usage the policies did not let be charged",
}
MarginRow = documented(
    margin.MarginRow, _MARGIN_ROW, example=ANSWERS["margin"]["report"]["rows"][0]
)
MarginReport = documented(
    margin.MarginReport,
    {
        "asset": ASSET,
        "start": "Start of the period, inclusive; " + TIME,
        "end": "End of the period, exclusive; " + TIME,
        "by": "What rows are grouped by: action, model, customer, member or day",
        "credit_value_usd": "The card's worth of one unit of the asset, " + USD,
        "rows": "One row per group",
        "total": "All the period's charges",
    },
    example=ANSWERS["margin"]["report"],
)
MarginDistribution = documented(
    margin.MarginDistribution,
    {
        "customers": "Customers charged in the period",
        "with_revenue": "Those with revenue (the distribution is over them)",
        "median": "Median margin across customers, a fraction; null: none with revenue",
        "p10": "10th percentile margin, a fraction",
        "p90": "90th percentile margin, a fraction",
        "worst": "The customers with the lowest margin, worst first",
    },
    example=ANSWERS["margin"]["customers"],
)
RatioCase = documented(
    margin.RatioCase,
    {
        "dimensions": "The dimensions tried",
        "rule": "The index of the price rule that matched",
        "multipliers": "The indexes of the multipliers that applied",
        "quantities": "The quantities tried, each " + DECIMAL,
        "units": "The exact price, in units of the asset; " + DECIMAL,
        "credits": "As charged: rounded to the asset's scale by the card's rounding; " + DECIMAL,
        "list_value": "credits x credit value, " + USD,
        "vendor_cost": "What the call costs you, " + USD + "; null when unknown",
        "ratio": "list_value / vendor_cost; null without a known, non-zero cost",
        "list_margin": "(list_value - vendor_cost) / list_value, a fraction; null when the "
        "list value is 0",
        "loss": "Whether the vendor cost is above the list value",
        "reason": "Why there is no ratio; null when there is one",
    },
    example=ANSWERS["margin"]["card"]["actions"][0]["cases"][0],
)
ActionRatio = documented(
    margin.ActionRatio,
    {
        "action": "The card's action",
        "worst": "The case with the lowest ratio among those with a known, non-zero cost",
        "cases": "Each combination of dimensions and quantities tried",
        "complete": "False if there were too many combinations to try them all",
    },
    example=ANSWERS["margin"]["card"]["actions"][0],
)
CardRatios = documented(
    margin.CardRatios,
    {
        "asset": ASSET,
        "credit_value_usd": "The card's worth of one unit of the asset, " + USD,
        "actions": "Each action's credit-to-cost ratios",
    },
    example=ANSWERS["margin"]["card"],
)
WhatIfRow = documented(
    margin.WhatIfRow,
    {
        "key": "The action or customer; null: not recorded",
        "revenue": "Revenue in the period, " + USD,
        "vendor_cost": "Vendor cost after the change, " + USD,
        "gross_margin": "revenue - vendor_cost after the change, " + USD,
        "margin": "The margin after the change, a fraction; null without revenue",
        "margin_before": "The margin before the change, a fraction; null without revenue",
        "loss": "Whether it is a loss after the change",
    },
    example={
        "key": "chat.completion",
        "revenue": "12.5",
        "vendor_cost": "7.2",
        "gross_margin": "5.3",
        "margin": "0.424",
        "margin_before": "0.52",
        "loss": False,
    },
)
WhatIfCardAction = documented(
    margin.WhatIfCardAction,
    {
        "action": "The card's action",
        "ratio": "Its worst credit-to-cost ratio with vendor prices changed; " + DECIMAL,
        "list_margin": "The margin at the list price after the change, a fraction; null: the "
        "list value is 0, a loss",
        "loss": "Whether it is a loss after the change",
    },
    example={"action": "chat.completion", "ratio": "1.6", "list_margin": "0.375", "loss": False},
)
WhatIf = documented(
    margin.WhatIf,
    {
        "change": "The change of vendor prices tried, a fraction (0.2 is +20%)",
        "target": "The target gross margin, a fraction (0.5 is 50%)",
        "actions": "Actions below the target after the change",
        "customers": "Customers below the target after the change",
        "card_actions": "The card's actions, their worst ratio after the change",
    },
    example=ANSWERS["margin"]["what_if"],
)
FullMarginReport = documented(
    margin.FullMarginReport,
    {
        "report": "Revenue, vendor cost and margin of the period's charges, grouped",
        "customers": "How margin is spread across customers",
        "card": "The rate card's credit-to-cost ratios; null without a card",
        "what_if": "What falls below the target margin if vendor prices change",
    },
    example=ANSWERS["margin"],
)
RevenueLine = documented(
    revenue.RevenueLine,
    {
        "currency": "The currency of every figure in the line (ISO 4217 code)",
        "opening_deferred": "Credit sold and not yet used at the start: a liability; " + DECIMAL,
        "sold": "Credit sold in the period (cost basis of the lots granted); " + DECIMAL,
        "recognized": "Revenue recognized as credit was used; " + DECIMAL,
        "breakage": "Revenue recognized as paid credit expired unused; " + DECIMAL,
        "voided": "Paid credit taken back by voids; " + DECIMAL,
        "refunded": "Usage given back by refunds of charges; " + DECIMAL,
        "purchases_refunded": "Credit taken back as purchases were refunded; " + DECIMAL,
        "closing_deferred": "Credit sold and not yet used at the end; " + DECIMAL,
    },
    example=ANSWERS["revenue"]["lines"][0]
    if ANSWERS["revenue"]["lines"]
    else {
        "currency": "USD",
        "opening_deferred": "0",
        "sold": "500",
        "recognized": "4.46",
        "breakage": "0",
        "voided": "0",
        "refunded": "1",
        "purchases_refunded": "0",
        "closing_deferred": "494.54",
    },
)
CollectionLine = documented(
    revenue.CollectionLine,
    {
        "currency": "The money's currency (ISO 4217 code)",
        "fees_invoiced": "Plan fees of the periods starting in the window; " + DECIMAL,
        "fees_received": "Of those, paid; " + DECIMAL,
        "fees_unpaid": "Of those, open or failed; " + DECIMAL,
        "included_granted": "What the included credit granted for those periods is worth at "
        "its cost basis (less credit withheld); " + DECIMAL,
        "overage_billed": "Bills of overage made in the window; " + DECIMAL,
        "overage_collected": "Of those, paid; " + DECIMAL,
        "overage_written_off": "Of those, written off; " + DECIMAL,
        "overage_unpaid": "Of those, pending or failed; " + DECIMAL,
    },
    example=ANSWERS["revenue"]["collection"][0],
)
FeePeriod = documented(
    revenue.FeePeriod,
    {
        "subscription_id": "The subscription",
        "period_index": "The period's number, from 0",
        "period_start": "Its start; " + TIME,
        "fee": "Its fee; " + DECIMAL,
        "currency": "The fee's currency",
        "fee_status": "open, paid or failed",
        "included_granted": "Credit granted for it, less what was withheld, " + MINOR,
        "withheld": "Credit withheld after its payment failed, " + MINOR,
    },
    example=ANSWERS["revenue"]["fee_periods"][0],
)
RevenueReport = documented(
    revenue.RevenueReport,
    {
        "start": "Start of the period, inclusive; " + TIME,
        "end": "End of the period, exclusive; " + TIME,
        "customer": "The customer reported on; null: every customer",
        "lines": "One line per currency",
        "collection": "Money creditgate collected, one line per currency",
        "fee_periods": "Each collected period starting in the window: its fee against the "
        "credit it granted",
    },
    example=ANSWERS["revenue"],
)

# Billing ------------------------------------------------------------------------------------

Plan = documented(
    billing.Plan,
    {
        "id": "The plan's id (`pln_…`)",
        "code": "Your code for it, e.g. `pro`; requests name the plan by it or by id",
        "name": "A display name",
        "period": "How often it renews: monthly or yearly",
        "fee": "The fee each period, in `currency`; " + DECIMAL,
        "currency": "The fee's currency (ISO 4217 code)",
        "asset": "The asset its included credit is in",
        "included": "Credit granted each period, " + MINOR,
        "rollover_cap": "Most unused included credit carried into the next period, " + MINOR,
        "overage_policy": "The wallet policy while subscribed: block, overdraft or allow",
        "overdraft_limit": "Under overdraft: how far below zero the wallet may go, " + MINOR,
        "created_at": "When it was created; " + TIME,
        "collection": "Who collects the fee: external (outside creditgate; credit granted at "
        "once), manual (an invoice you mark paid) or stripe (a Stripe subscription)",
        "stripe_price": "The Stripe price its Stripe subscription bills; null: not on Stripe",
        "grant_before_payment": "Whether each period's credit is granted at its start, before "
        "its fee is paid (else when it is paid)",
        "grace_days": "Days after a failed payment before credit granted before payment is "
        "withheld",
    },
    example=ANSWERS["plan"],
)
SubscriptionPeriod = documented(
    billing.SubscriptionPeriod,
    {
        "index": "The period's number, from 0",
        "plan_id": "The plan it was billed on",
        "period_start": "Start, inclusive; " + TIME,
        "period_end": "End, exclusive; " + TIME,
        "lot_id": "The lot of its included credit",
        "rollover_lot_id": "The lot of credit carried over from the period before; null: none",
        "rolled_over": "Credit carried over into it, " + MINOR,
        "fee_status": "Its fee: external (collected outside creditgate), open, paid or failed",
        "invoice_id": "The invoice of its fee (`inv_…`); null: not collected by creditgate",
        "withheld": "Credit withheld after its payment failed, " + MINOR,
    },
    example=ANSWERS["subscribe"]["periods"][0],
)
Subscription = documented(
    billing.Subscription,
    {
        "id": "The subscription's id (`sub_…`)",
        "customer": CUSTOMER,
        "plan_id": "The current plan",
        "status": "active or canceled",
        "current_period_start": "Start of the current period; " + TIME,
        "current_period_end": "End of the current period, when it renews; " + TIME,
        "pending_plan_id": "The plan it changes to at the period's end; null: none",
        "cancel_at_period_end": "Whether it ends at the current period's end",
        "canceled_at": "When it was canceled; " + TIME + "; null while active",
        "created_at": "When it was created; " + TIME,
        "periods": "Every period so far, oldest first",
        "payment_status": "Where its fees stand: none (collected outside creditgate), "
        "awaiting_payment, paid or past_due (a period's payment failed)",
        "payment_failure_reason": "Why it is past due; null otherwise",
        "provider_ref": "Its Stripe subscription (`sub_…` at Stripe); null: none",
    },
    example=ANSWERS["changeplan"],
)
Pack = documented(
    billing.Pack,
    {
        "id": "The pack's id (`pck_…`)",
        "code": "Your code for it, e.g. `starter`; purchases name the pack by it or by id",
        "name": "A display name",
        "asset": "The asset it grants",
        "amount": "Credit granted per purchase, " + MINOR,
        "price": "Its price, in `currency`; " + DECIMAL,
        "currency": "The price's currency (ISO 4217 code)",
        "expires_after_days": "Days after purchase its credit expires; null: never",
        "active": "Whether it is on sale",
        "created_at": "When it was created; " + TIME,
    },
    example=ANSWERS["pack"],
)
ExchangeRate = documented(
    billing.ExchangeRate,
    {
        "currency": "The money (ISO 4217 code)",
        "asset": ASSET,
        "rate": "Whole units of the asset one unit of money buys; " + DECIMAL,
        "updated_at": "When it was set; " + TIME,
    },
    example=ANSWERS["rate"],
)
ProviderAccount = documented(
    billing.ProviderAccount,
    {
        "provider": "The payment provider: manual or stripe",
        "api_key_set": "Whether an API key is stored (never shown)",
        "webhook_secret_set": "Whether a webhook signing secret is stored (never shown)",
        "updated_at": "When it was last set; " + TIME,
    },
    example=ANSWERS["provider"],
)
Purchase = documented(
    billing.Purchase,
    {
        "id": "The purchase's id (`pur_…`)",
        "customer": CUSTOMER,
        "pack_id": "The pack bought; null for a top-up by price",
        "asset": "The asset bought",
        "amount": "Credit bought, " + MINOR,
        "price": "What it costs, in `currency`; " + DECIMAL,
        "currency": "The price's currency (ISO 4217 code)",
        "status": "pending, paid or failed (`refunded` counts what was refunded since)",
        "origin": "What started it: checkout (a request or the portal) or auto_top_up",
        "provider": "manual (an invoice you mark paid) or stripe",
        "provider_ref": "The provider's id for it, e.g. a Checkout Session; null: none",
        "payment_ref": "The provider's payment, e.g. a PaymentIntent; null until paid",
        "checkout_url": "Where the customer pays (Stripe Checkout); null: none",
        "failure_reason": "Why it failed; null unless failed",
        "lot_id": "The lot its credit was granted in; null until paid",
        "created_at": "When it was created; " + TIME,
        "paid_at": "When it was paid; " + TIME + "; null until then",
        "failed_at": "When it failed; " + TIME + "; null unless failed",
        "refunded": "Credit refunded so far, " + MINOR,
        "refunded_money": "Money paid back so far, in `currency`; " + DECIMAL,
    },
    example=ANSWERS["getpurchase"],
)
PurchaseRefund = documented(
    billing.PurchaseRefund,
    {
        "id": "The refund's id (`rfd_…`)",
        "purchase_id": "The purchase refunded",
        "customer": CUSTOMER,
        "lot_id": "The purchase's lot, whose credit was taken back",
        "asset": ASSET,
        "amount": "Credit refunded: unused + consumed, " + MINOR,
        "unused": "Unused credit taken back, " + MINOR,
        "consumed": "Credit already used that was refunded on request (debited from the "
        "wallet again), " + MINOR,
        "money": "Money paid back, in `currency`; " + DECIMAL,
        "currency": "The purchase's currency (ISO 4217 code)",
        "reason": "Why, as sent",
        "metadata": METADATA,
        "provider": "The provider paying it back: manual or stripe",
        "provider_ref": "The provider's id for the refund; null: none yet",
        "status": "pending (no answer yet), succeeded, processing (paid out later) or failed "
        "(refused: the credit was given back)",
        "failure_reason": "Why it failed; null unless failed",
        "created_at": "When it was made; " + TIME,
        "resolved_at": "When the provider answered; " + TIME + "; null while pending",
    },
    example=ANSWERS["purchaserefund"],
)
PurchaseRefundList = documented(
    billing.PurchaseRefundList,
    {"data": "The purchase's refunds, oldest first"},
    example=ANSWERS["purchaserefunds"],
)
PaymentMethod = documented(
    billing.PaymentMethod,
    {
        "id": "The saved method's id (`pmt_…`)",
        "customer": CUSTOMER,
        "provider": "The payment provider: manual or stripe",
        "customer_ref": "The provider's customer, e.g. Stripe's `cus_…`",
        "method_ref": "The provider's payment method, e.g. Stripe's `pm_…`",
        "created_at": "When it was saved; " + TIME,
    },
    example=ANSWERS["pm"],
)
AutoTopUp = documented(
    billing.AutoTopUp,
    {
        "customer": CUSTOMER,
        "asset": ASSET,
        "threshold": "A pack is bought when available falls below it, " + MINOR,
        "pack_id": "The pack bought",
        "provider": "Who is paid: manual or stripe (with the saved payment method)",
        "monthly_limit": "Most purchases per calendar month (UTC); null: no limit",
        "enabled": "Whether it is on",
        "armed": "Whether the next fall below the threshold buys (re-armed when available "
        "is back at or above it)",
        "in_flight_purchase_id": "A purchase started and not yet paid or failed; null: none",
        "month": "The month `month_count` counts, YYYY-MM",
        "month_count": "Purchases started this month",
        "failures": "Failed payments in a row",
        "backoff_until": "No purchase before then, after a failure; " + TIME + "; null: none",
    },
    example=ANSWERS["atu"],
)
Campaign = documented(
    billing.Campaign,
    {
        "id": "The campaign's id (`cmp_…`)",
        "code": "The code customers redeem, e.g. `WELCOME`",
        "name": "A display name",
        "asset": "The asset it grants",
        "amount": "Credit granted per redemption, " + MINOR,
        "per_customer_limit": "Times one customer may redeem it",
        "max_redemptions": "Redemptions in all; null: no limit",
        "redemptions": "Redemptions so far",
        "expires_at": "No redemption after; the credit expires then too; " + TIME + "; null: never",
        "credit_valid_days": "Days after redemption the credit expires; null: see expires_at",
        "created_at": "When it was created; " + TIME,
    },
    example=ANSWERS["campaign"],
)
Redemption = documented(
    billing.Redemption,
    {
        "campaign_id": "The campaign redeemed",
        "code": "Its code",
        "customer": CUSTOMER,
        "seq": "This customer's redemption number of it, from 1",
        "lot": "The lot of promotional credit granted",
    },
    example=ANSWERS["redeem"],
)
Invoice = documented(
    billing.Invoice,
    {
        "id": "The invoice's id: `inv_…` for a plan fee, the purchase's `pur_…` for overage",
        "kind": "plan_fee (a period's fee) or overage (debt billed in arrears)",
        "customer": CUSTOMER,
        "status": "open, paid, failed or written_off",
        "amount": "What it asks for, in `currency`; " + DECIMAL,
        "currency": "The money's currency (ISO 4217 code)",
        "provider": "manual (you mark it paid) or stripe",
        "provider_ref": "The provider's id for it (Stripe's invoice, PaymentIntent or "
        "Checkout Session); null: none",
        "pay_url": "Where the customer pays it; null: none given",
        "failure_reason": "Why its last payment failed; null: none",
        "subscription_id": "The subscription (plan fees); null for overage",
        "period_index": "The period it is the fee of; null for overage",
        "period_start": "That period's start; " + TIME + "; null for overage",
        "period_end": "That period's end; " + TIME + "; null for overage",
        "asset": "The asset of the credit it concerns",
        "debt": "The debt it bills, " + MINOR + "; null for a plan fee",
        "created_at": "When it was issued; " + TIME,
        "paid_at": "When it was paid; " + TIME + "; null until then",
    },
    example=ANSWERS["invoice"],
)
OverageSetting = documented(
    billing.OverageSetting,
    {
        "asset": ASSET,
        "price": "Money per whole unit of debt, in `currency`; " + DECIMAL,
        "currency": "The money's currency (ISO 4217 code)",
        "provider": "manual (an invoice you mark paid) or stripe",
        "threshold": "Unbilled debt above which it is billed at once, "
        + MINOR
        + "; null: only at the cycle's end",
        "on_failure": "What a failed payment does: keep (nothing) or block (the wallet stops "
        "where it stands)",
        "return_url": "Where a Stripe pay link returns the customer; null: none",
        "updated_at": "When it was set; " + TIME,
    },
    example=ANSWERS["overage"],
)
TestClock = documented(
    results.TestClock,
    {
        "now": "The tenant's time; " + TIME,
        "offset_seconds": "How far it runs ahead of the server's clock, in seconds; " + DECIMAL,
    },
    example={k: ANSWERS["advance"][k] for k in ("now", "offset_seconds")},
)
RenewalReport = documented(
    billing.RenewalReport,
    {
        "renewed": "Periods issued",
        "canceled": "Subscriptions ended at their period's end",
        "rolled_over": "Credit carried into new periods, " + MINOR,
        "withheld": "Periods whose credit was withheld after a failed payment's grace",
    },
    example=ANSWERS["advance"]["billing"]["renewals"],
)
OverageReport = documented(
    billing.OverageReport,
    {"billed": "Bills of overage made", "sent": "Bills sent to their provider"},
    example=ANSWERS["advance"]["billing"]["overage"],
)
AutoTopUpReport = documented(
    billing.AutoTopUpReport,
    {
        "started": "Purchases sent to their provider (or invoiced) for the first time",
        "succeeded": "Of those, paid",
        "failed": "Of those, failed",
        "pending": "Of those, awaiting the provider",
        "capped": "Crossings found at the monthly limit",
    },
    example=ANSWERS["advance"]["billing"]["top_ups"],
)
BillingRound = documented(
    billing.BillingRound,
    {
        "renewals": "Renewals and dunning",
        "overage": "Overage billed",
        "top_ups": "Auto top-ups",
    },
    example=ANSWERS["advance"]["billing"],
)
SweepReport = documented(
    results.SweepReport,
    {
        "holds_expired": "Holds past their TTL, released",
        "lots_expired": "Lots past their expiry, closed",
        "credit_expired": "Credit those lots still held, " + MINOR,
        "credit_kept_for_holds": "Credit kept for open holds, " + MINOR,
        "lots_activated": "Scheduled lots that became effective",
    },
    example=ANSWERS["advance"]["sweeps"],
)
ClockAdvance = documented(
    billing.ClockAdvance,
    {
        "now": "The tenant's time after the advance; " + TIME,
        "offset_seconds": "How far it now runs ahead of the server's clock, in seconds; " + DECIMAL,
        "billing": "The billing round run at the new time",
        "sweeps": "The sweeps run at the new time",
        "stripe_test_clock": "none, advanced or failed: the tenant's Stripe test clock (Stripe "
        "test keys only)",
    },
    example=ANSWERS["advance"],
)
ProviderEventOutcome = documented(
    billing.ProviderEventOutcome,
    {
        "event_id": "The provider's event id",
        "type": "The event's type, e.g. `checkout.session.completed`",
        "outcome": "completed (a purchase paid), paid (a plan invoice), failed, duplicate "
        "(seen before), ignored, or already_… (it had happened)",
        "purchase_id": "The purchase it concerned; null: none",
        "subscription_id": "The subscription it concerned (plan invoices); null: none",
    },
    example={
        "event_id": "evt_1Q2w3E4r5T6y",
        "type": "checkout.session.completed",
        "outcome": "completed",
        "purchase_id": ANSWERS["getpurchase"]["id"],
        "subscription_id": None,
    },
)

# Webhooks -----------------------------------------------------------------------------------

_ENDPOINT_FIELDS = {
    "id": "The endpoint's id (`whe_…`)",
    "url": "Where events are POSTed",
    "description": "Your note on it",
    "event_types": "The event types sent; empty: every type",
    "enabled": "Whether events are sent to it",
    "created_at": "When it was created; " + TIME,
    "updated_at": "When it was last changed; " + TIME,
}
WebhookEndpoint = documented(
    endpoints.WebhookEndpoint, _ENDPOINT_FIELDS, example=ANSWERS["getendpoint"]
)
CreatedWebhookEndpoint = documented(
    endpoints.CreatedWebhookEndpoint,
    {
        **_ENDPOINT_FIELDS,
        "secret": "The signing secret (`whsec_…`, Standard Webhooks): verify each delivery's "
        "`webhook-signature` with it. Shown in this answer only; null when it is a replay",
    },
    example=ANSWERS["endpoint"],
)
WebhookEndpointList = documented(
    endpoints.WebhookEndpointList,
    {"data": "The tenant's endpoints, oldest first"},
    example=ANSWERS["endpoints"],
)
WebhookDelivery = documented(
    endpoints.WebhookDelivery,
    {
        "id": "The delivery's id: the `webhook-id` header, the same on every attempt",
        "endpoint_id": "The endpoint sent to",
        "event_id": "The event sent (`evt_…`)",
        "event_type": "The event's type, e.g. `balance.low`",
        "status": "pending, succeeded or failed (no more attempts)",
        "attempts": "Attempts made",
        "next_attempt_at": "When it is tried next; " + TIME + "; null: not again",
        "last_attempt_at": "When it was last tried; " + TIME + "; null: not yet",
        "last_status_code": "The HTTP status the endpoint last answered; null: none",
        "last_error": "The last failure's class, never the receiver's words: timeout, "
        "connection_refused, tls_error, dns_error, refused_target, connection_error, "
        "protocol_error or http_status; null: none",
        "created_at": "When it was queued; " + TIME,
        "finished_at": "When it succeeded or failed for good; " + TIME + "; null: pending",
    },
    example=ANSWERS["getdelivery"],
)
WebhookDeliveryList = documented(
    endpoints.WebhookDeliveryList,
    {"data": "The deliveries made or queued"},
    example=ANSWERS["replayevent"],
)
WebhookDeliveryPage = documented(
    endpoints.WebhookDeliveryPage,
    {
        "data": "Deliveries, newest first",
        "next_cursor": "Pass it as `cursor` for the next page; null on the last page",
    },
    example=ANSWERS["deliveries"],
)

# The portal ---------------------------------------------------------------------------------

Branding = documented(
    portal.Branding,
    {
        "name": "The product's name, shown in the portal",
        "logo_url": "The logo shown; null: none",
        "accent_color": "The portal's accent colour, `#rrggbb`",
        "customers_manage_auto_top_up": "Whether customers change their own auto top-up in "
        "the portal",
        "portal_demo_payments": "Demo mode: without Stripe, a portal purchase counts as paid "
        "at once and no money is collected; off, it is a manual invoice pending until marked "
        "paid",
    },
    example=ANSWERS["putbranding"],
)

# Lists --------------------------------------------------------------------------------------

AssetListAnswer = documented(AssetList, {"data": "The tenant's assets"}, example=ANSWERS["assets"])
CustomerListAnswer = documented(
    CustomerList,
    {"data": "Customers ordered by `external_id`; pass the last one as `after` for the next page"},
    example=ANSWERS["customers"],
)
LotListAnswer = documented(
    LotList, {"data": "The customer's lots, in burn order"}, example=ANSWERS["grants"]
)
ApiKeyListAnswer = documented(
    ApiKeyList, {"data": "The tenant's keys, revoked ones too"}, example=ANSWERS["keys"]
)
RateCardListAnswer = documented(
    RateCardList, {"data": "Card versions, oldest first"}, example=ANSWERS["cards"]
)


# Organizations: members, budgets, usage ---------------------------------------------------

_MEMBER_OF = "The member's own id (`external_id`); null: the customer as a whole"

Member = documented(
    results.Member,
    {
        "id": "creditgate's id for the member (`mbr_…`)",
        "customer": CUSTOMER,
        "external_id": "Your own id for the member, unique within the customer: calls name "
        "the member by it",
        "name": "A display name",
        "metadata": METADATA,
        "status": "`active`; `inactive` (its calls are declined until it is active again); "
        "`removed` (for good: its calls are declined, its history stays)",
        "created_at": "When it was added; " + TIME,
        "updated_at": "When it last changed; " + TIME,
        "removed_at": "When it was removed; " + TIME + "; null while it is not",
    },
    example=ANSWERS["member"],
)
MemberList = documented(
    results.MemberList,
    {"data": "Members in order of `external_id`"},
    example=ANSWERS["members"],
)
Budget = documented(
    results.Budget,
    {
        "id": "The budget's id (`bdg_…`); a new period or anchor makes a new one",
        "customer": CUSTOMER,
        "member": _MEMBER_OF,
        "asset": ASSET,
        "amount": "The most held + spent may reach per period, " + MINOR,
        "period": "`day`, `week`, `month` (counted from `anchor`) or `total`",
        "anchor": "Where periods are counted from; " + TIME,
        "mode": "`hard` (calls past the amount are declined) or `soft` (let through)",
        "thresholds": "Alert thresholds, percentages of `amount`, ascending (100 is always "
        "one, listed or not)",
        "created_at": "When it was created; " + TIME,
        "updated_at": "When its amount, mode or thresholds last changed; " + TIME,
    },
    example=ANSWERS["budget"],
)
BudgetList = documented(
    results.BudgetList,
    {"data": "One budget per asset, in order of asset"},
    example=ANSWERS["budgets"],
)
BudgetPeriod = documented(
    results.BudgetPeriod,
    {
        "budget": "The budget's id (`bdg_…`)",
        "asset": ASSET,
        "amount": "The budget's amount per period, " + MINOR,
        "mode": "`hard` or `soft`",
        "period": "`day`, `week`, `month` or `total`",
        "period_start": "When the period began; " + TIME + "; null for a total",
        "period_end": "When it ends (the next one begins); " + TIME + "; null for a total",
        "spent": "What its charges took in the period, less refunds, " + MINOR,
        "held": "What its pending authorizations hold, " + MINOR + " (a hold counts in the "
        "period it was opened in until it is settled, voided or expired)",
        "remaining": "amount - spent - held, not below 0, " + MINOR,
        "thresholds_crossed": "The thresholds (percentages) raised in the period",
    },
    example=ANSWERS["usage"]["data"][0],
)
MemberUsage = documented(
    results.MemberUsage,
    {
        "customer": CUSTOMER,
        "member": _MEMBER_OF,
        "data": "Each budget's current period first, then earlier ones it was used in (as "
        "many as `periods` asks), budget by budget in order of asset",
    },
    example=ANSWERS["usage"],
)
