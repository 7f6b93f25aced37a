"""The embedded default store: one SQLite file in WAL mode, zero configuration.

Writes go through one writer thread that batches concurrent writes into shared commits
(``_sqlite_writer``). Reads use a second connection on the caller's thread: WAL readers never
wait for the writer, and the reads on the hot path are few (one journal load per activation).

Only one process executes runs on a file at a time: :meth:`acquire_worker` takes an exclusive
``flock`` next to the database, so any run still marked RUNNING when it is taken belongs to a
dead process and is handed back at once, without waiting for a lease to expire. Other processes
(the CLI listing runs, sending events, cancelling) read and write freely alongside.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batonflow.errors import (
    ConfigError,
    EngineLocked,
    InvalidTransition,
    StoreError,
)
from batonflow.store import _audit, _sqlite_claim
from batonflow.store._audit import subjects_json
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
    StepRecord,
    StepStatus,
)
from batonflow.store._rows import (
    AUDIT_COLS,
    EVENT_COLS,
    RUN_COLS,
    STEP_COLS,
    audit_record,
    count_runs_sql,
    list_runs_sql,
    natural,
    run_record,
    step_record,
)
from batonflow.store._sqlite_schema import MIGRATIONS
from batonflow.store._sqlite_sql import (
    append_audit,
    check_owner,
    end_owned_run,
    end_run,
    existing_run,
    get_run,
    insert_attempts,
    insert_steps,
    reopen_failed_step,
    signal,
    subjects_for,
)
from batonflow.store._sqlite_writer import CommitObserver, Writer, connect


class SQLiteStore:
    """Store on a SQLite file. ``SQLiteStore("runs.db")`` or ``open_store("sqlite:///runs.db")``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._writer: Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._commit_observers: list[CommitObserver] = []

    # -- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        if self._writer is not None:
            return
        if str(self.path) == ":memory:":
            raise ConfigError(
                "SQLiteStore needs a file path (an in-memory database is not durable)"
            )
        if self.path.is_dir():
            raise ConfigError(f"store path {self.path} is a directory, expected a database file")
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _create_private(self.path)
        try:
            self._check_identity()
            self._migrate()
            self._reader = connect(str(self.path))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open {self.path} as a batonflow database: {exc}") from exc
        self._writer = Writer(str(self.path), self._commit_observers)
        self._writer.start()

    def _migrate(self) -> None:
        conn = connect(str(self.path))
        try:
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this batonflow "
                    f"understands ({len(MIGRATIONS)}); upgrade batonflow"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _check_identity(self) -> None:
        """Refuse a SQLite file that some other program made, before anything writes to it
        (switching it to WAL, adding our tables, setting its ``user_version``): looked at
        through a read-only connection."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
        if (version == 0 and tables) or (version > 0 and "runs" not in tables):
            shown = ", ".join(sorted(tables)[:5]) or "none"
            raise StoreError(
                f"{self.path} is a SQLite database but not a batonflow store (schema version "
                f"{version}; tables: {shown}); it was left unchanged. Point --db (or "
                "BATONFLOW_DB) at a batonflow database, or at a new file"
            )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._unlock()

    def observe_commits(self, observer: CommitObserver) -> None:
        """Call ``observer(seconds)`` after each commit with how long it took to be durable
        (one commit may carry many writes: group commit). It runs on the writer thread: keep it
        quick and thread-safe (a Prometheus histogram is)."""
        self._commit_observers.append(observer)

    @property
    def commits(self) -> int:
        """Write transactions committed by this store object (shows group commit at work)."""
        return self._writer.batches if self._writer else 0

    async def _write(self, op: Any) -> Any:
        if self._writer is None:
            raise StoreError("the store is not open")
        return await self._writer.submit(op)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._reader is None:
            raise StoreError("the store is not open")
        try:
            with self._read_lock:
                return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite error: {exc}") from exc

    async def schema_current(self) -> bool:
        """Is the database at exactly this batonflow's schema version (readiness checks)?"""
        return bool(self._read("PRAGMA user_version")[0][0] == len(MIGRATIONS))

    # -- workers ------------------------------------------------------------------------------
    async def acquire_worker(self, owner: str, now: float) -> None:
        lock_path = f"{self.path}.engine-lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EngineLocked(
                f"another batonflow engine (pid {holder}) is executing runs on {self.path}; "
                "stop it first, or use the PostgreSQL store to run several workers"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

        def orphans(conn: sqlite3.Connection) -> None:
            # We hold the only worker lock, so every RUNNING run belongs to a dead process.
            conn.execute(
                "UPDATE runs SET status='pending', owner=NULL, lease_until=NULL, updated_at=?"
                " WHERE status='running'",
                (now,),
            )

        await self._write(orphans)

    async def release_worker(self, owner: str, now: float) -> None:
        def release(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE runs SET status='pending', owner=NULL, lease_until=NULL, updated_at=?"
                " WHERE status='running' AND owner=?",
                (now, owner),
            )

        try:
            await self._write(release)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- runs ---------------------------------------------------------------------------------
    async def create_run(
        self,
        run: NewRun,
        parent_step: StepRecord | None = None,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> tuple[RunRecord, bool]:
        def create(conn: sqlite3.Connection) -> tuple[RunRecord, bool]:
            if run.idempotency_key is not None or run.parent_id is not None:
                existing = existing_run(conn, run)
                if existing is not None:
                    return existing, False
            row = conn.execute(
                "INSERT INTO runs (id, workflow, workflow_ref, status, input_json,"
                " idempotency_key, parent_id, parent_step, created_at, updated_at, started_at,"
                " deadline, owner, lease_until, activations, queue, subjects, started_by)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                f" ON CONFLICT DO NOTHING RETURNING {RUN_COLS}",
                (
                    run.id, run.workflow, run.workflow_ref, run.status.value, run.input_json,
                    run.idempotency_key, run.parent_id, run.parent_step, run.created_at,
                    run.created_at, run.created_at if run.status is RunStatus.RUNNING else None,
                    run.deadline, run.owner, run.lease_until,
                    1 if run.status is RunStatus.RUNNING else 0, run.queue,
                    subjects_json(run.subjects), run.started_by,
                ),
            ).fetchone()  # fmt: skip
            if row is None:  # the id is taken (a caller-chosen run id used before)
                return get_run(conn, run.id), False
            if parent_step is not None:
                insert_steps(conn, [parent_step], replace=False)
            if run.subjects:
                conn.executemany(
                    "INSERT OR IGNORE INTO run_subjects (subject, run_id) VALUES (?,?)",
                    [(subject, run.id) for subject in run.subjects],
                )
            entries = [_audit.run_created(run, run.subjects)]
            if parent_step is not None:
                entries += _audit.step_entries([parent_step], [], subjects_for(conn, run.parent_id))
            append_audit(conn, [*entries, *audit], run.created_at)
            return run_record(row), True

        result: tuple[RunRecord, bool] = await self._write(create)
        return result

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read(f"SELECT {RUN_COLS} FROM runs WHERE id=?", (run_id,))
        return run_record(rows[0]) if rows else None

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
        sql, params = list_runs_sql(
            "?", status=status, workflow=workflow, parent_id=parent_id, subject=subject,
            limit=limit, since=since, until=until, text=text, before=before,
        )  # fmt: skip
        rows = self._read(sql, params)
        return [run_record(r) for r in rows]

    async def count_runs(
        self,
        *,
        workflow: str | None = None,
        subject: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
    ) -> dict[RunStatus, int]:
        sql, params = count_runs_sql(
            "?", workflow=workflow, subject=subject, since=since, until=until, text=text
        )
        return {RunStatus(status): int(n) for status, n in self._read(sql, params)}

    async def transition(
        self,
        run_id: str,
        target: RunStatus,
        now: float,
        error_json: str | None = None,
        *,
        actor: str | None = None,
    ) -> RunRecord:
        def change(conn: sqlite3.Connection) -> RunRecord:
            run = get_run(conn, run_id)
            sources = OPERATOR_ACTIONS.get(target)
            if sources is None:
                raise InvalidTransition(f"{target.value} is not an operator action")
            if run.status not in sources:
                raise InvalidTransition(
                    f"run {run_id} is {run.status.value}; it can become {target.value} only from "
                    + " or ".join(s.value for s in sources)
                )
            if target is RunStatus.CANCELLED:
                end_run(conn, run_id, target, None, error_json, now)
            elif target is RunStatus.SUSPENDED:
                conn.execute(
                    "UPDATE runs SET status='suspended', owner=NULL, lease_until=NULL,"
                    " signal=signal+1, updated_at=? WHERE id=?",
                    (now, run_id),
                )
            else:  # PENDING: resume
                if run.status is RunStatus.FAULTED:
                    reopen_failed_step(conn, run, now)
                conn.execute(
                    "UPDATE runs SET status='pending', wake_at=NULL, error_json=NULL,"
                    " finished_at=NULL, signal=signal+1, updated_at=? WHERE id=?",
                    (now, run_id),
                )
            append_audit(
                conn, [_audit.operator_action(run_id, run.status, target, actor, run.subjects)], now
            )
            return get_run(conn, run_id)

        result: RunRecord = await self._write(change)
        return result

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
        if queues or serve is not None:

            def claim_queued(conn: sqlite3.Connection) -> list[RunRecord]:
                params = {"owner": owner, "now": now, "lease_until": lease_until}
                return _sqlite_claim.claim(conn, params, limit, queues or {}, serve)

            queued: list[RunRecord] = await self._write(claim_queued)
            return queued

        def claim(conn: sqlite3.Connection) -> list[RunRecord]:
            params = {"owner": owner, "now": now, "lease_until": lease_until}
            return _sqlite_claim.take_fair(conn, params, "TRUE", limit)

        if not self._read(
            "SELECT 1 FROM runs WHERE status='pending' OR (status='waiting' AND wake_at<=?)"
            " OR (status='running' AND lease_until<? AND owner IS NOT ?) LIMIT 1",
            (now, now, owner),
        ):
            return []  # nothing to take: spare the writer a transaction
        result: list[RunRecord] = await self._write(claim)
        return result

    async def renew_leases(
        self, owner: str, run_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        ids = list(run_ids)

        def renew(conn: sqlite3.Connection) -> set[str]:
            held: set[str] = set()
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                held.update(
                    r[0]
                    for r in conn.execute(
                        f"UPDATE runs SET lease_until=? WHERE owner=? AND status='running'"
                        f" AND id IN ({marks}) RETURNING id",
                        (lease_until, owner, *chunk),
                    )
                )
            return set(ids) - held

        if not ids:
            return set()
        result: set[str] = await self._write(renew)
        return result

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        rows = self._read(f"SELECT {STEP_COLS} FROM steps WHERE run_id=?", (run_id,))
        return sorted((step_record(r) for r in rows), key=lambda s: natural(s.step_id))

    async def load_attempts(self, run_id: str) -> list[AttemptRecord]:
        rows = self._read(
            "SELECT run_id, step_id, attempt, started_at, finished_at, error_json FROM attempts"
            " WHERE run_id=? ORDER BY id",
            (run_id,),
        )
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
        def save(conn: sqlite3.Connection) -> None:
            subjects = check_owner(conn, run_id, owner, now)
            insert_steps(conn, steps, replace=True)
            insert_attempts(conn, attempts)
            append_audit(conn, _audit.step_entries(steps, attempts, subjects, audit), now)

        await self._write(save)

    async def begin_wait(self, step: StepRecord, owner: str, now: float) -> StepRecord:
        def wait(conn: sqlite3.Connection) -> StepRecord:
            subjects = check_owner(conn, step.run_id, owner, now)
            if insert_steps(conn, [step], replace=False):
                append_audit(conn, _audit.step_entries([step], [], subjects), now)
            current = step_record(
                conn.execute(
                    f"SELECT {STEP_COLS} FROM steps WHERE run_id=? AND step_id=?",
                    (step.run_id, step.step_id),
                ).fetchone()
            )
            if current.status is not StepStatus.PENDING:
                return current
            event = conn.execute(
                "SELECT id, payload_json FROM events WHERE consumed_run IS NULL AND topic=?"
                " AND ((run_id=? AND (? IS NULL OR key=?)) OR (run_id IS NULL AND key=?))"
                " ORDER BY id LIMIT 1",
                (step.topic, step.run_id, step.key, step.key, step.key),
            ).fetchone()
            if event is None:
                return current
            conn.execute(
                "UPDATE events SET consumed_run=?, consumed_step=? WHERE id=?",
                (step.run_id, step.step_id, event[0]),
            )
            conn.execute(
                "UPDATE steps SET status='completed', output_json=?, finished_at=?"
                " WHERE run_id=? AND step_id=?",
                (event[1], now, step.run_id, step.step_id),
            )
            consumed = _audit.event_consumed(event[0], step.run_id, step.step_id, subjects)
            append_audit(conn, [consumed], now)
            return step_record(
                conn.execute(
                    f"SELECT {STEP_COLS} FROM steps WHERE run_id=? AND step_id=?",
                    (step.run_id, step.step_id),
                ).fetchone()
            )

        result: StepRecord = await self._write(wait)
        return result

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
        def suspend(conn: sqlite3.Connection) -> RunStatus:
            subjects = check_owner(conn, run_id, owner, now)
            insert_steps(conn, steps, replace=True)
            insert_attempts(conn, attempts)
            (current,) = conn.execute("SELECT signal FROM runs WHERE id=?", (run_id,)).fetchone()
            status = RunStatus.PENDING if current != signal else RunStatus.WAITING
            conn.execute(
                "UPDATE runs SET status=?, wake_at=?, owner=NULL, lease_until=NULL, updated_at=?"
                " WHERE id=?",
                (status.value, wake_at, now, run_id),
            )
            entries = _audit.step_entries(steps, attempts, subjects, audit)
            entries.append(_audit.run_parked(run_id, status, wake_at, subjects))
            append_audit(conn, entries, now)
            return status

        result: RunStatus = await self._write(suspend)
        return result

    async def release_run(self, run_id: str, owner: str, now: float) -> None:
        def release(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE runs SET status='pending', owner=NULL, lease_until=NULL, updated_at=?"
                " WHERE id=? AND owner=? AND status='running'",
                (now, run_id, owner),
            )

        await self._write(release)

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

        def finish(conn: sqlite3.Connection) -> None:
            subjects = end_owned_run(conn, run_id, owner, status, output_json, error_json, now)
            insert_steps(conn, steps, replace=True)
            insert_attempts(conn, attempts)
            entries = _audit.step_entries(steps, attempts, subjects, audit)
            entries.append(_audit.run_ended(run_id, status, output_json, error_json, subjects))
            append_audit(conn, entries, now)

        await self._write(finish)

    async def next_wake_at(self) -> float | None:
        rows = self._read("SELECT MIN(wake_at) FROM runs WHERE status='waiting'")
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

        def deliver(conn: sqlite3.Connection) -> EventRecord:
            if run_id is not None:
                target = get_run(conn, run_id)  # raises RunNotFound
                if target.status in (RunStatus.COMPLETED, RunStatus.CANCELLED):
                    raise InvalidTransition(
                        f"run {run_id} is {target.status.value}; it will never receive this event"
                    )
            cur = conn.execute(
                "INSERT INTO events (topic, key, run_id, payload_json, created_at)"
                " VALUES (?,?,?,?,?)",
                (topic, key, run_id, payload_json, now),
            )
            event_id = cur.lastrowid
            if run_id is not None:
                waiting = conn.execute(
                    "SELECT DISTINCT run_id FROM steps WHERE status='pending' AND kind='event'"
                    " AND topic=? AND run_id=? AND (key IS NULL OR key IS ?)",
                    (topic, run_id, key),
                ).fetchall()
            else:
                waiting = conn.execute(
                    "SELECT DISTINCT run_id FROM steps WHERE status='pending' AND kind='event'"
                    " AND topic=? AND key=?",
                    (topic, key),
                ).fetchall()
            for (rid,) in waiting:
                signal(conn, rid, now)
            received = _audit.event_received(
                event_id or 0, topic, key, run_id, payload_json, subjects_for(conn, run_id), actor
            )
            append_audit(conn, [received], now)
            return EventRecord(event_id or 0, topic, key, run_id, payload_json, now, None, None)

        result: EventRecord = await self._write(deliver)
        return result

    async def list_waits(self, topic: str, *, limit: int = 1000) -> list[StepRecord]:
        rows = self._read(
            f"SELECT {STEP_COLS} FROM steps WHERE status='pending' AND kind='event' AND topic=?"
            f" ORDER BY started_at LIMIT ?",
            (topic, limit),
        )
        return [step_record(r) for r in rows]

    async def list_events(
        self, *, run_id: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        if run_id is None:
            rows = self._read(f"SELECT {EVENT_COLS} FROM events ORDER BY id LIMIT ?", (limit,))
        else:
            rows = self._read(
                f"SELECT {EVENT_COLS} FROM events WHERE run_id=? OR consumed_run=?"
                f" ORDER BY id LIMIT ?",
                (run_id, run_id, limit),
            )
        return [EventRecord(*r) for r in rows]

    # -- audit trail and governance records -----------------------------------------------------
    async def append_audit(self, entries: Sequence[AuditEntry], now: float) -> None:
        if entries:
            await self._write(lambda conn: append_audit(conn, entries, now))

    async def read_audit(
        self, *, after: int = 0, limit: int = 1000, run_id: str | None = None
    ) -> list[AuditRecord]:
        if run_id is None:
            rows = self._read(
                f"SELECT {AUDIT_COLS} FROM audit WHERE seq>? ORDER BY seq LIMIT ?", (after, limit)
            )
        else:
            rows = self._read(
                f"SELECT {AUDIT_COLS} FROM audit WHERE run_id=? AND seq>? ORDER BY seq LIMIT ?",
                (run_id, after, limit),
            )
        return [audit_record(r) for r in rows]

    async def put_record(
        self,
        kind: str,
        key: str,
        data_json: str | None,
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        def put(conn: sqlite3.Connection) -> None:
            if data_json is None:
                conn.execute("DELETE FROM records WHERE kind=? AND key=?", (kind, key))
            else:
                conn.execute(
                    "INSERT INTO records (kind, key, data_json, updated_at) VALUES (?,?,?,?)"
                    " ON CONFLICT (kind, key) DO UPDATE SET data_json=excluded.data_json,"
                    " updated_at=excluded.updated_at",
                    (kind, key, data_json, now),
                )
            append_audit(conn, audit, now)

        await self._write(put)

    async def add_record(
        self,
        kind: str,
        key: str,
        data_json: str,
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> bool:
        def add(conn: sqlite3.Connection) -> bool:
            added = conn.execute(
                "INSERT INTO records (kind, key, data_json, updated_at) VALUES (?,?,?,?)"
                " ON CONFLICT (kind, key) DO NOTHING",
                (kind, key, data_json, now),
            ).rowcount
            if added:
                append_audit(conn, audit, now)
            return bool(added)

        result: bool = await self._write(add)
        return result

    async def get_record(self, kind: str, key: str) -> str | None:
        rows = self._read("SELECT data_json FROM records WHERE kind=? AND key=?", (kind, key))
        return str(rows[0][0]) if rows else None

    async def list_records(self, kind: str) -> list[tuple[str, str]]:
        rows = self._read("SELECT key, data_json FROM records WHERE kind=? ORDER BY key", (kind,))
        return [(str(k), str(v)) for k, v in rows]

    async def delete_run(
        self, run_id: str, now: float, *, audit: Sequence[AuditEntry] = ()
    ) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            run = get_run(conn, run_id)  # raises RunNotFound
            if not run.status.is_terminal and run.status is not RunStatus.FAULTED:
                raise InvalidTransition(
                    f"run {run_id} is {run.status.value}; only an ended run can be deleted"
                )
            for sql in (
                "DELETE FROM steps WHERE run_id=?",
                "DELETE FROM attempts WHERE run_id=?",
                "DELETE FROM events WHERE run_id=? OR consumed_run=?",
                "DELETE FROM run_subjects WHERE run_id=?",
                "DELETE FROM runs WHERE id=?",
            ):
                conn.execute(sql, (run_id,) * sql.count("?"))
            append_audit(conn, audit, now)

        await self._write(delete)

    async def compact(self) -> None:
        """Checkpoint the WAL into the database file and truncate it: after an erasure, no copy
        of a destroyed key or a deleted row lingers in the -wal file (deleted content in the
        main file is already zeroed: ``secure_delete``)."""
        await self._write(lambda conn: None)
        if self._reader is None:
            raise StoreError("the store is not open")
        with self._read_lock:
            self._reader.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _create_private(path: Path) -> None:
    """A new database file is created readable by its owner only (0600, whatever the umask):
    it holds the runs' data. SQLite gives its WAL and shared-memory files the database
    file's permissions. An existing file keeps the mode its owner chose."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
