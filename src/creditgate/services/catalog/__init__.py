"""Tenants, assets, customers and their wallets, wallet policies and API keys."""
