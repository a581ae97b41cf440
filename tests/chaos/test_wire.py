"""The bank clients' HTTP client: answers by length or chunks, keep-alive, and the two kinds
of failure the workload tells apart (nothing sent, or no answer to what was sent)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from creditgate.chaos import wire

# What the scripted server does with the n-th request it reads: the bytes to answer (None:
# close the connection without answering), and whether to close it after answering.
Script = Callable[[int, bytes], tuple[bytes | None, bool]]


class ScriptedServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                self.requests.append(head + b"\r\n\r\n" + body)
                answer, close = self.script(len(self.requests), body)
                if answer is None:
                    return
                conn.sendall(answer)
                if close:
                    return

    def url(self, path: str = "/v1/x") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self._stop = True
        self._thread.join()
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def answer(status: int, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_a_request_is_sent_whole_and_its_answer_read_by_length(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def echo(n: int, body: bytes) -> tuple[bytes, bool]:
        return answer(201, json.dumps({"n": n, "got": json.loads(body)}).encode()), False

    server = serve(echo)
    client = wire.Client({"Authorization": "Bearer k"})
    first = client.post(server.url(), json={"a": 1}, headers={"Idempotency-Key": "key-1"})
    second = client.post(server.url(), json={"a": "é"})
    client.close()
    assert first.status_code == 201 and first.json() == {"n": 1, "got": {"a": 1}}
    assert second.json() == {"n": 2, "got": {"a": "é"}}
    assert server.connections == 1  # kept alive
    head = server.requests[0].decode()
    assert head.startswith("POST /v1/x HTTP/1.1\r\n")
    assert "Authorization: Bearer k\r\n" in head and "Idempotency-Key: key-1\r\n" in head
    assert "Content-Type: application/json\r\n" in head


def test_a_chunked_answer_and_connection_close(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def chunked(n: int, body: bytes) -> tuple[bytes, bool]:
        data = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        data += b'4\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n'
        return data, True

    server = serve(chunked)
    client = wire.Client({})
    assert client.post(server.url(), json={}).json() == {"a": 1}
    assert client.post(server.url(), json={}).json() == {"a": 1}
    assert server.connections == 2  # the server said close: a new connection each time


def test_nothing_sent_is_a_connect_error(serve: Callable[[Script], ScriptedServer]) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]  # nobody listens here once it is closed
    with pytest.raises(wire.ConnectError):
        wire.Client({}).post(f"http://127.0.0.1:{port}/v1/x", json={})


def test_a_request_cut_before_its_answer_is_indefinite(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    server = serve(lambda n, body: (None, True))
    client = wire.Client({})
    with pytest.raises(wire.TransportError) as raised:
        client.post(server.url(), json={"amount": 5})
    assert not isinstance(raised.value, wire.ConnectError)
    assert len(server.requests) == 1  # it did arrive


def test_a_timeout_is_indefinite(serve: Callable[[Script], ScriptedServer]) -> None:
    gate = threading.Event()

    def slow(n: int, body: bytes) -> tuple[bytes, bool]:
        gate.wait(5)
        return answer(200, b"{}"), False

    server = serve(slow)
    with pytest.raises(wire.TransportError) as raised:
        wire.Client({}, timeout=0.2).post(server.url(), json={})
    gate.set()
    assert not isinstance(raised.value, wire.ConnectError)


def test_an_idle_connection_the_server_closed_is_replaced_before_sending(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    # The server answers, then closes without saying so (as a restarted server's old
    # connections end): the next request goes on a new connection, not into the dead one.
    server = serve(lambda n, body: (answer(200, b'{"ok": true}'), True))
    client = wire.Client({})
    assert client.post(server.url(), json={}).json() == {"ok": True}
    for _ in range(50):  # until the close has reached the client
        if client._connections and next(iter(client._connections.values())).stale():
            break
        threading.Event().wait(0.01)
    assert client.post(server.url(), json={}).json() == {"ok": True}
    assert server.connections == 2 and len(server.requests) == 2
