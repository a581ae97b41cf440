"""PostgreSQL databases for the tests: created on the test server, each with
`synchronous_commit = off`.

A commit is still atomic and isolated and survives the loss of any client or creditgate
process (what the tests kill); only a crash of the PostgreSQL server itself could lose the
last few acknowledged commits, which no test does. Waiting for each commit's WAL flush is
most of a test's time on a busy disk, so the tests skip it; the benchmarks never do (they
create their databases with `creditgate.storage.throwaway` directly and report durability).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import MetaData

from creditgate.storage.database import Database
from creditgate.storage.throwaway import create_database as _create_database
from creditgate.storage.throwaway import drop_database, libpq_dsn

__all__ = ["create_database", "database_of", "drop_database"]


def create_database(server_url: str, name: str) -> str:
    """A fresh database on the server, its commits not waiting for the WAL flush; its URL."""
    import psycopg

    url = _create_database(server_url, name)
    with psycopg.connect(libpq_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    return url


@contextmanager
def database_of(
    server_url: str, prefix: str, metadata: MetaData, *, pool_size: int
) -> Iterator[Database]:
    """A fresh database holding only `metadata`'s tables, for a test of the storage layer's
    own machinery; dropped afterwards."""
    name = f"creditgate_{prefix}_{uuid.uuid4().hex[:8]}"
    url = create_database(server_url, name)
    database = Database(url, pool_size=pool_size)
    try:
        with database.engine.begin() as conn:
            metadata.create_all(conn)
        yield database
    finally:
        database.dispose()
        drop_database(server_url, name)
