"""Ledger use cases: grants, the gate (authorize, settle, void, charge), refunds, sweeps, reads."""
