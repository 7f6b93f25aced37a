"""State checked against the chain: every row the product acts on must be what its entries say.

The chain proves the audit table was not rewritten; this module proves the *state* was not
either. It replays the verified entries into the state they describe (runs, journal steps,
events, approval votes, subject tags, stored signed heads) and compares that with the rows the
store holds, naming every row that was edited, inserted without an entry, or deleted without
one (``run.purged``). Entries embed payloads exactly as stored, so the comparison is of decoded
JSON values and needs no keys; for runs with data subjects it also checks that every payload is
sealed and, given the keys (a :class:`~batonflow.governance.SealedStore`), that each one opens.

Some state changes are consequences the store derives inside the transaction of an audited one,
and are accepted as such: a child run's end settles its parent's child step, an ancestor's end
cancels its unfinished descendants, resuming a faulted run reopens its failed step, and the
transient statuses (pending, running, waiting, suspended) move with claims and leases, which are
not audited. Everything a reader or a decision relies on (inputs, outputs, errors, ended
statuses, events, votes) is checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from batonflow.errors import BatonflowError
from batonflow.store import AuditRecord, RunRecord, RunStatus, StepRecord, Store

__all__ = ["StateCheck", "check_state"]

_PAGE = 2000
_MANY = 10_000_000
_VOTE_KIND = "approval.vote"
_HEAD_KIND = "audit-head"
_STEP_STATUS = {"step.completed": "completed", "step.failed": "failed"}
_ENDED_KINDS = {f"run.{s.value}": s for s in (RunStatus.COMPLETED, RunStatus.FAULTED)}
_STATUS_KINDS = {
    "run.cancelled": RunStatus.CANCELLED,
    "run.suspended": RunStatus.SUSPENDED,
    "run.resumed": RunStatus.PENDING,
}


@dataclass
class _Run:
    created: AuditRecord
    data: dict[str, Any]
    status: RunStatus
    output: Any = None
    error: Any = None
    resumed_at: int = 0  # seq of the last run.resumed


@dataclass
class _Step:
    seq: int
    status: str
    data: dict[str, Any]


@dataclass
class _Expected:
    """The state the chain describes, built entry by entry."""

    runs: dict[str, _Run] = field(default_factory=dict)
    steps: dict[tuple[str, str], _Step] = field(default_factory=dict)
    events: dict[int, AuditRecord] = field(default_factory=dict)
    consumed: dict[int, tuple[str, str]] = field(default_factory=dict)
    purged: set[str] = field(default_factory=set)
    votes: dict[str, Any] = field(default_factory=dict)
    signed: dict[int, str] = field(default_factory=dict)
    attempts: dict[str, list[tuple[str, int, Any]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, r: AuditRecord) -> None:
        data = _members(r.data_json)
        kind, run = r.kind, self.runs.get(r.run_id or "")
        if kind == "run.created" and r.run_id is not None:
            status = _status(data.get("status"))
            self.runs[r.run_id] = _Run(r, data, status)
        elif kind == "run.purged" and r.run_id is not None:
            self.purged.add(r.run_id)
        elif run is not None and kind in _ENDED_KINDS:
            run.status, run.output, run.error = (
                _ENDED_KINDS[kind],
                data.get("output"),
                data.get("error"),
            )
        elif run is not None and kind in _STATUS_KINDS:
            run.status = _STATUS_KINDS[kind]
            if kind == "run.resumed":
                run.resumed_at, run.error = r.seq, None
        elif run is not None and kind == "run.parked":
            run.status = _status(data.get("status"))
        elif kind == "step.attempt_failed" and r.run_id and r.step_id:
            failed = (r.step_id, int(data.get("attempt", 0)), data.get("error"))
            self.attempts.setdefault(r.run_id, []).append(failed)
        elif kind.startswith("step.") and r.step_id:
            step_status = _STEP_STATUS.get(kind, "pending")
            self.steps[(r.run_id or "", r.step_id)] = _Step(r.seq, step_status, data)
        elif kind == "event.received":
            self.events[int(data.get("event", 0))] = r
        elif kind == "event.consumed" and r.run_id and r.step_id:
            self._consume(int(data.get("event", 0)), r)
        elif kind == "approval.decision":
            key = f"{data.get('approval')}/{data.get('round')}/{data.get('by')}"
            self.votes[key] = data
        elif kind == "audit.signed":
            self.signed[int(data.get("seq", 0))] = str(data.get("hash"))

    def _consume(self, event_id: int, r: AuditRecord) -> None:
        run_id, step_id = r.run_id or "", r.step_id or ""
        self.consumed[event_id] = (run_id, step_id)
        received = self.events.get(event_id)
        step = self.steps.get((run_id, step_id))
        if received is None:
            self.problems.append(
                f"entry {r.seq} consumes event {event_id}, which no entry received"
            )
        elif step is not None:
            payload = _members(received.data_json).get("payload")
            self.steps[(run_id, step_id)] = _Step(
                r.seq, "completed", {**step.data, "output": payload}
            )


@dataclass(frozen=True, slots=True)
class StateCheck:
    """What :func:`check_state` found: each problem names a table and a row."""

    runs: int
    steps: int
    problems: tuple[str, ...]


async def check_state(store: Store, records: Iterable[AuditRecord]) -> StateCheck:
    """Compare the store's rows with the state ``records`` (the whole verified trail, in
    order) describe. ``store`` may be a sealed store: rows are read as stored, beneath it."""
    expected = _Expected()
    for r in records:
        expected.add(r)
    raw = _stored(store)
    problems = list(expected.problems)
    runs = await _all_runs(raw)
    if runs and not expected.runs:
        problems.append(
            f"the store holds {len(runs)} run(s) but the audit trail records none: the trail "
            "was emptied or replaced"
        )
        return StateCheck(len(runs), 0, tuple(problems))
    by_id = {run.id: run for run in runs}
    seen: set[tuple[str, str]] = set()
    for run in runs:
        problems += _check_run(run, expected)
        steps = await raw.load_steps(run.id)
        for step in steps:
            seen.add((step.run_id, step.step_id))
            problems += _check_step(step, expected)
        problems += await _check_sealed(store, run, steps, expected)
        problems += await _check_attempts(raw, run.id, expected)
    problems += await _check_subject_index(raw, expected, by_id)
    for run_id, want in expected.runs.items():
        if run_id not in by_id and run_id not in expected.purged:
            workflow = want.data.get("workflow")
            problems.append(f"run {run_id} ({workflow}) was deleted: entry "
                            f"{want.created.seq} created it and no entry purged it")  # fmt: skip
    problems += _missing_steps(expected, seen)
    problems += await _check_events(raw, expected)
    problems += await _check_records(raw, expected)
    return StateCheck(len(runs), len(seen), tuple(problems))


def _stored(store: Store) -> Store:
    """The store beneath any sealing or reading wrapper: rows exactly as stored."""
    from batonflow.governance._subjects import SealedStore

    while isinstance(store, SealedStore):
        store = store.inner
    return store


async def _all_runs(store: Store) -> list[RunRecord]:
    out: list[RunRecord] = []
    before: tuple[float, str] | None = None
    while True:
        page = await store.list_runs(limit=_PAGE, before=before)
        out += page
        if len(page) < _PAGE:
            return out
        before = (page[-1].created_at, page[-1].id)


def _check_run(run: RunRecord, expected: _Expected) -> list[str]:
    want = expected.runs.get(run.id)
    if want is None:
        return [f"run {run.id} ({run.workflow}) was inserted: no audit entry created it"]
    problems = []
    name = f"run {run.id}"
    data = want.data
    if run.workflow != data.get("workflow"):
        problems.append(f"{name}: its workflow was edited ({run.workflow!r}, the trail says "
                        f"{data.get('workflow')!r})")  # fmt: skip
    if not _same(run.input_json, data.get("input")):
        problems.append(f"{name}: its input was edited (the trail has it at entry "
                        f"{want.created.seq})")  # fmt: skip
    if run.parent_id != data.get("parent_id"):
        problems.append(f"{name}: its parent was edited")
    if tuple(sorted(run.subjects)) != tuple(sorted(want.created.subjects)):
        problems.append(f"{name}: its data subjects were edited")
    problems += _check_run_status(run, want, expected)
    return problems


def _check_run_status(run: RunRecord, want: _Run, expected: _Expected) -> list[str]:
    name = f"run {run.id}"
    ended = (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.FAULTED)
    if (
        (want.status in ended or run.status in ended)
        and run.status is not want.status
        and not _cancelled_with_ancestor(run, expected)
    ):
        return [f"{name}: its status was edited ({run.status.value}, the trail says "
                f"{want.status.value})"]  # fmt: skip
    if run.status is RunStatus.COMPLETED and not _same(run.output_json, want.output):
        return [f"{name}: its output was edited"]
    if run.status is RunStatus.FAULTED and not _same(run.error_json, want.error):
        return [f"{name}: its error was edited"]
    return []


def _cancelled_with_ancestor(run: RunRecord, expected: _Expected) -> bool:
    """A descendant is cancelled, unaudited, in the transaction that ends an ancestor."""
    if run.status is not RunStatus.CANCELLED:
        return False
    parent = run.parent_id
    while parent is not None:
        ancestor = expected.runs.get(parent)
        if ancestor is None:
            return False
        if ancestor.status in (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.FAULTED):
            return True
        parent = ancestor.data.get("parent_id")
    return False


def _check_step(step: StepRecord, expected: _Expected) -> list[str]:
    name = f"step {step.step_id} of run {step.run_id}"
    want = expected.steps.get((step.run_id, step.step_id))
    if want is None:
        return [f"{name} ({step.name}) was inserted: no audit entry recorded it"]
    data = want.data
    problems = []
    if step.name != data.get("name") or step.kind.value != data.get("kind"):
        problems.append(f"{name}: its name or kind was edited")
    if not _same(step.input_json, data.get("input")):
        problems.append(f"{name}: its input was edited (entry {want.seq})")
    status = step.status.value
    if status == want.status:
        if not _same(step.output_json, data.get("output")):
            problems.append(f"{name}: its output was edited (entry {want.seq} has it)")
        if not _same(step.error_json, data.get("error")):
            problems.append(f"{name}: its error was edited (entry {want.seq} has it)")
    elif not _derived_step(step, want, expected):
        problems.append(f"{name}: its status was edited ({status}, entry {want.seq} says "
                        f"{want.status})")  # fmt: skip
    return problems


def _derived_step(step: StepRecord, want: _Step, expected: _Expected) -> bool:
    """A status the store changed as a consequence of an audited change."""
    run = expected.runs.get(step.run_id)
    if want.status == "failed" and step.status.value == "pending":
        return run is not None and run.resumed_at > want.seq  # resume reopened it
    if want.status != "pending" or step.child_id is None:
        return False
    child = expected.runs.get(step.child_id)  # a child's end settles its parent's step
    if child is None:
        return False
    if step.status.value == "completed":
        return child.status is RunStatus.COMPLETED and _same(step.output_json, child.output)
    return step.status.value == "failed" and child.status in (
        RunStatus.FAULTED,
        RunStatus.CANCELLED,
    )


def _missing_steps(expected: _Expected, seen: set[tuple[str, str]]) -> list[str]:
    """Journal entries whose row is gone, outside a purge."""
    return [
        f"step {step_id} of run {run_id} was deleted: entry {want.seq} recorded it"
        for (run_id, step_id), want in expected.steps.items()
        if (run_id, step_id) not in seen and run_id not in expected.purged
    ]


async def _check_attempts(store: Store, run_id: str, expected: _Expected) -> list[str]:
    """Failed attempts, one row per ``step.attempt_failed`` entry."""
    stored = sorted(
        (a.step_id, a.attempt, _decode(a.error_json)) for a in await store.load_attempts(run_id)
    )
    wanted = sorted(expected.attempts.get(run_id, []))
    if _as_text(stored) == _as_text(wanted):
        return []
    return [f"the failed attempts of run {run_id} were edited, inserted or deleted: "
            f"{len(stored)} stored, {len(wanted)} on the trail"]  # fmt: skip


def _as_text(rows: list[tuple[str, int, Any]]) -> list[str]:
    return [json.dumps(row, sort_keys=True) for row in rows]


async def _check_subject_index(
    store: Store, expected: _Expected, runs: dict[str, RunRecord]
) -> list[str]:
    """The index that finds a subject's runs (for export and erasure) lists exactly the runs
    the trail tags with them: a run hidden from it would escape an erasure."""
    tagged: dict[str, set[str]] = {}
    for run_id, want in expected.runs.items():
        if run_id in runs:
            for ref in want.created.subjects:
                tagged.setdefault(ref, set()).add(run_id)
    problems = []
    for ref, wanted in sorted(tagged.items()):
        found = {r.id for r in await store.list_runs(subject=ref, limit=_MANY)}
        for run_id in sorted(wanted - found):
            problems.append(f"run {run_id} was removed from the index of subject {ref}")
        for run_id in sorted(found - wanted):
            problems.append(f"run {run_id} was added to the index of subject {ref}")
    return problems


async def _check_events(store: Store, expected: _Expected) -> list[str]:
    problems = []
    stored = await store.list_events(limit=_MANY)
    seen = set()
    for event in stored:
        seen.add(event.id)
        entry = expected.events.get(event.id)
        if entry is None:
            problems.append(f"event {event.id} ({event.topic}) was inserted: no audit entry "
                            "received it")  # fmt: skip
            continue
        data = _members(entry.data_json)
        if event.topic != data.get("topic") or not _same(event.payload_json, data.get("payload")):
            problems.append(f"event {event.id} ({event.topic}) was edited (entry {entry.seq} has "
                            "it)")  # fmt: skip
        if event.run_id != entry.run_id:
            problems.append(f"event {event.id}: the run it is addressed to was edited")
    for event_id, entry in expected.events.items():
        owner = entry.run_id or (expected.consumed.get(event_id) or ("", ""))[0]
        if event_id not in seen and owner not in expected.purged:
            problems.append(f"event {event_id} ({_members(entry.data_json).get('topic')}) was "
                            f"deleted: entry {entry.seq} received it")  # fmt: skip
    return problems


async def _check_records(store: Store, expected: _Expected) -> list[str]:
    problems = []
    for key, text in await store.list_records(_VOTE_KIND):
        want = expected.votes.get(key)
        if want is None:
            problems.append(f"approval vote {key} was inserted: no approval.decision entry "
                            "records it")  # fmt: skip
        elif not _same(text, want):
            problems.append(f"approval vote {key} was edited")
    heads = {int(key): text for key, text in await store.list_records(_HEAD_KIND)}
    for seq, digest in sorted(expected.signed.items()):
        if seq not in heads:
            problems.append(f"the signed head at entry {seq} was removed from the store "
                            "(an audit.signed entry records it)")  # fmt: skip
        elif _members(heads[seq]).get("hash") != digest:
            problems.append(f"the stored signed head at entry {seq} was replaced")
    return problems


async def _check_sealed(
    store: Store, run: RunRecord, steps: list[StepRecord], expected: _Expected
) -> list[str]:
    """A run with data subjects keeps every payload sealed, and every seal opens."""
    want = expected.runs.get(run.id)
    if want is None or not want.created.subjects:
        return []
    from batonflow.governance._sealed import is_sealed
    from batonflow.governance._subjects import SealedStore

    keys = store.keys if isinstance(store, SealedStore) else None
    payloads = [(f"run {run.id}'s {n}", t) for n, t in _fields(run)]
    for s in steps:
        payloads += [(f"step {s.step_id} of run {run.id}: its {n}", t) for n, t in _fields(s)]
    problems = []
    for what, text in payloads:
        if text is None:
            continue
        if not is_sealed(text):
            problems.append(f"{what} is in clear, but the run has data subjects: sealed data "
                            "was replaced")  # fmt: skip
        elif keys is not None:
            try:
                await keys.open(text, run.id)
            except BatonflowError as exc:
                problems.append(f"{what} does not open: {exc}")
    return problems


def _fields(row: RunRecord | StepRecord) -> list[tuple[str, str | None]]:
    names = ("input_json", "output_json", "error_json")
    return [(n.removesuffix("_json"), getattr(row, n)) for n in names]


def _status(value: Any) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        return RunStatus.PENDING


def _decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _members(text: str) -> dict[str, Any]:
    """An entry's data as an object (an entry whose data is not one has no members)."""
    value = _decode(text)
    return value if isinstance(value, dict) else {}


def _same(stored: str | None, recorded: Any) -> bool:
    """Does the stored JSON text hold the value the entry recorded (absent: None)?"""
    return bool(_decode(stored) == recorded)
