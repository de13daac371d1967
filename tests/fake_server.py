"""A small OpenAI-compatible HTTP/1.1 server on 127.0.0.1 for tests and benchmarks.

It speaks just enough of the chat API for the openai, Azure OpenAI, groq and cerebras SDKs,
counts the TCP connections it accepts and records every request (path, credential, headers,
connection id), so a test can assert how many connections a set of clients opened and which
key each request carried.

    with FakeServer() as server:
        client = openai.OpenAI(api_key="sk-test", base_url=f"{server.url}/v1")

Paths served (any prefix, so every SDK's base URL works):
    POST .../chat/completions   openai `/v1`, groq `/openai/v1`, cerebras `/v1`,
                                Azure `/openai/deployments/{deployment}` (+ `?api-version=`);
                                a request that forces a function (`tool_choice` naming one) gets
                                a call of it whose arguments are the last message's text (how
                                instructor's default mode asks for structured output)
    POST .../responses          the Responses API (openai `/v1`): a text reply, streamed as the
                                SDK's typed events when `stream` is set
    GET  .../models, .../models/{id}
    GET  /v1/tcp_warming        cerebras' constructor warm-up (recorded like any request)
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MODEL_CREATED = 1_700_000_000


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str  # without the query string
    query: dict[str, str]
    credential: str | None  # `api-key` header (Azure), else the `Authorization: Bearer` value
    headers: dict[str, str]  # lower-cased names
    connection_id: int  # the TCP connection it arrived on, unique for the server's lifetime
    body: Any  # parsed JSON body, or None


class FakeServer:
    """An OpenAI-compatible chat server on 127.0.0.1, served from background threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._sockets: dict[int, socket.socket] = {}  # open connections by id
        self._next_connection_id = 0
        self._connections_opened = 0
        self._failures: list[tuple[int, int | None]] = []  # (status, retry-after-ms) per failing response
        self.delay = 0.0
        """Seconds to wait before each response (streams: between their first and second chunk)."""
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-llm-server", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL without a path, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start or the last `reset()`."""
        with self._lock:
            return self._connections_opened

    @property
    def open_connections(self) -> int:
        """TCP connections open right now (including ones opened before the last `reset()`)."""
        with self._lock:
            return len(self._sockets)

    @property
    def open_connection_ids(self) -> frozenset[int]:
        """Ids of the connections open right now, to check that a given client's connections closed."""
        with self._lock:
            return frozenset(self._sockets)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests recorded since start or the last `reset()`, oldest first."""
        with self._lock:
            return list(self._requests)

    def fail_next(self, count: int, status: int = 500, retry_after_ms: int | None = 1) -> None:
        """Answer the next `count` requests with `status` and an OpenAI-style error body.

        `retry_after_ms` is sent as the `retry-after-ms` header, which every SDK honours,
        so retry tests do not wait for the SDK's default back-off; None omits it.
        """
        with self._lock:
            self._failures.extend([(status, retry_after_ms)] * count)

    def reset(self) -> None:
        """Forget recorded requests, zero `connections_opened`, clear `delay` and pending failures.

        Open connections stay open: a client's pooled connection remains usable.
        """
        with self._lock:
            self._requests.clear()
            self._connections_opened = 0
            self._failures.clear()
            self.delay = 0.0

    def close(self) -> None:
        """Stop serving and close every open connection."""
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            sockets = list(self._sockets.values())
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by its handler
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # Called from handler threads.

    def _connection_opened(self, sock: socket.socket) -> int:
        with self._lock:
            self._next_connection_id += 1
            self._connections_opened += 1
            self._sockets[self._next_connection_id] = sock
            return self._next_connection_id

    def _connection_closed(self, connection_id: int) -> None:
        with self._lock:
            self._sockets.pop(connection_id, None)

    def _record(self, request: RecordedRequest) -> tuple[int, int | None] | None:
        """Record `request`; return the (status, retry-after-ms) to fail it with, if any."""
        with self._lock:
            self._requests.append(request)
            return self._failures.pop(0) if self._failures else None


class _HTTPServer(ThreadingHTTPServer):
    fake: FakeServer
    daemon_threads = True
    request_queue_size = 4096  # listen backlog: many clients connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-response is normal in these tests


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.fake._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._connection_closed(self.connection_id)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        url = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        bearer = headers.get("authorization", "")
        credential = headers.get("api-key") or (bearer[7:] if bearer.lower().startswith("bearer ") else None)
        fake = self.server.fake
        failure = fake._record(
            RecordedRequest(
                method=self.command,
                path=url.path,
                query=dict(parse_qsl(url.query)),
                credential=credential,
                headers=headers,
                connection_id=self.connection_id,
                body=body,
            )
        )
        delay = fake.delay
        path = url.path.rstrip("/")
        if failure is not None:
            status, retry_after_ms = failure
            extra = {} if retry_after_ms is None else {"retry-after-ms": str(retry_after_ms)}
            self._send_json(status, _error(f"injected failure {status}", "server_error"), extra, delay)
        elif self.command == "POST" and path.endswith("/chat/completions"):
            request = body if isinstance(body, dict) else {}
            if request.get("stream"):
                self._send_stream(_chunks(request), delay)
            else:
                self._send_json(200, _completion(request), {}, delay)
        elif self.command == "POST" and path.endswith("/responses"):
            request = body if isinstance(body, dict) else {}
            if request.get("stream"):
                self._send_stream(_response_events(request), delay, done_marker=False)
            else:
                self._send_json(200, _response(request, "completed"), {}, delay)
        elif self.command == "GET" and path.endswith("/models"):
            self._send_json(200, {"object": "list", "data": [_model("fake-model")]}, {}, delay)
        elif self.command == "GET" and path.rpartition("/")[0].endswith("/models"):
            self._send_json(200, _model(path.rpartition("/")[2]), {}, delay)
        elif self.command == "GET" and path == "/v1/tcp_warming":
            self._send_json(200, {}, {}, delay)
        else:
            self._send_json(404, _error(f"no route for {self.command} {url.path}", "not_found"), {}, delay)

    def _send_json(self, status: int, payload: object, extra_headers: dict[str, str], delay: float) -> None:
        data = json.dumps(payload).encode()
        if delay:
            time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, chunks: Iterator[dict[str, Any]], delay: float, *, done_marker: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = [_sse(chunk) for chunk in chunks] + ([b"data: [DONE]\n\n"] if done_marker else [])
        framed = [b"%x\r\n%s\r\n" % (len(event), event) for event in events] + [b"0\r\n\r\n"]
        # The end goes out in one write with [DONE]: an SDK that stops reading at [DONE] then finds
        # the response complete and keeps the connection for reuse instead of closing it.
        self.wfile.write(framed[0])
        if delay:
            time.sleep(delay)
        self.wfile.write(b"".join(framed[1:]))


def _sse(chunk: dict[str, Any]) -> bytes:
    """One server-sent event; Responses API events also name their type on an `event:` line."""
    kind = chunk.get("type")
    prefix = f"event: {kind}\n" if isinstance(kind, str) and kind.startswith("response.") else ""
    return f"{prefix}data: {json.dumps(chunk)}\n\n".encode()


def _reply_text(request: dict[str, Any]) -> str:
    """The assistant's reply: an echo of the last message, so tests can tell requests apart.

    The last message is the chat API's last `messages` entry, or the Responses API's `input`
    (a string, or a list of items whose last one holds text or `input_text` parts).
    """
    messages = request.get("messages") or request.get("input") or [{}]
    if isinstance(messages, str):
        return f"echo: {messages}"
    content = messages[-1].get("content") if isinstance(messages[-1], dict) else None
    if isinstance(content, list):  # Responses API content parts
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        content = " ".join(text for text in texts if isinstance(text, str)) or None
    return f"echo: {content}" if isinstance(content, str) else "echo"


def _usage(request: dict[str, Any]) -> dict[str, int]:
    completion_tokens = len(_reply_text(request).split())
    return {"prompt_tokens": 1, "completion_tokens": completion_tokens, "total_tokens": 1 + completion_tokens}


def _forced_function(request: dict[str, Any]) -> str | None:
    """The function name a request's ``tool_choice`` forces, if it names one."""
    choice = request.get("tool_choice")
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def _call_arguments(request: dict[str, Any]) -> str:
    """A forced function call's arguments: the last message's text, so tests choose them."""
    return _reply_text(request).removeprefix("echo: ").removeprefix("echo")


