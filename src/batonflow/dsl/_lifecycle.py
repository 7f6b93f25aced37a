"""The spec's workflow and task lifecycle CloudEvents, projected from a run's journal.

The journal is the durable record of what happened (kept with the run, replayed after crashes,
read by auditors); the lifecycle events are a view of it in the spec's vocabulary, produced on
demand and identical every time: the same ids, times and data.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import batonflow as bf
from batonflow.dsl._interpreter import DONE_MARK, TASK_MARK

_PREFIX = "io.serverlessworkflow."


def lifecycle_events(run: bf.RunRecord, steps: list[bf.StepRecord]) -> list[dict[str, Any]]:
    """Every lifecycle event of ``run`` so far, in time order."""
    projection = _Projection(run)
    projection.workflow("started", run.started_at or run.created_at, {"definition": projection.ref})
    projection.tasks(steps)
    projection.ending()
    return projection.sorted()


class _Projection:
    def __init__(self, run: bf.RunRecord) -> None:
        self.run = run
        document = json.loads(run.input_json)["definition"]["document"]
        self.ref = {k: document[k] for k in ("name", "namespace", "version")}
        self.name = f"{document['name']}-{run.id}.{document['namespace']}"
        self.events: list[tuple[float, int, dict[str, Any]]] = []

    def emit(self, kind: str, when: float, data: dict[str, Any]) -> None:
        sequence = len(self.events)
        self.events.append(
            (
                when,
                sequence,
                {
                    "specversion": "1.0",
                    "id": f"{self.run.id}-{sequence}",
                    "source": f"/batonflow/runs/{self.run.id}",
                    "type": f"{_PREFIX}{kind}.v1",
                    "time": _iso(when),
                    "subject": self.name,
                    "datacontenttype": "application/json",
                    "data": data,
                },
            )
        )

    def workflow(self, what: str, when: float, extra: dict[str, Any]) -> None:
        self.emit(f"workflow.{what}", when, {"name": self.name, f"{what}At": _iso(when), **extra})

    def task(self, what: str, pointer: str, when: float, **extra: Any) -> None:
        data = {"workflow": self.name, "task": pointer, f"{what}At": _iso(when), **extra}
        self.emit(f"task.{what}", when, data)

    def tasks(self, steps: list[bf.StepRecord]) -> None:
        started: set[str] = set()
        for step in steps:
            if step.kind is bf.StepKind.VALUE and step.name.startswith(TASK_MARK):
                pointer, when = step.name.removeprefix(TASK_MARK), float(step.output_json or 0)
                if pointer in started:
                    self.task("retried", pointer, when)
                else:
                    self.task("created", pointer, when)
                started.add(pointer)
                self.task("started", pointer, when)
            elif step.kind is bf.StepKind.VALUE and step.name.startswith(DONE_MARK):
                self.task(
                    "completed", step.name.removeprefix(DONE_MARK), float(step.output_json or 0)
                )
            elif step.kind is bf.StepKind.STEP and step.name.startswith("/"):
                self._leaf(step)

    def _leaf(self, step: bf.StepRecord) -> None:
        when = step.finished_at or step.started_at or 0.0
        if step.status is bf.StepStatus.COMPLETED:
            output = json.loads(step.output_json) if step.output_json else None
            self.task("completed", step.name, when, output=output)
        elif step.status is bf.StepStatus.FAILED:
            self.task("faulted", step.name, when, error=_problem(step.error_json))

    def ending(self) -> None:
        run, status = self.run, self.run.status
        when = run.finished_at or run.updated_at
        if status is bf.RunStatus.COMPLETED:
            output = json.loads(run.output_json) if run.output_json else None
            self.workflow("completed", when, {"output": output})
        elif status is bf.RunStatus.FAULTED:
            self.workflow("faulted", when, {"error": _problem(run.error_json)})
        elif status is bf.RunStatus.CANCELLED:
            self.workflow("cancelled", when, {})
        elif status is bf.RunStatus.SUSPENDED:
            self.workflow("suspended", when, {})

    def sorted(self) -> list[dict[str, Any]]:
        return [event for _, _, event in sorted(self.events, key=lambda e: (e[0], e[1]))]


def _problem(error_json: str | None) -> dict[str, Any]:
    recorded = json.loads(error_json) if error_json else {}
    state = recorded.get("state")
    if isinstance(state, dict):
        return state
    if recorded.get("type") == "batonflow.errors:RunTimeout":  # the workflow's own timeout
        return {
            "type": "https://serverlessworkflow.io/spec/1.0.0/errors/timeout",
            "status": 408,
            "detail": recorded.get("message", ""),
            "instance": "/",
        }
    return {
        "type": "https://serverlessworkflow.io/spec/1.0.0/errors/runtime",
        "status": 500,
        "detail": recorded.get("message", ""),
    }


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")
