"""A real ``batonflow serve`` process on loopback, and an HTTP client with a token for it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import batonflow as bf
from batonflow.governance._identity import (
    create_identity,
    create_token,
    get_identity,
    local_identity,
)

FLOWS = Path(__file__).resolve().with_name("flows.py")
SERVE = [sys.executable, "-c", "from batonflow.cli import main; main()", "serve"]
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


async def make_token(
    db: str, name: str = "admin", roles: tuple[str, ...] = ("admin",), **token: Any
) -> str:
    """A token for identity ``name`` (made with ``roles`` if new; the first must be admin)."""
    store = bf.open_store(db)
    await store.open()
    try:
        now = time.time()
        admin = await get_identity(store, "admin") or local_identity()
        if await get_identity(store, name) is None:
            await create_identity(store, name, actor=admin, now=now, roles=roles)
        admin = await get_identity(store, "admin") or admin
        return (await create_token(store, name, actor=admin, now=now, **token)).token
    finally:
        await store.close()


@dataclass
class Server:
    """``batonflow serve`` in ``cwd`` on ``db``; ``url`` once it listens."""

    db: str
    cwd: Path
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    log: Path = field(default_factory=Path)

    def start(self, timeout: float = 30.0) -> Server:
        self.log = self.cwd / f"serve-{time.monotonic_ns()}.log"
        args = [*SERVE, "--db", self.db, "--port", "0", "--grace", "2",
                "--workflow", f"{FLOWS}:greet", "--workflow", f"{FLOWS}:fragile",
                "--workflow", f"{FLOWS}:waiting", *self.extra]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("BATONFLOW_TOKEN", None)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(args, cwd=self.cwd, stdout=out, stderr=out, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.log.read_text(errors="replace"))
            if found:
                self.url = found[1]
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"serve did not start: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def client(self, token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=20.0)


async def until(check: Any, timeout: float = 20.0) -> Any:
    """Poll the server (a real process: there is no clock to inject) until ``check()`` is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("the server did not get there in time")
        await asyncio.sleep(0.05)


async def sse_events(
    client: httpx.AsyncClient,
    path: str,
    *,
    until_kind: str,
    last_event_id: str | None = None,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Read a server-sent event stream until an event of ``until_kind``; return the events
    (``id``, ``event`` and the decoded ``data``)."""
    import json

    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout), client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line.startswith(("id:", "event:", "data:")):
                name, _, value = line.partition(":")
                current[name] = value.strip()
            elif not line and "data" in current:
                current["data"] = json.loads(current["data"])
                events.append(current)
                if current.get("event") == until_kind:
                    return events
                current = {}
    raise AssertionError(f"the stream ended before {until_kind}: {events}")
