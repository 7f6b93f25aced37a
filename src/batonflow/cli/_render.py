"""Rendering: Rich tables for people, JSON documents for scripts. Nothing here touches a store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shlex
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.json import JSON
from rich.table import Table
from rich.text import Text

import batonflow as bf
from batonflow.cli._io import DEFAULT_DB
from batonflow.cli._ops import RunDetails
from batonflow.cli._waiting import Wait

STATUS_STYLE = {
    "pending": "cyan",
    "running": "cyan",
    "waiting": "yellow",
    "suspended": "magenta",
    "cancelled": "red",
    "faulted": "bold red",
    "completed": "green",
    "failed": "red",
}

# -- values -----------------------------------------------------------------------------------


def decode(text: str | None) -> Any:
    """A stored JSON text as a value (kept as text in the unlikely case it is not JSON)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def clock(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).astimezone().strftime("%H:%M:%S.%f")[:-3]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 0.001:
        return "<1ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def run_duration(run: bf.RunRecord) -> float:
    """Wall time from creation to the end (or to now, for an unfinished run)."""
    return (run.finished_at or time.time()) - run.created_at


def short_error(error: Any) -> str:
    """One line for a recorded error or its problem (``bf.problem_of``): ``ValueError: boom``
    for a Python error; for a workflow's own problem its title (or type), detail, status and
    where in the document (``Task timed out: ... (408 at /do/1/logInCrm)``)."""
    if not isinstance(error, dict):
        return str(error)
    problem = error if "class" in error else bf.problem_of(error)
    detail = problem.get("detail")
    name = str(problem["class"]).rpartition(":")[2] or "Error"
    if not str(problem["type"]).endswith(str(problem["class"]).replace(":", ".")):
        name = str(problem.get("title") or problem["type"])  # the workflow's own problem
        where = f" at {problem['instance']}" if problem.get("instance") else ""
        detail = f"{detail or ''} ({problem['status']}{where})".strip()
    return f"{name}: {detail}" if detail else name


def db_flag(db: str) -> str:
    return "" if db == DEFAULT_DB else f" --db {shlex.quote(db)}"


# -- JSON documents -----------------------------------------------------------------------------


def run_doc(run: bf.RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow": run.workflow,
        "workflow_ref": run.workflow_ref,
        "status": run.status.value,
        "input": decode(run.input_json),
        "output": decode(run.output_json),
        "error": bf.problem_of(run),
        "idempotency_key": run.idempotency_key,
        "parent_id": run.parent_id,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "updated_at": run.updated_at,
        "duration": run_duration(run),
        "deadline": run.deadline,
        "wake_at": run.wake_at,
        "activations": run.activations,
        "started_by": run.started_by,
        "subjects": list(run.subjects),
    }


def details_doc(d: RunDetails) -> dict[str, Any]:
    steps = []
    for s in d.steps:
        attempts = [a for a in d.attempts if a.step_id == s.step_id]
        steps.append(
            {
                "position": s.step_id,
                "kind": s.kind.value,
                "name": s.name,
                "status": s.status.value,
                "attempts": s.attempts,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "duration": _span(s.started_at, s.finished_at),
                "wake_at": s.wake_at,
                "topic": s.topic,
                "key": s.key,
                "child_id": s.child_id,
                "input": decode(s.input_json),
                "output": decode(s.output_json),
                "error": decode(s.error_json),
                "failed_attempts": [_attempt_doc(a) for a in attempts],
            }
        )
    return {
        **run_doc(d.run),
        "steps": steps,
        "events": [event_doc(e) for e in d.events],
        "waiting_on": [dataclasses.asdict(w) for w in d.waits],
    }


def _attempt_doc(a: bf.AttemptRecord) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "started_at": a.started_at,
        "finished_at": a.finished_at,
        "duration": a.finished_at - a.started_at,
        "error": decode(a.error_json),
    }


def event_doc(e: bf.EventRecord) -> dict[str, Any]:
    return {
        "id": e.id,
        "topic": e.topic,
        "key": e.key,
        "run_id": e.run_id,
        "payload": decode(e.payload_json),
        "created_at": e.created_at,
        "consumed_run": e.consumed_run,
        "consumed_step": e.consumed_step,
    }


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


