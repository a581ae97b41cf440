"""The schema. Every wallet-scoped table carries tenant_id and wallet_id (for distribution)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    literal_column,
)

from creditgate.storage.types import ExactDecimal, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(40)

tenants = Table(
    "tenants",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Raised with every rate card version and model price the tenant publishes: a process
    # whose cached pricing was read at this version may use it (services/rate_cards.py).
    Column("pricing_version", BigInteger, nullable=False, server_default="0"),
    # live | test: only a test-mode tenant (a sandbox) may move its own clock.
    Column("mode", String(8), nullable=False, server_default="live"),
    # A test-mode tenant's clock runs this far ahead of the server's (microseconds).
    Column("clock_offset_us", BigInteger, nullable=False, server_default="0"),
    # The Stripe test clock its Stripe customers are made on (Stripe test keys only).
    Column("stripe_test_clock", String(255), nullable=True),
)

assets = Table(
    "assets",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("scale", Integer, nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "code"),
)

customers = Table(
    "customers",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("id", ID, primary_key=True),
    Column("external_id", String(200), nullable=False),
    Column("wallet_id", ID, nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("metadata", JSON, nullable=False),
    # The policy a new asset of this wallet starts with.
    Column("policy", String(16), nullable=False),
    Column("overdraft_limit", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "external_id"),
)

# One row per wallet and asset: the balance cache the gate updates conditionally.
wallet_balances = Table(
    "wallet_balances",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("asset", String(32), nullable=False),
    Column("posted", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("debt", BigInteger, nullable=False),
    Column("policy", String(16), nullable=False),
    Column("overdraft_limit", BigInteger, nullable=False),
    Column("low_balance_threshold", BigInteger, nullable=True),
    Column("low_balance_alerted", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The wallet's enabled auto top-up threshold for this asset (see services.auto_top_up):
    # a movement across it re-arms or fires the top-up. NULL: no auto top-up.
    Column("top_up_threshold", BigInteger, nullable=True),
    # Alert thresholds of available (a JSON list of minor units, descending; NULL: none), and
    # 1 while the customer as a whole has a budget in this asset (`budgets`, member '').
    Column("thresholds", JSON(none_as_null=True), nullable=True),
    Column("budgeted", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("wallet_id", "asset"),
)

lots = Table(
    "lots",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("asset", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("consumed", BigInteger, nullable=False),
    Column("expired", BigInteger, nullable=False),
    Column("voided", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("effective_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("cost_basis", ExactDecimal, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_lots_wallet_open", "wallet_id", "asset", "status"),
)
# The sweeps' indexes hold only the lots a sweep looks for (literal values, as `OPEN_LOT`):
# a debit's draw on a lot that never expires, or a used-up lot, costs no entry in them.
LOT_EXPIRING = and_(lots.c.status == literal_column("'active'"), lots.c.expires_at.is_not(None))
LOT_SCHEDULED = lots.c.status == literal_column("'scheduled'")
Index(
    "ix_lots_expiry_sweep",
    lots.c.expires_at,
    postgresql_where=LOT_EXPIRING,
    sqlite_where=LOT_EXPIRING,
)
Index(
    "ix_lots_activation_sweep",
    lots.c.effective_at,
    postgresql_where=LOT_SCHEDULED,
    sqlite_where=LOT_SCHEDULED,
)
# A lot a debit can draw on. Literal values, so that a prepared statement's plan can use the
# partial index below whatever its parameters.
OPEN_LOT = and_(lots.c.status == literal_column("'active'"), lots.c.remaining > literal_column("0"))
# Open lots in burn order (`domain.lots.burn_key`, but for its first key, lots kept back for
# holds past their expiry, which depends on the time): a debit reads the first few of a
# wallet's lots without visiting every lot it has used up.
Index(
    "ix_lots_burn_order",
    lots.c.wallet_id,
    lots.c.asset,
    lots.c.priority,
    lots.c.expires_at.is_(None),
    func.coalesce(lots.c.expires_at, lots.c.created_at),
    lots.c.created_at,
    postgresql_where=OPEN_LOT,
    sqlite_where=OPEN_LOT,
)

holds = Table(
    "holds",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("customer", String(200), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("requested", BigInteger, nullable=False),
    Column("decline_reason", String(40), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("charge_id", ID, nullable=True),
    Column("metadata", JSON, nullable=False),
    # Pricing context of a priced authorization: settle prices with the same card version.
    Column("action", String(100), nullable=True),
    Column("rate_card_id", ID, nullable=True),
    Column("dimensions", JSON, nullable=True),
    Column("quantities", JSON, nullable=True),
    # The member the hold is for (its external id), and the budgets it counts against with
    # the start of the period it counts in: [[budget id, ISO start], ...]. NULL: none.
    Column("member", String(200), nullable=True),
    Column("budgets", JSON, nullable=True),
    # The spend limit the hold counts against (a customer gateway key's), and the start of
    # the period it counts in (`spend_periods`); NULL: none.
    Column("spend_limit_id", ID, nullable=True),
    Column("spend_period", UtcDateTime, nullable=True),
)
# Holds are read by id, but for the expiry sweep, which looks for pending ones only: a hold's
# settle or void then writes no entry in its index. (No query reads a wallet's holds.)
HOLD_PENDING = holds.c.status == literal_column("'pending'")
Index(
    "ix_holds_pending_expiry",
    holds.c.expires_at,
    postgresql_where=HOLD_PENDING,
    sqlite_where=HOLD_PENDING,
)

charges = Table(
    "charges",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("customer", String(200), nullable=False),
    Column("hold_id", ID, nullable=True),
    Column("asset", String(32), nullable=False),
    Column("requested", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),  # debited: drawn from lots + new debt
    Column("debt", BigInteger, nullable=False),
    Column("shortfall", BigInteger, nullable=False),  # not debited: past what the policy allows
    Column("action", String(100), nullable=True),
    Column("metadata", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # What the charge was priced with (a snapshot), what it cost the product, what it earned.
    Column("model", String(200), nullable=True),
    Column("dimensions", JSON, nullable=True),
    Column("quantities", JSON, nullable=True),
    Column("price", JSON, nullable=True),
    Column("rate_card_id", ID, nullable=True),
    Column("rate_card_version", Integer, nullable=True),
    Column("vendor_cost", ExactDecimal, nullable=True),
    Column("revenue", ExactDecimal, nullable=True),
    Column("refunded", BigInteger, nullable=False, server_default="0"),
    # As on the hold: the member, and the budget periods the charge was spent in (a refund
    # gives back to them).
    Column("member", String(200), nullable=True),
    Column("budgets", JSON, nullable=True),
    Index("ix_charges_wallet_time", "wallet_id", "created_at"),
    Index("ix_charges_tenant_time", "tenant_id", "created_at"),
)

ledger_transactions = Table(
    "ledger_transactions",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("reference_id", ID, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # The member whose call the transaction records (a charge's), if any.
    Column("member", String(200), nullable=True),
    Index("ix_ledger_transactions_wallet", "wallet_id", "id"),
    # A wallet's transactions at or since a time: a charge's own, for its refund
    # (`services.ledger.refunds._drawn`); those since a cycle began
    # (`storage.collection.posted_before`).
    Index("ix_ledger_transactions_wallet_time", "wallet_id", "created_at"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("transaction_id", ID, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("asset", String(32), nullable=False),
    Column("account", String(40), nullable=False),
    Column("lot_id", ID, nullable=True),
    Column("amount", BigInteger, nullable=False),
    PrimaryKeyConstraint("transaction_id", "seq"),
)
ENTRY_ON_A_LOT = ledger_entries.c.lot_id.is_not(None)
Index(
    "ix_ledger_entries_lot",
    ledger_entries.c.lot_id,
    postgresql_where=ENTRY_ON_A_LOT,
    sqlite_where=ENTRY_ON_A_LOT,
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("key", String(255), nullable=False),
    Column("operation", String(40), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "key"),
)

# The outbox: events written in the same transaction as the change that caused them.
events = Table(
    "events",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("type", String(60), nullable=False),
    Column("wallet_id", ID, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Set when the webhook fan-out has turned the event into deliveries (or found none due).
    Column("dispatched_at", UtcDateTime, nullable=True),
    Index("ix_events_tenant", "tenant_id", "id"),
)
# The fan-out's read of the events still to dispatch, oldest first: those rows alone.
EVENT_UNDISPATCHED = events.c.dispatched_at.is_(None)
Index(
    "ix_events_undispatched",
    events.c.id,
    postgresql_where=EVENT_UNDISPATCHED,
    sqlite_where=EVENT_UNDISPATCHED,
)

# API keys: `cg_<prefix>_<secret>`; only the prefix (to find the row) and a hash are kept.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),
    Index("ix_api_keys_tenant", "tenant_id", "id"),
)

# Rate cards: each version is immutable once published and takes effect at `effective_at`.
rate_cards = Table(
    "rate_cards",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("id", ID, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("effective_at", UtcDateTime, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "name", "version"),
)

# A tenant's own price for a model, winning over the maintained price table from its time on.
model_prices = Table(
    "model_prices",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("id", ID, primary_key=True),
    Column("provider", String(100), nullable=True),
    Column("model", String(200), nullable=False),
    Column("input_mtok", ExactDecimal, nullable=False),
    Column("output_mtok", ExactDecimal, nullable=False),
    Column("cache_read_mtok", ExactDecimal, nullable=True),
    Column("effective_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_model_prices_lookup", "tenant_id", "model", "effective_at"),
)

# Webhook endpoints: where a tenant's events are POSTed, signed with the endpoint's secret.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("id", ID, primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("description", String(500), nullable=False, server_default=""),
    Column("event_types", JSON, nullable=False),  # empty: every type
    # whsec_<base64>, needed to sign; sealed (fernet:<token>, see storage/secret_keys.py)
    Column("secret", String(500), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("deleted_at", UtcDateTime, nullable=True),
    Index("ix_webhook_endpoints_tenant", "tenant_id", "id"),
)

# One row per event and endpoint; its id is the webhook-id the receiver deduplicates on.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("endpoint_id", ID, ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_id", ID, nullable=False),
    Column("event_type", String(60), nullable=False),
    Column("status", String(16), nullable=False),  # pending | succeeded | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("claim", ID, nullable=True),  # the sender holding the attempt in flight
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),  # a class of error, never the receiver's text
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    UniqueConstraint("endpoint_id", "event_id"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_tenant", "tenant_id", "id"),
    Index("ix_webhook_deliveries_event", "event_id"),
)

# Billing: plans and subscriptions, packs and purchases, auto top-up, campaigns.

plans = Table(
    "plans",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("id", ID, primary_key=True),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("period", String(16), nullable=False),  # monthly | yearly
    Column("fee", ExactDecimal, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("included", BigInteger, nullable=False),
    Column("rollover_cap", BigInteger, nullable=False),  # 0: nothing carries over
    Column("overage_policy", String(16), nullable=False),
    Column("overdraft_limit", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Who collects the fee: external (outside creditgate; credit granted at once) | manual
    # (an invoice an operator marks paid) | stripe (a Stripe subscription on `stripe_price`).
    Column("collection", String(16), nullable=False, server_default="external"),
    Column("stripe_price", String(255), nullable=True),
    # Grant a period's credit at its start, before its fee is paid (withheld after
    # `grace_days` if the payment fails and is not retried successfully in time).
    Column("grant_before_payment", Integer, nullable=False, server_default="0"),
    Column("grace_days", Integer, nullable=False, server_default="0"),
    UniqueConstraint("tenant_id", "code"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("customer", String(200), nullable=False),
    Column("plan_id", ID, nullable=False),
    Column("status", String(16), nullable=False),  # active | canceled
    # The wallet while the subscription is active, NULL after: one live subscription each.
    Column("live_wallet_id", ID, nullable=True, unique=True),
    Column("anchor_at", UtcDateTime, nullable=False),
    Column("anchor_index", Integer, nullable=False),
    Column("period_index", Integer, nullable=False),
    Column("current_period_start", UtcDateTime, nullable=False),
    Column("current_period_end", UtcDateTime, nullable=False),
    Column("pending_plan_id", ID, nullable=True),
    Column("cancel_at_period_end", Integer, nullable=False),
    Column("canceled_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # none (fee collected outside) | awaiting_payment | paid | past_due: the latest period's.
    Column("payment_status", String(24), nullable=False, server_default="none"),
    Column("payment_failure_reason", String(255), nullable=True),
    Column("provider_ref", String(255), nullable=True),  # Stripe's sub_…
    Index("ix_subscriptions_due", "tenant_id", "status", "current_period_end"),
    Index("ix_subscriptions_provider_ref", "provider_ref"),
)

# One row per issued period: the key (subscription, period index) makes a renewal happen
# once however often the job runs; a plan changed now starts the next index at once.
subscription_periods = Table(
    "subscription_periods",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("subscription_id", ID, nullable=False),
    Column("period_index", Integer, nullable=False),
    Column("plan_id", ID, nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("period_end", UtcDateTime, nullable=False),
    Column("lot_id", ID, nullable=True),
    Column("rollover_lot_id", ID, nullable=True),
    Column("rolled_over", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The period's fee as an invoice (plans collected by creditgate): external (not
    # collected here) | open | paid | failed. Its credit is granted when paid (or at the
    # start with grant_before_payment), once: `lot_id` is set by a conditional update.
    Column("invoice_id", ID, nullable=True, unique=True),
    Column("fee", ExactDecimal, nullable=True),
    Column("currency", String(8), nullable=True),
    Column("provider", String(16), nullable=True),
    Column("fee_status", String(16), nullable=False, server_default="external"),
    Column("invoice_ref", String(255), nullable=True),  # Stripe's in_…
    Column("pay_url", Text, nullable=True),
    Column("failure_reason", String(255), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("paid_at", UtcDateTime, nullable=True),
    Column("failed_at", UtcDateTime, nullable=True),
    # Included credit taken back after the grace period of a failed payment.
    Column("withheld", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("subscription_id", "period_index"),
    Index("ix_subscription_periods_invoice_ref", "invoice_ref"),
    Index("ix_subscription_periods_dunning", "tenant_id", "fee_status"),
)

packs = Table(
    "packs",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("id", ID, primary_key=True),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("price", ExactDecimal, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("expires_after_days", Integer, nullable=True),
    Column("active", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "code"),
)

# What one unit of a currency buys of an asset (e.g. 1 USD = 40 credits), per tenant.
exchange_rates = Table(
    "exchange_rates",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("rate", ExactDecimal, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "currency", "asset"),
)

# A tenant's account at a payment provider: keys and the webhook endpoint secret.
payment_providers = Table(
    "payment_providers",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("provider", String(16), nullable=False),
    # api_key and webhook_secret, each sealed (see storage/secret_keys.py)
    Column("config", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "provider"),
)

purchases = Table(
    "purchases",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("customer", String(200), nullable=False),
    Column("pack_id", ID, nullable=True),
    Column("asset", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("price", ExactDecimal, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("expires_after_days", Integer, nullable=True),
    Column("status", String(16), nullable=False),  # pending|paid|failed|refunded|written_off
    Column("origin", String(16), nullable=False),  # checkout | auto_top_up | invoice | overage
    Column("provider", String(16), nullable=False),
    Column("provider_ref", String(255), nullable=True),  # checkout session or payment intent
    Column("payment_ref", String(255), nullable=True),  # the payment that paid it
    Column("checkout_url", Text, nullable=True),
    Column("failure_reason", String(255), nullable=True),
    Column("lot_id", ID, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("paid_at", UtcDateTime, nullable=True),
    Column("failed_at", UtcDateTime, nullable=True),
    # Refunded so far (refunds the provider refused excluded): credits, and money paid back.
    Column("refunded", BigInteger, nullable=False, server_default="0"),
    Column("refunded_money", ExactDecimal, nullable=False, server_default="0"),
    Index("ix_purchases_wallet", "wallet_id", "created_at"),
    Index("ix_purchases_provider_ref", "provider_ref"),
    Index("ix_purchases_open", "tenant_id", "status", "origin"),
)

# What a tenant bills the debt of an `allow`/`overdraft`/`soft_cap` wallet at, per asset.
overage_settings = Table(
    "overage_settings",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("price", ExactDecimal, nullable=False),  # money per whole unit of the asset
    Column("currency", String(8), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("threshold", BigInteger, nullable=True),  # bill at once above this much debt
    Column("on_failure", String(16), nullable=False),  # keep | block
    Column("return_url", Text, nullable=True),  # where a Stripe pay link returns to
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "asset"),
)

# One row per debt billed: the key (wallet, asset, cycle) bills a period's debt once
# however often and concurrently the job runs; the purchase is the bill.
overage_bills = Table(
    "overage_bills",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("asset", String(32), nullable=False),
    Column("cycle", String(64), nullable=False),
    Column("purchase_id", ID, nullable=False),
    Column("debt", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Its failed payment stopped the wallet (the tenant's `block` rule): paid, it blocks.
    Column("stopped", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("wallet_id", "asset", "cycle"),
    Index("ix_overage_bills_tenant", "tenant_id", "created_at"),
)

# Refunds of purchases: the credit taken back (unused, and consumed on request) and the
# money paid back through the purchase's provider.
purchase_refunds = Table(
    "purchase_refunds",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("purchase_id", ID, nullable=False),
    Column("customer", String(200), nullable=False),
    Column("lot_id", ID, nullable=False),
    Column("asset", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),  # unused + consumed
    Column("unused", BigInteger, nullable=False),
    Column("consumed", BigInteger, nullable=False),
    Column("money", ExactDecimal, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("provider", String(16), nullable=False),
    Column("provider_ref", String(255), nullable=True),  # e.g. Stripe's re_…
    Column("status", String(16), nullable=False),  # pending | succeeded | processing | failed
    Column("failure_reason", String(255), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime, nullable=True),
    Index("ix_purchase_refunds_purchase", "purchase_id", "created_at"),
)

# Provider events already handled: a replayed or duplicated delivery changes nothing.
provider_events = Table(
    "provider_events",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("provider", String(16), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("type", String(100), nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "provider", "event_id"),
)

payment_methods = Table(
    "payment_methods",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("customer", String(200), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("customer_ref", String(255), nullable=True),  # e.g. Stripe's cus_…
    Column("method_ref", String(255), nullable=False),  # e.g. Stripe's pm_…
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("wallet_id", "provider"),
)

# Auto top-up per wallet and asset. `armed` is cleared when a crossing fires and set again
# once available is back at the threshold; `in_flight_purchase_id` is claimed conditionally.
auto_top_ups = Table(
    "auto_top_ups",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("asset", String(32), nullable=False),
    Column("customer", String(200), nullable=False),
    Column("threshold", BigInteger, nullable=False),
    Column("pack_id", ID, nullable=False),
    Column("provider", String(16), nullable=False),
    Column("monthly_limit", Integer, nullable=True),
    Column("enabled", Integer, nullable=False),
    Column("armed", Integer, nullable=False),
    Column("in_flight_purchase_id", ID, nullable=True),
    # When the purchase in flight was sent to its provider (NULL: not yet).
    Column("in_flight_sent_at", UtcDateTime, nullable=True),
    Column("month", String(7), nullable=False),
    Column("month_count", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("backoff_until", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("wallet_id", "asset"),
    Index("ix_auto_top_ups_tenant", "tenant_id", "enabled"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("id", ID, primary_key=True),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("per_customer_limit", Integer, nullable=False),
    Column("max_redemptions", Integer, nullable=True),
    Column("redemptions", Integer, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),  # no redemption after; credit ends by
    Column("credit_valid_days", Integer, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "code"),
)

# The key (campaign, wallet, seq) with seq <= the limit enforces it under concurrency.
campaign_redemptions = Table(
    "campaign_redemptions",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("campaign_id", ID, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("customer", String(200), nullable=False),
    Column("lot_id", ID, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("campaign_id", "wallet_id", "seq"),
)

# The consumption order a tenant sets per lot kind: the priority a grant gets by default.
kind_priorities = Table(
    "kind_priorities",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "kind"),
)

# How a tenant's billing portal looks to its customers (one row per tenant, optional).
tenant_branding = Table(
    "tenant_branding",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("logo_url", String(2000), nullable=True),
    Column("accent_color", String(7), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # 1: the portal lets customers change their own auto top-up.
    Column("customers_manage_auto_top_up", Integer, nullable=False, server_default="0"),
    # 1: a portal purchase without Stripe counts as paid at once (a demo; nothing is collected).
    Column("portal_demo_payments", Integer, nullable=False, server_default="0"),
)

# Dashboard sessions signed out before they expired: their cookie no longer works on any
# server process. A row is of no use once its session would have expired anyway; rows past
# that are removed at the tenant's next sign-out.
dashboard_sign_outs = Table(
    "dashboard_sign_outs",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("signed_out_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "session_id"),
)

# A tenant's key at an upstream LLM provider, for the gateway to call it with: sealed with the
# operator's keys (storage/secret_keys.py), shown only by its prefix. Where the gateway
# connects is the operator's setting, never a tenant's.
gateway_upstream_keys = Table(
    "gateway_upstream_keys",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("secret", String(1000), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "provider"),
)

# A customer's gateway key: `cgk_<prefix>_<secret>`, bound to one customer of the tenant; only
# the prefix (to find the row) and a hash are kept, as for API keys. Optionally a spend limit
# (`limit_amount` of `limit_asset` per `limit_period`, counted in `spend_periods`) and the
# models it may call (`models`, NULL: any).
gateway_keys = Table(
    "gateway_keys",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("customer", String(200), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("limit_asset", String(32), nullable=True),
    Column("limit_amount", BigInteger, nullable=True),
    Column("limit_period", String(8), nullable=True),
    Column("models", JSON, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),
    Index("ix_gateway_keys_customer", "tenant_id", "customer", "id"),
)

# What the holds under one spend limit hold and have spent in one period (`domain/
# spend_limits.py`): held + spent <= cap, checked by the write that reserves. The row is made
# by the period's first hold; every write to it comes after the wallet's balance row is locked
# (a limit belongs to one wallet), so the two are always locked in one order.
spend_periods = Table(
    "spend_periods",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("limit_id", ID, nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("asset", String(32), nullable=False),
    Column("cap", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("spent", BigInteger, nullable=False),
    PrimaryKeyConstraint("limit_id", "period_start"),
)

# Members of a customer (an organization): each draws on the customer's wallet under its own
# external id, unique within the customer. Removal is final and keeps the row (holds, charges
# and ledger entries name the member).
members = Table(
    "members",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("customer", String(200), nullable=False),
    Column("external_id", String(200), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("metadata", JSON, nullable=False),
    Column("active", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("removed_at", UtcDateTime, nullable=True),
    UniqueConstraint("wallet_id", "external_id"),
)

# Budgets (`domain/budgets.py`): a member's (`member`: its external id) or the whole
# customer's (`member` ''), one per asset. A budget's period and anchor never change: a new
# period or anchor is a new budget (a new id), counted from zero.
budgets = Table(
    "budgets",
    metadata,
    Column("tenant_id", ID, ForeignKey("tenants.id"), nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("id", ID, primary_key=True),
    Column("member", String(200), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("period", String(8), nullable=False),
    Column("anchor", UtcDateTime, nullable=False),
    Column("mode", String(8), nullable=False),
    Column("thresholds", JSON, nullable=False),  # percentages, ascending
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("wallet_id", "member", "asset"),
)

# What one budget's holds hold and its charges have spent in one period: held + spent <= cap
# (the budget's amount when hard, at the last reservation; NULL: soft), checked by the write
# that adds to them. `alerted`: the highest threshold (a percentage) raised in the period.
# The row is made by the period's first hold or charge; every write to it comes after the
# wallet's balance row is locked, so the two are always locked in one order.
budget_usage = Table(
    "budget_usage",
    metadata,
    Column("tenant_id", ID, nullable=False),
    Column("wallet_id", ID, nullable=False),
    Column("budget_id", ID, nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("asset", String(32), nullable=False),
    Column("cap", BigInteger, nullable=True),
    Column("held", BigInteger, nullable=False),
    Column("spent", BigInteger, nullable=False),
    Column("alerted", Integer, nullable=False),
    PrimaryKeyConstraint("budget_id", "period_start"),
)
