"""The audit trail as both stores write it: entries derived from state changes, and the chain.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and a canonical encoding of the
entry (:func:`audit_hash`), so editing, deleting, inserting or reordering a stored entry breaks
the chain at that entry. The store appends entries in the same transaction as the state change
they describe (architecture rule 5). Payloads are embedded exactly as stored (already redacted,
and sealed for runs with data subjects): destroying a subject's key later leaves every stored
byte, and so the chain, unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from batonflow.store._model import (
    AttemptRecord,
    AuditEntry,
    AuditRecord,
    NewRun,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
)

__all__ = ["GENESIS", "audit_hash", "chain", "hash_holds", "verify_records"]

#: The ``prev_hash`` of the first entry.
GENESIS = "0" * 64

ENGINE = "engine"


def audit_hash(
    prev_hash: str,
    seq: int,
    at: float,
    kind: str,
    run_id: str | None,
    step_id: str | None,
    actor: str | None,
    subjects: Sequence[str],
    data_json: str,
) -> str:
    """SHA-256 (hex) of ``prev_hash``, the entry's fields and its data as stored.

    The fields other than the data are a compact JSON array (floats in their shortest
    round-trip form); ``data_json`` follows a newline, as the exact bytes stored: it is hashed,
    never re-encoded (JSON escapes every newline inside the array, so the encoding is
    unambiguous). A verifier needs no JSON canonicaliser.
    """
    header = json.dumps(
        [seq, at, kind, run_id, step_id, actor, list(subjects)],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{prev_hash}\n{header}\n{data_json}".encode()).hexdigest()


def legacy_audit_hash(
    prev_hash: str,
    seq: int,
    at: float,
    kind: str,
    run_id: str | None,
    step_id: str | None,
    actor: str | None,
    subjects: Sequence[str],
    data_json: str,
) -> str:
    """The hash of entries written by earlier releases: the data re-encoded as a JSON string
    inside the array. Its encoding has no raw newline after the previous hash,
    :func:`audit_hash`'s has one, so no entry can satisfy one form by posing as the other."""
    canonical = json.dumps(
        [seq, at, kind, run_id, step_id, actor, list(subjects), data_json],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def hash_holds(r: AuditRecord) -> bool:
    """Does the entry's stored hash match its fields (in the current or the legacy form)?"""
    fields = (r.prev_hash, r.seq, r.at, r.kind, r.run_id, r.step_id, r.actor, r.subjects,
              r.data_json)  # fmt: skip
    return r.hash == audit_hash(*fields) or r.hash == legacy_audit_hash(*fields)


def chain(
    entries: Iterable[AuditEntry], now: float, head_seq: int, head_hash: str
) -> list[AuditRecord]:
    """The records that append ``entries`` after the head (``head_seq``/``head_hash``)."""
    return chain_at(((now, e) for e in entries), head_seq, head_hash)


def chain_at(
    entries: Iterable[tuple[float, AuditEntry]], head_seq: int, head_hash: str
) -> list[AuditRecord]:
    """The records that append ``entries`` (each with its own time) after the head."""
    records = []
    seq, prev = head_seq, head_hash
    for at, e in entries:
        seq += 1
        digest = audit_hash(prev, seq, at, e.kind, e.run_id, e.step_id, e.actor, e.subjects,
                            e.data_json)  # fmt: skip
        records.append(
            AuditRecord(
                seq,
                at,
                e.kind,
                e.run_id,
                e.step_id,
                e.actor,
                e.subjects,
                e.data_json,
                prev,
                digest,
            )
        )
        prev = digest
    return records


def verify_records(
    records: Iterable[AuditRecord], *, start: tuple[int, str] = (0, GENESIS)
) -> tuple[int, str, str | None]:
    """Walk ``records`` (in stored order) from ``start``; return ``(checked, last_hash,
    problem)`` where ``problem`` names the first bad entry (None: the chain holds)."""
    seq, prev = start
    checked = 0
    for r in records:
        if r.seq != seq + 1:
            what = "missing" if r.seq > seq + 1 else "duplicated or reordered"
            return checked, prev, (
                f"entry {seq + 1} is {what}: found entry {r.seq} after entry {seq}"
            )  # fmt: skip
        if r.prev_hash != prev:
            return checked, prev, (
                f"entry {r.seq} ({r.kind}) does not follow entry {seq}: an entry before it was "
                "deleted, inserted or edited"
            )  # fmt: skip
        if not hash_holds(r):
            return checked, prev, f"entry {r.seq} ({r.kind}) was edited: its hash does not match"
        seq, prev = r.seq, r.hash
        checked += 1
    return checked, prev, None


# -- entries derived from state changes ----------------------------------------------------------


def embed(fields: Mapping[str, Any], raw: Mapping[str, str | None] | None = None) -> str:
    """A JSON object of ``fields`` plus ``raw`` members whose values are JSON texts as stored
    (spliced in, not re-encoded: the store never decodes payloads, and sealed ones stay sealed).
    """
    text = json.dumps(dict(fields), separators=(",", ":"), ensure_ascii=False)
    members = [f"{_member_name(k)}:{v}" for k, v in (raw or {}).items() if v is not None]
    if not members:
        return text
    return text[:-1] + ("," if len(text) > 2 else "") + ",".join(members) + "}"


@functools.cache
def _member_name(name: str) -> str:
    """A member name as JSON (the few names ``embed`` splices, encoded once per process)."""
    return json.dumps(name)


def run_created(run: NewRun, subjects: Sequence[str]) -> AuditEntry:
    fields = {"workflow": run.workflow, "status": run.status.value}
    for name in ("workflow_ref", "queue", "parent_id", "idempotency_key", "deadline"):
        value = getattr(run, name)
        if value is not None:
            fields[name] = value
    return AuditEntry(
        "run.created", embed(fields, {"input": run.input_json}), run.id, None,
        run.started_by or (ENGINE if run.parent_id else None), tuple(subjects),
    )  # fmt: skip


_PENDING_KINDS = {
    StepKind.SLEEP: "step.sleeping",
    StepKind.EVENT: "step.waiting",
    StepKind.CHILD: "step.child_started",
}


def step_entries(
    steps: Sequence[StepRecord],
    attempts: Sequence[AttemptRecord],
    subjects: Sequence[str],
    extras: Sequence[AuditEntry] = (),
) -> list[AuditEntry]:
    """One entry per journal record written and per failed attempt, each followed by the
    ``extras`` raised inside that step (a model call, an egress call); extras of no step written
    here come last."""
    out = _derived(steps, attempts, subjects)
    if not extras:
        return out
    by_step: dict[str | None, list[AuditEntry]] = {}
    for e in extras:
        by_step.setdefault(e.step_id, []).append(e)
    merged = []
    for entry in out:
        merged.append(entry)
        merged.extend(by_step.pop(entry.step_id, []) if entry.step_id is not None else [])
    for rest in by_step.values():
        merged.extend(rest)
    return merged


def _derived(
    steps: Sequence[StepRecord], attempts: Sequence[AttemptRecord], subjects: Sequence[str]
) -> list[AuditEntry]:
    out = []
    subs = tuple(subjects)
    for a in attempts:
        info = {"attempt": a.attempt, "started_at": a.started_at}
        out.append(
            AuditEntry(
                "step.attempt_failed",
                embed(info, {"error": a.error_json}),
                a.run_id,
                a.step_id,
                ENGINE,
                subs,
            )
        )
    for s in steps:
        if s.status is StepStatus.COMPLETED:
            kind = "step.completed"
        elif s.status is StepStatus.FAILED:
            kind = "step.failed"
        elif s.kind is StepKind.STEP:
            kind = "step.waiting_connector" if _disabled(s) else "step.retry_scheduled"
        else:
            kind = _PENDING_KINDS.get(s.kind, "step.pending")
        fields: dict[str, Any] = {"name": s.name, "kind": s.kind.value}
        if s.attempts:
            fields["attempts"] = s.attempts
        for name in ("wake_at", "topic", "child_id", "started_at", "finished_at"):
            value = getattr(s, name)
            if value is not None:
                fields[name] = value
        raw = {"input": s.input_json, "output": s.output_json, "error": s.error_json}
        out.append(AuditEntry(kind, embed(fields, raw), s.run_id, s.step_id, ENGINE, subs))
    return out


def _disabled(step: StepRecord) -> bool:
    return step.error_json is not None and "ConnectorDisabled" in step.error_json


def run_parked(
    run_id: str, status: RunStatus, wake_at: float | None, subjects: Sequence[str]
) -> AuditEntry:
    fields: dict[str, Any] = {"status": status.value}
    if wake_at is not None:
        fields["wake_at"] = wake_at
    return AuditEntry("run.parked", embed(fields), run_id, None, ENGINE, tuple(subjects))


def run_ended(
    run_id: str,
    status: RunStatus,
    output_json: str | None,
    error_json: str | None,
    subjects: Sequence[str],
    actor: str | None = ENGINE,
) -> AuditEntry:
    raw = {"output": output_json, "error": error_json}
    return AuditEntry(f"run.{status.value}", embed({}, raw), run_id, None, actor, tuple(subjects))


_OPERATOR_KINDS = {
    RunStatus.CANCELLED: "run.cancelled",
    RunStatus.SUSPENDED: "run.suspended",
    RunStatus.PENDING: "run.resumed",
}


def operator_action(
    run_id: str, source: RunStatus, target: RunStatus, actor: str | None, subjects: Sequence[str]
) -> AuditEntry:
    fields = {"from": source.value, "to": target.value}
    return AuditEntry(_OPERATOR_KINDS[target], embed(fields), run_id, None, actor, tuple(subjects))


def event_received(
    event_id: int,
    topic: str,
    key: str | None,
    run_id: str | None,
    payload_json: str,
    subjects: Sequence[str],
    actor: str | None,
) -> AuditEntry:
    fields: dict[str, Any] = {"event": event_id, "topic": topic, "keyed": key is not None}
    return AuditEntry(
        "event.received", embed(fields, {"payload": payload_json}), run_id, None, actor,
        tuple(subjects),
    )  # fmt: skip


def event_consumed(event_id: int, run_id: str, step_id: str, subjects: Sequence[str]) -> AuditEntry:
    return AuditEntry(
        "event.consumed", embed({"event": event_id}), run_id, step_id, ENGINE, tuple(subjects)
    )


def subjects_json(subjects: Sequence[str]) -> str | None:
    return json.dumps(list(subjects)) if subjects else None


def subjects_of(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()
