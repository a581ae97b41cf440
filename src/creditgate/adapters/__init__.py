"""Adapters to the world outside: outbound connections a tenant may point elsewhere."""
