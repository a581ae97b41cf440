"""The credit domain: amounts, lots and burn order, policies, holds and ledger postings (no I/O)."""
