"""SQL of the PostgreSQL store, and the conversions between rows and records.

The writes on the hot path are each one statement, so one round trip and one commit: a
statement's data-modifying ``WITH`` clauses share its transaction, and the lease check is the
first of them (the others only act ``WHERE EXISTS`` the run is still held). Journal entries and
attempts travel as one JSON array each, expanded with ``json_populate_recordset``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from batonflow.store._model import (
    AttemptRecord,
    EventRecord,
    RunStatus,
    StepRecord,
    StepStatus,
)
from batonflow.store._rows import ATTEMPT_COLS, RUN_COLS, STEP_COLS, UNFINISHED

_STEP_UPDATE = ", ".join(f"{c}=EXCLUDED.{c}" for c in STEP_COLS.replace(" ", "").split(",")[2:])

# -- conversions -------------------------------------------------------------------------------


def event_record(row: Sequence[Any]) -> EventRecord:
    return EventRecord(*row)


def steps_json(steps: Sequence[StepRecord]) -> str:
    return json.dumps(
        [
            {
                "run_id": s.run_id, "step_id": s.step_id, "kind": s.kind.value, "name": s.name,
                "status": s.status.value, "input_json": s.input_json,
                "output_json": s.output_json, "error_json": s.error_json,
                "attempts": s.attempts, "started_at": s.started_at,
                "finished_at": s.finished_at, "wake_at": s.wake_at, "topic": s.topic,
                "key": s.key, "child_id": s.child_id,
            }
            for s in steps
        ]
    )  # fmt: skip


def attempts_json(attempts: Sequence[AttemptRecord]) -> str:
    return json.dumps(
        [
            {
                "run_id": a.run_id, "step_id": a.step_id, "attempt": a.attempt,
                "started_at": a.started_at, "finished_at": a.finished_at,
                "error_json": a.error_json,
            }
            for a in attempts
        ]
    )  # fmt: skip


def settlement(
    run_id: str, status: RunStatus, output_json: str | None, error_json: str | None
) -> tuple[StepStatus, str | None, str | None]:
    """What a parent's child step becomes when the child ends with ``status``."""
    if status is RunStatus.COMPLETED:
        return StepStatus.COMPLETED, output_json, None
    try:
        cause = json.loads(error_json) if error_json else None
    except ValueError:
        cause = None
    message = f"child run {run_id} {status.value}"
    if isinstance(cause, dict):
        message += f": {cause.get('message', '')}"
    failure: dict[str, Any] = {
        "type": "batonflow.errors:ChildWorkflowFailed",
        "message": message,
        "child_id": run_id,
    }
    if cause:
        failure["cause"] = cause
    return StepStatus.FAILED, None, json.dumps(failure)


# -- statements ------------------------------------------------------------------------------

_INSERT_STEPS = (
    f"INSERT INTO steps ({STEP_COLS}) SELECT {STEP_COLS}"
    " FROM json_populate_recordset(NULL::steps, %(steps)s::json)"
    " WHERE EXISTS (SELECT 1 FROM own)"
    f" ON CONFLICT (run_id, step_id) DO UPDATE SET {_STEP_UPDATE}"
)
_INSERT_ATTEMPTS = (
    f"INSERT INTO attempts ({ATTEMPT_COLS}) SELECT {ATTEMPT_COLS}"
    " FROM json_populate_recordset(NULL::attempts, %(attempts)s::json)"
    " WHERE EXISTS (SELECT 1 FROM own)"
    " ON CONFLICT (run_id, step_id, attempt) DO NOTHING"
)

CREATE_RUN = (
    "WITH ins AS ("
    "  INSERT INTO runs (id, workflow, workflow_ref, status, input_json, idempotency_key,"
    "   parent_id, parent_step, created_at, updated_at, started_at, deadline, owner,"
    "   lease_until, activations, queue, subjects, started_by)"
    "  VALUES (%(id)s, %(workflow)s, %(workflow_ref)s, %(status)s, %(input_json)s,"
    "   %(idempotency_key)s, %(parent_id)s, %(parent_step)s, %(created_at)s, %(created_at)s,"
    "   %(started_at)s, %(deadline)s, %(owner)s, %(lease_until)s, %(activations)s, %(queue)s,"
    "   %(subjects)s, %(started_by)s)"
    f"  ON CONFLICT DO NOTHING RETURNING {RUN_COLS}),"
    " own AS (SELECT 1 FROM ins),"
    f" s AS ({_INSERT_STEPS.replace('DO UPDATE SET ' + _STEP_UPDATE, 'DO NOTHING')})"
    f" SELECT {RUN_COLS} FROM ins"
)

EXISTING_RUN = (
    f"SELECT {RUN_COLS} FROM runs WHERE id=%(id)s"
    f" UNION ALL SELECT {RUN_COLS} FROM runs WHERE idempotency_key=%(idempotency_key)s"
    "  AND id<>%(id)s"
    " LIMIT 1"
)

