"""The story of one run in plain words, for a regulator, an insurer or a complaints officer.

:func:`build_report` reads a run and every audit entry about it (its child runs' too) and
tells, in order and with times and actors: what came in, each step and decision, approvals and
votes, model calls, errors, what went out, where personal data was redacted or erased, and
whether the audit chain holds for the entries it cites. The CLI (``batonflow audit report``)
and the console's printable page render the same :class:`RunReport`; neither adds a rule.

Reading goes through :func:`~batonflow.governance._access.open_for_reading`: a reader
without ``personal.read`` gets the story with its personal data withheld, and the reading is
on the trail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from batonflow.errors import RunNotFound
from batonflow.governance._access import is_hidden, open_for_reading
from batonflow.governance._audit import AuditFilter, entries, verify_chain
from batonflow.governance._identity import Identity
from batonflow.store import AuditRecord, Store

__all__ = ["ChainCheck", "ReportLine", "RunReport", "build_report", "describe"]

#: Which part of the story an entry belongs to.
SECTIONS = {
    "approval": ("approval.",),
    "model": ("model.call",),
    "error": ("step.failed", "step.attempt_failed", "run.failed", "egress.denied"),
    "privacy": ("model.redacted", "data.redacted", "subject.", "data.read", "run.purged"),
    "outbound": ("egress.call",),
}


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One audit entry told in a sentence; ``data``: its payload as the reader may see it."""

    seq: int
    at: float
    kind: str
    run_id: str | None
    step_id: str | None
    actor: str | None
    text: str
    data: Any = None

    def is_in(self, section: str) -> bool:
        return self.kind.startswith(SECTIONS[section])


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """Does the audit chain hold for the entries the report cites (``first``..``last``)?

    The chain is checked from its start (an entry is only proven by every entry before it);
    a break after ``last`` does not touch the cited entries, and is named as well."""

    cited: int
    first: int | None
    last: int | None
    verified_through: int
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.last is None or self.verified_through >= self.last


@dataclass(frozen=True, slots=True)
class RunReport:
    run_id: str
    workflow: str
    status: str
    created_at: float
    updated_at: float
    started_by: str | None
    received: Any
    sent: Any
    error: Any
    lines: tuple[ReportLine, ...]
    chain: ChainCheck
    erased: tuple[dict[str, Any], ...] = ()
    personal_withheld: bool = False
    generated_at: float = 0.0
    generated_by: str = ""
    totals: dict[str, float] = field(default_factory=dict)

    def section(self, name: str) -> list[ReportLine]:
        return [line for line in self.lines if line.is_in(name)]


async def build_report(store: Store, reader: Identity, run_id: str, *, now: float) -> RunReport:
    """The report of ``run_id`` as ``reader`` may read it (its reading is audited).
    RunNotFound when there is no such run."""
    if await store.get_run(run_id) is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    # A report is a document that leaves the system: its making is always on the trail.
    view = await open_for_reading(
        store, reader, what="audit report", runs=[run_id], now=now, always_record=True
    )
    run = await view.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    opener = getattr(view, "open_json", None)
    lines = []
    async for record in entries(view, AuditFilter(run_id=run_id)):
        data = await _opened(record, opener)
        lines.append(
            ReportLine(
                record.seq, record.at, record.kind, record.run_id, record.step_id,
                record.actor, describe(record.kind, data, record.actor), data,
            )
        )  # fmt: skip
    verification = await verify_chain(store)
    seqs = [line.seq for line in lines]
    chain = ChainCheck(
        cited=len(seqs), first=min(seqs, default=None), last=max(seqs, default=None),
        verified_through=verification.head_seq, problem=verification.problem,
    )  # fmt: skip
    received, sent, error = (_loads(t) for t in (run.input_json, run.output_json, run.error_json))
    return RunReport(
        run_id=run.id, workflow=run.workflow, status=run.status.value,
        created_at=run.created_at, updated_at=run.updated_at, started_by=run.started_by,
        received=received, sent=sent, error=error, lines=tuple(lines), chain=chain,
        erased=tuple(await _erasures(store, run_id)), personal_withheld=is_hidden(received),
        generated_at=now, generated_by=reader.name, totals=_totals(lines),
    )  # fmt: skip


