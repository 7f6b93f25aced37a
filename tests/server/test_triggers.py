"""``/api/v1/triggers`` against a real ``batonflow serve`` hosting two schedules, on SQLite and
PostgreSQL: the listing (paged, next fire times in the schedule's zone), pause and resume,
trigger-now started by the hosting process, backfill, role checks, the audit trail, and the
same actions through ``batonflow.Client`` and ``batonflow --server ... triggers``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from server.harness import Server, make_token, until

pytestmark = pytest.mark.slow

TICK = """\
document: {dsl: '1.0.3', namespace: office, name: tick, version: '1.0.0'}
do:
  - done:
      set:
        ticked: true
"""

CONFIG = """\
[triggers.schedules.nightly]
document = "tick.yaml"
cron = "30 1 * * *"
zone = "Europe/London"
overlap = "skip"
catchup_window = "PT6H"

[triggers.schedules.hourly]
document = "tick.yaml"
every = 3600
overlap = "allow_all"
"""


@pytest.fixture
def hosted(server_db: str, token: str, tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "tick.yaml").write_text(TICK)
    (tmp_path / "batonflow.toml").write_text(CONFIG)
    running = Server(server_db, tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


async def test_list_page_and_one(hosted: Server, server_db: str) -> None:
    viewer = await make_token(server_db, "vera", ("viewer",))
    async with hosted.client(viewer) as client:
        listed = (await client.get("/api/v1/triggers")).json()
        assert [t["name"] for t in listed["items"]] == ["hourly", "nightly"]
        assert listed["next_cursor"] is None
        nightly = listed["items"][1]
        assert nightly["kind"] == "schedule"
        assert nightly["workflow"] == "office/tick"
        assert (nightly["state"], nightly["overlap"], nightly["zone"]) == (
            "active", "skip", "Europe/London"
        )  # fmt: skip
        assert nightly["catchup_window"] == 6 * 3600
        assert len(nightly["next"]) == len(nightly["next_local"]) == 3
        for utc, local in zip(nightly["next"], nightly["next_local"], strict=True):
            assert utc.endswith("Z")
            assert local[11:16] in ("01:30", "02:00")  # a skipped 01:30 fires at 02:00 BST
            assert local.endswith(("+00:00", "+01:00"))
        first = await client.get("/api/v1/triggers", params={"limit": 1})
        page = first.json()
        assert [t["name"] for t in page["items"]] == ["hourly"]
        rest = await client.get("/api/v1/triggers", params={"cursor": page["next_cursor"]})
        assert [t["name"] for t in rest.json()["items"]] == ["nightly"]
        one = await client.get("/api/v1/triggers/nightly")
        assert one.json()["next"] == nightly["next"]
        missing = await client.get("/api/v1/triggers/nighty")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert "no trigger named 'nighty' (known: hourly, nightly)" in missing.json()["detail"]
        bad = await client.get("/api/v1/triggers", params={"cursor": "%%%"})
        assert bad.status_code == 400
        refused = await client.post("/api/v1/triggers/nightly/pause", json={"reason": "x"})
        assert refused.status_code == 403
        assert "trigger.operate" in refused.json()["detail"]
    async with hosted.client(None) as anonymous:
        assert (await anonymous.get("/api/v1/triggers")).status_code == 401


async def test_pause_resume_trigger_now_and_backfill(hosted: Server, server_db: str) -> None:
    operator = await make_token(server_db, "olga", ("operator",))
    async with hosted.client(operator) as client:
        paused = await client.post("/api/v1/triggers/nightly/pause", json={"reason": "year end"})
        assert paused.status_code == 200, paused.text
        body = paused.json()
        assert body["changed"] is True
        assert body["trigger"]["state"] == "paused"
        assert (body["trigger"]["paused_by"], body["trigger"]["pause_reason"]) == (
            "olga", "year end"
        )  # fmt: skip
        again = (await client.post("/api/v1/triggers/nightly/pause")).json()
        assert again["changed"] is False
        resumed = (await client.post("/api/v1/triggers/nightly/resume")).json()
        assert (resumed["changed"], resumed["trigger"]["state"]) == (True, "active")
        assert (await client.post("/api/v1/triggers/nightly/resume")).json()["changed"] is False

        now = await client.post("/api/v1/triggers/hourly/trigger-now", json={})
        assert now.status_code == 202, now.text
        assert len(now.json()["request"]) == 32
        assert now.json()["trigger"]["pending_requests"] == 1

        async def started() -> list[dict[str, Any]]:
            runs = (await client.get("/api/v1/runs", params={"workflow": "office/tick"})).json()
            return [r for r in runs["items"] if r["status"] == "completed"]

        [run] = await until(started)
        assert run["started_by"] == "system:triggers"
        after = (await client.get("/api/v1/triggers/hourly")).json()
        assert (after["pending_requests"], after["last_run"]) == (0, run["id"])
        assert after["last_success"] is not None

        backwards = await client.post(
            "/api/v1/triggers/nightly/backfill",
            json={"start": "2026-03-30T00:00:00Z", "end": "2026-03-28T00:00:00Z"},
        )
        assert backwards.status_code == 400
        assert "is before the start" in backwards.json()["detail"]
        future = await client.post(
            "/api/v1/triggers/nightly/backfill",
            json={"start": "2026-03-28T00:00:00Z", "end": "2999-01-01T00:00:00Z"},
        )
        assert future.status_code == 400
        assert "in the future" in future.json()["detail"]
        wrong = await client.post("/api/v1/triggers/nightly/trigger-now", json={"overlap": "q"})
        assert wrong.status_code == 422
        filled = await client.post(
            "/api/v1/triggers/nightly/backfill",
            json={"start": "2026-03-28T00:00:00", "end": "2026-03-30T00:00:00Z"},
        )
        assert filled.status_code == 202, filled.text
        unknown = await client.post("/api/v1/triggers/nighty/trigger-now")
        assert unknown.status_code == 404
        lines = (await client.get("/api/v1/audit/export")).text.splitlines()
    entries = [json.loads(line) for line in lines]
    mine = [e for e in entries if e.get("batonflowactor") == "olga"]
    kinds = [e["type"].removeprefix("batonflow.audit.") for e in mine]
    assert (kinds.count("trigger.paused"), kinds.count("trigger.resumed")) == (1, 1)
    requested = [e["data"] for e in mine if e["type"] == "batonflow.audit.trigger.requested"]
    assert sorted(r["action"] for r in requested) == ["backfill", "trigger"]
    assert {r["schedule"] for r in requested} == {"hourly", "nightly"}


async def test_client_methods(hosted: Server, server_db: str) -> None:
    operator = await make_token(server_db, "otto", ("operator",))
    async with bf.Client(hosted.url, token=operator) as client:
        assert [t["name"] for t in await client.list_triggers()] == ["hourly", "nightly"]
        assert (await client.get_trigger("nightly"))["zone"] == "Europe/London"
        assert (await client.pause_trigger("hourly", reason="audit"))["changed"] is True
        assert (await client.get_trigger("hourly"))["state"] == "paused"
        assert (await client.resume_trigger("hourly"))["trigger"]["state"] == "active"
        requested = await client.backfill_trigger(
            "nightly", start="2026-03-28T00:00:00Z", end="2026-03-29T00:00:00Z", overlap="skip"
        )
        assert requested["request"]
        with pytest.raises(bf.ConfigError, match="no schedule named 'nighty'"):
            await client.trigger_now("nighty")
        with pytest.raises(bf.ConfigError, match="is before the start"):
            await client.backfill_trigger(
                "nightly", start="2026-03-29T00:00:00Z", end="2026-03-28T00:00:00Z"
            )


def test_cli_with_server(hosted: Server, token: str, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", "from batonflow.cli import main; main()",
                   "--server", hosted.url, "triggers", *args, "--token", token]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "BATONFLOW_CONFIG"}
        # another folder: the triggers are the service's, not a local configuration's
        return subprocess.run(command, capture_output=True, text=True, env=env,
                              cwd=tmp_path.parent, timeout=60)  # fmt: skip

    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [t["name"] for t in json.loads(listed.stdout)] == ["hourly", "nightly"]
    paused = cli("pause", "nightly", "--reason", "maintenance")
    assert paused.returncode == 0, paused.stderr
    assert "trigger 'nightly' paused" in paused.stderr + paused.stdout
    table = cli("list")
    assert "paused" in table.stdout
    assert cli("resume", "nightly").returncode == 0
    missing = cli("trigger-now", "nighty")
    assert missing.returncode != 0
    assert "no schedule named 'nighty'" in " ".join((missing.stderr + missing.stdout).split())
    filled = cli("backfill", "nightly", "--start", "2026-03-28", "--end", "2026-03-29")
    assert filled.returncode == 0, filled.stderr


async def test_a_process_without_workers_describes_and_operates_them(
    hosted: Server, server_db: str, tmp_path: Path
) -> None:
    """``serve --no-workers`` hosts no trigger, yet lists them and its pause reaches the
    process that hosts them: both read and write the same store."""
    operator = await make_token(server_db, "omar", ("operator",))
    api_only = Server(server_db, tmp_path, ("--no-workers",)).start()
    try:
        async with api_only.client(operator) as client:
            listed = (await client.get("/api/v1/triggers")).json()["items"]
            assert [t["name"] for t in listed] == ["hourly", "nightly"]
            paused = await client.post("/api/v1/triggers/hourly/pause", json={"reason": "move"})
            assert paused.json()["changed"] is True
    finally:
        api_only.stop()
    async with hosted.client(operator) as client:
        hourly = (await client.get("/api/v1/triggers/hourly")).json()
    assert (hourly["state"], hourly["paused_by"], hourly["pause_reason"]) == (
        "paused", "omar", "move"
    )  # fmt: skip
