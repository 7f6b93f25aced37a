"""A CRM on loopback that can be slow or down: the seed's "An API times out" made real.

``POST /enquiries`` creates an enquiry; with an ``Idempotency-Key`` header it creates at most
one per key (again: 200 and the same enquiry). Its moods:

- ``"up"``: answers at once;
- ``"slow"``: logs the enquiry (once per key), then holds every answer until
  :meth:`FlakyCrm.recover` (or close), so the caller times out although the work was done,
  the worst case for duplicates;
- ``"down"``: answers ``503`` with a problem document, creating nothing.

Tests wait for a request to arrive with :meth:`FlakyCrm.arrived` (an event set from the
server's thread onto the test's loop), never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FlakyCrm:
    def __init__(self, mood: str = "up") -> None:
        self.mood = mood
        self.enquiries: list[dict[str, Any]] = []  # every one created, in order
        self.posts = 0  # every POST that reached it
        self._keys: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._arrivals: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def recover(self) -> None:
        """Back to normal: held answers are released (to callers that gave up long ago)."""
        self.mood = "up"
        self._released.set()

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    async def arrived(self, posts: int, timeout: float = 20.0) -> None:
        """Wait until ``posts`` POSTs in all have reached the CRM."""
        event = asyncio.Event()
        with self._lock:
            if self.posts >= posts:
                return
            self._arrivals.append((posts, asyncio.get_running_loop(), event))
        await asyncio.wait_for(event.wait(), timeout)

    # -- the server's side ---------------------------------------------------------------------
    def _post(self, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.posts += 1
            for wanted, loop, event in list(self._arrivals):
                if self.posts >= wanted:
                    loop.call_soon_threadsafe(event.set)
                    self._arrivals.remove((wanted, loop, event))
            if self.mood == "down":
                return 503, {"type": "about:blank", "status": 503, "title": "CRM unavailable"}
            status, enquiry = 200, self._keys.get(key or "")
            if enquiry is None:
                status, enquiry = 201, {**body, "id": f"ENQ-{len(self.enquiries) + 1:05d}"}
                self.enquiries.append(enquiry)
                if key is not None:
                    self._keys[key] = enquiry
            slow = self.mood == "slow"
        if slow:
            self._released.wait(60)
        return status, enquiry


def _handler(crm: FlakyCrm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            status, answer = crm._post(body, self.headers.get("Idempotency-Key"))
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                kind = "application/json" if status < 400 else "application/problem+json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the caller timed out and went away
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
