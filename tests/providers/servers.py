"""Loopback servers that speak the OpenAI chat completions and Anthropic messages protocols.

Each server answers from a script: a list of :class:`Action` taken one per request, in order; when
the script runs out it answers normally. Tests use real sockets and the real SDKs::

    with FakeOpenAI() as server:
        server.script(status(429, retry_after="7"), ok())
        ...  # the provider's base_url is server.base_url + "/v1"
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Action:
    """How to answer one request: ``kind`` is ok, status, raw, hang or drop."""

    kind: str
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    text: str = "Hello!"
    tool: tuple[str, dict[str, Any]] | None = None


def ok(text: str = "Hello!", tool: tuple[str, dict[str, Any]] | None = None) -> Action:
    return Action("ok", text=text, tool=tool)


def status(code: int, retry_after: str | None = None, message: str = "failed") -> Action:
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Action("status", status=code, headers=headers, text=message)


def malformed() -> Action:
    return Action("raw", body=b'{"id": "x", "choices": [ this is not json')


def hang() -> Action:
    return Action("hang")


def drop() -> Action:
    """Promise a body, send half of it, close the connection."""
    return Action("drop")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _State:
    actions: list[Action] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        state = self.server.state
        headers = {k.lower(): v for k, v in self.headers.items()}
        with state.lock:
            state.received.append(Received(self.path, headers, json.loads(raw or b"null")))
            action = state.actions.pop(0) if state.actions else ok()
        self._act(action, json.loads(raw or b"{}"))

    def _act(self, action: Action, request: dict[str, Any]) -> None:
        if action.kind == "hang":
            state = self.server.state
            state.release.wait(30)
            self.close_connection = True
            return
        if action.kind == "drop":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "500")
            self.end_headers()
            self.wfile.write(b'{"id": "partial", "cho')
            self.wfile.flush()
            self.close_connection = True
            return
        if action.kind == "raw":
            self._send(200, action.body)
            return
        if action.kind == "status":
            body = json.dumps(self.server.error_body(action.status, action.text)).encode()
            self._send(action.status, body, action.headers)
            return
        answer = self.server.answer(request, action)
        self._send(200, json.dumps(answer).encode())

    def _send(self, code: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State
    answer: Callable[[dict[str, Any], Action], dict[str, Any]]
    error_body: Callable[[int, str], dict[str, Any]]


class FakeModelServer:
    """A scriptable model server on 127.0.0.1; use as a context manager."""

    def __init__(self) -> None:
        self.state = _State()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._server.answer = self.answer
        self._server.error_body = self.error_body
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *actions: Action) -> None:
        with self.state.lock:
            self.state.actions.extend(actions)

    @property
    def received(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.received)

    def answer(self, request: dict[str, Any], action: Action) -> dict[str, Any]:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def __enter__(self) -> FakeModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class FakeOpenAI(FakeModelServer):
    """``POST /v1/chat/completions``, with ``tool_calls`` when the action names a tool."""

    def answer(self, request: dict[str, Any], action: Action) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": action.text}
        finish = "stop"
        if action.tool is not None:
            name, args = action.tool
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            ]
            finish = "tool_calls"
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_767_225_600,
            "model": request.get("model", "unknown"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "error", "code": str(status)}}


class FakeAnthropic(FakeModelServer):
    """``POST /v1/messages``, with a ``tool_use`` block when the action names a tool."""

    def answer(self, request: dict[str, Any], action: Action) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": action.text}]
        stop = "end_turn"
        if action.tool is not None:
            name, args = action.tool
            content.append({"type": "tool_use", "id": "toolu_1", "name": name, "input": args})
            stop = "tool_use"
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": request.get("model", "unknown"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 8},
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": "api_error", "message": message}}
