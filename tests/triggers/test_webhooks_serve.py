"""`POST /hooks/{name}` against a real `batonflow serve` on loopback: each kind of delivery
answered as documented and audited; two processes on PostgreSQL receiving the same webhook-id
start one run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import batonflow as bf
from server.harness import Server, make_token, until
from triggers.test_webhooks import DOCUMENT, new_secret, signed

CONFIG = """
[triggers.webhooks.intake]
document = "intake.yaml"
secret_env = ["HOOK_SECRET", "HOOK_SECRET_OLD"]
max_body = 2000
"""
# the document's own metadata hook is replaced by the configuration's
PLAIN = DOCUMENT.replace(
    "    webhook: {name: intake, secret_env: [HOOK_SECRET, HOOK_SECRET_OLD], max_body: 2000}\n",
    "    {}\n",
)
EMAIL = {"client": {"email": "ann@example.org"}}
WRONG = {"client": {"email": 7}}


@pytest.fixture
def secrets_(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(new, old): the hook is mid-rotation, both are valid."""
    new, old = new_secret(), new_secret()
    monkeypatch.setenv("HOOK_SECRET", new)
    monkeypatch.setenv("HOOK_SECRET_OLD", old)
    return new, old


def folder(tmp_path: Path) -> Path:
    (tmp_path / "batonflow.toml").write_text(CONFIG)
    (tmp_path / "intake.yaml").write_text(PLAIN)
    return tmp_path


@pytest.fixture
def served(tmp_path: Path, secrets_: tuple[str, str]) -> Iterator[Server]:
    running = Server(str(tmp_path / "runs.db"), folder(tmp_path)).start()
    try:
        yield running
    finally:
        running.stop()


async def post(server: Server, headers: dict[str, str], body: bytes, hook: str = "intake") -> Any:
    async with httpx.AsyncClient(base_url=server.url, timeout=20.0) as client:
        return await client.post(f"/hooks/{hook}", headers=headers, content=body)


def body_of(value: Any) -> bytes:
    return json.dumps(value).encode()


async def test_each_delivery_is_answered_and_audited(
    served: Server, secrets_: tuple[str, str]
) -> None:
    new, old = secrets_
    now = time.time()
    body = body_of(EMAIL)
    first = await post(served, signed(new, body, now, "m1"), body)
    assert first.status_code == 202, first.text
    replay = await post(served, signed(new, body, now, "m1"), body)
    assert (replay.status_code, replay.json()) == (200, first.json())
    rotated = await post(served, signed(old, body, now, "m2"), body)  # the old secret, still valid
    assert rotated.status_code == 202, rotated.text

    structured = body_of({"specversion": "1.0", "id": "e1", "source": "/crm",
                          "type": "client.new", "data": EMAIL})  # fmt: skip
    headers = signed(new, structured, now, "m3", **{"content-type": "application/cloudevents+json"})
    assert (await post(served, headers, structured)).status_code == 202
    ce = {"ce-specversion": "1.0", "ce-id": "e2", "ce-source": "/crm", "ce-type": "client.new"}
    assert (await post(served, signed(new, body, now, "m4", **ce), body)).status_code == 202

    refusals = [
        ({**signed(new, body, now, "b1"), "webhook-signature": "v1,AAAA"}, body, 401),
        (signed(new, body, now - 600, "b2"), body, 401),
        (signed(new, body_of({"x": "y" * 3000}), now, "b3"), body_of({"x": "y" * 3000}), 413),
        (signed(new, body_of(WRONG), now, "b4"), body_of(WRONG), 400),
        ({**signed(new, body, now, "b5"), "content-type": "text/plain"}, body, 415),
    ]
    answers = [await post(served, h, b) for h, b, _ in refusals]
    answers.append(await post(served, signed(new, body, now, "b6"), body, hook="nope"))
    assert [a.status_code for a in answers] == [401, 401, 413, 400, 415, 404]
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    assert answers[0].json()["type"].endswith("/signature-refused")
    assert "tolerance 300" in answers[1].json()["detail"]
    assert answers[3].json()["errors"][0]["location"] == "/client/email"

    token = await make_token(served.db)
    async with served.client(token) as api:
        run_id = first.json()["run_id"]

        async def completed() -> bool:
            run = (await api.get(f"/api/v1/runs/{run_id}")).json()
            return bool(run["status"] == "completed")

        await until(completed)
    store = bf.open_store(served.db)
    await store.open()
    try:
        runs = await store.list_runs(workflow="office/intake")
        trail = [(e.kind, json.loads(e.data_json)) for e in await store.read_audit()
                 if e.kind.startswith("trigger.webhook")]  # fmt: skip
    finally:
        await store.close()
    assert len(runs) == 4  # m1 (replayed once), m2, m3, m4
    assert [k for k, _ in trail if k != "trigger.webhook.refused"] == [
        "trigger.webhook.accepted", "trigger.webhook.replayed", *["trigger.webhook.accepted"] * 3,
    ]  # fmt: skip
    reasons = [d["reason"] for k, d in trail if k == "trigger.webhook.refused"]
    assert reasons == ["bad signature", "bad signature", "too large", "invalid input",
                       "unsupported media type", "unknown hook"]  # fmt: skip


async def test_two_processes_on_postgres_start_one_run_per_webhook_id(
    pg_url: str, tmp_path: Path, secrets_: tuple[str, str]
) -> None:
    new, _ = secrets_
    await make_token(pg_url)  # the first identity: the store's schema is made
    servers = [Server(pg_url, folder(tmp_path)).start() for _ in range(2)]
    try:
        body = body_of(EMAIL)
        for n in range(5):
            headers = signed(new, body, time.time(), f"pg-{n}")
            answers = await asyncio.gather(*[post(s, headers, body) for s in servers * 2])
            assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
            assert len({a.json()["run_id"] for a in answers}) == 1
    finally:
        for server in servers:
            server.stop()
    store = bf.open_store(pg_url)
    await store.open()
    try:
        runs = await store.list_runs(workflow="office/intake")
        kinds = [e.kind for e in await store.read_audit() if e.kind.startswith("trigger.webhook")]
    finally:
        await store.close()
    assert len(runs) == 5
    assert kinds.count("trigger.webhook.accepted") == 5
    assert kinds.count("trigger.webhook.replayed") == 15
