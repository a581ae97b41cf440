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

The rules are here; the connections that apply them, on httpx and httpcore, are in
`creditgate.adapters.guarded`, which a process imports with its first outbound call: a
server that never sends a webhook never loads httpx (about 0.15 s of CPU at every start).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import urlsplit

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
    import httpx  # here, not above: a server loads httpx with its first outbound call

    return httpx.create_ssl_context(trust_env=False)
