"""`creditgate serve`: uvicorn over the app, with one sweeper beside however many workers."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn

from creditgate.api import Creditgate, TenantLedger
from creditgate.api.clock import clock_from_env
from creditgate.http import DEFAULT_BODY_TIMEOUT_SECONDS, DEFAULT_MAX_IN_FLIGHT, logs
from creditgate.server.app import Settings
from creditgate.server.worker import DEFAULT_INTERVAL_SECONDS, Sweeper
from creditgate.services.context import ENV_ALLOW_PRIVATE, ENV_STRIPE_API_BASE
from creditgate.storage.database import normalize_url

log = logging.getLogger("creditgate.serve")


class CannotListen(Exception):
    """The address `serve` was asked to listen on is taken (or cannot be listened on)."""


@dataclass(frozen=True, slots=True)
class Listening:
    """What `serve` announces just before it listens: where, and the demo's key and customers."""

    base_url: str
    demo_key: str | None = None
    # The demo's customers, id -> name (empty without --demo).
    demo_customers: dict[str, str] = field(default_factory=dict)


def check_port(host: str, port: int) -> None:
    """Raise `CannotListen` unless `host:port` can be listened on now, as uvicorn will
    (SO_REUSEADDR set, so a closed connection's TIME_WAIT does not count as taken)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise CannotListen(f"cannot listen on {host}:{port}: {e.strerror}") from None
    family, kind, proto, _, address = found[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            probe.listen(1)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise CannotListen(
                    f"port {port} on {host} is already in use (another creditgate serve?);"
                    " stop it or choose another --port"
                ) from None
            raise CannotListen(f"cannot listen on {host}:{port}: {e.strerror}") from None


@dataclass(frozen=True, slots=True)
class ServeOptions:
    url: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    demo: bool = False
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    # Comma-separated addresses or networks of proxies whose X-Forwarded-For is believed;
    # empty: none, the connection's peer is the client (as the failure limiter counts it).
    trusted_proxies: str = ""
    pool_size: int = 10
    sweep_seconds: float = DEFAULT_INTERVAL_SECONDS
    log_level: str = "info"
    allow_private_webhook_targets: bool = False  # else from the environment
    stripe_api_base: str | None = None  # else from the environment
    edge: bool = True  # False: every request through FastAPI's router (benchmarks)


def serve(options: ServeOptions, announce: Callable[[Listening], None] | None = None) -> None:
    """Run until interrupted. `announce` is called just before listening.

    Raises `CannotListen` before anything else (no schema upgrade, no demo key) when the
    address is taken."""
    check_port(options.host, options.port)
    url = normalize_url(options.url)
    # Worker processes build their app from the environment (see app_from_env).
    os.environ["CREDITGATE_DB"] = url
    os.environ["CREDITGATE_MAX_IN_FLIGHT"] = str(options.max_in_flight)
    os.environ["CREDITGATE_BODY_TIMEOUT_SECONDS"] = str(options.body_timeout_seconds)
    os.environ["CREDITGATE_POOL_SIZE"] = str(options.pool_size)
    if options.allow_private_webhook_targets:
        os.environ[ENV_ALLOW_PRIVATE] = "1"
    if options.stripe_api_base:
        os.environ[ENV_STRIPE_API_BASE] = options.stripe_api_base
    logs.configure(options.log_level)
    # Brings the schema up to date.
    cg = Creditgate(url, pool_size=options.pool_size, clock=clock_from_env())
    keys = cg.db.secret_keys
    (log.info if keys.configured else log.warning)(keys.describe())
    for warning in cg.db.upkeep_warnings():
        log.warning(warning)
    if cg.operator.allow_private_webhook_targets:
        log.warning("webhooks may go to loopback and private networks (operator's switch)")
    workers = options.workers
    if cg.db.is_sqlite and workers > 1:
        # One SQLite file has one writer at a time: more processes only add lock waits.
        log.warning("SQLite serves from one worker; ignoring --workers", extra={"asked": workers})
        workers = 1
    base = f"http://{options.host}:{options.port}"
    listening = Listening(base)
    if options.demo:
        from creditgate.server.demo import DEMO_CUSTOMERS, seed_demo

        tenant = seed_demo(cg)
        demo_key = TenantLedger(cg, tenant.id).create_api_key("demo").key
        listening = Listening(base, demo_key, dict(DEMO_CUSTOMERS))
    if announce is not None:
        announce(listening)
    app = None
    if workers == 1:
        from creditgate.server.app import create_app, freeze_heap

        app = create_app(cg, Settings.from_env(), edge=options.edge)
        freeze_heap()  # before the sweeper's thread makes anything
    sweeper = Sweeper(cg, options.sweep_seconds)
    sweeper.start()
    config = {
        "host": options.host,
        "port": options.port,
        "log_config": logs.uvicorn_log_config(options.log_level),
        "access_log": False,
        "server_header": False,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 by default: only from the
        # proxies the operator names.
        "proxy_headers": bool(options.trusted_proxies.strip()),
        "forwarded_allow_ips": options.trusted_proxies.strip() or None,
        # With --workers, the supervisor restarts a worker that does not answer its ping in
        # this time; a worker still importing the app on a busy machine must not be killed
        # (uvicorn's default of 5 s restarts it in a loop under load).
        "timeout_worker_healthcheck": 30,
    }
    metrics_dir = None
    try:
        if app is not None:
            uvicorn.run(app, **config)  # type: ignore[arg-type]
        else:
            metrics_dir = tempfile.mkdtemp(prefix="creditgate-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            factory = "app_from_env" if options.edge else "app_without_edge_from_env"
            uvicorn.run(
                f"creditgate.server.app:{factory}",
                factory=True,
                workers=workers,
                **config,  # type: ignore[arg-type]
            )
    finally:
        sweeper.stop()
        cg.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
