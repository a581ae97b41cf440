"""A PostgreSQL cluster behind one URL: several hosts, the primary found at connect time.

A replicated cluster (Patroni, or any primary with standbys) is named by all its hosts and
`target_session_attrs=read-write`; libpq tries them in order and keeps the one that takes
writes. After a failover the pool's connections to the old primary are dead: the errors that
say so are classified here, so the pool drops them and the request in flight ends as a 503
whose client retries with its idempotency key.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# SQLSTATEs that mean "not this server, not now": the request may be sent again.
# 08: connection exceptions; 57P01-57P03: the server is shutting down, crashed or starting
# (a switchover, a restart); 25006: a read-only transaction, i.e. a standby answered where
# the primary was (a demoted primary, or a URL without target_session_attrs=read-write);
# 53300: too many connections (all of them busy reconnecting after a failover).
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "25006", "53300"})


def is_unavailable_state(state: str | None) -> bool:
    return state is not None and (state.startswith("08") or state in _UNAVAILABLE_STATES)


def one_host_per_parameter(url: str) -> str:
    """The URL as SQLAlchemy reads several hosts: one `host=name:port` query parameter each.

    Accepted, as libpq writes them: `postgresql://u@a:5432,b:5432/db` and
    `postgresql://u@/db?host=a:5432,b:5432` (and `host=a,b&port=5432,5433`, which SQLAlchemy
    already reads). One host is left as it is.
    """
    parts = urlsplit(url)
    userinfo, at, netloc_hosts = parts.netloc.rpartition("@")
    query = parse_qsl(parts.query, keep_blank_values=True)
    listed = [value for key, value in query if key == "host"]
    ports = [value for key, value in query if key == "port"]
    in_netloc = "," in netloc_hosts
    if not in_netloc and not any("," in value and ":" in value for value in listed):
        return url
    if ports:
        return url  # host=a,b&port=p,q: SQLAlchemy pairs them itself
    hosts: list[str] = []
    for value in ([netloc_hosts] if in_netloc else []) + listed:
        hosts.extend(h.strip() for h in value.split(",") if h.strip())
    rest = [(key, value) for key, value in query if key != "host"]
    netloc = f"{userinfo}{at}" if at else ""
    rebuilt = urlencode([("host", h) for h in hosts] + rest, safe=":/[]")
    return urlunsplit((parts.scheme, netloc, parts.path, rebuilt, parts.fragment))
