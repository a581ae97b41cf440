"""Billing use cases: plans, packs and purchases, payments, refunds, auto top-up, campaigns."""
