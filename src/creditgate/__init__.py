"""creditgate: credit wallets, stacked grants and a pre-call authorization gate for AI products.

The in-process API is `Creditgate` (a handle on one database) and `TenantLedger` (one tenant's
operations); the named failures every operation may raise are in `creditgate.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from creditgate.api import Creditgate, TenantLedger

__all__ = ["Creditgate", "TenantLedger"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import creditgate.domain…` stays free of the database stack.
    if name in __all__:
        from creditgate import api

        return getattr(api, name)
    raise AttributeError(f"module 'creditgate' has no attribute {name!r}")