# -- people ----------------------------------------------------------------------------------


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def render_details(out: Console, d: RunDetails, *, db: str, full: bool) -> None:
    """A run: header, output or error, step timeline, and (``full``) events and input."""
    run = d.run
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("run", run.id)
    head.add_row("workflow", run.workflow + (f"  ({run.workflow_ref})" if full else ""))
    head.add_row("status", status_text(run.status.value))
    head.add_row("duration", duration(run_duration(run)))
    if run.started_by:
        head.add_row("started by", run.started_by)
    if run.subjects and full:
        head.add_row("subjects", ", ".join(s[:14] + "…" for s in run.subjects))
    if full:
        for label, value in _details_rows(run):
            head.add_row(label, value)
    out.print(head)
    if full:
        _print_json(out, "input", decode(run.input_json))
    if run.status is bf.RunStatus.COMPLETED:
        _print_json(out, "output", decode(run.output_json))
    problem = bf.problem_of(run)
    if problem is not None:
        _print_error(out, problem, full=full)
    if d.steps:
        out.print(_steps_table(d, full=full))
    if full and d.events:
        out.print(_events_table(d.events))
    if d.waits:
        render_waits(out, d, db=db)
    elif full and run.status is bf.RunStatus.PENDING:
        flag = db_flag(db)
        out.print(
            f"The run is pending: `batonflow worker{flag}` executes it"
            f" (or `batonflow resume {run.id} --wait{flag}`).",
            markup=False,
            soft_wrap=True,
        )


def _details_rows(run: bf.RunRecord) -> Iterable[tuple[str, str]]:
    yield "created", when(run.created_at)
    yield "started", when(run.started_at)
    yield "finished", when(run.finished_at)
    if run.wake_at is not None:
        yield "wakes", when(run.wake_at)
    if run.deadline is not None:
        yield "deadline", when(run.deadline)
    if run.idempotency_key is not None:
        yield "idempotency key", run.idempotency_key
    if run.parent_id is not None:
        yield "parent", run.parent_id
    yield "activations", str(run.activations)


def _print_json(out: Console, label: str, value: Any) -> None:
    out.print(Text(label, style="bold"))
    out.print(JSON.from_data(value, indent=2, ensure_ascii=False))


def _print_error(out: Console, problem: dict[str, Any], *, full: bool) -> None:
    """The run's problem: one line, then (``full``) its members and traceback."""
    line = Text("error     ", style="bold")
    line.append(short_error(problem), style="red")
    if problem.get("step"):
        line.append(f"  (step {problem['step']})")
    out.print(line)
    if not full:
        return
    members = Table.grid(padding=(0, 2))
    members.add_column(style="dim")
    members.add_column()
    for key in ("type", "status", "title", "detail", "instance", "class"):
        if problem.get(key) is not None:
            members.add_row(f"  {key}", str(problem[key]))
    out.print(members)
    if problem.get("traceback"):
        out.print(Text(str(problem["traceback"]).rstrip(), style="dim"))


def _steps_table(d: RunDetails, *, full: bool) -> Table:
    table = Table(title="steps", title_justify="left", title_style="bold")
    for name in ("#", "kind", "name"):
        table.add_column(name, no_wrap=name != "name")
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right")
    if full:
        table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    document_run = d.run.workflow == DSL_WORKFLOW or "/" in d.run.workflow
    for s in d.steps:
        started = [clock(s.started_at)] if full else []
        if document_run and s.kind is bf.StepKind.VALUE:  # the interpreter's bookkeeping
            if s.name.startswith("task "):  # a task's start: the path the run took
                pointer = s.name.removeprefix("task ")
                table.add_row(s.step_id, "task", pointer, "", "", *started, "")
            continue
        table.add_row(
            s.step_id, s.kind.value, _step_name(s), status_text(s.status.value),
            str(s.attempts) if s.kind is bf.StepKind.STEP else "", *started, _step_time(s),
        )  # fmt: skip
        attempts = [a for a in d.attempts if a.step_id == s.step_id]
        for a in attempts:
            started = [clock(a.started_at)] if full else []
            table.add_row(
                "", Text("attempt", style="dim"), Text(f"↳ {short_error(decode(a.error_json))}",
                style="red"), status_text("failed"), str(a.attempt), *started,
                duration(a.finished_at - a.started_at),
            )  # fmt: skip
        if s.status is bf.StepStatus.FAILED and not attempts and s.error_json:
            text = Text(f"↳ {short_error(decode(s.error_json))}", style="red")
            table.add_row("", Text("error", style="dim"), text, "", "", *([""] if full else []), "")
    return table


def _step_name(s: bf.StepRecord) -> str:
    if s.kind is bf.StepKind.EVENT:
        return s.name + (f" (key {s.key})" if s.key is not None else "")
    if s.kind is bf.StepKind.CHILD:
        return f"{s.name} → {s.child_id}"
    if s.kind is bf.StepKind.PARALLEL:
        return f"{s.output_json} branches"
    return s.name


def _step_time(s: bf.StepRecord) -> str:
    if s.status is not bf.StepStatus.PENDING:
        return duration(_span(s.started_at, s.finished_at))
    if s.wake_at is not None:
        return f"until {clock(s.wake_at)}"
    return "waiting"


