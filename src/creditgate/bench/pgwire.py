"""A loopback relay in front of PostgreSQL that counts the statements its clients send.

For `creditgate bench http --floor`: a server pointed at the relay (without TLS) has every
statement it executes counted by its text, whether sent as a simple query or through the
extended protocol (Parse names the text, Bind a portal, Execute runs it; a prepared
statement is parsed once and executed many times), and every Sync (the end of a pipeline
or of one extended-protocol request) counted as a round trip. The relay parses only what
the client sends; the server's answers pass through untouched.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import threading
from collections import Counter
from typing import Any

# A Sync in `StatementCounter.log`.
SYNC = "SYNC"
# Startup-phase requests that carry no message type and are followed by another startup.
_NEGOTIATIONS = {80877103, 80877104}  # SSLRequest, GSSENCRequest


def _cstring(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\0", at)
    return data[at:end].decode(errors="replace"), end + 1


def normalize(text: str) -> str:
    """A statement's text on one line, its literal lists and placeholders kept."""
    return re.sub(r"\s+", " ", text).strip()


class StatementCounter:
    """Relays 127.0.0.1:`port` to `target`; `statements` and `syncs` count what goes by."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.statements: Counter[str] = Counter()
        self.syncs = 0
        # With `logging`, every statement's text and every Sync (as `SYNC`), in the order sent.
        self.logging = False
        self.log: list[str] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> asyncio.Server:
            server = await asyncio.start_server(self._relay, sock=self._sock)
            self._ready.set()
            return server

        server = self._loop.run_until_complete(start())
        self._loop.run_forever()
        server.close()
        for writer in list(self._writers):
            writer.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    def reset(self) -> None:
        with self._lock:
            self.statements.clear()
            self.syncs = 0
            self.log.clear()

    def snapshot(self) -> tuple[Counter[str], int]:
        with self._lock:
            return Counter(self.statements), self.syncs

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def down() -> None:
            try:
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        answering = asyncio.ensure_future(down())
        try:
            await self._client_to_server(reader, up_writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            up_writer.close()
            await asyncio.gather(answering, return_exceptions=True)
            self._writers.difference_update((writer, up_writer))

    async def _client_to_server(
        self, reader: asyncio.StreamReader, up: asyncio.StreamWriter
    ) -> None:
        while True:  # startup: length, code, rest (no type byte)
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            rest = await reader.readexactly(length - 8)
            up.write(head + rest)
            if code not in _NEGOTIATIONS:
                break
        names: dict[str, str] = {}
        portals: dict[str, str] = {}
        while True:
            head = await reader.readexactly(5)
            kind = head[:1]
            (length,) = struct.unpack("!i", head[1:])
            data = await reader.readexactly(length - 4)
            up.write(head + data)
            self._count(kind, data, names, portals)
            if kind == b"X":
                return

    def _count(self, kind: bytes, data: bytes, names: dict[str, str], portals: Any) -> None:
        if kind == b"Q":
            text, _ = _cstring(data, 0)
            self._add(normalize(text))
        elif kind == b"P":
            name, at = _cstring(data, 0)
            text, _ = _cstring(data, at)
            names[name] = normalize(text)
        elif kind == b"B":
            portal, at = _cstring(data, 0)
            statement, _ = _cstring(data, at)
            portals[portal] = names.get(statement, "?")
        elif kind == b"E":
            portal, _ = _cstring(data, 0)
            self._add(portals.get(portal, "?"))
        elif kind == b"S":
            with self._lock:
                self.syncs += 1
                if self.logging:
                    self.log.append(SYNC)

    def _add(self, text: str) -> None:
        with self._lock:
            self.statements[text] += 1
            if self.logging:
                self.log.append(text)


def is_commit(text: str) -> bool:
    return text.upper() in ("COMMIT", "END", "COMMIT TRANSACTION")