GET_RUN = f"SELECT {RUN_COLS} FROM runs WHERE id=%s"
LOCK_RUN = f"SELECT {RUN_COLS} FROM runs WHERE id=%s FOR UPDATE"

RUNNABLE = (
    "(status='pending' OR (status='waiting' AND wake_at<=%(now)s)"
    " OR (status='running' AND lease_until<%(now)s AND owner IS DISTINCT FROM %(owner)s))"
)


def claim_sql(queue_filter: str) -> str:
    """Claim up to ``limit`` runnable runs (``queue_filter`` narrows which) for ``owner``."""
    return (
        "WITH c AS ("
        f" SELECT id FROM runs WHERE {RUNNABLE} AND {queue_filter}"
        " ORDER BY COALESCE(wake_at, created_at) LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
        " UPDATE runs r SET status='running', owner=%(owner)s, lease_until=%(lease_until)s,"
        " updated_at=%(now)s, started_at=COALESCE(r.started_at, %(now)s),"
        " activations=r.activations+1, claim_id=%(claim_id)s"
        f" FROM c WHERE r.id=c.id RETURNING {', '.join('r.' + c for c in RUN_COLS.split(', '))}"
    )


RECLAIM = (
    f"SELECT {RUN_COLS} FROM runs WHERE claim_id=%(claim_id)s AND owner=%(owner)s"
    " AND status='running'"
)

RENEW = (
    "UPDATE runs SET lease_until=%s WHERE owner=%s AND status='running' AND id = ANY(%s)"
    " RETURNING id"
)

LOAD_STEPS = f"SELECT {STEP_COLS} FROM steps WHERE run_id=%s"
LOAD_ATTEMPTS = f"SELECT {ATTEMPT_COLS} FROM attempts WHERE run_id=%s ORDER BY id"

_OWN = (
    "own AS (UPDATE runs SET updated_at=%(now)s"
    " WHERE id=%(run_id)s AND owner=%(owner)s AND status='running' RETURNING subjects)"
)

SAVE_STEPS = (
    f"WITH {_OWN}, s AS ({_INSERT_STEPS}), a AS ({_INSERT_ATTEMPTS})"
    " SELECT count(*), max(subjects) FROM own"
)

SUSPEND_RUN = (
    "WITH own AS (UPDATE runs SET"
    "  status=CASE WHEN signal<>%(signal)s THEN 'pending' ELSE 'waiting' END,"
    "  wake_at=%(wake_at)s, owner=NULL, lease_until=NULL, updated_at=%(now)s"
    "  WHERE id=%(run_id)s AND owner=%(owner)s AND status='running' RETURNING status, subjects),"
    f" s AS ({_INSERT_STEPS}), a AS ({_INSERT_ATTEMPTS})"
    " SELECT status, subjects FROM own"
)

RELEASE_RUN = (
    "UPDATE runs SET status='pending', owner=NULL, lease_until=NULL, updated_at=%s"
    " WHERE id=%s AND owner=%s AND status='running'"
)
RELEASE_WORKER = (
    "UPDATE runs SET status='pending', owner=NULL, lease_until=NULL, updated_at=%s"
    " WHERE owner=%s AND status='running'"
)


def end_run_sql(*, owned: bool) -> str:
    """End a run, cancel its unfinished descendants and settle its parent's child step, in one
    statement. ``owned``: only if ``owner`` holds it (the engine), else unconditionally
    (an operator's cancel, already checked against the status table under a row lock)."""
    held = " AND owner=%(owner)s AND status='running'" if owned else ""
    return (
        "WITH RECURSIVE own AS (UPDATE runs SET status=%(status)s, output_json=%(output_json)s,"
        "  error_json=%(error_json)s, finished_at=%(now)s, updated_at=%(now)s, owner=NULL,"
        "  lease_until=NULL, wake_at=NULL, signal=signal+1"
        f"  WHERE id=%(run_id)s{held} RETURNING parent_id, parent_step, subjects),"
        f" s AS ({_INSERT_STEPS}), a AS ({_INSERT_ATTEMPTS}),"
        " d(id) AS (SELECT id FROM runs WHERE parent_id=%(run_id)s AND EXISTS (SELECT 1 FROM own)"
        "  UNION SELECT r.id FROM runs r JOIN d ON r.parent_id=d.id),"
        " c AS (UPDATE runs SET status='cancelled', finished_at=%(now)s, updated_at=%(now)s,"
        "  owner=NULL, lease_until=NULL, wake_at=NULL, signal=signal+1"
        f"  WHERE id IN (SELECT id FROM d) AND status IN {UNFINISHED}),"
        " p AS (UPDATE steps ps SET status=%(p_status)s, output_json=%(p_output)s,"
        "  error_json=%(p_error)s, finished_at=%(now)s FROM own"
        "  WHERE ps.run_id=own.parent_id AND ps.step_id=own.parent_step AND ps.status='pending'"
        "  RETURNING ps.run_id),"
        f" w AS ({SIGNAL_RUNS.format(ids='SELECT run_id FROM p')})"
        " SELECT count(*), max(subjects) FROM own"
    )


