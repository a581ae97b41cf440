"""Webhook use cases: endpoints, the outbox of deliveries, and sending them."""
