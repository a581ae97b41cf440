"""Connections to where a tenant points the server, on httpx and httpcore: every host resolved
and checked against the rules of `creditgate.adapters.outbound` at each connection, the
connection made to the very address that was checked, never through a proxy.

Imported with a process's first outbound call (the webhook sender's first delivery), not at
its start.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from creditgate.adapters.outbound import (
    MAX_ADDRESSES_TRIED,
    RefusedTarget,
    Resolve,
    UnresolvableTarget,
    literal_address,
    refusal,
    system_resolve,
    tls_context,
)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, resolving and checking every host it connects to."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolve: Resolve = system_resolve,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.resolve = resolve
        self.inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        literal = literal_address(host)
        addresses = [str(literal)] if literal is not None else list(self.resolve(host, port))
        if not addresses:
            raise UnresolvableTarget(host)
        if not self.allow_private:
            for text in addresses:
                reason = refusal(ipaddress.ip_address(text))
                if reason is not None:
                    raise RefusedTarget(f"{host} resolves to {reason}")
        failure: Exception | None = None
        for text in addresses[:MAX_ADDRESSES_TRIED]:
            try:
                return self.inner.connect_tcp(
                    text,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise RefusedTarget("unix sockets are not a webhook target")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def guarded_transport(
    *, allow_private: bool, resolve: Resolve = system_resolve, limits: httpx.Limits | None = None
) -> httpx.HTTPTransport:
    """An httpx transport whose connections go only where the rules allow, and no proxy."""
    limits = limits or httpx.Limits()
    transport = httpx.HTTPTransport(verify=tls_context(), trust_env=False, limits=limits)
    # httpx offers no way to hand its pool a network backend, so its pool is replaced by one
    # built the same way with the guard as its backend (tests pin that every connection
    # goes through it).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=tls_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(allow_private=allow_private, resolve=resolve),
    )
    return transport


def error_class(exc: BaseException) -> str:
    """A failed connection as a word a tenant may see, never the remote's or the socket's text."""
    if isinstance(exc, RefusedTarget):
        return "refused_target"
    if isinstance(exc, UnresolvableTarget):
        return "dns_error"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    causes = list(_causes(exc))
    if any(isinstance(c, ssl.SSLError | ssl.CertificateError) for c in causes):
        return "tls_error"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection_refused"
    if isinstance(exc, httpx.ConnectError):
        return "connection_error"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "protocol_error"
    return "connection_error"


def _causes(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