#: Tell runs something happened to them: wake them if parked, else bump their signal so that
#: a concurrent activation does not park them and miss the news.
SIGNAL_RUNS = (
    "UPDATE runs SET signal=signal+1, updated_at=%(now)s,"
    " wake_at=CASE WHEN status='waiting' THEN NULL ELSE wake_at END,"
    " status=CASE WHEN status='waiting' THEN 'pending' ELSE status END"
    " WHERE id IN ({ids})"
)

SUSPEND_BY_OPERATOR = (
    "UPDATE runs SET status='suspended', owner=NULL, lease_until=NULL, signal=signal+1,"
    " updated_at=%s WHERE id=%s"
)
RESUME_BY_OPERATOR = (
    "UPDATE runs SET status='pending', wake_at=NULL, error_json=NULL, finished_at=NULL,"
    " signal=signal+1, updated_at=%s WHERE id=%s"
)
REOPEN_STEP = (
    "UPDATE steps SET status='pending', attempts=0, error_json=NULL, wake_at=NULL,"
    " finished_at=NULL WHERE run_id=%s AND step_id=%s"
)

# -- events ------------------------------------------------------------------------------------

#: Serialises a keyed wait with the delivery of an event to its key (run-addressed events are
#: serialised by the run's row lock instead), so neither can miss the other.
KEY_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s::text || chr(31) || %s::text, 7))"

HOLD_RUN = (
    "UPDATE runs SET updated_at=%s WHERE id=%s AND owner=%s AND status='running' RETURNING subjects"
)
INSERT_WAIT = (
    f"INSERT INTO steps ({STEP_COLS}) VALUES"
    " (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING"
)
GET_STEP = f"SELECT {STEP_COLS} FROM steps WHERE run_id=%s AND step_id=%s"
MATCH_EVENT = (
    "SELECT id, payload_json FROM events WHERE consumed_run IS NULL AND topic=%(topic)s"
    " AND ((run_id=%(run_id)s AND (%(key)s::text IS NULL OR key=%(key)s))"
    "  OR (run_id IS NULL AND key=%(key)s))"
    " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
CONSUME_EVENT = (
    "WITH e AS (UPDATE events SET consumed_run=%(run_id)s, consumed_step=%(step_id)s"
    "  WHERE id=%(event_id)s)"
    " UPDATE steps SET status='completed', output_json=%(payload)s, finished_at=%(now)s"
    f" WHERE run_id=%(run_id)s AND step_id=%(step_id)s RETURNING {STEP_COLS}"
)

INSERT_EVENT = (
    "INSERT INTO events (topic, key, run_id, payload_json, created_at, token)"
    " VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (token) DO NOTHING RETURNING id"
)
EVENT_BY_TOKEN = "SELECT id FROM events WHERE token=%s"
WAITERS_FOR_RUN = (
    "SELECT DISTINCT run_id FROM steps WHERE status='pending' AND kind='event'"
    " AND topic=%s AND run_id=%s AND (key IS NULL OR key IS NOT DISTINCT FROM %s)"
)
WAITERS_FOR_KEY = (
    "SELECT DISTINCT run_id FROM steps WHERE status='pending' AND kind='event'"
    " AND topic=%s AND key=%s"
)

# -- audit trail ---------------------------------------------------------------------------------

#: An unsealed entry: its chain position and hashes are written by the chainer after commit
#: (``_postgres_chain``); ``ord`` comes from the sequence in the entries' order, ``written``
#: from the database's clock. One statement for all of a transaction's entries; it returns the
#: transaction's id (a reader waits for its own entries to be sealed).
INSERT_AUDIT = (
    "INSERT INTO audit (at, kind, run_id, step_id, actor, subjects, data_json, op, txid)"
    " SELECT %s, u.kind, u.run_id, u.step_id, u.actor, u.subjects, u.data_json,"
    "  CASE WHEN u.n=1 THEN %s END, pg_current_xact_id()"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
    "  WITH ORDINALITY AS u(kind, run_id, step_id, actor, subjects, data_json, n)"
    " ORDER BY u.n RETURNING txid::text::bigint"
)
UNSEALED_OF_RUN = (
    "SELECT at, kind, run_id, step_id, actor, subjects, data_json FROM audit"
    " WHERE run_id=%s AND seq IS NULL ORDER BY txid, ord"
)
AUDIT_OP_DONE = "SELECT 1 FROM audit WHERE op=%s LIMIT 1"
