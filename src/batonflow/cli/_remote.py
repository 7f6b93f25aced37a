"""``--server URL``: the same commands against a running ``batonflow serve`` over HTTP (with
``--token``), through :class:`batonflow.Client`. The API's documents are read back into the
records the local commands render, so the output is the same."""

from __future__ import annotations

import json
from typing import Any

import batonflow as bf
from batonflow.cli._ops import RunDetails

SERVER_ENV = "BATONFLOW_SERVER"
_CHOSEN: list[str | None] = [None]


def choose(url: str | None) -> None:
    _CHOSEN[0] = url.rstrip("/") if url and url.strip() else None


def server() -> str | None:
    """The service the command acts on (root ``--server``), or None: the local database."""
    return _CHOSEN[0]


def _text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def run_record(doc: dict[str, Any]) -> bf.RunRecord:
    return bf.RunRecord(
        id=doc["id"], workflow=doc["workflow"], workflow_ref=None,
        status=bf.RunStatus(doc["status"]), input_json=json.dumps(doc.get("input")),
        output_json=_text(doc.get("output")), error_json=_text(doc.get("error")),
        idempotency_key=doc.get("idempotency_key"), parent_id=doc.get("parent_id"),
        parent_step=None, created_at=doc["created_at"], updated_at=doc["updated_at"],
        started_at=doc.get("started_at"), finished_at=doc.get("finished_at"),
        deadline=doc.get("deadline"), wake_at=doc.get("wake_at"), owner=None, lease_until=None,
        signal=0, activations=0, queue=doc.get("queue"), subjects=(),
        started_by=doc.get("started_by"),
    )  # fmt: skip


def details(doc: dict[str, Any]) -> RunDetails:
    steps = [
        bf.StepRecord(
            run_id=doc["id"],
            step_id=s["step_id"],
            kind=bf.StepKind(s["kind"]),
            name=s["name"],
            status=bf.StepStatus(s["status"]),
            output_json=_text(s.get("output")),
            error_json=_text(s.get("error")),
            attempts=s["attempts"],
            started_at=s.get("started_at"),
            finished_at=s.get("finished_at"),
            wake_at=s.get("wake_at"),
            topic=s.get("topic"),
            child_id=s.get("child_id"),
        )
        for s in doc.get("steps", [])
    ]
    attempts = [
        bf.AttemptRecord(
            doc["id"],
            a["step_id"],
            a["attempt"],
            a["started_at"],
            a["finished_at"],
            json.dumps(a.get("error") or {}),
        )
        for a in doc.get("attempts", [])
    ]
    events = [
        bf.EventRecord(
            e["id"],
            e["topic"],
            e.get("key"),
            e.get("run_id"),
            json.dumps(e.get("payload")),
            e["created_at"],
            e.get("consumed_run"),
            e.get("consumed_step"),
        )
        for e in doc.get("events", [])
    ]
    return RunDetails(run=run_record(doc), steps=steps, attempts=attempts, events=events)


def _client(token: str | None) -> bf.Client:
    url = server()
    assert url is not None
    return bf.Client(url, token=token)


async def list_runs(
    token: str | None, *, status: bf.RunStatus | None, workflow: str | None, limit: int
) -> list[bf.RunRecord]:
    filters: dict[str, Any] = {"limit": min(limit, 500)}
    if status is not None:
        filters["status"] = status.value
    if workflow is not None:
        filters["workflow"] = workflow
    async with _client(token) as client:
        return [run_record(r) for r in await client.list_runs(**filters)]


async def show(token: str | None, run_id: str) -> RunDetails:
    async with _client(token) as client:
        return details(await client.get_run(run_id))


async def change(
    token: str | None, run_id: str, verb: str, reason: str | None = None
) -> tuple[bf.RunRecord, bf.RunRecord]:
    async with _client(token) as client:
        before = run_record(await client.get_run(run_id))
        if verb == "cancel":
            await client.cancel(run_id, reason=reason)
        elif verb == "suspend":
            await client.suspend(run_id)
        else:
            await client.resume(run_id)
        return before, run_record(await client.get_run(run_id))


async def start(token: str | None, workflow: str, input: Any, key: str | None) -> RunDetails:
    async with _client(token) as client:
        run = await client.start(workflow, input, idempotency_key=key)
        return details(await client.get_run(run.run_id))


async def send_event(
    token: str | None, topic: str, payload: Any, run_id: str | None, key: str | None
) -> tuple[bf.EventRecord, bf.RunRecord | None]:
    async with _client(token) as client:
        e = await client.send_event(topic, payload, run_id=run_id, key=key)
        event = bf.EventRecord(
            e["id"], e["topic"], e.get("key"), e.get("run_id"), json.dumps(e.get("payload")),
            e["created_at"], e.get("consumed_run"), e.get("consumed_step"),
        )  # fmt: skip
        after = run_record(await client.get_run(run_id)) if run_id else None
        return event, after
