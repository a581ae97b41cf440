"""Reports: revenue recognition, the verifier, and what the portal and dashboard read."""
