"""A small blocking HTTP/1.1 client for the bank workload's clients.

The harness plays every client in one process, beside the servers and PostgreSQL on the
same cores; with a general-purpose client it took a quarter of a core, which the servers
then did not have. This one keeps one keep-alive connection per server, sends a request in
one write and reads the answer by its Content-Length (or chunked), as our servers send it.

It tells the two ways a request can fail apart, because the workload treats them apart:
`ConnectError` when nothing was sent (the server is down: not an indefinite outcome), and
`TransportError` when the request may have reached the server (cut or timed out before an
answer came: indefinite, to be retried under the same idempotency key).
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
from typing import Any
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024


class TransportError(Exception):
    """No answer came; the request may have been received."""


class ConnectError(TransportError):
    """The connection could not be made: nothing was sent."""


class Response:
    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Connection:
    def __init__(self, host: str, port: int, timeout: float, connect_timeout: float) -> None:
        try:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise ConnectError(str(exc)) from exc
        try:
            self.sock.settimeout(timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            self.close()
            raise ConnectError(str(exc)) from exc
        self.buffer = b""

    def stale(self) -> bool:
        """Whether the server closed this idle connection (readable with nothing asked)."""
        poller = select.poll()
        try:
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise TransportError("the server closed the connection before answering")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._more()
        taken, self.buffer = self.buffer[:n], self.buffer[n:]
        return taken

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > MAX_HEAD:
                raise TransportError("an answer line too long")
            self._more()
        return self._take(end + 2)[:-2]

    def exchange(self, request: bytes) -> tuple[Response, bool]:
        """Send one request and read its answer; also whether the connection may be reused."""
        self.sock.sendall(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > MAX_HEAD:
                raise TransportError("an answer head too long")
            self._more()
        head = self._take(end + 4)[:-4].decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise TransportError(f"not an HTTP answer: {head[0][:100]!r}")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self._line().split(b";")[0], 16)) > 0:
                chunks.append(self._take(size))
                self._take(2)
            while self._line():  # trailers, up to the empty line
                pass
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        else:  # delimited by the end of the connection
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buffer += chunk
            body, self.buffer = self.buffer, b""
            headers["connection"] = "close"
        keep = headers.get("connection", "").lower() != "close"
        return Response(int(parts[1]), headers, body), keep


class Client:
    """POST JSON with headers, one keep-alive connection per server; `close()` when done."""

    def __init__(
        self, headers: dict[str, str], *, timeout: float = 10.0, connect_timeout: float = 2.0
    ) -> None:
        self.common = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._connections: dict[tuple[str, int], _Connection] = {}

    def post(self, url: str, *, json: Any, headers: dict[str, str] | None = None) -> Response:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        body = _dumps(json)
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        request = (
            f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{self.common}{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        where = (host, port)
        conn = self._connections.pop(where, None)
        if conn is not None and conn.stale():
            conn.close()
            conn = None
        if conn is None:
            conn = _Connection(host, port, self.timeout, self.connect_timeout)
        try:
            response, keep = conn.exchange(request)
        except TransportError:
            conn.close()
            raise
        except (OSError, ValueError) as exc:  # cut, timed out, or not HTTP
            conn.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        if keep:
            self._connections[where] = conn
        else:
            conn.close()
        return response

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")
