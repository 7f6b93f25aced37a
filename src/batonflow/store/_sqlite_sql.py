"""SQL run inside the writer's transaction: the statements shared by the store's operations."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from batonflow.errors import InvalidTransition, LeaseLost, RunNotFound
from batonflow.store._audit import GENESIS, chain, subjects_json, subjects_of
from batonflow.store._model import (
    AttemptRecord,
    AuditEntry,
    NewRun,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
)
from batonflow.store._rows import (
    AUDIT_COLS,
    RUN_COLS,
    STEP_COLS,
    UNFINISHED,
    failed_step,
    run_record,
)


def step_params(s: StepRecord) -> tuple[Any, ...]:
    return (
        s.run_id, s.step_id, s.kind.value, s.name, s.status.value, s.input_json, s.output_json,
        s.error_json, s.attempts, s.started_at, s.finished_at, s.wake_at, s.topic, s.key,
        s.child_id,
    )  # fmt: skip


def get_run(conn: sqlite3.Connection, run_id: str) -> RunRecord:
    row = conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id=?", (run_id,)).fetchone()
    if row is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    return run_record(row)


def existing_run(conn: sqlite3.Connection, run: NewRun) -> RunRecord | None:
    row = conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id=?", (run.id,)).fetchone()
    if row is None and run.idempotency_key is not None:
        row = conn.execute(
            f"SELECT {RUN_COLS} FROM runs WHERE idempotency_key=?", (run.idempotency_key,)
        ).fetchone()
    return run_record(row) if row is not None else None


def check_owner(conn: sqlite3.Connection, run_id: str, owner: str, now: float) -> tuple[str, ...]:
    """Raise LeaseLost unless ``owner`` holds the running run (a read: it writes no page);
    return the run's data subjects (for its audit entries)."""
    held = conn.execute(
        "SELECT subjects FROM runs WHERE id=? AND owner=? AND status='running'", (run_id, owner)
    ).fetchone()
    if held is None:
        raise LeaseLost(f"run {run_id} is no longer held by this engine")
    return subjects_of(held[0])


def subjects_for(conn: sqlite3.Connection, run_id: str | None) -> tuple[str, ...]:
    if run_id is None:
        return ()
    row = conn.execute("SELECT subjects FROM runs WHERE id=?", (run_id,)).fetchone()
    return subjects_of(row[0]) if row else ()


def append_audit(conn: sqlite3.Connection, entries: Sequence[AuditEntry], now: float) -> None:
    """Chain ``entries`` onto the trail inside the current transaction (which serialises every
    writer of the file, other processes included, so the head read here stays the head)."""
    if not entries:
        return
    head = _open_heads.get(id(conn))
    if head is None:
        row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        head = (row[0], row[1]) if row else (0, GENESIS)
    records = chain(entries, now, *head)
    conn.executemany(
        f"INSERT INTO audit ({AUDIT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            (r.seq, r.at, r.kind, r.run_id, r.step_id, r.actor, subjects_json(r.subjects),
             r.data_json, r.prev_hash, r.hash)
            for r in records
        ],
    )  # fmt: skip
    if id(conn) in _open_heads:
        _open_heads[id(conn)] = (records[-1].seq, records[-1].hash)


#: The head each writer connection's open transaction appended last (None: not read yet). Only
#: connections the writer registered for the length of one transaction are here: a batch of
#: group-committed writes then reads the head once, not once per write.
_open_heads: dict[int, tuple[int, str] | None] = {}


def remember_head(conn: sqlite3.Connection) -> None:
    """A transaction began (or a savepoint was undone): the head is read afresh next time."""
    _open_heads[id(conn)] = None


def forget_head(conn: sqlite3.Connection) -> None:
    """The transaction ended: nothing is remembered past it (other processes may append)."""
    _open_heads.pop(id(conn), None)


def insert_steps(conn: sqlite3.Connection, steps: Sequence[StepRecord], *, replace: bool) -> bool:
    """Write journal entries; True if any row was written."""
    if not steps:
        return False
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    return (
        conn.executemany(
            f"INSERT INTO steps ({STEP_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)".replace(
                "INSERT", verb, 1
            ),
            [step_params(s) for s in steps],
        ).rowcount
        > 0
    )


def insert_attempts(conn: sqlite3.Connection, attempts: Sequence[AttemptRecord]) -> None:
    if attempts:
        conn.executemany(
            "INSERT INTO attempts (run_id, step_id, attempt, started_at, finished_at, error_json)"
            " VALUES (?,?,?,?,?,?)",
            [
                (a.run_id, a.step_id, a.attempt, a.started_at, a.finished_at, a.error_json)
                for a in attempts
            ],
        )


def signal(conn: sqlite3.Connection, run_id: str, now: float) -> None:
    """Tell a run something happened to it: wake it if parked, else bump its signal so that a
    concurrent activation does not park it and miss the news."""
    conn.execute(
        "UPDATE runs SET signal=signal+1, updated_at=?,"
        " wake_at=CASE WHEN status='waiting' THEN NULL ELSE wake_at END,"
        " status=CASE WHEN status='waiting' THEN 'pending' ELSE status END"
        " WHERE id=?",
        (now, run_id),
    )


_END = (
    "UPDATE runs SET status=?, output_json=?, error_json=?, finished_at=?, updated_at=?,"
    " owner=NULL, lease_until=NULL, wake_at=NULL, signal=signal+1 WHERE id=?"
)


