"""``batonflow.Client``: a ``batonflow serve`` API over HTTP, with the engine's method names.

    async with bf.Client("http://127.0.0.1:8080", token="bf_...") as client:
        run = await client.start("greet", {"name": "Ada"}, idempotency_key="order-17")
        print(await run.result())

Errors come back as the batonflow error classes the server raised (from the problem type, by
the one table in :mod:`batonflow._problems`): ``RunNotFound``, ``IdempotencyConflict``,
``InvalidTransition``, ``AccessDenied``... Runs and records are the API's JSON documents.
"""

from __future__ import annotations

import json
import os
from types import TracebackType
from typing import TYPE_CHECKING, Any

from batonflow import errors
from batonflow._problems import OUTCOMES, PROBLEM_BASE

if TYPE_CHECKING:  # httpx imports click and rich when they are installed: not at import time
    import httpx

__all__ = ["Client", "RemoteRun"]

TOKEN_ENV = "BATONFLOW_TOKEN"
_ENDED = ("completed", "faulted", "cancelled")


def _error_classes() -> dict[str, type[errors.BatonflowError]]:
    """problem slug -> the error class to raise (the table's first class of that slug)."""
    found: dict[str, type[errors.BatonflowError]] = {}
    for key, row in OUTCOMES.items():
        if isinstance(key, type) and issubclass(key, errors.BatonflowError):
            found.setdefault(row.slug, key)
    found.setdefault("unauthenticated", errors.AccessDenied)
    found.setdefault("not-found", errors.ConfigError)
    return found


_CLASSES = _error_classes()


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        problem = response.json()
    except ValueError:
        problem = {"detail": response.text or response.reason_phrase}
    slug = str(problem.get("type", "")).removeprefix(PROBLEM_BASE)
    detail = str(problem.get("detail") or problem.get("title") or response.status_code)
    cls = _CLASSES.get(slug)
    if cls is None:
        cls = errors.StoreError if response.status_code >= 500 else errors.BatonflowError
    if issubclass(cls, errors.RunFailed):
        raise cls(detail, problem)
    if cls is errors.ConnectorDisabled or cls is errors.RecordedError:
        raise errors.BatonflowError(detail)
    raise cls(detail)


