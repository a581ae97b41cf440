"""Persistence: SQLAlchemy Core tables, migrations and the unit of work (SQLite and PostgreSQL)."""
