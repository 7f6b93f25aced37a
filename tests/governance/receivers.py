"""Real servers on loopback for the alert tests: a CRM that never answers in time, and a
webhook receiver that records each CloudEvent with the (monotonic) moment it arrived."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class HangingCrm:
    """Takes each request and answers only when the test ends: every call times out."""

    url: str = ""
    requests: list[float] = field(default_factory=list)  # monotonic arrival times
    requested: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Receiver:
    """A webhook receiver: every POSTed CloudEvent, and when it came (monotonic)."""

    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, kind: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The events of ``kind`` once ``count`` of them came (AssertionError after
        ``timeout`` real seconds). Call it in a thread from async code."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.of(kind)) >= count, timeout)
            found = self.of(kind)
        assert len(found) >= count, f"expected {count} {kind} alert(s), got {self.events}"
        return found

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == f"batonflow.alert.{kind}"]

    def arrival(self, event: dict[str, Any]) -> float:
        return self.arrivals[self.events.index(event)]


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def hanging_crm() -> Iterator[HangingCrm]:
    crm = HangingCrm()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            crm.requests.append(time.monotonic())
            crm.requested.set()
            crm.release.wait(30)
            self.send_response(504)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with _serve(Handler) as url:
        crm.url = url
        try:
            yield crm
        finally:
            crm.release.set()


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.arrived:  # recorded before the sender hears back
                state.events.append(json.loads(body))
                state.arrivals.append(time.monotonic())
                state.arrived.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with _serve(Handler) as url:
        state.url = f"{url}/hooks/batonflow"
        yield state
