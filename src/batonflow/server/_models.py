"""The API's request and response bodies (pydantic: they are the OpenAPI schema)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import batonflow as bf

Status = Literal["pending", "running", "waiting", "suspended", "completed", "faulted", "cancelled"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class RunSummary(BaseModel):
    id: str
    workflow: str
    status: Status
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    started_by: str | None = None
    parent_id: str | None = None
    queue: str | None = None
    idempotency_key: str | None = None
    wake_at: float | None = None
    deadline: float | None = None

    @classmethod
    def of(cls, r: bf.RunRecord) -> RunSummary:
        return cls(
            id=r.id, workflow=r.workflow, status=r.status.value, created_at=r.created_at,
            updated_at=r.updated_at, started_at=r.started_at, finished_at=r.finished_at,
            started_by=r.started_by, parent_id=r.parent_id, queue=r.queue,
            idempotency_key=r.idempotency_key, wake_at=r.wake_at, deadline=r.deadline,
        )  # fmt: skip


class StepOut(BaseModel):
    step_id: str
    kind: str
    name: str
    status: str
    attempts: int
    started_at: float | None = None
    finished_at: float | None = None
    wake_at: float | None = None
    topic: str | None = None
    child_id: str | None = None
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None

    @classmethod
    def of(cls, s: bf.StepRecord) -> StepOut:
        return cls(
            step_id=s.step_id, kind=s.kind.value, name=s.name, status=s.status.value,
            attempts=s.attempts, started_at=s.started_at, finished_at=s.finished_at,
            wake_at=s.wake_at, topic=s.topic, child_id=s.child_id, input=_json(s.input_json),
            output=_json(s.output_json), error=_json(s.error_json),
        )  # fmt: skip


class AttemptOut(BaseModel):
    step_id: str
    attempt: int
    started_at: float
    finished_at: float
    error: dict[str, Any] | None = None

    @classmethod
    def of(cls, a: bf.AttemptRecord) -> AttemptOut:
        return cls(
            step_id=a.step_id, attempt=a.attempt, started_at=a.started_at,
            finished_at=a.finished_at, error=_json(a.error_json),
        )  # fmt: skip


class EventOut(BaseModel):
    id: int
    topic: str
    key: str | None = None
    run_id: str | None = None
    payload: Any = None
    created_at: float
    consumed_run: str | None = None
    consumed_step: str | None = None

    @classmethod
    def of(cls, e: bf.EventRecord) -> EventOut:
        return cls(
            id=e.id, topic=e.topic, key=e.key, run_id=e.run_id, payload=_json(e.payload_json),
            created_at=e.created_at, consumed_run=e.consumed_run, consumed_step=e.consumed_step,
        )  # fmt: skip


class AuditOut(BaseModel):
    seq: int
    at: float
    kind: str
    run_id: str | None = None
    step_id: str | None = None
    actor: str | None = None
    data: Any = None


class RunDetail(RunSummary):
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    problem: dict[str, Any] | None = Field(
        None, description="The run's error as an RFC 9457 problem (faulted runs)"
    )
    steps: list[StepOut] = []
    attempts: list[AttemptOut] = []
    events: list[EventOut] = []
    approvals: list[dict[str, Any]] = []
    model_calls: list[AuditOut] = []
    routing: list[AuditOut] = []
    cost: float = 0.0
    tokens: dict[str, int] = {}


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")
    counts: dict[str, int] | None = Field(
        None, description="Runs per status under the same filters (with `counts=true`)"
    )


class StartRun(Body):
    workflow: str = Field(..., min_length=1, max_length=300, description="A workflow's name")
    input: Any = None
    version: str | None = Field(None, max_length=100, description="A document's version")
    timeout: float | None = Field(None, gt=0, description="Seconds; overrides the workflow's")


class Cancel(Body):
    reason: str | None = Field(None, max_length=2000)


class LabelCorrection(Body):
    """The right label of a run's `classify` step (`step`: needed only when it has several)."""

    label: str = Field(..., min_length=1, max_length=200)
    step: str | None = Field(None, max_length=200)


class CorrectionOut(BaseModel):
    run_id: str
    step_id: str
    workflow: str
    previous: str
    label: str
    actor: str


class RunFilter(Body):
    status: Status | None = None
    workflow: str | None = Field(None, max_length=300)
    subject: str | None = Field(None, max_length=500)
    since: float | None = None
    until: float | None = None
    text: str | None = Field(None, max_length=200)


class BulkAction(Body):
    action: Literal["cancel", "suspend", "resume", "retry"]
    filter: RunFilter
    limit: int = Field(100, ge=1, le=1000, description="At most this many runs")
    reason: str | None = Field(None, max_length=2000)


class BulkItem(BaseModel):
    id: str
    ok: bool
    status: Status
    problem: dict[str, Any] | None = None


class BulkResult(BaseModel):
    items: list[BulkItem]
    done: int
    refused: int
