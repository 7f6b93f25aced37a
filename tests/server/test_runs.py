"""Runs over HTTP against a real ``batonflow serve`` process (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from server.harness import Server, until

pytestmark = pytest.mark.slow


async def _status(client: httpx.AsyncClient, run_id: str, *wanted: str) -> dict[str, Any] | None:
    body: dict[str, Any] = (await client.get(f"/api/v1/runs/{run_id}")).json()
    return body if body["status"] in wanted else None


async def test_start_run_list_and_detail(server: Server, token: str) -> None:
    async with server.client(token) as client:
        started = await client.post(
            "/api/v1/runs", json={"workflow": "greet", "input": {"name": "ada"}}
        )
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        assert started.headers["location"].endswith(run_id)
        done = await until(lambda: _status(client, run_id, "completed"))
        assert done["output"] == {"greeting": "HELLO ADA"}
        assert done["started_by"] == "admin"
        assert [s["name"] for s in done["steps"]] == ["shout"]
        page = (
            await client.get("/api/v1/runs", params={"workflow": "greet", "counts": True})
        ).json()
        assert [r["id"] for r in page["items"]] == [run_id]
        assert page["counts"]["completed"] == 1
        ended = 'batonflow_runs_ended_total{outcome="completed",workflow="greet"} 1.0'
        metrics = await until(lambda: _metrics_with(client, ended))  # the feed follows
        assert 'batonflow_runs_started_total{workflow="greet"} 1.0' in metrics
        assert 'batonflow_step_duration_seconds_count{kind="step"} 1.0' in metrics
        commits = re.search(r"^batonflow_store_commit_seconds_count (\S+)$", metrics, re.M)
        assert commits is not None
        assert float(commits[1]) >= 2


async def _metrics_with(client: httpx.AsyncClient, line: str) -> str | None:
    text = (await client.get("/metrics")).text
    return text if line in text else None


async def test_idempotency_key_gives_the_same_run(server: Server, token: str) -> None:
    async with server.client(token) as client:
        body = {"workflow": "greet", "input": {"name": "bo"}}
        first = await client.post("/api/v1/runs", json=body, headers={"Idempotency-Key": "k-1"})
        again = await client.post("/api/v1/runs", json=body, headers={"Idempotency-Key": "k-1"})
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
        other = {"workflow": "greet", "input": {"name": "cy"}}
        clash = await client.post("/api/v1/runs", json=other, headers={"Idempotency-Key": "k-1"})
        assert clash.status_code == 409
        assert clash.headers["content-type"] == "application/problem+json"
        assert clash.json()["type"].endswith("/idempotency-conflict")
        long = await client.post("/api/v1/runs", json=body, headers={"Idempotency-Key": "k" * 201})
        assert long.status_code == 422
        assert long.json()["errors"][0]["location"] == "header/idempotency-key"


async def test_faulted_run_retry_and_problem(server: Server, token: str) -> None:
    async with server.client(token) as client:
        started = await client.post(
            "/api/v1/runs", json={"workflow": "fragile", "input": {"reason": "no disk"}}
        )
        run_id = started.json()["id"]
        faulted = await until(lambda: _status(client, run_id, "faulted"))
        # the run's own error, as `batonflow show --json` gives it (bf.problem_of)
        assert faulted["problem"]["class"] == "builtins:ValueError"
        assert faulted["problem"]["detail"] == "no disk"
        assert faulted["problem"]["type"] == "urn:batonflow:error:builtins.ValueError"
        assert faulted["attempts"][0]["error"]["message"] == "no disk"
        ended = 'batonflow_runs_ended_total{outcome="faulted",workflow="fragile"} 1.0'
        assert await until(lambda: _metrics_with(client, ended))  # faulted runs are counted
        retried = await client.post(f"/api/v1/runs/{run_id}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "pending"
        again = await client.post(f"/api/v1/runs/{run_id}/suspend")
        assert again.status_code in (200, 409)


async def test_suspend_resume_cancel_and_bulk(server: Server, token: str) -> None:
    async with server.client(token) as client:
        ids = []
        for name in ("a", "b", "c"):
            r = await client.post(
                "/api/v1/runs", json={"workflow": "waiting", "input": {"n": name}}
            )
            ids.append(r.json()["id"])
        for run_id in ids:
            await until(lambda run_id=run_id: _status(client, run_id, "waiting"))
        suspended = await client.post(f"/api/v1/runs/{ids[0]}/suspend")
        assert suspended.json()["status"] == "suspended"
        resumed = await client.post(f"/api/v1/runs/{ids[0]}/resume")
        assert resumed.json()["status"] == "pending"
        twice = await client.post(f"/api/v1/runs/{ids[0]}/resume")
        assert twice.status_code == 409
        cancelled = await client.post(f"/api/v1/runs/{ids[1]}/cancel", json={"reason": "dup"})
        assert cancelled.json()["status"] == "cancelled"
        detail = (await client.get(f"/api/v1/runs/{ids[1]}")).json()
        assert detail["error"]["message"].endswith("dup")
        bulk = await client.post(
            "/api/v1/runs/actions",
            json={"action": "cancel", "filter": {"workflow": "waiting"}, "limit": 10},
        )
        assert bulk.status_code == 200, bulk.text
        outcome = {i["id"]: i["ok"] for i in bulk.json()["items"]}
        assert outcome == {ids[0]: True, ids[1]: False, ids[2]: True}
        event = await client.post(
            "/api/v1/events", json={"topic": "approve", "run_id": ids[2], "payload": 1}
        )
        assert event.status_code == 409  # a cancelled run never consumes it


async def test_pages_by_cursor(server: Server, token: str) -> None:
    async with server.client(token) as client:
        ids = set()
        for i in range(5):
            r = await client.post(
                "/api/v1/runs", json={"workflow": "greet", "input": {"name": str(i)}}
            )
            ids.add(r.json()["id"])
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/api/v1/runs", params=params)).json()
            seen += [r["id"] for r in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 5
        assert set(seen) == ids
        bad = await client.get("/api/v1/runs", params={"cursor": "nonsense"})
        assert bad.status_code == 400


async def test_a_hostile_cloudevent_is_a_client_error_not_a_crash(
    server: Server, token: str
) -> None:
    """Deep nesting, a lone surrogate or a 5,000-digit number in a CloudEvent is refused as
    bad input (400), never a RecursionError or ValueError answered as a 500."""
    kind = {"content-type": "application/cloudevents+json"}
    head = '{"specversion": "1.0", "id": "1", "source": "https://a.example/", "type": "t", "data": '
    bodies = {
        "deeper than 128": head + "[" * 100_000 + "]" * 100_000 + "}",
        "lone surrogate": head + '"\\ud800"}',
        "5000 digits": head + "9" * 5000 + "}",
    }
    async with server.client(token) as client:
        for words, body in bodies.items():
            answer = await client.post("/api/v1/events/cloudevents", content=body, headers=kind)
            assert answer.status_code == 400, (words, answer.text)
            assert words in answer.json()["detail"]
