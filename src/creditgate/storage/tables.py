"""The schema. Every wallet-scoped table carries tenant_id and wallet_id (for distribution)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
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
    Index("ix_lots_expiry_sweep", "status", "expires_at"),
    Index("ix_lots_activation_sweep", "status", "effective_at"),
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
    Index("ix_holds_expiry_sweep", "status", "expires_at"),
    Index("ix_holds_wallet", "wallet_id", "asset", "status"),
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
    Index("ix_ledger_transactions_wallet", "wallet_id", "id"),
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
    Index("ix_ledger_entries_lot", "lot_id"),
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
    Index("ix_events_tenant", "tenant_id", "id"),
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
