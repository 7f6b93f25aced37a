"""Live updates: server-sent events fed by the audit trail's sequence, across processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.harness import Server, make_token, sse_events

pytestmark = pytest.mark.slow


async def test_run_stream_and_resuming_with_last_event_id(server: Server, token: str) -> None:
    async with server.client(token) as client:
        everything = asyncio.ensure_future(
            sse_events(client, "/api/v1/stream", until_kind="run.completed")
        )
        await asyncio.sleep(0.5)  # the stream is open before the run starts
        started = await client.post(
            "/api/v1/runs", json={"workflow": "greet", "input": {"name": "x"}}
        )
        run_id = started.json()["id"]
        history = await sse_events(
            client, f"/api/v1/runs/{run_id}/stream", until_kind="run.completed"
        )
        kinds = [e["event"] for e in history]
        assert kinds[0] == "run.created"
        assert "step.completed" in kinds
        assert all(e["data"]["run_id"] == run_id for e in history)
        seqs = [int(e["id"]) for e in history]
        assert seqs == sorted(seqs)
        live = await everything
        assert [e["data"]["run_id"] for e in live if e["event"] == "run.completed"] == [run_id]
        # a client that saw the first event only reconnects and misses nothing
        resumed = await sse_events(
            client, f"/api/v1/runs/{run_id}/stream", until_kind="run.completed",
            last_event_id=history[0]["id"],
        )  # fmt: skip
        assert [e["id"] for e in resumed] == [e["id"] for e in history[1:]]
        bad = await client.get("/api/v1/stream", headers={"Last-Event-ID": "yesterday"})
        assert bad.status_code == 400


async def test_two_servers_on_postgres_share_the_feed(pg_url: str, tmp_path: Path) -> None:
    token = await make_token(pg_url)
    api_only = Server(pg_url, tmp_path, ("--no-workers",)).start()
    worker = Server(pg_url, tmp_path).start()
    try:
        async with api_only.client(token) as watcher, worker.client(token) as starter:
            started = await starter.post(
                "/api/v1/runs", json={"workflow": "greet", "input": {"name": "pg"}}
            )
            run_id = started.json()["id"]
            seen = await sse_events(
                watcher, f"/api/v1/runs/{run_id}/stream", until_kind="run.completed"
            )
            assert seen[0]["event"] == "run.created"
            assert seen[-1]["data"]["run_id"] == run_id
            # and a run accepted by the API-only process is executed by the other one
            accepted = await watcher.post(
                "/api/v1/runs", json={"workflow": "greet", "input": {"name": "two"}}
            )
            assert accepted.json()["status"] == "pending"
            other = accepted.json()["id"]
            await sse_events(watcher, f"/api/v1/runs/{other}/stream", until_kind="run.completed")
            detail = (await watcher.get(f"/api/v1/runs/{other}")).json()
            assert detail["output"] == {"greeting": "HELLO TWO"}
    finally:
        api_only.stop()
        worker.stop()


async def test_sigterm_ends_open_streams_and_drains(server: Server, token: str) -> None:
    async with server.client(token) as client:
        waiting = await client.post("/api/v1/runs", json={"workflow": "waiting", "input": {}})
        run_id = waiting.json()["id"]
        opened = asyncio.Event()

        async def watch() -> int:
            count = 0
            async with client.stream("GET", "/api/v1/stream") as stream:
                opened.set()
                async for _ in stream.aiter_lines():
                    count += 1
            return count

        watcher = asyncio.ensure_future(watch())
        await opened.wait()
        assert await asyncio.to_thread(server.stop) == 0  # SIGTERM: drained, a clean exit
        assert "batonflow serve: stopped" in server.log.read_text()
        await asyncio.wait_for(watcher, 10)  # the stream was ended, not left hanging
    restarted = Server(server.db, server.cwd).start()
    try:
        async with restarted.client(token) as client:
            after = (await client.get(f"/api/v1/runs/{run_id}")).json()
            assert after["status"] == "waiting"  # parked, handed back, intact
    finally:
        restarted.stop()
