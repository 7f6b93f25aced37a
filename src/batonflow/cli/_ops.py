"""What the commands do, through the public API. No parsing and no rendering here.

Operator actions (cancel, suspend, resume) and events go straight to the store, so they work
while a ``batonflow worker`` holds the engine lock; that worker notices them through its lease
heartbeat and its polling.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import batonflow as bf
from batonflow import _serde
from batonflow.cli import _setup
from batonflow.cli._io import load_workflow
from batonflow.cli._waiting import Wait, follow, waits_of
from batonflow.core._ids import time_ordered_id
from batonflow.store import NewRun  # not re-exported by `batonflow`; see `submit`


@dataclass(frozen=True, slots=True)
class RunDetails:
    """A run as the store records it, ready to render."""

    run: bf.RunRecord
    steps: list[bf.StepRecord] = field(default_factory=list)
    attempts: list[bf.AttemptRecord] = field(default_factory=list)
    events: list[bf.EventRecord] = field(default_factory=list)
    waits: list[Wait] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Action:
    """An operator's status change."""

    verb: str  # "cancelled", for messages
    target: bf.RunStatus
    sources: frozenset[bf.RunStatus]
    permission: str  # the action an identity needs the role for (governance ACTIONS)


def _sources(target: bf.RunStatus) -> frozenset[bf.RunStatus]:
    return frozenset(s for s, targets in bf.TRANSITIONS.items() if target in targets)


CANCEL = Action("cancelled", bf.RunStatus.CANCELLED, _sources(bf.RunStatus.CANCELLED), "run.cancel")
SUSPEND = Action(
    "suspended", bf.RunStatus.SUSPENDED, _sources(bf.RunStatus.SUSPENDED), "run.suspend"
)
# The table also lets the engine move RUNNING and WAITING runs to PENDING; an operator's
# resume is only for runs that stopped: suspended, or faulted (retried from the failed step).
RESUME = Action(
    "resumed",
    bf.RunStatus.PENDING,
    frozenset({bf.RunStatus.SUSPENDED, bf.RunStatus.FAULTED}),
    "run.resume",
)
_ORDER = list(bf.RunStatus)


@asynccontextmanager
async def opened_store(db: str) -> AsyncIterator[bf.Store]:
    """The database as the configuration has it (sealed per data subject), opened."""
    store = _setup.current().store(db)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def get_run(store: bf.Store, run_id: str) -> bf.RunRecord:
    record = await store.get_run(run_id)
    if record is None:
        raise bf.RunNotFound(f"no run with id {run_id!r} in {store.url}")
    return record


async def details(store: bf.Store, run: bf.RunRecord | str) -> RunDetails:
    record = run if isinstance(run, bf.RunRecord) else await get_run(store, run)
    waits = await waits_of(store, record) if _parked(record) else []
    return RunDetails(
        run=record,
        steps=await store.load_steps(record.id),
        attempts=await store.load_attempts(record.id),
        events=await store.list_events(run_id=record.id, limit=1000),
        waits=waits,
    )


def _parked(record: bf.RunRecord) -> bool:
    return record.status in (bf.RunStatus.WAITING, bf.RunStatus.SUSPENDED)


# -- running ----------------------------------------------------------------------------------


#: Which workflow a command runs, once its session (store, DSL runtime) exists.
Pick = Callable[[_setup.Session], bf.Workflow[Any, Any]]


@dataclass(frozen=True, slots=True)
class DslOptions:
    """How a command's DSL runtime may act: local processes, documents `run: workflow` finds."""

    allow_processes: bool = False
    documents: tuple[str, ...] = ()


