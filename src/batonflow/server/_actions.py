"""Operator actions on runs (cancel, suspend, resume, retry), one at a time or in bulk: the
status table and role checks of the command line (``cli._ops``), through the engine when this
process executes runs (it stops its own activation at once), else through the store."""

from __future__ import annotations

import json
from typing import Any

import batonflow as bf
from batonflow._problems import problem_for
from batonflow.cli import _ops
from batonflow.governance._identity import Identity, authorize
from batonflow.server._service import Service

RETRY = _ops.Action("retried", bf.RunStatus.PENDING, frozenset({bf.RunStatus.FAULTED}), "run.retry")
RESUME = _ops.Action(
    "resumed", bf.RunStatus.PENDING, frozenset({bf.RunStatus.SUSPENDED}), "run.resume"
)
ACTIONS: dict[str, _ops.Action] = {
    "cancel": _ops.CANCEL,
    "suspend": _ops.SUSPEND,
    "resume": RESUME,
    "retry": RETRY,
}


async def act(
    service: Service, run_id: str, name: str, me: Identity, reason: str | None = None
) -> bf.RunRecord:
    """Do action ``name`` on run ``run_id`` as ``me`` (whose roles were checked for it)."""
    action = ACTIONS[name]
    authorize(me, action.permission)
    before = await service.store.get_run(run_id)
    if before is None:
        raise bf.RunNotFound(f"no run with id {run_id!r}")
    _ops.check_action(before, action, action.sources)
    engine = service.engine
    if engine is not None and action is not _ops.CANCEL:
        if action is _ops.SUSPEND:
            return await engine.suspend(run_id, actor=me.name)
        return await engine.resume(run_id, actor=me.name)
    error_json = None
    if action is _ops.CANCEL:  # what Engine.cancel records, with the operator's reason
        message = f"run {run_id} was cancelled" + (f": {reason}" if reason else "")
        error = {"type": "batonflow.errors:RunCancelled", "message": message, "retryable": False}
        error_json = json.dumps(error)
    after = await service.store.transition(
        run_id, action.target, service.now(), error_json, actor=me.name
    )
    service.poke()  # an activation here notices at its next lease heartbeat
    return after


async def act_on_many(
    service: Service, runs: list[bf.RunRecord], name: str, me: Identity, reason: str | None
) -> list[dict[str, Any]]:
    """The action on each run; a run the action does not apply to is reported, not fatal."""
    results = []
    for run in runs:
        try:
            after = await act(service, run.id, name, me, reason)
        except (bf.InvalidTransition, bf.RunNotFound) as exc:
            problem = problem_for(exc)
            results.append(
                {"id": run.id, "ok": False, "status": run.status.value, "problem": problem}
            )
            continue
        results.append({"id": run.id, "ok": True, "status": after.status.value})
    return results
