"""How ``batonflow run`` decides to stop waiting for a run that is parked.

A run that waits (a timer, an event, a child run, a retry's backoff) is parked in the store and
holds nothing in memory. ``run`` keeps its engine open while there is something it can do soon:
the run or one of its child runs is runnable, or one of them wakes by itself within the linger
window (a retry backoff, a short sleep). When the whole run tree is parked on something further
away or external (an event, a long sleep, an operator's suspension), ``run`` reports what the run
waits for and leaves it to ``batonflow worker`` (or ``batonflow resume --wait``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import batonflow as bf

_ENDED = (bf.RunStatus.COMPLETED, bf.RunStatus.FAULTED, bf.RunStatus.CANCELLED)
#: how often ``follow`` re-checks a run that is not finished (it is also woken when its
#: activation ends, so this bounds the delay of noticing a park, not of noticing a result)
POLL_SECONDS = 0.05
_MAX_DEPTH = 20


@dataclass(frozen=True, slots=True)
class Wait:
    """One thing a parked run waits for: a pending journal entry (or a suspended run)."""

    run_id: str
    step_id: str | None  # None: the run itself is suspended
    kind: str  # a StepKind value, or "suspended"
    name: str
    wake_at: float | None = None  # a sleep's end, an event wait's timeout, a retry's next try
    topic: str | None = None
    key: str | None = None
    child_id: str | None = None
    child_status: str | None = None
    detail: Any = None  # what an event wait recorded it awaits (a DSL listen: its filters)


async def follow(engine: bf.Engine, run_id: str, linger: float) -> bf.RunRecord:
    """Wait until the run ends, is suspended, or is parked with nothing due within ``linger``
    seconds; return its record as last seen."""
    handle = engine.handle(run_id)
    while True:
        with contextlib.suppress(TimeoutError, bf.RunFailed, bf.RunCancelled):
            await handle.result(timeout=POLL_SECONDS)  # returns early when the run parks
        record = await engine.get_run(run_id)
        if record.status in _ENDED or record.status is bf.RunStatus.SUSPENDED:
            return record
        if record.status is bf.RunStatus.WAITING and await is_parked(
            engine.store, record, engine.clock.now() + linger
        ):
            return record


async def is_parked(store: bf.Store, record: bf.RunRecord, horizon: float) -> bool:
    """True when neither the run nor any unfinished descendant can make progress before
    ``horizon`` without outside help. Re-reads the run last: if anything happened to it in
    between (its ``signal`` moved), the answer is False and the caller looks again."""
    if not _asleep(record, horizon):
        return False
    if await _tree_busy(store, record.id, horizon, 0):
        return False
    again = await store.get_run(record.id)
    return again is not None and again.status is record.status and again.signal == record.signal


def _asleep(record: bf.RunRecord, horizon: float) -> bool:
    if record.status is bf.RunStatus.SUSPENDED:
        return True
    if record.status is not bf.RunStatus.WAITING:
        return record.status in _ENDED
    return record.wake_at is None or record.wake_at > horizon


async def _tree_busy(store: bf.Store, run_id: str, horizon: float, depth: int) -> bool:
    if depth > _MAX_DEPTH:
        return False
    for child in await store.list_runs(parent_id=run_id, limit=10_000):
        if child.status in _ENDED:
            continue
        if not _asleep(child, horizon) or await _tree_busy(store, child.id, horizon, depth + 1):
            return True
    return False


async def waits_of(store: bf.Store, record: bf.RunRecord, depth: int = 0) -> list[Wait]:
    """What ``record`` (and, through its child steps, its descendants) is waiting for."""
    if record.status is bf.RunStatus.SUSPENDED:
        return [Wait(record.id, None, "suspended", record.workflow)]
    waits: list[Wait] = []
    for step in await store.load_steps(record.id):
        if step.status is not bf.StepStatus.PENDING:
            continue
        child = await store.get_run(step.child_id) if step.child_id else None
        waits.append(_wait(step, child))
        if child is not None and child.status not in _ENDED and depth < _MAX_DEPTH:
            waits.extend(await waits_of(store, child, depth + 1))
    return waits


def _wait(step: bf.StepRecord, child: bf.RunRecord | None) -> Wait:
    fields: dict[str, Any] = {
        "wake_at": step.wake_at,
        "topic": step.topic,
        "key": step.key,
        "child_id": step.child_id,
        "child_status": child.status.value if child is not None else None,
        "detail": json.loads(step.input_json) if step.input_json else None,
    }
    return Wait(step.run_id, step.step_id, step.kind.value, step.name, **fields)
