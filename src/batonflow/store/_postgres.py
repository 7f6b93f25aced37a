"""The scale-out store: PostgreSQL, shared by any number of worker processes on any machines.

``PostgresStore("postgresql://user@host/db")`` or ``open_store("postgresql://...")``. The tables
live in the schema the connection's ``search_path`` selects (``public`` by default; add
``?options=-csearch_path%3Dmyschema`` to the URL for another), so one database can hold several.

How workers share it:

* Claims take runnable runs with ``FOR UPDATE SKIP LOCKED``: one run is never handed to two
  workers, and claimers never wait for each other.
* Every write an engine makes for a run is checked against its lease in the same statement; a
  worker that lost a run (cancelled, or taken over after its lease expired) changes nothing.
* A trigger sends ``NOTIFY`` when a run becomes runnable (created, woken by an event or a child,
  resumed, handed back) or frees a slot in a limited queue; :meth:`on_work` subscribes to it, so
  idle workers start new work within milliseconds without polling hot.
* The audit trail does not serialise writers: entries are inserted unsealed in the change's
  transaction and sealed into the hash chain after commit, in one order for all processes
  (``_postgres_chain``); readers see sealed entries.
* Database loss: an operation whose connection fails is retried with backoff (on a fresh
  connection) until the database is back, for at most ``max_outage`` seconds (default: for as
  long as it takes). Every write is safe to repeat when the first try's outcome is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batonflow.errors import ConfigError, InvalidTransition, LeaseLost, RunNotFound, StoreError
from batonflow.store import _audit, _postgres_claim
from batonflow.store import _postgres_sql as q
from batonflow.store import _rows as shared
from batonflow.store._model import (
    OPERATOR_ACTIONS,
    AttemptRecord,
    AuditEntry,
    AuditRecord,
    EventRecord,
    NewRun,
    QueueLimits,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
)
from batonflow.store._postgres_chain import OVERDUE, Chainer, seal_pass
from batonflow.store._postgres_conn import Conn, Connections, Op, T, redact

__all__ = ["Overdue", "PostgresStore", "redact"]


@dataclass(frozen=True, slots=True)
class Overdue:
    """Committed audit entries not sealed within the lag: how many, the first one's order key,
    and how long ago (seconds) the oldest was written."""

    count: int
    first_ord: int
    age: float


class PostgresStore(Connections):
    """Store on PostgreSQL (psycopg 3, async, with a connection pool).

    ``pool_size``: connections per store (each engine has one store); ``max_outage``: give up
    (StoreError) after the database has been unreachable this many seconds (None: never);
    ``connect_timeout``: for opening, which fails at once if the database is not there.
    """

    #: Seconds between the chainer's passes for other processes' entries (each store also
    #: seals right after its own commits).
    seal_interval = 0.1
    _chainer: Chainer | None = None

    async def open(self) -> None:
        await super().open()
        if self._chainer is None:
            self._chainer = Chainer(self._seal, self.seal_interval)
            self._chainer.start()

    async def close(self) -> None:
        chainer, self._chainer = self._chainer, None
        if chainer is not None:
            await chainer.stop()
            # a clean exit leaves its own entries sealed (waiting for them as a read does); a
            # database that is gone is not waited for
            with contextlib.suppress(StoreError, TimeoutError):
                await asyncio.wait_for(self.seal_audit(), self.connect_timeout)
        await super().close()

    #: The newest transaction id this store committed entries in: a reader waits (at most
    #: ``read_wait`` seconds) for them to be sealed, so it sees its own writes.
    _own_txid = 0
    read_wait = 5.0

    async def _run(self, op: Op[T]) -> T:
        token = _APPENDED.set(0)
        try:
            result = await super()._run(op)
            txid = _APPENDED.get()
        finally:
            _APPENDED.reset(token)
        if txid:
            self._own_txid = max(self._own_txid, txid)
            if self._chainer is not None:
                self._chainer.nudge()
        return result

    # -- sealing the trail --------------------------------------------------------------------
    async def seal_audit(self) -> int:
        """Seal every committed entry that can be sealed now (waiting for a pass another
        process is running); the number this call sealed. Entries of transactions that began
        after the oldest one still open wait for it (docs/design.md decision 96); this store's
        own entries are waited for, polling, for at most ``read_wait`` seconds."""
        sealed, boundary = await self._seal_with_boundary(True)
        deadline = asyncio.get_running_loop().time() + self.read_wait
        while boundary <= self._own_txid and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)  # an older transaction, perhaps not ours, is still open
            more, boundary = await self._seal_with_boundary(True)
            sealed += more
        return sealed

    async def _seal(self, wait: bool) -> int:
        return (await self._seal_with_boundary(wait))[0]

    async def _seal_with_boundary(self, wait: bool) -> tuple[int, int]:
        async def seal(conn: Conn, _retried: bool) -> tuple[int, int]:
            return await seal_pass(conn, self.schema, self.audit_channel, wait=wait)

        return await super()._run(seal)

    async def overdue_audit(self, lag: float) -> Overdue | None:
        """Committed entries left unsealed more than ``lag`` seconds after they were written
        (by the database's clock), after a pass sealed what it could; None when there are none."""
        await self.seal_audit()
        rows = await self._rows(OVERDUE, (lag,))
        count, first, age = rows[0]
        return Overdue(int(count), int(first), float(age)) if count else None

    async def unsealed_audit(self, run_id: str) -> list[AuditRecord]:
        """Committed entries of ``run_id`` not sealed yet, in the order they will be sealed
        (``seq`` 0, no hashes): what a vote check may accept until its entry is sealed."""
        rows = await self._rows(q.UNSEALED_OF_RUN, (run_id,))
        return [
            AuditRecord(0, r[0], r[1], r[2], r[3], r[4], _audit.subjects_of(r[5]), r[6], "", "")
            for r in rows
        ]

    # -- workers ------------------------------------------------------------------------------
    async def acquire_worker(self, owner: str, now: float) -> None:
        """Start listening for wake-ups. Runs of dead workers are taken over as their leases
        expire (claim_runs), so there is nothing to take over here."""
        await self._start_listening()

    async def release_worker(self, owner: str, now: float) -> None:
        try:
            await self._write(q.RELEASE_WORKER, (now, owner))
        finally:
            await self._stop_listening()

    # -- runs ---------------------------------------------------------------------------------
    async def create_run(
        self,
        run: NewRun,
        parent_step: StepRecord | None = None,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> tuple[RunRecord, bool]:
        running = run.status is RunStatus.RUNNING
        params = {
            "id": run.id, "workflow": run.workflow, "workflow_ref": run.workflow_ref,
            "status": run.status.value, "input_json": run.input_json,
            "idempotency_key": run.idempotency_key, "parent_id": run.parent_id,
            "parent_step": run.parent_step, "created_at": run.created_at,
            "started_at": run.created_at if running else None, "deadline": run.deadline,
            "owner": run.owner, "lease_until": run.lease_until, "activations": int(running),
            "queue": run.queue, "subjects": _audit.subjects_json(run.subjects),
            "started_by": run.started_by,
            "steps": q.steps_json([parent_step] if parent_step is not None else []),
        }  # fmt: skip
        op = uuid.uuid4().hex

        async def create(conn: Conn, retried: bool) -> tuple[RunRecord, bool]:
            async with conn.transaction():
                trail = _Trail(conn)
                row = await (await conn.execute(q.CREATE_RUN, params)).fetchone()
                if row is not None:
                    if run.subjects:
                        await conn.cursor().executemany(
                            "INSERT INTO run_subjects (subject, run_id) VALUES (%s,%s)"
                            " ON CONFLICT DO NOTHING",
                            [(subject, run.id) for subject in run.subjects],
                        )
                    entries = [_audit.run_created(run, run.subjects)]
                    if parent_step is not None:
                        parent = await _subjects_of(conn, run.parent_id)
                        entries += _audit.step_entries([parent_step], [], parent)
                    await trail.append([*entries, *audit], run.created_at, op, retried)
                    return shared.run_record(row), True
            row = await (await conn.execute(q.EXISTING_RUN, params)).fetchone()
            if row is None:  # the conflicting run vanished: cannot happen, runs are not deleted
                raise StoreError(f"run {run.id} conflicts with a run that is not there")
            existing = shared.run_record(row)
            mine = (existing.id, existing.owner, existing.created_at) == (
                run.id, run.owner, run.created_at,
            )  # fmt: skip
            return existing, retried and mine  # our own first try committed

        return await self._run(create)

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._rows(q.GET_RUN, (run_id,))
        return shared.run_record(rows[0]) if rows else None

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
        sql, params = shared.list_runs_sql(
            "%s", status=status, workflow=workflow, parent_id=parent_id, subject=subject,
            limit=limit, since=since, until=until, text=text, before=before,
        )  # fmt: skip
        rows = await self._rows(sql, params)
        return [shared.run_record(r) for r in rows]

    async def count_runs(
        self,
        *,
        workflow: str | None = None,
        subject: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
    ) -> dict[RunStatus, int]:
        sql, params = shared.count_runs_sql(
            "%s", workflow=workflow, subject=subject, since=since, until=until, text=text
        )
        return {RunStatus(status): int(n) for status, n in await self._rows(sql, params)}

    async def transition(
        self,
        run_id: str,
        target: RunStatus,
        now: float,
        error_json: str | None = None,
        *,
        actor: str | None = None,
    ) -> RunRecord:
        sources = OPERATOR_ACTIONS.get(target)
        if sources is None:
            raise InvalidTransition(f"{target.value} is not an operator action")
        op = uuid.uuid4().hex

        async def change(conn: Conn, retried: bool) -> RunRecord:
            async with conn.transaction():
                trail = _Trail(conn)
                run = await _locked_run(conn, run_id)
                if retried and run.status is target:
                    return run  # our first try committed
                if run.status not in sources:
                    raise InvalidTransition(
                        f"run {run_id} is {run.status.value}; it can become {target.value} only"
                        " from " + " or ".join(s.value for s in sources)
                    )
                if target is RunStatus.CANCELLED:
                    await _end_run(conn, run_id, None, target, None, error_json, [], [], now)
                elif target is RunStatus.SUSPENDED:
                    await conn.execute(q.SUSPEND_BY_OPERATOR, (now, run_id))
                else:  # PENDING: resume
                    if run.status is RunStatus.FAULTED:
                        await _reopen_failed_step(conn, run, now)
                    await conn.execute(q.RESUME_BY_OPERATOR, (now, run_id))
                entry = _audit.operator_action(run_id, run.status, target, actor, run.subjects)
                await trail.append([entry], now, op, retried)
                row = await (await conn.execute(q.GET_RUN, (run_id,))).fetchone()
                assert row is not None
                return shared.run_record(row)

        return await self._run(change)

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
        """Take up to ``limit`` runnable runs (see the protocol). ``queues``: the limits of named
        queues, enforced across all workers; ``serve``: only runs of these queues (None: all;
        the name ``""`` stands for runs on no queue)."""
        claim_id = uuid.uuid4().hex
        base = {"owner": owner, "now": now, "lease_until": lease_until, "claim_id": claim_id}

        async def claim(conn: Conn, retried: bool) -> list[RunRecord]:
            taken: list[RunRecord] = []
            if retried:  # what our first try claimed before its outcome got lost
                rows = await (await conn.execute(q.RECLAIM, base)).fetchall()
                taken.extend(shared.run_record(r) for r in rows)
            room = limit - len(taken)
            if room > 0:
                taken.extend(await _postgres_claim.claim(conn, base, room, queues or {}, serve))
            return taken

        return await self._run(claim)

    async def renew_leases(
        self, owner: str, run_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        ids = list(run_ids)
        if not ids:
            return set()
        rows = await self._rows(q.RENEW, (lease_until, owner, ids))
        return set(ids) - {r[0] for r in rows}

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        rows = await self._rows(q.LOAD_STEPS, (run_id,))
        return sorted(
            (shared.step_record(r) for r in rows), key=lambda s: shared.natural(s.step_id)
        )

    async def load_attempts(self, run_id: str) -> list[AttemptRecord]:
        rows = await self._rows(q.LOAD_ATTEMPTS, (run_id,))
        return [AttemptRecord(*r) for r in rows]

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
        params = _journal_params(run_id, owner, steps, attempts, now)
        op = uuid.uuid4().hex

        async def save(conn: Conn, retried: bool) -> None:
            async with conn.transaction():
                trail = _Trail(conn)
                row = await (await conn.execute(q.SAVE_STEPS, params)).fetchone()
                if not (row and row[0]):
                    raise LeaseLost(f"run {run_id} is no longer held by this engine")
                subjects = _audit.subjects_of(row[1])
                entries = _audit.step_entries(steps, attempts, subjects, audit)
                await trail.append(entries, now, op, retried)

        await self._run(save)

    async def begin_wait(self, step: StepRecord, owner: str, now: float) -> StepRecord:
        op = uuid.uuid4().hex

        async def wait(conn: Conn, retried: bool) -> StepRecord:
            async with conn.transaction():
                trail = _Trail(conn)
                if step.key is not None:
                    await conn.execute(q.KEY_LOCK, (step.topic, step.key))
                held = await (await conn.execute(q.HOLD_RUN, (now, step.run_id, owner))).fetchone()
                if held is None:
                    raise LeaseLost(f"run {step.run_id} is no longer held by this engine")
                subjects = _audit.subjects_of(held[0])
                entries = []
                if (await conn.execute(q.INSERT_WAIT, _step_values(step))).rowcount:
                    entries = _audit.step_entries([step], [], subjects)
                row = await (await conn.execute(q.GET_STEP, (step.run_id, step.step_id))).fetchone()
                assert row is not None
                current = shared.step_record(row)
                if current.status is not StepStatus.PENDING:
                    await trail.append(entries, now, op, retried)
                    return current
                match = {"topic": step.topic, "run_id": step.run_id, "key": step.key}
                event = await (await conn.execute(q.MATCH_EVENT, match)).fetchone()
                if event is None:
                    await trail.append(entries, now, op, retried)
                    return current
                consume = {
                    "run_id": step.run_id, "step_id": step.step_id, "event_id": event[0],
                    "payload": event[1], "now": now,
                }  # fmt: skip
                row = await (await conn.execute(q.CONSUME_EVENT, consume)).fetchone()
                assert row is not None
                entries.append(_audit.event_consumed(event[0], step.run_id, step.step_id, subjects))
                await trail.append(entries, now, op, retried)
                return shared.step_record(row)

        return await self._run(wait)

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
        params = _journal_params(run_id, owner, steps, attempts, now)
        params.update(signal=signal, wake_at=wake_at)
        op = uuid.uuid4().hex

        async def suspend(conn: Conn, retried: bool) -> RunStatus:
            async with conn.transaction():
                trail = _Trail(conn)
                row = await (await conn.execute(q.SUSPEND_RUN, params)).fetchone()
                if row is None:
                    raise LeaseLost(f"run {run_id} is no longer held by this engine")
                status, subjects = RunStatus(row[0]), _audit.subjects_of(row[1])
                entries = _audit.step_entries(steps, attempts, subjects, audit)
                entries.append(_audit.run_parked(run_id, status, wake_at, subjects))
                await trail.append(entries, now, op, retried)
                return status

        return await self._run(suspend)

    async def release_run(self, run_id: str, owner: str, now: float) -> None:
        await self._write(q.RELEASE_RUN, (now, run_id, owner))

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
        if status not in (RunStatus.COMPLETED, RunStatus.FAULTED):
            raise ValueError(f"finish_run ends a run as completed or faulted, not {status}")
        op = uuid.uuid4().hex

        async def finish(conn: Conn, retried: bool) -> None:
            async with conn.transaction():
                trail = _Trail(conn)
                args = (conn, run_id, owner, status, output_json, error_json, steps, attempts, now)
                ended = await _end_run(*args)
                if ended is None:
                    raise LeaseLost(f"run {run_id} is no longer held by this engine")
                entries = _audit.step_entries(steps, attempts, ended, audit)
                entries.append(_audit.run_ended(run_id, status, output_json, error_json, ended))
                await trail.append(entries, now, op, retried)

        await self._run(finish)

    async def next_wake_at(self) -> float | None:
        rows = await self._rows("SELECT MIN(wake_at) FROM runs WHERE status='waiting'")
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

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
        if run_id is None and key is None:
            raise ConfigError("an event needs a run id or a correlation key to address")
        token = uuid.uuid4().hex  # makes a retried delivery find the first try's event

        async def deliver(conn: Conn, retried: bool) -> EventRecord:
            subjects: tuple[str, ...] = ()
            async with conn.transaction():
                trail = _Trail(conn)
                if run_id is not None:
                    target = await _locked_run(conn, run_id)  # serialises with its waits
                    subjects = target.subjects
                    if target.status in (RunStatus.COMPLETED, RunStatus.CANCELLED):
                        raise InvalidTransition(
                            f"run {run_id} is {target.status.value}; it will never receive this"
                            " event"
                        )
                else:
                    await conn.execute(q.KEY_LOCK, (topic, key))
                values = (topic, key, run_id, payload_json, now, token)
                row = await (await conn.execute(q.INSERT_EVENT, values)).fetchone()
                if row is None:
                    row = await (await conn.execute(q.EVENT_BY_TOKEN, (token,))).fetchone()
                    assert row is not None
                if run_id is not None:
                    found = await conn.execute(q.WAITERS_FOR_RUN, (topic, run_id, key))
                else:
                    found = await conn.execute(q.WAITERS_FOR_KEY, (topic, key))
                waiting = [r[0] for r in await found.fetchall()]
                if waiting:
                    await conn.execute(
                        q.SIGNAL_RUNS.format(ids="SELECT unnest(%(ids)s::text[])"),
                        {"now": now, "ids": waiting},
                    )
                received = _audit.event_received(
                    row[0], topic, key, run_id, payload_json, subjects, actor
                )
                await trail.append([received], now, token, retried)
                return EventRecord(row[0], topic, key, run_id, payload_json, now, None, None)

        return await self._run(deliver)

    async def list_waits(self, topic: str, *, limit: int = 1000) -> list[StepRecord]:
        rows = await self._rows(
            f"SELECT {shared.STEP_COLS} FROM steps"
            " WHERE status='pending' AND kind='event' AND topic=%s"
            " ORDER BY started_at, run_id, step_id LIMIT %s",
            (topic, limit),
        )
        return [shared.step_record(r) for r in rows]

    async def list_events(
        self, *, run_id: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        if run_id is None:
            rows = await self._rows(
                f"SELECT {shared.EVENT_COLS} FROM events ORDER BY id LIMIT %s", (limit,)
            )
        else:
            rows = await self._rows(
                f"SELECT {shared.EVENT_COLS} FROM events WHERE run_id=%s OR consumed_run=%s"
                " ORDER BY id LIMIT %s",
                (run_id, run_id, limit),
            )
        return [q.event_record(r) for r in rows]

    # -- audit trail and governance records -----------------------------------------------------
    async def append_audit(self, entries: Sequence[AuditEntry], now: float) -> None:
        if not entries:
            return
        op = uuid.uuid4().hex

        async def append(conn: Conn, retried: bool) -> None:
            async with conn.transaction():
                trail = _Trail(conn)
                await trail.append(entries, now, op, retried)

        await self._run(append)

    async def read_audit(
        self, *, after: int = 0, limit: int = 1000, run_id: str | None = None
    ) -> list[AuditRecord]:
        """Sealed entries only, by chain position; a pass first seals what was committed, so a
        reader sees its own committed writes (and everyone's that nothing older holds back)."""
        await self.seal_audit()
        cols = shared.AUDIT_COLS
        if run_id is None:
            query = f"SELECT {cols} FROM audit WHERE seq>%s ORDER BY seq LIMIT %s"
            rows = await self._rows(query, (after, limit))
        else:
            query = f"SELECT {cols} FROM audit WHERE run_id=%s AND seq>%s ORDER BY seq LIMIT %s"
            rows = await self._rows(query, (run_id, after, limit))
        return [shared.audit_record(r) for r in rows]

    async def put_record(
        self,
        kind: str,
        key: str,
        data_json: str | None,
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        op = uuid.uuid4().hex

        async def put(conn: Conn, retried: bool) -> None:
            async with conn.transaction():
                trail = _Trail(conn)
                if data_json is None:
                    await conn.execute("DELETE FROM records WHERE kind=%s AND key=%s", (kind, key))
                else:
                    await conn.execute(
                        "INSERT INTO records (kind, key, data_json, updated_at)"
                        " VALUES (%s,%s,%s,%s) ON CONFLICT (kind, key) DO UPDATE SET"
                        " data_json=EXCLUDED.data_json, updated_at=EXCLUDED.updated_at",
                        (kind, key, data_json, now),
                    )
                await trail.append(audit, now, op, retried)

        await self._run(put)

    async def add_record(
        self,
        kind: str,
        key: str,
        data_json: str,
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> bool:
        op = uuid.uuid4().hex

        async def add(conn: Conn, retried: bool) -> bool:
            async with conn.transaction():
                trail = _Trail(conn)
                added = (
                    await conn.execute(
                        "INSERT INTO records (kind, key, data_json, updated_at)"
                        " VALUES (%s,%s,%s,%s) ON CONFLICT (kind, key) DO NOTHING",
                        (kind, key, data_json, now),
                    )
                ).rowcount
                if retried and not added:  # our first try may have inserted it
                    return bool(await (await conn.execute(q.AUDIT_OP_DONE, (op,))).fetchone())
                if added:
                    await trail.append(audit, now, op, retried)
                return bool(added)

        return await self._run(add)

    async def get_record(self, kind: str, key: str) -> str | None:
        rows = await self._rows(
            "SELECT data_json FROM records WHERE kind=%s AND key=%s", (kind, key)
        )
        return str(rows[0][0]) if rows else None

    async def list_records(self, kind: str) -> list[tuple[str, str]]:
        rows = await self._rows(
            "SELECT key, data_json FROM records WHERE kind=%s ORDER BY key", (kind,)
        )
        return [(str(k), str(v)) for k, v in rows]

    async def delete_run(
        self, run_id: str, now: float, *, audit: Sequence[AuditEntry] = ()
    ) -> None:
        op = uuid.uuid4().hex

        async def delete(conn: Conn, retried: bool) -> None:
            async with conn.transaction():
                trail = _Trail(conn)
                row = await (await conn.execute(q.LOCK_RUN, (run_id,))).fetchone()
                if row is None:
                    if retried:
                        return  # our first try deleted it
                    raise RunNotFound(f"no run with id {run_id!r}")
                run = shared.run_record(row)
                if not run.status.is_terminal and run.status is not RunStatus.FAULTED:
                    raise InvalidTransition(
                        f"run {run_id} is {run.status.value}; only an ended run can be deleted"
                    )
                for sql in (
                    "DELETE FROM steps WHERE run_id=%s",
                    "DELETE FROM attempts WHERE run_id=%s",
                    "DELETE FROM events WHERE run_id=%s OR consumed_run=%s",
                    "DELETE FROM run_subjects WHERE run_id=%s",
                    "DELETE FROM runs WHERE id=%s",
                ):
                    await conn.execute(sql, (run_id,) * sql.count("%s"))
                await trail.append(audit, now, op, retried)

        await self._run(delete)


# -- helpers shared by the operations -------------------------------------------------------


#: Set by :meth:`_Trail.append` in the operation's task: did it append (and so should the
#: chainer run once it committed)?
_APPENDED: contextvars.ContextVar[int] = contextvars.ContextVar("appended", default=0)


class _Trail:
    """Appends to the trail in one transaction: unsealed entries, chained after commit."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def append(
        self, entries: Sequence[AuditEntry], now: float, op: str, retried: bool
    ) -> None:
        """Insert ``entries`` unsealed in the caller's transaction (no lock on the head: the
        chainer seals them after commit, see ``_postgres_chain``). ``op`` marks them, so that a
        retry after an unknown outcome does not append them twice."""
        if not entries:
            return
        conn = self.conn
        if retried and await (await conn.execute(q.AUDIT_OP_DONE, (op,))).fetchone():
            return
        columns: list[list[str | None]] = [[], [], [], [], [], []]
        for e in entries:
            values = (e.kind, e.run_id, e.step_id, e.actor, _audit.subjects_json(e.subjects),
                      e.data_json)  # fmt: skip
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        row = await (await conn.execute(q.INSERT_AUDIT, (now, op, *columns))).fetchone()
        assert row is not None
        _APPENDED.set(int(row[0]))


async def _subjects_of(conn: Conn, run_id: str | None) -> tuple[str, ...]:
    if run_id is None:
        return ()
    row = await (await conn.execute("SELECT subjects FROM runs WHERE id=%s", (run_id,))).fetchone()
    return _audit.subjects_of(row[0]) if row else ()


def _journal_params(
    run_id: str,
    owner: str,
    steps: Sequence[StepRecord],
    attempts: Sequence[AttemptRecord],
    now: float,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "owner": owner,
        "now": now,
        "steps": q.steps_json(steps),
        "attempts": q.attempts_json(attempts),
    }


def _step_values(s: StepRecord) -> tuple[Any, ...]:
    return (
        s.run_id, s.step_id, s.kind.value, s.name, s.status.value, s.input_json, s.output_json,
        s.error_json, s.attempts, s.started_at, s.finished_at, s.wake_at, s.topic, s.key,
        s.child_id,
    )  # fmt: skip


async def _locked_run(conn: Conn, run_id: str) -> RunRecord:
    row = await (await conn.execute(q.LOCK_RUN, (run_id,))).fetchone()
    if row is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    return shared.run_record(row)


async def _end_run(
    conn: Conn,
    run_id: str,
    owner: str | None,
    status: RunStatus,
    output_json: str | None,
    error_json: str | None,
    steps: Sequence[StepRecord],
    attempts: Sequence[AttemptRecord],
    now: float,
) -> tuple[str, ...] | None:
    """End the run (only if ``owner`` holds it, unless None); its data subjects, or None if it
    did not."""
    p_status, p_output, p_error = q.settlement(run_id, status, output_json, error_json)
    params = _journal_params(run_id, owner or "", steps, attempts, now)
    params.update(
        status=status.value, output_json=output_json, error_json=error_json,
        p_status=p_status.value, p_output=p_output, p_error=p_error,
    )  # fmt: skip
    query = q.end_run_sql(owned=owner is not None)
    row = await (await conn.execute(query, params)).fetchone()
    return _audit.subjects_of(row[1]) if row and row[0] else None


async def _reopen_failed_step(conn: Conn, run: RunRecord, now: float) -> None:
    """Resuming a faulted run tries the step that failed it again, with a fresh retry budget;
    when that step was a child run, the child is resumed too and the parent waits for it."""
    step_id = shared.failed_step(run)
    if step_id is None:
        return
    row = await (
        await conn.execute(
            "SELECT kind, child_id FROM steps WHERE run_id=%s AND step_id=%s AND status='failed'",
            (run.id, step_id),
        )
    ).fetchone()
    if row is None:
        return
    kind, child_id = row
    if kind == StepKind.CHILD.value and child_id is not None:
        child = await _locked_run(conn, child_id)
        if child.status is RunStatus.FAULTED:
            await _reopen_failed_step(conn, child, now)
            await conn.execute(q.RESUME_BY_OPERATOR, (now, child_id))
        elif child.status is not RunStatus.COMPLETED:
            raise InvalidTransition(
                f"run {run.id} failed because its child run {child_id} is {child.status.value};"
                " a cancelled child cannot be resumed"
            )
    await conn.execute(q.REOPEN_STEP, (run.id, step_id))
