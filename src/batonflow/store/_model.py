"""What the store holds: runs, journal entries (steps), attempts and events.

Payloads travel as JSON text: the store never decodes them, so it needs no serializer and an
auditor's tools can read the database directly. Times are epoch seconds from the engine's clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RunStatus(enum.StrEnum):
    PENDING = "pending"  # runnable: waiting for an engine to pick it up
    RUNNING = "running"  # an engine holds its lease and is executing it
    WAITING = "waiting"  # parked on a timer, an event or a child run; holds no thread
    SUSPENDED = "suspended"  # paused by an operator until resumed
    CANCELLED = "cancelled"
    FAULTED = "faulted"  # the workflow raised; ``resume`` retries it from the failed step
    COMPLETED = "completed"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.CANCELLED, RunStatus.COMPLETED})

#: The one table of allowed status changes. Stores enforce it in their SQL.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.SUSPENDED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.PENDING,  # woken during its activation, or released by a stopping engine
            RunStatus.WAITING,
            RunStatus.SUSPENDED,
            RunStatus.CANCELLED,
            RunStatus.FAULTED,
            RunStatus.COMPLETED,
        }
    ),
    RunStatus.WAITING: frozenset(
        {RunStatus.RUNNING, RunStatus.PENDING, RunStatus.SUSPENDED, RunStatus.CANCELLED}
    ),
    RunStatus.SUSPENDED: frozenset({RunStatus.PENDING, RunStatus.CANCELLED}),
    RunStatus.FAULTED: frozenset({RunStatus.PENDING, RunStatus.CANCELLED}),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.COMPLETED: frozenset(),
}


#: What an operator may do, and from which statuses: the subset of TRANSITIONS that is not the
#: engine's own bookkeeping (a running run becomes pending when its engine hands it back; an
#: operator's "resume" must not do that to a run another engine is executing).
OPERATOR_ACTIONS: dict[RunStatus, tuple[RunStatus, ...]] = {
    RunStatus.CANCELLED: (
        RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.SUSPENDED,
        RunStatus.FAULTED,
    ),
    RunStatus.SUSPENDED: (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING),
    RunStatus.PENDING: (RunStatus.SUSPENDED, RunStatus.FAULTED),  # resume
}  # fmt: skip


def allowed_sources(target: RunStatus) -> tuple[RunStatus, ...]:
    """Statuses from which ``target`` may be entered, in table order."""
    return tuple(s for s, targets in TRANSITIONS.items() if target in targets)


class StepKind(enum.StrEnum):
    STEP = "step"  # a function call
    SLEEP = "sleep"
    EVENT = "event"  # wait for an external event
    CHILD = "child"  # a child run
    VALUE = "value"  # a recorded non-deterministic value (time, uuid)
    PARALLEL = "parallel"  # a fan-out group; its branches' positions are "<group>.<branch>.<n>"


class StepStatus(enum.StrEnum):
    PENDING = "pending"  # waiting (timer, event, child, retry backoff)
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    workflow: str
    workflow_ref: str | None
    input_json: str
    status: RunStatus  # PENDING, or RUNNING when the creating engine executes it at once
    owner: str | None
    lease_until: float | None
    created_at: float
    deadline: float | None = None
    idempotency_key: str | None = None
    parent_id: str | None = None
    parent_step: str | None = None
    queue: str | None = None  # the named queue whose limits govern claiming it (None: none)
    subjects: tuple[str, ...] = ()  # data-subject references the run concerns
    started_by: str | None = None  # the identity that started it (None: a child, or unknown)


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    workflow: str
    workflow_ref: str | None
    status: RunStatus
    input_json: str
    output_json: str | None
    error_json: str | None
    idempotency_key: str | None
    parent_id: str | None
    parent_step: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    deadline: float | None
    wake_at: float | None
    owner: str | None
    lease_until: float | None
    signal: int
    activations: int
    queue: str | None = None
    subjects: tuple[str, ...] = ()
    started_by: str | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    run_id: str
    step_id: str  # position in the run: "3", or "3.1.2" inside parallel branch 1 of step 3
    kind: StepKind
    name: str
    status: StepStatus
    input_json: str | None = None
    output_json: str | None = None
    error_json: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    wake_at: float | None = None  # a sleep's end, an event wait's deadline, a retry's next try
    topic: str | None = None
    key: str | None = None
    child_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    run_id: str
    step_id: str
    attempt: int
    started_at: float
    finished_at: float
    error_json: str


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """The limits of a named queue, as the engine hands them to ``Store.claim_runs``.

    ``concurrency``: runs of the queue executing at once, across all workers; ``per_worker``: at
    once in one engine; ``rate`` runs started per ``per`` seconds (a sliding window). None: no
    limit of that kind.
    """

    concurrency: int | None = None
    per_worker: int | None = None
    rate: int | None = None
    per: float = 60.0

    @property
    def limited(self) -> bool:
        return (self.concurrency, self.per_worker, self.rate) != (None, None, None)


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    topic: str
    key: str | None
    run_id: str | None
    payload_json: str
    created_at: float
    consumed_run: str | None
    consumed_step: str | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An entry to append to the audit trail (the store chains it in the same transaction).

    ``data_json`` is a JSON object, already redacted (and sealed for runs with data subjects)
    by the layer that built it; ``actor`` names who did it (an identity, ``engine``, ``system``);
    ``subjects`` are the data-subject references the entry concerns.
    """

    kind: str
    data_json: str = "{}"
    run_id: str | None = None
    step_id: str | None = None
    actor: str | None = None
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An entry as chained: ``hash`` = SHA-256 over ``prev_hash`` and the canonical encoding of
    the other fields (``batonflow.store.audit_hash``)."""

    seq: int
    at: float
    kind: str
    run_id: str | None
    step_id: str | None
    actor: str | None
    subjects: tuple[str, ...]
    data_json: str
    prev_hash: str
    hash: str


def _check_operator_actions() -> None:
    for target, sources in OPERATOR_ACTIONS.items():
        for source in sources:
            assert target in TRANSITIONS[source], (source, target)


_check_operator_actions()