def end_run(
    conn: sqlite3.Connection,
    run_id: str,
    status: RunStatus,
    output_json: str | None,
    error_json: str | None,
    now: float,
) -> None:
    conn.execute(_END, (status.value, output_json, error_json, now, now, run_id))
    _after_end(conn, run_id, status, output_json, error_json, now, None)


def end_owned_run(
    conn: sqlite3.Connection,
    run_id: str,
    owner: str,
    status: RunStatus,
    output_json: str | None,
    error_json: str | None,
    now: float,
) -> tuple[str, ...]:
    """End the run ``owner`` holds, the lease check folded into the write (LeaseLost when it
    holds it no longer: the transaction is then undone); return the run's data subjects."""
    rows = conn.execute(
        _END + " AND owner=? AND status='running' RETURNING subjects, parent_id, parent_step",
        (status.value, output_json, error_json, now, now, run_id, owner),
    ).fetchall()
    if not rows:
        raise LeaseLost(f"run {run_id} is no longer held by this engine")
    subjects, parent_id, parent_step = rows[0]
    _after_end(conn, run_id, status, output_json, error_json, now, (parent_id, parent_step))
    return subjects_of(subjects)


def _after_end(
    conn: sqlite3.Connection,
    run_id: str,
    status: RunStatus,
    output_json: str | None,
    error_json: str | None,
    now: float,
    parent: tuple[str | None, str | None] | None,
) -> None:
    # A finished run's unfinished descendants have nobody left to report to. Most runs have no
    # children: the indexed EXISTS spares them the recursive statement.
    if conn.execute("SELECT EXISTS(SELECT 1 FROM runs WHERE parent_id=?)", (run_id,)).fetchone()[0]:
        cancel_descendants(conn, run_id, now)
    settle_parent(conn, run_id, status, output_json, error_json, now, parent)


def cancel_descendants(conn: sqlite3.Connection, run_id: str, now: float) -> None:
    conn.execute(
        "WITH RECURSIVE d(id) AS (SELECT id FROM runs WHERE parent_id=?"
        " UNION SELECT r.id FROM runs r JOIN d ON r.parent_id=d.id)"
        f" UPDATE runs SET status='cancelled', finished_at=?, updated_at=?, owner=NULL,"
        f" lease_until=NULL, wake_at=NULL, signal=signal+1"
        f" WHERE id IN (SELECT id FROM d) AND status IN {UNFINISHED}",
        (run_id, now, now),
    )


def settle_parent(
    conn: sqlite3.Connection,
    run_id: str,
    status: RunStatus,
    output_json: str | None,
    error_json: str | None,
    now: float,
    parent: tuple[str | None, str | None] | None = None,
) -> None:
    """``parent``: the run's (parent_id, parent_step) when the caller read them already."""
    row = (
        parent
        or conn.execute("SELECT parent_id, parent_step FROM runs WHERE id=?", (run_id,)).fetchone()
    )
    if row is None or row[0] is None:
        return
    parent_id: str = row[0]
    parent_step = row[1]
    if status is RunStatus.COMPLETED:
        step_status, out, err = StepStatus.COMPLETED, output_json, None
    else:
        cause = json.loads(error_json) if error_json else None
        message = f"child run {run_id} {status.value}"
        if cause:
            message += f": {cause.get('message', '')}"
        failure: dict[str, Any] = {
            "type": "batonflow.errors:ChildWorkflowFailed",
            "message": message,
            "child_id": run_id,
        }
        if cause:
            failure["cause"] = cause
        step_status, out, err = StepStatus.FAILED, None, json.dumps(failure)
    cur = conn.execute(
        "UPDATE steps SET status=?, output_json=?, error_json=?, finished_at=?"
        " WHERE run_id=? AND step_id=? AND status='pending'",
        (step_status.value, out, err, now, parent_id, parent_step),
    )
    if cur.rowcount:
        signal(conn, parent_id, now)


def reopen_failed_step(conn: sqlite3.Connection, run: RunRecord, now: float) -> None:
    """Resuming a faulted run tries the step that failed it again, with a fresh retry budget.

    When that step was a child run, the child is resumed too and the parent waits for it again.
    """
    step_id = failed_step(run)
    if step_id is None:
        return
    row = conn.execute(
        "SELECT kind, child_id FROM steps WHERE run_id=? AND step_id=? AND status='failed'",
        (run.id, step_id),
    ).fetchone()
    if row is None:
        return
    kind, child_id = row
    if kind == StepKind.CHILD.value and child_id is not None:
        child = get_run(conn, child_id)
        if child.status is RunStatus.FAULTED:
            reopen_failed_step(conn, child, now)
            conn.execute(
                "UPDATE runs SET status='pending', wake_at=NULL, error_json=NULL,"
                " finished_at=NULL, signal=signal+1, updated_at=? WHERE id=?",
                (now, child_id),
            )
        elif child.status is not RunStatus.COMPLETED:
            raise InvalidTransition(
                f"run {run.id} failed because its child run {child_id} is {child.status.value};"
                " a cancelled child cannot be resumed"
            )
    conn.execute(
        "UPDATE steps SET status='pending', attempts=0, error_json=NULL, wake_at=NULL,"
        " finished_at=NULL WHERE run_id=? AND step_id=?",
        (run.id, step_id),
    )
