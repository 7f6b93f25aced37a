"""A real HTTP server on 127.0.0.1 (ephemeral port) hosting several fake public hosts.

One :class:`LoopbackServer` serves every fake host; it picks the app by the request's ``Host``
header, which :class:`~.routing.HostRouter` keeps when it reroutes a request for
``https://petstore.swagger.io/...`` to ``http://127.0.0.1:<port>/...``. Every request is logged
(:attr:`LoopbackServer.log`) so tests can check what a server really received.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    """What an app sees of a request."""

    method: str
    host: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""
    query_string: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: Any, status: int = 200, **headers: str) -> Response:
        return cls.of(json.dumps(data).encode(), "application/json", status, headers)

    @classmethod
    def text(
        cls,
        text: str,
        content_type: str = "text/plain; charset=utf-8",
        status: int = 200,
        **headers: str,
    ) -> Response:
        return cls.of(text.encode(), content_type, status, headers)

    @classmethod
    def of(
        cls,
        body: bytes,
        content_type: str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        pairs = [("Content-Type", content_type)]
        pairs += [(name.replace("_", "-"), value) for name, value in (headers or {}).items()]
        return cls(status, body, pairs)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls(status, b"", [("Location", location)])


App = Callable[[Request], Response]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between header and body
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        host = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        request = Request(
            method=self.command,
            host=host.lower(),
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            query_string=parts.query,
        )
        self.server.owner.record(request)
        try:
            app = self.server.owner.apps.get(request.host)
            if app is None:
                response = Response.json({"error": f"no fake host {request.host!r}"}, 421)
            else:
                response = app(request)
        except Exception:  # an app bug answers 500 with its traceback, never kills the thread
            response = Response.text(traceback.format_exc(), status=500)
        self._write(response)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer


class LoopbackServer:
    """Serves ``apps`` (host name -> app) on 127.0.0.1; use as a context manager."""

    def __init__(self, apps: Mapping[str, App]) -> None:
        self.apps = {host.lower(): app for host, app in apps.items()}
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def record(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)

    def requests(self, host: str | None = None, path: str | None = None) -> list[Request]:
        """The requests received so far, optionally only those for ``host`` and ``path``."""
        with self._lock:
            return [
                r
                for r in self.log
                if (host is None or r.host == host) and (path is None or r.path == path)
            ]

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Bounded: a handler stuck on a test that failed must not hang the whole session.
        stopper = threading.Thread(target=self._server.shutdown, daemon=True)
        stopper.start()
        stopper.join(10)
        self._server.server_close()
        self._thread.join(10)
