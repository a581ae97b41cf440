"""Named failures of pricing: an action the rate card cannot price is an error, never free."""

from __future__ import annotations

from creditgate.domain.errors import CreditgateError


class NoPrice(CreditgateError):
    """The rate card has no rule for this action and these dimensions."""

    code = "no_price"
    status = 422


class VendorCostUnknown(NoPrice):
    """A rule priced as a multiple of vendor cost, and the vendor cost is not known."""

    code = "vendor_cost_unknown"