def _events_table(events: list[bf.EventRecord]) -> Table:
    table = Table(title="events", title_justify="left", title_style="bold")
    for name in ("#", "topic", "key", "sent", "consumed by", "payload"):
        table.add_column(name, no_wrap=name != "payload", overflow="ellipsis")
    for e in events:
        consumed = f"step {e.consumed_step}" if e.consumed_step else "-"
        payload = e.payload_json if len(e.payload_json) <= 60 else e.payload_json[:57] + "..."
        table.add_row(str(e.id), e.topic, e.key or "-", when(e.created_at), consumed, payload)
    return table


def describe_wait(w: Wait, now: float) -> str:
    due = f"{when(w.wake_at)} (in {duration(w.wake_at - now)})" if w.wake_at is not None else ""
    if w.kind == "suspended":
        return f"run {w.run_id} is suspended by an operator"
    if w.kind == bf.StepKind.EVENT.value:
        limit = f", times out {due}" if due else ", no timeout"
        if w.topic == CLOUDEVENT:  # a workflow document's listen task
            return f"a CloudEvent {_filters(w)} (task {w.key}{limit})"
        key = f" with key {w.key!r}" if w.key is not None else ""
        return f"event {w.topic!r}{key} (step {w.step_id}{limit})"
    if w.kind == bf.StepKind.SLEEP.value:
        return f"sleep until {due} (step {w.step_id})"
    if w.kind == bf.StepKind.CHILD.value:
        return f"child run {w.child_id} ({w.name}, {w.child_status})"
    if w.kind == bf.StepKind.STEP.value:
        return f"retry of step {w.name!r} at {due} (step {w.step_id})"
    return f"{w.kind} {w.name!r} (step {w.step_id})"


CLOUDEVENT = "cloudevent"  # the topic of a DSL listen task's waits
DSL_WORKFLOW = "serverless-workflow"  # the kernel workflow that runs workflow documents
# (DSL runs are recorded under their document's "namespace/name"; older ones under this)


def _filters(w: Wait) -> str:
    """A listen wait's filters, briefly: "type=com.x.paid or type=com.x.refunded"."""
    filters = (w.detail or {}).get("filters") or [{}]
    shown = [
        ", ".join(f"{k}={v}" for k, v in (f.get("with") or {}).items()) or "of any kind"
        for f in filters
    ]
    return "with " + " or ".join(shown)


def _example_attributes(w: Wait) -> dict[str, Any]:
    filters = (w.detail or {}).get("filters") or [{}]
    attributes = filters[0].get("with") or {}
    return {k: v for k, v in attributes.items() if isinstance(v, str) and "${" not in v}


def wait_hints(d: RunDetails, db: str) -> list[str]:
    flag = db_flag(db)
    hints: list[str] = []
    for w in d.waits:
        if w.kind == bf.StepKind.EVENT.value and w.topic == CLOUDEVENT:
            example = {"id": "1", "source": "/you", **_example_attributes(w)}
            hints.append(f"batonflow events send{flag} --data {shlex.quote(json.dumps(example))}")
        elif w.kind == bf.StepKind.EVENT.value:
            to = f"--run {w.run_id}" if w.key is None else f"--key {shlex.quote(w.key)}"
            hints.append(
                f"batonflow events deliver {shlex.quote(w.topic or '')} {to}{flag} --data '...'"
            )
        elif w.kind == "suspended":
            hints.append(f"batonflow resume {w.run_id}{flag}")
    hints.append(f"batonflow worker{flag}   (continues every run when it can; Ctrl-C stops it)")
    return list(dict.fromkeys(hints))


def render_waits(out: Console, d: RunDetails, *, db: str) -> None:
    now = time.time()
    out.print(Text("waiting on", style="bold yellow"))
    for w in d.waits:
        out.print(f"  • {describe_wait(w, now)}", markup=False, soft_wrap=True)
    if d.run.status is bf.RunStatus.WAITING:
        out.print(
            "The run is parked in the database; nothing more happens in this process. "
            "Continue it with:",
            markup=False,
        )
        for hint in wait_hints(d, db):
            out.print(f"  {hint}", markup=False, soft_wrap=True)


def render_runs(out: Console, runs: list[bf.RunRecord]) -> None:
    if not runs:
        out.print("no runs", markup=False)
        return
    table = Table()
    for name in ("run", "workflow", "status", "created", "duration"):
        table.add_column(name, no_wrap=True)
    for r in runs:
        table.add_row(
            r.id, r.workflow, status_text(r.status.value), when(r.created_at),
            duration(run_duration(r)),
        )  # fmt: skip
    out.print(table)


def render_transition(out: Console, before: bf.RunRecord, after: bf.RunRecord) -> None:
    line = Text(f"run {after.id}: ")
    line.append_text(status_text(before.status.value))
    line.append(" → ")
    line.append_text(status_text(after.status.value))
    out.print(line)
