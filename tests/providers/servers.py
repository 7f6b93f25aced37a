"""Loopback servers that speak the OpenAI chat completions and Anthropic messages protocols.

Each server answers from a script: a list of :class:`Action` taken one per request, in order; when
the script runs out it answers normally. An answer may ask for several tool calls at once
(``ok(tools=[...])``), each with an id unique on the server, and report the usage given. The
Anthropic server checks the tool protocol of the conversation it receives as the real API does
(every ``tool_use`` answered by a ``tool_result`` in the next user message, first, and no other),
answering 400 otherwise. Tests use real sockets and the real SDKs::

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
    tools: tuple[tuple[str, dict[str, Any]], ...] = ()
    usage: tuple[int, int] | None = None  # (input, output) tokens; None: the server's default


def ok(
    text: str = "Hello!",
    tool: tuple[str, dict[str, Any]] | None = None,
    *,
    tools: tuple[tuple[str, dict[str, Any]], ...] = (),
    usage: tuple[int, int] | None = None,
) -> Action:
    """A normal answer: ``text``, and a call of ``tool`` and/or each of ``tools``."""
    return Action("ok", text=text, tools=((tool,) if tool else ()) + tuple(tools), usage=usage)


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
    calls: int = 0  # tool call ids handed out

    def call_ids(self, prefix: str, count: int) -> list[str]:
        with self.lock:
            first, self.calls = self.calls + 1, self.calls + count
        return [f"{prefix}{n}" for n in range(first, first + count)]


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
        problem = self.server.check(request)
        if problem is not None:
            self._send(400, json.dumps(self.server.error_body(400, problem)).encode())
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
    check: Callable[[dict[str, Any]], str | None]


class FakeModelServer:
    """A scriptable model server on 127.0.0.1; use as a context manager."""

    def __init__(self) -> None:
        self.state = _State()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._server.answer = self.answer
        self._server.error_body = self.error_body
        self._server.check = self.check
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

    def check(self, request: dict[str, Any]) -> str | None:
        """Why the API would reject ``request`` (None: it would not)."""
        return None

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
        if action.tools:
            ids = self.state.call_ids("call_", len(action.tools))
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for call_id, (name, args) in zip(ids, action.tools, strict=True)
            ]
            finish = "tool_calls"
        prompt, completion = action.usage or (12, 5)
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_767_225_600,
            "model": request.get("model", "unknown"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "error", "code": str(status)}}


class FakeAnthropic(FakeModelServer):
    """``POST /v1/messages``, with a ``tool_use`` block per tool the action names."""

    def answer(self, request: dict[str, Any], action: Action) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": action.text}]
        if not action.text and action.tools:
            content = []  # the API sends no empty text block
        stop = "end_turn"
        if action.tools:
            ids = self.state.call_ids("toolu_", len(action.tools))
            content += [
                {"type": "tool_use", "id": call_id, "name": name, "input": args}
                for call_id, (name, args) in zip(ids, action.tools, strict=True)
            ]
            stop = "tool_use"
        tokens_in, tokens_out = action.usage or (20, 8)
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": request.get("model", "unknown"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = "invalid_request_error" if status == 400 else "api_error"
        return {"type": "error", "error": {"type": kind, "message": message}}

    def check(self, request: dict[str, Any]) -> str | None:
        messages = request.get("messages") or []
        if not messages or messages[0].get("role") != "user":
            return "messages: the first message must use the user role"
        for index, message in enumerate(messages):
            blocks = message["content"] if isinstance(message["content"], list) else []
            results = [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"]
            asked = _tool_use_ids(messages[index - 1]) if index else []
            if results and (message["role"] != "user" or sorted(results) != sorted(set(results))):
                return f"messages.{index}: tool_result blocks must be in a user message, once each"
            unexpected = [r for r in results if r not in asked]
            if unexpected:
                return (
                    f"messages.{index}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{unexpected[0]}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
            missing = [a for a in asked if a not in results]
            if missing:
                return (
                    f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {missing[0]}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )
            if results and any(b.get("type") != "tool_result" for b in blocks[: len(results)]):
                return f"messages.{index}: tool_result blocks must come first in the content"
        if _tool_use_ids(messages[-1]):
            return "messages: the last message has tool_use blocks that were never answered"
        return None


def _tool_use_ids(message: dict[str, Any]) -> list[str]:
    if message.get("role") != "assistant" or not isinstance(message.get("content"), list):
        return []
    return [b["id"] for b in message["content"] if b.get("type") == "tool_use"]
