"""Bring a database to the newest schema with Alembic (the same migrations on every backend)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError

from creditgate.storage.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision (tests/integration/test_migrations_and_cli.py pins it to
# the head Alembic finds in MIGRATIONS): a database already there is recognised with one
# query, and Alembic (about 0.1 s of CPU to import) is loaded only to migrate.
HEAD = "0023"


def alembic_config(db: Database) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    if revision == "head" and at_head(db):
        return
    from alembic import command

    with _migrating(db) as cfg:
        command.upgrade(cfg, revision)


def downgrade(db: Database, revision: str) -> None:
    from alembic import command

    with _migrating(db) as cfg:
        command.downgrade(cfg, revision)


def at_head(db: Database) -> bool:
    """Whether the database records HEAD as its revision (not when it has no schema yet)."""
    try:
        with db.engine.connect() as conn:
            found = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except DBAPIError:  # no such table: a new database (or none: Alembic will say)
        return False
    return [row[0] for row in found] == [HEAD]


@contextmanager
def _migrating(db: Database) -> Iterator[Config]:
    """The Alembic config of a migration running in one transaction on `db`."""
    cfg = alembic_config(db)
    if db.engine.dialect.name != "sqlite":
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            yield cfg
        return
    # SQLite alters a table by copying it into a new one and dropping the old, which its
    # foreign keys refuse while other tables' rows point at it. They are off for the
    # migration (SQLite ignores the pragma inside a transaction, so it is set before one) and
    # checked in the migration's transaction before it commits.
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                yield cfg
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()
