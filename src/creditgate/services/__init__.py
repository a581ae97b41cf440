"""Use cases, each one transaction: catalog, grants, the gate, sweeps, queries and the verifier."""