def _message(request: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The assistant message and finish reason: a text echo, or the call of a forced function."""
    name = _forced_function(request)
    if name is None:
        return {"role": "assistant", "content": _reply_text(request)}, "stop"
    call = {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": _call_arguments(request)},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"


def _completion(request: dict[str, Any]) -> dict[str, Any]:
    message, finish_reason = _message(request)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or "fake-model",
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": _usage(request),
    }


def _chunks(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Stream chunks: the role, one chunk per word, the finish reason, then usage if asked for.

    A forced function's call streams as the call's name and id, then its arguments in pieces.
    """
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": request.get("model") or "fake-model",
        "system_fingerprint": "fp_fake",
    }
    name = _forced_function(request)
    deltas: list[tuple[dict[str, Any], str | None]]
    if name is None:
        words = _reply_text(request).split(" ")
        deltas = [({"role": "assistant", "content": ""}, None)]
        deltas += [({"content": word if i == 0 else f" {word}"}, None) for i, word in enumerate(words)]
        deltas.append(({}, "stop"))
    else:
        arguments = _call_arguments(request)
        start = {
            "index": 0,
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        deltas = [({"role": "assistant", "content": None, "tool_calls": [start]}, None)]
        deltas += [
            ({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 8]}}]}, None)
            for i in range(0, len(arguments), 8)
        ]
        deltas.append(({}, "tool_calls"))
    for delta, finish_reason in deltas:
        yield {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
    if (request.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": _usage(request)}


def _response(request: dict[str, Any], status: str, *, text: str | None = None, item_id: str = "") -> dict[str, Any]:
    """A Responses API `response` object: one assistant message (none while in progress)."""
    reply = _reply_text(request) if text is None else text
    completed = status == "completed"
    input_tokens, output_tokens = 1, len(reply.split())
    return {
        "id": f"resp_{item_id or uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": request.get("model") or "fake-model",
        "output": [_message_item(reply, item_id or uuid.uuid4().hex)] if completed else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "instructions": request.get("instructions"),
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "error": None,
        "incomplete_details": None,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }
        if completed
        else None,
    }


def _message_item(text: str | None, item_id: str) -> dict[str, Any]:
    """An assistant message output item; `text=None` is the item as first announced, with no content."""
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": []}]
    return {
        "type": "message",
        "id": f"msg_{item_id}",
        "status": "in_progress" if text is None else "completed",
        "role": "assistant",
        "content": content,
    }


def _response_events(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A streamed Responses API reply: created, the message's parts, one text delta per word, completed."""
    item_id = uuid.uuid4().hex
    text = _reply_text(request)
    words = text.split(" ")
    where = {"item_id": f"msg_{item_id}", "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": text, "annotations": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(request, "in_progress", item_id=item_id)},
        {"type": "response.in_progress", "response": _response(request, "in_progress", item_id=item_id)},
        {"type": "response.output_item.added", "output_index": 0, "item": _message_item(None, item_id)},
        {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
    ]
    events += [
        {"type": "response.output_text.delta", **where, "delta": word if i == 0 else f" {word}", "logprobs": []}
        for i, word in enumerate(words)
    ]
    events += [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": _message_item(text, item_id)},
        {"type": "response.completed", "response": _response(request, "completed", item_id=item_id)},
    ]
    for number, event in enumerate(events):
        yield {**event, "sequence_number": number}


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": "fake"}


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}
