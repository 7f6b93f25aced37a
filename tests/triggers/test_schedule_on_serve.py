"""`schedule.on` in a real `batonflow serve`: a document deployed through the API while it runs
starts a run per matching CloudEvent, whether it arrives at the API's events endpoint or at a signed
webhook that publishes events; the same event twice, or a replayed delivery, starts nothing
more."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

import batonflow as bf
from server.harness import Server, make_token, until
from triggers.test_schedule_on import DOCUMENT, event
from triggers.test_webhooks import new_secret, signed

STRUCTURED = "application/cloudevents+json"
CONFIG = """
[triggers.webhooks.events]
publish = true
secret_env = "HOOK_SECRET"
"""


async def test_events_from_the_api_and_a_webhook_start_one_run_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    monkeypatch.setenv("HOOK_SECRET", secret)
    (tmp_path / "batonflow.toml").write_text(CONFIG)
    db = str(tmp_path / "runs.db")
    token = await make_token(db)
    served = Server(db, tmp_path).start()
    try:
        async with served.client(token) as api:
            yaml = {"content-type": "application/yaml"}
            unusable = DOCUMENT.replace("any:", "all:").replace("name: welcome", "name: both")
            refused = await api.post("/api/v1/workflows", content=unusable, headers=yaml)
            assert refused.status_code == 400
            assert "schedule.on.all" in refused.json()["detail"]
            deployed = await api.post("/api/v1/workflows", content=DOCUMENT, headers=yaml)
            assert deployed.status_code == 201, deployed.text  # hosted from this answer on
            for _ in range(2):  # the same event twice
                sent = await api.post("/api/v1/events/cloudevents", content=json.dumps(event(1)),
                                      headers={"content-type": STRUCTURED})  # fmt: skip
                assert sent.status_code == 202, sent.text
            data = json.dumps(event(2)["data"]).encode()
            ce = {"ce-specversion": "1.0", "ce-id": "e2", "ce-type": "client.new",
                  "ce-source": "https://crm.example.org"}  # fmt: skip
            answers = [await api.post("/hooks/events", content=data,
                                      headers=signed(secret, data, time.time(), "w2", **ce))
                       for _ in range(2)]  # fmt: skip
            assert [a.status_code for a in answers] == [202, 200], answers[0].text
            assert answers[0].json() == answers[1].json()

            async def two_runs() -> list[dict[str, object]] | None:
                listed = await api.get("/api/v1/runs", params={"workflow": "office/welcome"})
                runs = listed.json()["items"]
                done = [r for r in runs if r["status"] == "completed"]
                return runs if len(done) == 2 else None

            runs = await until(two_runs)
    finally:
        served.stop()
    assert len(runs) == 2
    store = bf.open_store(db)
    await store.open()
    try:
        claims = [k for k, _ in await store.list_records("trigger.event")]
        queued = await store.list_records("trigger.event.inbox")
    finally:
        await store.close()
    assert sorted(claims) == [
        "office/welcome|https://crm.example.org|e1",
        "office/welcome|https://crm.example.org|e2",
    ]
    assert queued == []


async def test_two_processes_on_postgres_start_one_run_per_event(
    pg_url: str, tmp_path: Path
) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "welcome.yaml").write_text(DOCUMENT)  # both host it from start
    token = await make_token(pg_url)
    servers = [Server(pg_url, tmp_path).start() for _ in range(2)]
    try:
        clients = [s.client(token) for s in servers]
        headers = {"content-type": STRUCTURED}
        for n in range(1, 6):  # each event sent to both processes, twice
            body = json.dumps(event(n))
            answers = await asyncio.gather(*[
                c.post("/api/v1/events/cloudevents", content=body, headers=headers)
                for c in clients * 2
            ])  # fmt: skip
            assert {a.status_code for a in answers} == {202}

        store = bf.open_store(pg_url)
        await store.open()

        async def settled() -> list[dict[str, object]] | None:
            """The runs, once every event is claimed, started and off the queue."""
            listed = await clients[0].get("/api/v1/runs", params={"workflow": "office/welcome"})
            runs = listed.json()["items"]
            done = [r for r in runs if r["status"] == "completed"]
            queued = await store.list_records("trigger.event.inbox")
            return runs if len(done) >= 5 and not queued else None

        try:
            runs = await until(settled)
            claims = await store.list_records("trigger.event")
        finally:
            await store.close()
        for client in clients:
            await client.aclose()
    finally:
        for server in servers:
            server.stop()
    assert len(claims) == 5
    assert len(runs) == 5
