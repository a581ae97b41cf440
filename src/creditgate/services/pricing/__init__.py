"""Pricing use cases: rate card versions, quotes, vendor cost and margin."""
