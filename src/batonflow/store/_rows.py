"""What both SQL stores share: column lists, row conversions, and reading a recorded error."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from batonflow.store._model import (
    AuditRecord,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
)

RUN_COLS = (
    "id, workflow, workflow_ref, status, input_json, output_json, error_json, idempotency_key,"
    " parent_id, parent_step, created_at, updated_at, started_at, finished_at, deadline, wake_at,"
    " owner, lease_until, signal, activations, queue, subjects, started_by"
)
STEP_COLS = (
    "run_id, step_id, kind, name, status, input_json, output_json, error_json, attempts,"
    " started_at, finished_at, wake_at, topic, key, child_id"
)
EVENT_COLS = "id, topic, key, run_id, payload_json, created_at, consumed_run, consumed_step"
ATTEMPT_COLS = "run_id, step_id, attempt, started_at, finished_at, error_json"
AUDIT_COLS = "seq, at, kind, run_id, step_id, actor, subjects, data_json, prev_hash, hash"
UNFINISHED = "('pending','running','waiting','suspended')"


def list_runs_sql(
    mark: str,
    *,
    status: RunStatus | None,
    workflow: str | None,
    parent_id: str | None,
    subject: str | None,
    limit: int,
    since: float | None = None,
    until: float | None = None,
    text: str | None = None,
    before: tuple[float, str] | None = None,
) -> tuple[str, list[Any]]:
    """``Store.list_runs`` as SQL and its parameters (``mark``: the driver's placeholder)."""
    where, params = runs_where(
        mark, status=status, workflow=workflow, parent_id=parent_id, subject=subject,
        since=since, until=until, text=text,
    )  # fmt: skip
    if before is not None:  # the cursor: runs after this one in (created_at, id) DESC order
        cond = f"(created_at<{mark} OR (created_at={mark} AND id<{mark}))"
        where = f"{where} AND {cond}" if where else f"WHERE {cond}"
        params += [before[0], before[0], before[1]]
    sql = f"SELECT {RUN_COLS} FROM runs {where} ORDER BY created_at DESC, id DESC LIMIT {mark}"
    return sql, [*params, limit]


def count_runs_sql(
    mark: str,
    *,
    workflow: str | None,
    subject: str | None,
    since: float | None,
    until: float | None,
    text: str | None,
) -> tuple[str, list[Any]]:
    """``Store.count_runs``: (status, count) rows."""
    where, params = runs_where(
        mark, status=None, workflow=workflow, parent_id=None, subject=subject, since=since,
        until=until, text=text,
    )  # fmt: skip
    return f"SELECT status, COUNT(*) FROM runs {where} GROUP BY status", params


def runs_where(
    mark: str,
    *,
    status: RunStatus | None,
    workflow: str | None,
    parent_id: str | None,
    subject: str | None,
    since: float | None,
    until: float | None,
    text: str | None,
) -> tuple[str, list[Any]]:
    """The WHERE clause of run listings (empty without filters) and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("status", status), ("workflow", workflow), ("parent_id", parent_id)):
        if value is not None:
            clauses.append(f"{column}={mark}")
            params.append(str(value))
    if subject is not None:
        clauses.append(f"id IN (SELECT run_id FROM run_subjects WHERE subject={mark})")
        params.append(subject)
    if since is not None:
        clauses.append(f"created_at>={mark}")
        params.append(since)
    if until is not None:
        clauses.append(f"created_at<{mark}")
        params.append(until)
    if text:  # a case-insensitive substring of the id, workflow, starter or idempotency key
        pattern = "%" + _escape_like(text.lower()) + "%"
        columns = ("id", "workflow", "started_by", "idempotency_key")
        like = " OR ".join(f"LOWER(COALESCE({c},'')) LIKE {mark} ESCAPE '\\'" for c in columns)
        clauses.append(f"({like})")
        params += [pattern] * len(columns)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def run_record(row: Sequence[Any]) -> RunRecord:
    values = list(row)
    values[3] = RunStatus(values[3])
    values[21] = tuple(json.loads(values[21])) if values[21] else ()
    return RunRecord(*values)


def step_record(row: Sequence[Any]) -> StepRecord:
    values = list(row)
    values[2], values[4] = StepKind(values[2]), StepStatus(values[4])
    return StepRecord(*values)


def audit_record(row: Sequence[Any]) -> AuditRecord:
    values = list(row)
    values[6] = tuple(json.loads(values[6])) if values[6] else ()
    return AuditRecord(*values)


def natural(step_id: str) -> tuple[int, ...]:
    """Sort key for positions: "10" after "9", "3.0.1" after "3"."""
    return tuple(int(p) for p in step_id.split("."))


def failed_step(run: RunRecord) -> str | None:
    """The position of the step whose failure faulted ``run``, if its error names one."""
    return failed_step_of(run.error_json)


def failed_step_of(error_json: str | None) -> str | None:
    """The ``step`` member of a faulted run's recorded error: the position of the step whose
    failure faulted it. A sealed error (see governance ``SealedStore``) keeps it in the clear
    for this, so a store can reopen that step on ``resume`` without reading the error."""
    try:
        step = json.loads(error_json or "{}").get("step")
    except (ValueError, AttributeError):
        return None
    return step if isinstance(step, str) else None