class RemoteRun:
    """A run on the server: ``run_id``, its ``record()``, ``status()``, and ``result()``."""

    def __init__(self, client: Client, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"RemoteRun({self.run_id!r})"

    async def record(self) -> dict[str, Any]:
        return await self.client.get_run(self.run_id)

    async def status(self) -> str:
        return str((await self.record())["status"])

    async def result(self, timeout: float | None = None) -> Any:
        """Wait (on the run's event stream) until it ends; its output, or the error it ended
        with: ``RunFailed`` carrying its problem, ``RunCancelled``."""
        record = await self.record()
        if record["status"] not in _ENDED:
            await self.client._wait_for_end(self.run_id, timeout)
            record = await self.record()
        if record["status"] == "completed":
            return record["output"]
        problem = record.get("problem") or {}
        message = str(problem.get("detail") or (record.get("error") or {}).get("message", ""))
        if record["status"] == "cancelled":
            raise errors.RunCancelled(message)
        raise errors.RunFailed(f"run {self.run_id} faulted: {message}", record.get("error"))


class Client:
    """The HTTP API of ``batonflow serve`` at ``url``, acting with ``token`` (default:
    ``$BATONFLOW_TOKEN``). ``transport``: an httpx transport (tests, proxies)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        import httpx

        token = token or os.environ.get(TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/") + "/api/v1", headers=headers, timeout=timeout,
            transport=transport,
        )  # fmt: skip

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        response = await self._http.request(method, path, **options)
        _raise_for(response)
        return response.json()

    # -- the engine's methods ------------------------------------------------------------------
    async def start(
        self,
        workflow: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        version: str | None = None,
    ) -> RemoteRun:
        """Start a run of the workflow named ``workflow``; the same key gives the same run."""
        body: dict[str, Any] = {"workflow": workflow, "input": input}
        if timeout is not None:
            body["timeout"] = timeout
        if version is not None:
            body["version"] = version
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        record = await self._call("POST", "/runs", json=body, headers=headers)
        return RemoteRun(self, record["id"])

    async def run(self, workflow: str, input: Any = None, **start: Any) -> Any:
        """Start a run and wait for its result."""
        return await (await self.start(workflow, input, **start)).result()

    def handle(self, run_id: str) -> RemoteRun:
        return RemoteRun(self, run_id)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        record: dict[str, Any] = await self._call("GET", f"/runs/{run_id}")
        return record

    async def list_runs(self, **filters: Any) -> list[dict[str, Any]]:
        """Runs, newest first: filters ``status``, ``workflow``, ``subject``, ``since``,
        ``until``, ``text``, ``limit``."""
        page: dict[str, Any] = await self._call("GET", "/runs", params=filters)
        items: list[dict[str, Any]] = page["items"]
        return items

    async def cancel(self, run_id: str, *, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else None
        record: dict[str, Any] = await self._call("POST", f"/runs/{run_id}/cancel", json=body)
        return record

    async def suspend(self, run_id: str) -> dict[str, Any]:
        record: dict[str, Any] = await self._call("POST", f"/runs/{run_id}/suspend")
        return record

    async def resume(self, run_id: str) -> dict[str, Any]:
        """Continue a suspended run, or retry a faulted one from the step that failed."""
        record = await self.get_run(run_id)
        action = "retry" if record["status"] == "faulted" else "resume"
        resumed: dict[str, Any] = await self._call("POST", f"/runs/{run_id}/{action}")
        return resumed

    async def send_event(
        self, topic: str, payload: Any = None, *, run_id: str | None = None, key: str | None = None
    ) -> dict[str, Any]:
        body = {"topic": topic, "payload": payload, "run_id": run_id, "key": key}
        event: dict[str, Any] = await self._call("POST", "/events", json=body)
        return event

    async def decide(
        self, approval_id: str, option: str, *, comment: str | None = None
    ) -> dict[str, Any]:
        """Decide an open approval as this client's identity."""
        from urllib.parse import quote

        path = f"/approvals/{quote(approval_id, safe='')}/decision"
        decision: dict[str, Any] = await self._call(
            "POST", path, json={"option": option, "comment": comment}
        )
        return decision

    # -- triggers (``batonflow triggers``) -----------------------------------------------------
    async def list_triggers(self) -> list[dict[str, Any]]:
        """Every trigger the service hosts, by name: state, next fire times, last success and
        failure, backlog (all pages)."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 500}
        while True:
            page: dict[str, Any] = await self._call("GET", "/triggers", params=params)
            found += page["items"]
            if not page.get("next_cursor"):
                return found
            params["cursor"] = page["next_cursor"]

    async def get_trigger(self, name: str) -> dict[str, Any]:
        trigger: dict[str, Any] = await self._call("GET", _trigger_path(name))
        return trigger

    async def pause_trigger(self, name: str, *, reason: str = "") -> dict[str, Any]:
        """Pause trigger ``name``; the answer's ``changed`` is False if it was paused."""
        body = {"reason": reason}
        result: dict[str, Any] = await self._call("POST", _trigger_path(name, "pause"), json=body)
        return result

    async def resume_trigger(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", _trigger_path(name, "resume"))
        return result

    async def trigger_now(self, name: str, *, overlap: str = "allow_all") -> dict[str, Any]:
        """Ask for one run of schedule ``name`` now; the answer names the ``request``."""
        path = _trigger_path(name, "trigger-now")
        result: dict[str, Any] = await self._call("POST", path, json={"overlap": overlap})
        return result

    async def backfill_trigger(
        self, name: str, *, start: str, end: str, overlap: str = "allow_all"
    ) -> dict[str, Any]:
        """Act on schedule ``name``'s ticks between ``start`` and ``end`` (ISO 8601)."""
        body = {"start": start, "end": end, "overlap": overlap}
        result: dict[str, Any] = await self._call("POST", _trigger_path(name, "backfill"),
                                                  json=body)  # fmt: skip
        return result

    async def _wait_for_end(self, run_id: str, timeout: float | None) -> None:
        """Follow the run's event stream until it ends (reconnecting where it left off)."""
        import asyncio

        async def follow() -> None:
            last: str | None = None
            while True:
                headers = {"Last-Event-ID": last} if last else {}
                async with self._http.stream(
                    "GET", f"/runs/{run_id}/stream", headers=headers, timeout=None
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        _raise_for(response)
                    async for line in response.aiter_lines():
                        if line.startswith("id:"):
                            last = line[3:].strip()
                        elif line.startswith("data:") and _ends(line, run_id):
                            return

        await asyncio.wait_for(follow(), timeout)


def _trigger_path(name: str, action: str | None = None) -> str:
    """A document's schedule is named ``namespace/name``: the slash stays a slash."""
    from urllib.parse import quote

    path = f"/triggers/{quote(name, safe='/')}"
    return f"{path}/{action}" if action else path


def _ends(line: str, run_id: str) -> bool:
    data = json.loads(line[5:])
    kind = str(data.get("kind", ""))
    return data.get("run_id") == run_id and kind in tuple(f"run.{s}" for s in _ENDED)