async def _opened(record: AuditRecord, opener: Any) -> Any:
    if opener is not None:
        return await opener(record.data_json, record.run_id or "")
    return _loads(record.data_json)


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _erasures(store: Store, run_id: str) -> list[dict[str, Any]]:
    """When each of the run's data subjects was erased (their tombstones), if they were."""
    subjects_of = getattr(store, "subjects_of", None)
    keys = getattr(store, "keys", None)
    if subjects_of is None or keys is None:
        return []
    found = []
    for ref in await subjects_of(run_id):
        tombstone = await keys.tombstone(ref)
        if tombstone is not None:
            found.append(
                {"subject": ref, "erased_at": tombstone.get("erased_at"),
                 "by": tombstone.get("actor")}
            )  # fmt: skip
    return found


def _totals(lines: list[ReportLine]) -> dict[str, float]:
    totals = {"model_calls": 0.0, "input_tokens": 0.0, "output_tokens": 0.0, "cost": 0.0}
    for line in lines:
        if line.kind != "model.call" or not isinstance(line.data, dict):
            continue
        totals["model_calls"] += 1
        for name in ("input_tokens", "output_tokens", "cost"):
            value = line.data.get(name)
            totals[name] += float(value) if isinstance(value, int | float) else 0.0
    return totals


# -- plain words --------------------------------------------------------------------------------


def _get(data: Any, name: str, default: Any = None) -> Any:
    return data.get(name, default) if isinstance(data, dict) else default


def _error_text(error: Any) -> str:
    if is_hidden(error):
        return "(details withheld or erased)"
    if isinstance(error, dict):
        kind = str(error.get("type") or error.get("class") or "error").rpartition(":")[2]
        message = error.get("message") or error.get("detail") or ""
        return f"{kind}: {message}".rstrip(": ")
    return "" if error is None else str(error)


def _step(data: Any) -> str:
    return f"step {_get(data, 'name', '?')!r}"


def _attempts(data: Any) -> str:
    count = _get(data, "attempts")
    return f" after {count} attempt(s)" if isinstance(count, int) and count > 1 else ""


def _approval(data: Any) -> str:
    title = _get(data, "title")
    return f"approval {title!r}" if isinstance(title, str) else "the approval"


def _quorum(data: Any) -> str:
    options = _get(data, "options")
    among = f" among {', '.join(str(o) for o in options)}" if isinstance(options, list) else ""
    return f"{_get(data, 'quorum', 1)} decision(s){among}"


def _model(data: Any) -> str:
    provider, model = _get(data, "provider"), _get(data, "model")
    name = "/".join(str(p) for p in (provider, model) if p) or "a model"
    tokens = f"{_get(data, 'input_tokens', 0)} tokens in, {_get(data, 'output_tokens', 0)} out"
    outcome = _get(data, "outcome", "ok")
    tail = "" if outcome in (None, "ok") else f"; it failed ({outcome}: {_get(data, 'error')})"
    return f"Called {name}: {tokens}{tail}."


def _egress(data: Any) -> str:
    where = f"{_get(data, 'method', '')} {_get(data, 'host', '?')}{_get(data, 'path', '')}"
    error = _get(data, "error")
    status = f"failed: {error}" if error else f"answered {_get(data, 'status')}"
    return f"Outbound call {where.strip()} {status}."


def _redacted(data: Any) -> str:
    found = {**(_get(data, "detectors") or {}), **(_get(data, "fields") or {})}
    what = ", ".join(f"{n} {k}" for k, n in sorted(found.items())) or "personal data"
    where = f" before calling {_get(data, 'provider')}" if _get(data, "provider") else ""
    return f"Redacted {what}{where}."


def _by(actor: str | None) -> str:
    return f" by {actor}" if actor and actor != "engine" else ""


