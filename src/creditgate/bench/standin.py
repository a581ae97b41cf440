"""A stand-in for the OpenAI and Anthropic APIs: a real HTTP server in a thread.

The upstream behind the gateway's tests and `creditgate bench gateway`. It speaks both wire
formats, whole answers and server-sent events, with the usage, text and failures a test
sets, and records every request it receives (unless `record` is off, as in the bench).
`hang_after` makes a stream stop after that many pieces of text and wait for its client to
go away (recorded in `cancelled`), as a provider does when the caller cancels. `pause_after`
makes a stream stop after that many pieces until `resume` is set (or `pause_seconds`
pass), and set `resumed` before it sends the rest: what a client received before `resumed`
was passed on while the provider was still generating.

`reset()` puts every setting back and forgets what was received, once no request is in
flight, so that one stand-in (and the servers pointed at it) can serve test after test.

`python -m creditgate.bench.standin [--port N]` runs it on loopback and prints its URL.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_CHAT_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
OPENAI_RESPONSES_USAGE = {
    "input_tokens": 900,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 200,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 1100,
}
EMBEDDINGS_USAGE = {"prompt_tokens": 40, "total_tokens": 40}
ANTHROPIC_USAGE = {
    "input_tokens": 700,
    "output_tokens": 150,
    "cache_read_input_tokens": 0,
    "cache_creation_input_tokens": 0,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Connections waiting to be accepted: the standard library's 5 refuses a burst of new
    # connections under the bench's load.
    request_queue_size = 128


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    request_id: str  # the id the answer carries (unique for the stand-in's life)


@dataclass
class StandIn:
    pieces: list[str] = field(default_factory=lambda: ["Hello", ", ", "wor", "ld", "!"])
    chat_usage: dict[str, Any] = field(default_factory=lambda: dict(OPENAI_CHAT_USAGE))
    responses_usage: dict[str, Any] = field(default_factory=lambda: dict(OPENAI_RESPONSES_USAGE))
    embeddings_usage: dict[str, Any] = field(default_factory=lambda: dict(EMBEDDINGS_USAGE))
    anthropic_usage: dict[str, Any] = field(default_factory=lambda: dict(ANTHROPIC_USAGE))
    fail: tuple[int, dict[str, Any]] | None = None
    fail_mid_stream: bool = False  # an error event after the first piece
    hang_after: int | None = None
    pause_after: int | None = None
    pause_seconds: float = 1.0
    resume: threading.Event = field(default_factory=threading.Event)
    resumed: threading.Event = field(default_factory=threading.Event)
    record: bool = True
    delay: float = 0.0  # between streamed events
    set_cookie: str | None = None  # a Set-Cookie on every whole answer, as some providers send
    received: list[Received] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    _server: _Server | None = None
    _count: int = 0  # requests received since the start (never reset: request ids stay unique)
    _in_flight: int = 0
    _idle: threading.Condition = field(default_factory=threading.Condition)

    def start(self, port: int = 0) -> StandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                with standin._idle:
                    standin._count += 1
                    request_id = f"req_standin_{standin._count}"
                    if standin.record:
                        standin.received.append(Received(self.path, headers, body, request_id))
                    standin._in_flight += 1
                try:
                    standin.respond(self, body, request_id)
                finally:
                    with standin._idle:
                        standin._in_flight -= 1
                        standin._idle.notify_all()

        self._server = _Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def reset(self, timeout: float = 15.0) -> None:
        """Every setting back to its default and nothing received, once the requests in
        flight have ended (a stream left hanging ends when its client goes away or after
        `_wait_for_close`'s 10 s), so that none of theirs counts or sets an event after it."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout):
                raise RuntimeError(f"{self._in_flight} requests still in flight at reset")
            fresh = StandIn()
            for name in _SETTINGS:
                setattr(self, name, getattr(fresh, name))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # Answers

    def respond(
        self, handler: BaseHTTPRequestHandler, body: dict[str, Any], request_id: str
    ) -> None:
        path = handler.path
        anthropic = path == "/v1/messages"
        id_header = "request-id" if anthropic else "x-request-id"
        if self.fail is not None:
            status, doc = self.fail
            self._whole(handler, status, doc, {id_header: request_id, "retry-after": "7"})
            return
        model = body.get("model", "some-model")
        stream = body.get("stream") is True
        if path == "/v1/chat/completions":
            if stream:
                self._sse(handler, self._chat_events(model, body), id_header, request_id)
            else:
                self._whole(handler, 200, self._chat(model), {id_header: request_id})
        elif path == "/v1/responses":
            if stream:
                self._sse(handler, self._responses_events(model), id_header, request_id)
            else:
                self._whole(handler, 200, self._response(model), {id_header: request_id})
        elif path == "/v1/embeddings":
            doc = {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "model": model,
                "usage": self.embeddings_usage,
            }
            self._whole(handler, 200, doc, {id_header: request_id})
        elif anthropic:
            if stream:
                self._sse(handler, self._anthropic_events(model), id_header, request_id)
            else:
                self._whole(handler, 200, self._message(model), {id_header: request_id})
        else:
            self._whole(handler, 404, {"error": {"message": "no such route"}}, {})

    def _whole(
        self, handler: BaseHTTPRequestHandler, status: int, doc: Any, headers: dict[str, str]
    ) -> None:
        data = json.dumps(doc).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        if self.set_cookie is not None:
            handler.send_header("set-cookie", self.set_cookie)
        handler.end_headers()
        handler.wfile.write(data)

    def _sse(
        self, handler: BaseHTTPRequestHandler, events: Any, id_header: str, request_id: str
    ) -> None:
        """Events as the providers send them: chunked, on a connection kept for the next
        request (so a client's pool reuses it, as it would a provider's). A stream left
        hanging, or whose client went away, closes its connection."""
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("cache-control", "no-cache")
        handler.send_header("transfer-encoding", "chunked")
        handler.send_header(id_header, request_id)
        handler.end_headers()
        try:
            for item in events:
                if item == "HANG":
                    handler.close_connection = True
                    self._wait_for_close(handler.connection)
                    return
                if item == "PAUSE":
                    self.resume.wait(self.pause_seconds)
                    self.resumed.set()
                    continue
                data = item.encode()
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                handler.wfile.flush()
                if self.delay:
                    time.sleep(self.delay)
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True
            self.cancelled.set()

    def _wait_for_close(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        self.cancelled.set()
                        return
                except OSError:
                    self.cancelled.set()
                    return

    def _hang_at(self, index: int) -> bool:
        return self.hang_after is not None and index == self.hang_after

    def _stops_at(self, index: int) -> list[str]:
        """The markers `_sse` acts on before piece `index` is sent."""
        marks = ["HANG"] if self._hang_at(index) else []
        if self.pause_after is not None and index == self.pause_after:
            marks.append("PAUSE")
        return marks

    # OpenAI chat completions

    def _chat(self, model: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "created": 1_767_268_800,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(self.pieces)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": self.chat_usage,
        }

    def _chat_events(self, model: str, body: dict[str, Any]) -> Any:
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True
        common = {
            "id": "chatcmpl-standin",
            "object": "chat.completion.chunk",
            "created": 1_767_268_800,
            "model": model,
        }

        def chunk(choices: list[Any], usage: Any = None) -> str:
            doc = {**common, "choices": choices}
            if include_usage:
                doc["usage"] = usage
            return f"data: {json.dumps(doc)}\n\n"

        yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
        for index, piece in enumerate(self.pieces):
            yield from self._stops_at(index)
            if self.fail_mid_stream and index == 1:
                yield 'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
                return
            yield chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        yield chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if include_usage:
            yield chunk([], self.chat_usage)
        yield "data: [DONE]\n\n"

    # OpenAI responses

    def _response(self, model: str, status: str = "completed") -> dict[str, Any]:
        return {
            "id": "resp_standin",
            "object": "response",
            "created_at": 1_767_268_800,
            "model": model,
            "status": status,
            "output": [
                {
                    "type": "message",
                    "id": "msg_standin",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "".join(self.pieces), "annotations": []}
                    ],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": self.responses_usage if status == "completed" else None,
        }

    def _responses_events(self, model: str) -> Any:
        def event(name: str, doc: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **doc})}\n\n"

        created = self._response(model, status="in_progress")
        yield event("response.created", {"response": created, "sequence_number": 0})
        for index, piece in enumerate(self.pieces):
            yield from self._stops_at(index)
            yield event(
                "response.output_text.delta",
                {
                    "item_id": "msg_standin",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                    "sequence_number": index + 1,
                    "logprobs": [],
                },
            )
        done = self._response(model)
        yield event(
            "response.completed", {"response": done, "sequence_number": len(self.pieces) + 1}
        )

    # Anthropic messages

    def _message(self, model: str) -> dict[str, Any]:
        return {
            "id": "msg_standin",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "".join(self.pieces)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": self.anthropic_usage,
        }

    def _anthropic_events(self, model: str) -> Any:
        def event(name: str, doc: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **doc})}\n\n"

        start_usage = {**self.anthropic_usage, "output_tokens": 1}
        message = {**self._message(model), "content": [], "stop_reason": None}
        yield event("message_start", {"message": {**message, "usage": start_usage}})
        yield event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )
        for index, piece in enumerate(self.pieces):
            yield from self._stops_at(index)
            if self.fail_mid_stream and index == 1:
                yield event(
                    "error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}
                )
                return
            yield event(
                "content_block_delta",
                {"index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
        yield event("content_block_stop", {"index": 0})
        yield event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": self.anthropic_usage["output_tokens"]},
            },
        )
        yield event("message_stop", {})


# What `reset` puts back: everything but the server, its address and its counters.
_SETTINGS = tuple(
    f.name
    for f in fields(StandIn)
    if f.name not in ("url", "_server", "_count", "_in_flight", "_idle")
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    standin = StandIn(record=False).start(args.port)
    print(standin.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
