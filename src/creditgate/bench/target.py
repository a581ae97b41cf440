"""Where a benchmark runs: the --db URL, else PostgreSQL from the environment or a throwaway
cluster, else a temporary SQLite file."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from creditgate.storage.throwaway import ENV_URL, ThrowawayCluster, create_database, drop_database


@contextmanager
def bench_database(backend: str, url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="creditgate-bench-") as tmp:
            yield f"sqlite:///{os.path.join(tmp, 'bench.db')}"
        return
    if backend != "postgres":
        raise ValueError("backend must be sqlite or postgres")
    with bench_server(None) as server:
        name = f"creditgate_bench_{uuid.uuid4().hex[:8]}"
        try:
            yield create_database(server, name)
        finally:
            drop_database(server, name)


@contextmanager
def bench_server(url: str | None) -> Iterator[str]:
    """A PostgreSQL server to make fresh databases on: the --db URL's, else the one in the
    environment, else a throwaway cluster."""
    server = url or os.environ.get(ENV_URL)
    if server:
        yield server
        return
    cluster = ThrowawayCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()
