"""How many items a list answers at most, and by default when the caller names no limit."""

from __future__ import annotations

# The most items one page of a list holds (ledger history, webhook deliveries, customers).
MAX_PAGE = 500
# A page of ledger history or of webhook deliveries when no limit is named.
DEFAULT_PAGE = 50
# A page of customers when no limit is named.
DEFAULT_CUSTOMER_PAGE = 100