_SENTENCES: dict[str, Any] = {
    "run.created": lambda d, a: f"The run of {_get(d, 'workflow', '?')} started{_by(a)}.",
    "run.completed": lambda d, a: "The run completed.",
    "run.failed": lambda d, a: f"The run failed: {_error_text(_get(d, 'error'))}.",
    "run.cancelled": lambda d, a: f"The run was cancelled{_by(a)}.",
    "run.suspended": lambda d, a: f"The run was suspended{_by(a)}.",
    "run.resumed": lambda d, a: f"The run was resumed{_by(a)}.",
    "run.parked": lambda d, a: f"The run waited ({_get(d, 'status', '?')}).",
    "run.purged": lambda d, a: f"The run's data was purged{_by(a)}.",
    "step.completed": lambda d, a: f"{_step(d).capitalize()} completed{_attempts(d)}.",
    "step.failed": lambda d, a: (
        f"{_step(d).capitalize()} failed{_attempts(d)}: {_error_text(_get(d, 'error'))}."
    ),
    "step.attempt_failed": lambda d, a: (
        f"Attempt {_get(d, 'attempt', '?')} failed and was retried: "
        f"{_error_text(_get(d, 'error'))}."
    ),
    "step.retry_scheduled": lambda d, a: f"{_step(d).capitalize()} will be retried.",
    "step.waiting_connector": lambda d, a: (
        f"{_step(d).capitalize()} waits: its connector is switched off."
    ),
    "step.sleeping": lambda d, a: f"{_step(d).capitalize()} sleeps until its timer.",
    "step.waiting": lambda d, a: f"The run waits for event {_get(d, 'topic', '?')!r}.",
    "step.child_started": lambda d, a: f"Child run {_get(d, 'child_id', '?')} started.",
    "event.received": lambda d, a: f"Event {_get(d, 'topic', '?')!r} arrived{_by(a)}.",
    "event.consumed": lambda d, a: "The run took the event.",
    "approval.requested": lambda d, a: f"Asked for {_approval(d)}: {_quorum(d)}.",
    "approval.decision": lambda d, a: (
        f"{a or _get(d, 'by', 'someone')} decided {_get(d, 'option', '?')!r}"
        + (f" ({_get(d, 'comment')})" if _get(d, "comment") else "")
        + "."
    ),
    "approval.refused": lambda d, a: (
        f"A decision{_by(a) or _by(_get(d, 'by'))} was refused: {_get(d, 'reason', '?')}."
    ),
    "approval.resolved": lambda d, a: (
        f"{_approval(d).capitalize()} closed: {_get(d, 'outcome', '?')!r}, decided by "
        f"{', '.join(str(b) for b in _get(d, 'decided_by', []) or []) or 'nobody'}."
    ),
    "approval.expired": lambda d, a: "The approval expired without enough decisions.",
    "approval.escalated": lambda d, a: f"Escalated {_approval(d)} to other approvers.",
    "model.call": lambda d, a: _model(d),
    "model.redacted": lambda d, a: _redacted(d),
    "data.redacted": lambda d, a: _redacted(d),
    "egress.call": lambda d, a: _egress(d),
    "egress.denied": lambda d, a: (
        f"An outbound call to {_get(d, 'host', '?')} was refused: {_get(d, 'reason', '')}."
    ),
    "data.read": lambda d, a: f"{a or 'Someone'} read the run's data ({_get(d, 'what', '?')}).",
    "route.decision": lambda d, a: f"Routed to {_get(d, 'route') or _get(d, 'to') or '?'}.",
}


def describe(kind: str, data: Any, actor: str | None = None) -> str:
    """An audit entry in one plain sentence (the kind itself for kinds without one)."""
    sentence = _SENTENCES.get(kind)
    generic = f"{kind.replace('.', ' ').replace('_', ' ').capitalize()}{_by(actor)}"
    if is_hidden(data):  # sealed whole: withheld from this reader, or erased
        return f"{generic} (its details are withheld or erased)."
    if sentence is None:
        return f"{generic}."
    text: str = sentence(data, actor)
    return text
