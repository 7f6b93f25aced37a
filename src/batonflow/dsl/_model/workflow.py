"""The workflow document: ``document``, ``input``, ``use``, ``do``, ``timeout``, ``output``,
``schedule`` (and ``evaluate``, from a later DSL draft), and ways to walk its tasks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, model_validator

from batonflow.dsl._model.auth import ReusableAuthenticationPolicy
from batonflow.dsl._model.base import (
    Duration,
    Model,
    OpenModel,
    TaskList,
    invalid,
)
from batonflow.dsl._model.common import (
    Catalog,
    Error,
    ExtensionList,
    Input,
    Output,
    RetryPolicy,
    TaskBase,
    Timeout,
    TimeoutOrReference,
)
from batonflow.dsl._model.events import EventConsumptionStrategy
from batonflow.dsl._model.tasks import Task
from batonflow.dsl._yaml import join_pointer

__all__ = ["Document", "Evaluate", "Schedule", "TaskRef", "Use", "Workflow"]

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")


def _semver(value: str) -> str:
    if not _SEMVER.search(value):
        message = "invalid version {found}; expected {expected}"
        raise invalid("version", message, value, expected="a semantic version such as '1.0.3'")
    return value


def _name(value: str) -> str:
    if not _NAME.search(value):
        expected = "letters, digits and '-', at most 63, not starting or ending with '-'"
        raise invalid("name", "invalid name {found}; expected {expected}", value, expected=expected)
    return value


SemVer = Annotated[str, AfterValidator(_semver)]
Name = Annotated[str, AfterValidator(_name)]


class Document(Model):
    """What the workflow is: its DSL version, namespace, name and version, and descriptions."""

    dsl: SemVer
    namespace: Name
    name: Name
    version: SemVer
    title: str | None = None
    summary: str | None = None
    tags: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class Use(Model):
    """The workflow's reusable components, each by name (extensions in order)."""

    authentications: dict[str, ReusableAuthenticationPolicy] | None = None
    errors: dict[str, Error] | None = None
    extensions: ExtensionList | None = None
    functions: dict[str, Task] | None = None
    retries: dict[str, RetryPolicy] | None = None
    secrets: list[str] | None = None
    timeouts: dict[str, Timeout] | None = None
    catalogs: dict[str, Catalog] | None = None


class Schedule(Model):
    """When to start runs: ``every`` period, by ``cron``, ``after`` the previous run, or ``on``
    events (``read``, from a later DSL draft: how the events are read)."""

    every: Duration | None = None
    cron: str | None = None
    after: Duration | None = None
    on: EventConsumptionStrategy | None = None
    read: Literal["data", "envelope", "raw"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_needs_on(cls, data: Any) -> Any:
        if isinstance(data, dict) and "read" in data and "on" not in data:
            raise invalid("missing", "'read' says how events are read: it needs 'on'", data)
        return data


class Evaluate(Model):
    """How runtime expressions are evaluated (a later DSL draft; DSL 1.0.3 always uses jq)."""

    language: str = "jq"
    mode: Literal["strict", "loose"] = "strict"


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A task where it stands: its JSON pointer (``/do/0/tryGetPet/try/0/getPet``), name,
    definition, and the task list it belongs to (with that list's pointer and its index)."""

    pointer: str
    name: str
    task: TaskBase
    tasks: TaskList
    list_pointer: str
    index: int


class Workflow(OpenModel):
    """A workflow document. Top-level keys the DSL does not define are kept (``model_extra``):
    the schema allows them."""

    document: Document
    input: Input | None = None
    use: Use | None = None
    do: TaskList
    timeout: TimeoutOrReference | None = None
    output: Output | None = None
    schedule: Schedule | None = None
    evaluate: Evaluate | None = None

    @property
    def tasks(self) -> TaskList:
        """The top-level tasks (``do``)."""
        return self.do

    def walk(self) -> Iterator[TaskRef]:
        """Every task of the flow, depth first in document order, starting at ``/do``.
        Reusable functions and extensions are not part of the flow (see ``task_lists``)."""
        yield from _walk(self.do, "/do")

    def task_lists(self) -> Iterator[tuple[str, TaskList]]:
        """Every task list in the document, with its pointer: the flow's, those in reusable
        functions, and the extensions' ``before`` and ``after``."""
        yield from _lists(self.do, "/do")
        use = self.use
        for name, function in (use.functions or {}).items() if use else ():
            for relative, nested in function.task_lists():
                yield from _lists(nested, join_pointer("/use/functions", name) + "/" + relative)
        for index, (name, extension) in enumerate(use.extensions or ()) if use else ():
            base = join_pointer("/use/extensions", index, name)
            for part in ("before", "after"):
                tasks = getattr(extension, part)
                if tasks is not None:
                    yield from _lists(tasks, f"{base}/{part}")

    def find(self, pointer: str) -> TaskRef | None:
        """The task at ``pointer`` in the flow, if there is one."""
        return next((ref for ref in self.walk() if ref.pointer == pointer), None)


def _walk(tasks: TaskList, pointer: str) -> Iterator[TaskRef]:
    for index, (name, task) in enumerate(tasks):
        here = join_pointer(pointer, index, name)
        yield TaskRef(here, name, task, tasks, pointer, index)
        for relative, nested in task.task_lists():
            yield from _walk(nested, f"{here}/{relative}")


def _lists(tasks: TaskList, pointer: str) -> Iterator[tuple[str, TaskList]]:
    yield pointer, tasks
    for index, (name, task) in enumerate(tasks):
        for relative, nested in task.task_lists():
            yield from _lists(nested, join_pointer(pointer, index, name) + "/" + relative)