async def start_and_follow(
    db: str,
    pick: Pick,
    input: Any,
    *,
    idempotency_key: str | None,
    linger: float,
    started: Callable[[str], None],
    timeout: float | None = None,
    token: str | None = None,
    dsl: DslOptions = DslOptions(),
) -> RunDetails:
    """Start a run on an engine of our own and execute it until it ends or is parked."""
    setup = _setup.current()
    async with setup.session(
        db, allow_processes=dsl.allow_processes, documents=dsl.documents
    ) as session:
        wf = pick(session)
        async with session.engine([wf]) as engine:
            me = await session.acting(token, "run.start")
            handle = await engine.start(
                wf, input, idempotency_key=idempotency_key, timeout=timeout, started_by=me
            )
            started(handle.run_id)
            record = await follow(engine, handle.run_id, linger)
            return await details(engine.store, record)


async def submit(
    db: str,
    pick: Pick,
    input: Any,
    *,
    idempotency_key: str | None,
    timeout: float | None = None,
    token: str | None = None,
    dsl: DslOptions = DslOptions(),
) -> RunDetails:
    """Record a PENDING run for a worker, without executing anything or taking the engine lock.

    This mirrors ``Engine.start`` (which needs an open engine, and so the lock). Workers carry
    the DSL runtime, so workflow documents need no module reference.
    """
    setup = _setup.current()
    async with setup.session(
        db, allow_processes=dsl.allow_processes, documents=dsl.documents
    ) as session:
        wf = pick(session)
        if wf.ref is None and not _is_document_run(wf.name):
            raise bf.ConfigError(
                f"workflow {wf.name!r} has no importable module:function reference, so a"
                " worker could not load it; run it without --detach"
            )
        store = session.store
        await store.open()
        try:
            me = await session.acting(token, "run.start")
            name = wf.name_for(input)
            stored, subjects = await wf.prepare(input, setup.redactor().persist)
            return await record_pending(
                store, wf, name, stored, subjects, me, idempotency_key=idempotency_key,
                timeout=timeout,
            )  # fmt: skip
        finally:
            await store.close()


async def record_pending(
    store: bf.Store,
    wf: bf.Workflow[Any, Any],
    name: str,
    input: Any,
    subjects: tuple[str, ...],
    started_by: str,
    *,
    idempotency_key: str | None,
    timeout: float | None,
) -> RunDetails:
    input_json = _serde.dumps(input, what="the run's input")  # within the value bounds
    now = time.time()
    new = NewRun(
        id=time_ordered_id(now),
        workflow=name,
        workflow_ref=wf.ref,
        input_json=input_json,
        status=bf.RunStatus.PENDING,
        owner=None,
        lease_until=None,
        created_at=now,
        deadline=_deadline(now, timeout or wf.timeout),
        idempotency_key=idempotency_key,
        queue=wf.queue,
        subjects=subjects,
        started_by=started_by,
    )
    record, created = await store.create_run(new)
    if not created:
        _check_same_start(record, name, input_json, idempotency_key or new.id)
    return await details(store, record)


def _deadline(now: float, timeout: float | None) -> float | None:
    return now + timeout if timeout else None


def _is_document_run(name: str) -> bool:
    from batonflow.dsl._runtime import is_document_run  # the DSL stack loads only when needed

    return is_document_run(name)


def _check_same_start(record: bf.RunRecord, name: str, text: str, key: str) -> None:
    if record.workflow != name:
        raise bf.IdempotencyConflict(
            f"key {key!r} already started a run of workflow {record.workflow!r} ({record.id}),"
            f" not {name!r}"
        )
    if json.loads(record.input_json) != json.loads(text):
        raise bf.IdempotencyConflict(
            f"key {key!r} already started run {record.id} with a different input"
        )


