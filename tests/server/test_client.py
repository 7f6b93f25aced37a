"""``batonflow.Client`` against a real ``batonflow serve`` process."""

from __future__ import annotations

import pytest

import batonflow as bf
from server.harness import Server

pytestmark = pytest.mark.slow


async def test_client_speaks_the_engines_names(server: Server, token: str) -> None:
    async with bf.Client(server.url, token=token) as client:
        assert await client.run("greet", {"name": "ada"}) == {"greeting": "HELLO ADA"}
        first = await client.start("greet", {"name": "bo"}, idempotency_key="once")
        again = await client.start("greet", {"name": "bo"}, idempotency_key="once")
        assert first.run_id == again.run_id
        with pytest.raises(bf.IdempotencyConflict):
            await client.start("greet", {"name": "cy"}, idempotency_key="once")
        with pytest.raises(bf.RunNotFound):
            await client.get_run("nope")
        with pytest.raises(bf.WorkflowNotFound):
            await client.start("no-such-flow")
        broken = await client.start("fragile", {"reason": "boom"})
        with pytest.raises(bf.RunFailed, match="boom"):
            await broken.result(timeout=20)
        waiting = await client.start("waiting", {})
        await client.send_event("approve", {"ok": True}, run_id=waiting.run_id)
        assert await waiting.result(timeout=20) == {"ok": True}
        parked = await client.start("waiting", {})
        assert (await client.suspend(parked.run_id))["status"] in ("suspended",)
        assert (await client.resume(parked.run_id))["status"] == "pending"
        await client.cancel(parked.run_id, reason="test")
        with pytest.raises(bf.RunCancelled):
            await parked.result(timeout=20)
        assert [r["workflow"] for r in await client.list_runs(workflow="greet")] == ["greet"] * 2
    async with bf.Client(server.url, token="bf_wrong") as stranger:
        with pytest.raises(bf.AccessDenied):
            await stranger.list_runs()


def test_the_cli_acts_on_a_remote_server(server: Server, token: str) -> None:
    import json
    import subprocess
    import sys

    cli = [sys.executable, "-c", "from batonflow.cli import main; main()", "--server", server.url]
    env = {"BATONFLOW_TOKEN": token, "PATH": "/usr/bin:/bin"}

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, env=env, timeout=30)

    started = call("run", "waiting", "--input", "{}", "--json")
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["id"]
    listed = call("list", "--workflow", "waiting", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    cancelled = call("cancel", run_id, "--reason", "from afar", "--json")
    assert json.loads(cancelled.stdout)["status"] == "cancelled", cancelled.stderr
    shown = call("show", run_id)
    assert "cancelled" in shown.stdout
    again = call("cancel", run_id)
    assert again.returncode == 5  # INVALID_TRANSITION, from the problem the server sent
    assert "already cancelled" in again.stderr or "cancelled" in again.stderr
    stranger = subprocess.run(
        [*cli, "list"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30
    )
    assert stranger.returncode == 11  # FORBIDDEN: no token
