"""The in-process Python API: creditgate as a library (`Creditgate`, `TenantLedger`)."""

from creditgate.api.ledger import Creditgate, TenantLedger

__all__ = ["Creditgate", "TenantLedger"]
