"""Where the server connects for a tenant: public addresses only, unless the operator allows more.

A tenant names webhook URLs; the server then connects there from inside the operator's
network. So an address on the loopback, a private, link-local, unique-local, multicast,
reserved or unspecified network (also written as an IPv4-mapped, -compatible, 6to4, Teredo
or NAT64 IPv6 address, or in the short, integer, octal and hex IPv4 forms the system's
parser accepts, such as 127.1, 2130706433 or 0x7f000001) is refused twice: when the URL is
registered, from its text, and at every connection, after DNS resolution. The connection
then goes to the very address that was checked, so a name that resolves elsewhere the
second time (DNS rebinding) gains nothing; TLS still names and verifies the host of the URL.
`--allow-private-webhook-targets` (`CREDITGATE_ALLOW_PRIVATE_WEBHOOK_TARGETS=1`) lifts the
rule for self-hosted setups whose receivers live on the inside.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from creditgate.domain.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses to try, in order
Resolve = Callable[[str, int], Sequence[str]]

# Names that stay inside a network whatever DNS says: no DNS is asked about them at all.
INTERNAL_SUFFIXES = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",  # metadata.google.internal, *.ec2.internal, *.cluster.internal…
    ".intranet",
    ".lan",
    ".arpa",  # home.arpa, reverse-lookup names
)
INTERNAL_NAMES = frozenset({"localhost", "metadata.goog", "instance-data"})
MAX_ADDRESSES_TRIED = 3
# Only digits, dots and hex: what the system's IPv4 parser may read as an address.
_NUMERIC_IPV4 = re.compile(r"[0-9a-fA-FxX.]{1,64}")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RefusedTarget(Exception):
    """A connection the rules refuse: the host is, or resolves to, a non-public address."""


class UnresolvableTarget(Exception):
    """The host's name does not resolve."""


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally, read as the system would; None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_IPV4.fullmatch(host.rstrip(".")):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries, where a network would route to them."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if int(address) >> 32 == 0 and int(address) > 1:  # IPv4-compatible ::a.b.c.d
        found.append(ipaddress.IPv4Address(int(address)))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def refusal(address: IPAddress) -> str | None:
    """Why an address is not a public one (None: it is)."""
    checks = (
        ("unspecified", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        ("not a public address", not address.is_global),
    )
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:
            return "a site-local address"
        for inner in _embedded_ipv4(address):
            reason = refusal(inner)
            if reason is not None:
                return f"{reason} (as IPv4 inside IPv6)"
    return next((reason for reason, hit in checks if hit), None)


def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse, at registration, a URL whose host is plainly inside a network (no DNS asked)."""
    if allow_private:
        return
    host = (urlsplit(url).hostname or "").lower()
    address = literal_address(host)
    if address is not None:
        reason = refusal(address)
        if reason is not None:
            raise InvalidInput(
                f"url: {address} is {reason}; webhooks go to public addresses only "
                "(the operator may allow private ones)",
                field="url",
            )
        return
    name = host.rstrip(".")
    if "." not in name or name in INTERNAL_NAMES or name.endswith(INTERNAL_SUFFIXES):
        raise InvalidInput(
            "url: the host must be a public DNS name (not localhost, a single label or an "
            "internal domain); the operator may allow private targets",
            field="url",
        )


def system_resolve(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for a host, in its order, each once."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnresolvableTarget(host) from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


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


def no_cookies() -> CookieJar:
    """A cookie jar that keeps nothing: one client sends for every tenant, so a cookie one
    tenant's endpoint set would otherwise go with another tenant's request to that host."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's TLS settings for its clients: httpx's verification against certifi's
    authorities, built once. Building it loads the whole CA bundle (about 30 ms of CPU), which
    every new client or transport would otherwise pay again; a context is safe to share
    between clients and threads."""
    return httpx.create_ssl_context(trust_env=False)


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