async def resume_and_follow(
    db: str,
    run_id: str,
    linger: float,
    *,
    token: str | None = None,
    dsl: DslOptions = DslOptions(),
) -> tuple[bf.RunRecord, RunDetails]:
    """Resume a run if it stopped, then execute it here like ``start_and_follow``."""
    async with opened_store(db) as store:
        before = await get_run(store, run_id)
    allowed = RESUME.sources | {bf.RunStatus.PENDING, bf.RunStatus.WAITING}
    check_action(before, RESUME, allowed)
    own: list[bf.Workflow[Any, Any]] = []
    if not _is_document_run(before.workflow):
        if not before.workflow_ref:
            raise bf.ConfigError(
                f"run {run_id}'s workflow {before.workflow!r} has no module:function reference;"
                " continue it from the Python program that defines it"
            )
        own.append(load_workflow(before.workflow_ref))  # fails here, not by faulting the run
    setup = _setup.current()
    async with (
        setup.session(db, allow_processes=dsl.allow_processes, documents=dsl.documents) as session,
        session.engine(own) as engine,
    ):
        me = await session.acting(token, "run.resume")
        if before.status in RESUME.sources:
            await engine.resume(run_id, actor=me)
        record = await follow(engine, run_id, linger)
        return before, await details(engine.store, record)


# -- operator actions and events ---------------------------------------------------------------


async def change_status(
    db: str, run_id: str, action: Action, *, reason: str | None = None, token: str | None = None
) -> tuple[bf.RunRecord, bf.RunRecord]:
    """(the run before, the run after) ``action``; the store re-checks the status table."""
    async with opened_store(db) as store:
        me = await _setup.acting(store, token, action.permission)
        before = await get_run(store, run_id)
        check_action(before, action, action.sources)
        error_json = None
        if action is CANCEL:  # what Engine.cancel records, so awaiting it raises RunCancelled
            message = f"run {run_id} was cancelled" + (f": {reason}" if reason else "")
            error = {"type": "batonflow.errors:RunCancelled", "message": message}
            error_json = json.dumps({**error, "retryable": False})
        after = await store.transition(run_id, action.target, time.time(), error_json, actor=me)
        return before, after


def check_action(run: bf.RunRecord, action: Action, allowed: frozenset[bf.RunStatus]) -> None:
    if run.status in allowed:
        return
    if run.status is action.target and action is not RESUME:
        raise bf.InvalidTransition(f"run {run.id} is already {run.status.value}")
    names = [s.value for s in sorted(allowed, key=_ORDER.index)]
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    raise bf.InvalidTransition(
        f"run {run.id} is {run.status.value}; only {listed} runs can be {action.verb}"
    )


async def send_event(
    db: str,
    topic: str,
    payload: Any,
    *,
    run_id: str | None,
    key: str | None,
    token: str | None = None,
) -> tuple[bf.EventRecord, bf.RunRecord | None]:
    """Deliver an event; return it and (when addressed to a run) that run afterwards."""
    if not topic.strip():
        raise bf.ConfigError("events deliver: the topic must not be empty")
    if run_id is None and key is None:
        raise bf.ConfigError("events deliver needs --run RUN_ID or --key KEY to address the event")
    payload_json = _serde.dumps(payload, what=f"the payload of event {topic!r}")
    async with opened_store(db) as store:
        me = await _setup.acting(store, token, "event.deliver")
        if run_id is not None:
            target = await get_run(store, run_id)
            if target.status in (bf.RunStatus.COMPLETED, bf.RunStatus.CANCELLED):
                raise bf.InvalidTransition(
                    f"run {run_id} is {target.status.value}; it will never consume an event"
                )
        event = await store.deliver_event(
            topic, payload_json, time.time(), key=key, run_id=run_id, actor=me
        )
        after = await store.get_run(run_id) if run_id is not None else None
        return event, after


async def list_runs(
    db: str, *, status: bf.RunStatus | None, workflow: str | None, limit: int
) -> list[bf.RunRecord]:
    async with opened_store(db) as store:
        return await store.list_runs(status=status, workflow=workflow, limit=limit)


async def show(db: str, run_id: str, token: str | None = None) -> RunDetails:
    """A run's details as ``token``'s identity may read them (the reading audited)."""
    from batonflow.governance._access import open_for_reading
    from batonflow.governance._identity import cli_identity

    async with opened_store(db) as store:
        reader = await cli_identity(store, token)
        view = await open_for_reading(store, reader, what="show", runs=[run_id], now=time.time())
        return await details(view, run_id)
