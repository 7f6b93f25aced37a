"""The contract every store implements; ``batonflow.testing.StoreConformance`` checks it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from batonflow.store._model import (
    AttemptRecord,
    AuditEntry,
    AuditRecord,
    EventRecord,
    NewRun,
    QueueLimits,
    RunRecord,
    RunStatus,
    StepRecord,
)


class Store(Protocol):
    """Durable state of runs. Every write is committed before its coroutine returns.

    Writes that carry ``owner`` succeed only while that engine holds the run's lease and the run
    is RUNNING; otherwise they raise :class:`~batonflow.errors.LeaseLost` and change nothing.
    """

    url: str

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None: ...

    async def acquire_worker(self, owner: str, now: float) -> None:
        """Register an engine that will execute runs (may take over runs orphaned by a crash)."""

    async def release_worker(self, owner: str, now: float) -> None:
        """Hand this engine's RUNNING runs back as PENDING and release worker resources."""

    # -- runs -------------------------------------------------------------------------------
    async def create_run(
        self,
        run: NewRun,
        parent_step: StepRecord | None = None,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> tuple[RunRecord, bool]:
        """Insert ``run`` (and the parent's pending child step, atomically), with its
        ``run.created`` audit entry and ``audit``.

        With an idempotency key that already exists, return that run and ``False``.
        """

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        parent_id: str | None = None,
        subject: str | None = None,
        limit: int = 50,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[RunRecord]:
        """Newest first. ``subject``: runs tagged with that data-subject reference; ``since``/
        ``until``: created in ``[since, until)``; ``text``: a case-insensitive substring of the
        id, workflow, starter or idempotency key; ``before``: the ``(created_at, id)`` of the
        last run of the previous page (a cursor)."""

    async def count_runs(
        self,
        *,
        workflow: str | None = None,
        subject: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
    ) -> dict[RunStatus, int]:
        """How many runs have each status, under the filters of :meth:`list_runs`."""

    async def transition(
        self,
        run_id: str,
        target: RunStatus,
        now: float,
        error_json: str | None = None,
        *,
        actor: str | None = None,
    ) -> RunRecord:
        """An operator's status change (cancel, suspend, resume), checked against the table,
        audited as done by ``actor``.

        Cancelling also cancels the run's unfinished descendants and fails the parent's waiting
        child step; resuming a FAULTED run re-opens its failed step so it is tried again.
        """

    # -- execution ----------------------------------------------------------------------------
    async def claim_runs(
        self,
        owner: str,
        now: float,
        lease_until: float,
        limit: int,
        *,
        queues: Mapping[str, QueueLimits] | None = None,
        serve: Sequence[str] | None = None,
    ) -> list[RunRecord]:
        """Take up to ``limit`` runnable runs: PENDING ones, WAITING ones whose wake time has
        come, and RUNNING ones whose lease expired under another owner.

        ``queues`` gives the limits of named queues: claim a run of a limited queue only within
        them (across every engine sharing the store). ``serve``: only runs of these queues
        (``""`` stands for runs on no queue); None: any. The engine passes both only when it
        was configured with queues, so a store without queue support may omit them.
        """

    async def renew_leases(
        self, owner: str, run_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        """Extend the leases; return the ids this owner no longer holds as RUNNING."""

    async def load_steps(self, run_id: str) -> list[StepRecord]: ...

    async def load_attempts(self, run_id: str) -> list[AttemptRecord]: ...

    async def save_steps(
        self,
        run_id: str,
        owner: str,
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        """Upsert journal entries and append attempts, in one transaction (with their audit
        entries and ``audit``: entries raised while the steps ran)."""

    async def begin_wait(self, step: StepRecord, owner: str, now: float) -> StepRecord:
        """Record a pending event wait if new, then consume the oldest matching event if any.

        Returns the entry as stored: COMPLETED with the event's payload when one was consumed.
        """

    async def suspend_run(
        self,
        run_id: str,
        owner: str,
        wake_at: float | None,
        signal: int,
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> RunStatus:
        """Park the run (WAITING) after saving ``steps``; if anything happened to it since its
        activation loaded ``signal`` (an event, a child's end), make it PENDING instead."""

    async def release_run(self, run_id: str, owner: str, now: float) -> None:
        """Give a RUNNING run back as PENDING (engine shutting down, store trouble)."""

    async def finish_run(
        self,
        run_id: str,
        owner: str,
        status: RunStatus,
        output_json: str | None,
        error_json: str | None,
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        """End the run (COMPLETED or FAULTED) with its last journal entries, cancel its
        unfinished descendants, and settle the parent's child step if it has a parent."""

    async def next_wake_at(self) -> float | None:
        """The earliest wake time of a WAITING run, if any."""

    # -- events -------------------------------------------------------------------------------
    async def deliver_event(
        self,
        topic: str,
        payload_json: str,
        now: float,
        *,
        key: str | None = None,
        run_id: str | None = None,
        actor: str | None = None,
    ) -> EventRecord:
        """Store an event and wake the runs waiting for it. It stays until a wait consumes it.
        ``actor``: who sent it, for the audit trail."""

    async def list_waits(self, topic: str, *, limit: int = 1000) -> list[StepRecord]:
        """Pending event waits on ``topic`` across all runs, oldest first (for publishers that
        fan an event out to the runs whose recorded ``detail`` matches it)."""

    async def list_events(
        self, *, run_id: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """Events addressed to or consumed by ``run_id`` (all events when None), oldest first."""

    # -- audit trail and governance records -----------------------------------------------------
    async def append_audit(self, entries: Sequence[AuditEntry], now: float) -> None:
        """Chain ``entries`` onto the audit trail, in one transaction."""

    async def read_audit(
        self, *, after: int = 0, limit: int = 1000, run_id: str | None = None
    ) -> list[AuditRecord]:
        """Entries with ``seq > after`` (of ``run_id`` only, when given), oldest first."""

    async def put_record(
        self,
        kind: str,
        key: str,
        data_json: str | None,
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        """Set (``None``: delete) the governance record ``kind``/``key`` (an identity, a token
        hash, a connector switch, a subject key), with ``audit`` entries, in one transaction."""

    async def add_record(
        self,
        kind: str,
        key: str,
        data_json: str,
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> bool:
        """Insert the record unless ``kind``/``key`` exists (then change nothing, ``audit``
        included); True if inserted. For claims that several processes may race to make."""

    async def get_record(self, kind: str, key: str) -> str | None: ...

    async def list_records(self, kind: str) -> list[tuple[str, str]]:
        """``(key, data_json)`` of every record of ``kind``, by key."""

    async def delete_run(
        self, run_id: str, now: float, *, audit: Sequence[AuditEntry] = ()
    ) -> None:
        """Delete an ended run with its journal, attempts and events (retention purge); its
        audit entries stay. InvalidTransition for a run that has not ended."""


@runtime_checkable
class WakeUps(Protocol):
    """An optional store capability: telling engines when other processes made work runnable.

    An engine whose store has it subscribes at open and is woken at once (PostgreSQL: LISTEN/
    NOTIFY); without it, the engine notices other processes' writes by polling.
    """

    def on_work(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` on the event loop whenever a run may have become runnable (or a
        limited queue may have room). Returns a function that unsubscribes."""
