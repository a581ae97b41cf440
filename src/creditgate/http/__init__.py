"""The HTTP API: a FastAPI app over the services, scoped to a tenant by its API key."""
