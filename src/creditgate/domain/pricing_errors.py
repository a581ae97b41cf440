"""Named failures of pricing: an action the rate card cannot price is an error, never free."""

from __future__ import annotations

from creditgate.domain.errors import InvalidInput


class NoPrice(InvalidInput):
    """The rate card has no rule for this action and these dimensions."""

    code = "no_price"


class VendorCostUnknown(NoPrice):
    """A rule priced as a multiple of vendor cost, and the vendor cost is not known."""

    code = "vendor_cost_unknown"


class UnpricedCost(NoPrice):
    """A card that prices at 0 a quantity its vendor charges for, refused where asked to be
    strict: every such call would lose money."""

    code = "unpriced_cost"
