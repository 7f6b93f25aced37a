"""The task types, and :data:`Task`, the union of them all.

Which type a task is follows from the key that names it (``call``, ``do``, ``emit``, ``for``,
``fork``, ``listen``, ``raise``, ``run``, ``set``, ``switch``, ``try``, ``wait``), so a mistake
in a task is reported against its own type only. Every task class has ``kind``, the type's
key, and ``task_lists()``, the task lists nested in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, Tag, model_validator

from batonflow.dsl._model.base import (
    ARRAY,
    OBJECT,
    STRING,
    TAG,
    Duration,
    Model,
    NamedList,
    OpenModel,
    TaskList,
    by_json_kind,
    by_key,
    invalid,
    require_one_of,
)
from batonflow.dsl._model.calls import CallTask
from batonflow.dsl._model.common import (
    CatchErrors,
    Error,
    ExternalResource,
    RetryPolicyOrReference,
    TaskBase,
)
from batonflow.dsl._model.events import (
    EmittedEventProperties,
    EventConsumptionStrategy,
    SubscriptionIterator,
)

__all__ = [
    "Catch",
    "Container",
    "ContainerLifetime",
    "DoTask",
    "EmitConfig",
    "EmitTask",
    "EmittedEvent",
    "ErrorOrReference",
    "ForLoop",
    "ForTask",
    "ForkConfig",
    "ForkTask",
    "ListenConfig",
    "ListenTask",
    "Process",
    "RaiseConfig",
    "RaiseTask",
    "RunContainer",
    "RunScript",
    "RunShell",
    "RunTask",
    "RunWorkflow",
    "Script",
    "SetTask",
    "Shell",
    "Subflow",
    "SwitchCase",
    "SwitchCases",
    "SwitchTask",
    "TASK_KINDS",
    "Task",
    "TryTask",
    "WaitTask",
]

#: the keys that name a task's type
TASK_KINDS = (
    "call", "do", "emit", "for", "fork", "listen", "raise", "run", "set", "switch", "try", "wait",
)  # fmt: skip


class DoTask(TaskBase):
    """Run ``do``'s tasks in order."""

    kind: ClassVar[str] = "do"
    do: TaskList

    def task_lists(self) -> Sequence[tuple[str, TaskList]]:
        return (("do", self.do),)


# -- for ------------------------------------------------------------------------------------------

ForIn = Annotated[
    Annotated[str, Tag(STRING)] | Annotated[list[dict[str, Any]], Tag(ARRAY)],
    by_json_kind("a runtime expression (a string) or a list of objects"),
]


class ForLoop(Model):
    """Iterate over ``in`` (a runtime expression; a later DSL draft also allows an inline
    list), the item in variable ``each`` and its index in ``at``."""

    each: str = "item"
    in_: ForIn = Field(alias="in")
    at: str = "index"


class ForTask(TaskBase):
    """Run ``do`` for each item of ``for.in`` while ``while`` holds."""

    kind: ClassVar[str] = "for"
    for_: ForLoop = Field(alias="for")
    while_: str | None = Field(None, alias="while")
    do: TaskList

    def task_lists(self) -> Sequence[tuple[str, TaskList]]:
        return (("do", self.do),)


# -- fork -----------------------------------------------------------------------------------------


class ForkConfig(Model):
    branches: TaskList
    compete: bool = False


class ForkTask(TaskBase):
    """Run ``fork.branches`` concurrently; with ``compete``, the first to finish wins."""

    kind: ClassVar[str] = "fork"
    fork: ForkConfig

    def task_lists(self) -> Sequence[tuple[str, TaskList]]:
        return (("fork/branches", self.fork.branches),)


# -- emit and listen ------------------------------------------------------------------------------


class EmittedEvent(OpenModel):
    with_: EmittedEventProperties | None = Field(None, alias="with")


class EmitConfig(Model):
    event: EmittedEvent


class EmitTask(TaskBase):
    kind: ClassVar[str] = "emit"
    emit: EmitConfig


class ListenConfig(Model):
    to: EventConsumptionStrategy
    read: Literal["data", "envelope", "raw"] = "data"


class ListenTask(TaskBase):
    kind: ClassVar[str] = "listen"
    listen: ListenConfig
    foreach: SubscriptionIterator | None = None

    def task_lists(self) -> Sequence[tuple[str, TaskList]]:
        if self.foreach is not None and self.foreach.do is not None:
            return (("foreach/do", self.foreach.do),)
        return ()


# -- raise ----------------------------------------------------------------------------------------

ErrorOrReference = Annotated[
    Annotated[Error, Tag(OBJECT)] | Annotated[str, Tag(STRING)],
    by_json_kind("an error (an object) or the name of one in use.errors"),
]


class RaiseConfig(Model):
    error: ErrorOrReference


class RaiseTask(TaskBase):
    kind: ClassVar[str] = "raise"
    raise_: RaiseConfig = Field(alias="raise")


# -- run ------------------------------------------------------------------------------------------


class ContainerLifetime(Model):
    cleanup: Literal["always", "never", "eventually"]
    after: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _after_iff_eventually(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "cleanup" not in data:
            return data
        eventually = data["cleanup"] == "eventually"
        if eventually and "after" not in data:
            raise invalid("missing", "cleanup 'eventually' needs 'after': when to clean up", data)
        if not eventually and "after" in data:
            message = "'after' applies only to cleanup 'eventually'"
            raise invalid("unexpected", message, data)
        return data


class Container(Model):
    image: str
    name: str | None = None
    command: str | None = None
    ports: dict[str, Any] | None = None
    volumes: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    stdin: str | None = None
    arguments: list[str] | None = None
    lifetime: ContainerLifetime | None = None
    pull_policy: Literal["ifNotPresent", "always", "never"] = "ifNotPresent"


class Script(Model):
    """A script in ``language``, inline (``code``) or external (``source``)."""

    language: str
    code: str | None = None
    source: ExternalResource | None = None
    stdin: str | None = None
    arguments: list[str] | None = None
    environment: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_body(cls, data: Any) -> Any:
        if isinstance(data, dict):
            require_one_of(data, ("code", "source"), "a script")
        return data


class Shell(Model):
    command: str
    stdin: str | None = None
    arguments: list[str] | None = None
    environment: dict[str, Any] | None = None


class Subflow(Model):
    namespace: str
    name: str
    version: str  # required in DSL 1.0.3; 'latest' means the newest
    input: dict[str, Any] | None = None


class _ProcessBase(Model):
    process: ClassVar[str] = ""
    await_: bool = Field(True, alias="await")
    return_: Literal["stdout", "stderr", "code", "all", "none"] = Field("stdout", alias="return")


class RunContainer(_ProcessBase):
    process: ClassVar[str] = "container"
    container: Container


class RunScript(_ProcessBase):
    process: ClassVar[str] = "script"
    script: Script


class RunShell(_ProcessBase):
    process: ClassVar[str] = "shell"
    shell: Shell


class RunWorkflow(_ProcessBase):
    process: ClassVar[str] = "workflow"
    workflow: Subflow


_process_check, _process_choice = by_key(("container", "script", "shell", "workflow"), "run")
Process = Annotated[
    Annotated[
        Annotated[RunContainer, Tag(TAG + "container")]
        | Annotated[RunScript, Tag(TAG + "script")]
        | Annotated[RunShell, Tag(TAG + "shell")]
        | Annotated[RunWorkflow, Tag(TAG + "workflow")],
        _process_choice,
    ],
    _process_check,
]


class RunTask(TaskBase):
    kind: ClassVar[str] = "run"
    run: Process


# -- set, switch, try, wait -----------------------------------------------------------------------


def _not_empty(value: dict[str, Any]) -> dict[str, Any]:
    if not value:
        raise invalid("empty", "'set' must set at least one property", value)
    return value


SetValue = Annotated[
    Annotated[dict[str, Any], AfterValidator(_not_empty), Tag(OBJECT)]
    | Annotated[str, Tag(STRING)],
    by_json_kind("the data to set: an object, or a runtime expression (a string)"),
]


class SetTask(TaskBase):
    kind: ClassVar[str] = "set"
    set: SetValue


class SwitchCase(Model):
    """A case: when ``when`` holds (or always, without ``when``), go to ``then``."""

    when: str | None = None
    then: str


class SwitchCases(NamedList[SwitchCase]):
    what = "a switch item"
    noun = "case"
    min_items = 1

    @classmethod
    def item_type(cls) -> Any:
        return SwitchCase


class SwitchTask(TaskBase):
    kind: ClassVar[str] = "switch"
    switch: SwitchCases


class Catch(Model):
    """Which errors to catch (``errors.with``, ``when``, ``exceptWhen``), the variable to put the
    error in (``as``), how to retry (``retry``), and what to run instead (``do``). ``then`` (a
    later DSL draft) is where to go after a caught error."""

    errors: CatchErrors | None = None
    as_: str = Field("error", alias="as")
    when: str | None = None
    except_when: str | None = None
    retry: RetryPolicyOrReference | None = None
    do: TaskList | None = None
    then: str | None = None


class TryTask(TaskBase):
    kind: ClassVar[str] = "try"
    try_: TaskList = Field(alias="try")
    catch: Catch

    def task_lists(self) -> Sequence[tuple[str, TaskList]]:
        lists: list[tuple[str, TaskList]] = [("try", self.try_)]
        if self.catch.do is not None:
            lists.append(("catch/do", self.catch.do))
        return lists


class WaitTask(TaskBase):
    kind: ClassVar[str] = "wait"
    wait: Duration


# -- the union ------------------------------------------------------------------------------------


def _task_kinds(value: Any) -> Any:
    if isinstance(value, dict):
        keys = [k for k in TASK_KINDS if not (k == "do" and "for" in value)]
        require_one_of(value, keys, "a task")
    return value


def _task_kind(value: Any) -> str | None:
    if isinstance(value, TaskBase):  # serializing
        return TAG + value.kind
    if not isinstance(value, dict):
        return None
    if "for" in value:
        return TAG + "for"
    return next((TAG + k for k in TASK_KINDS if k in value), None)


_TaskUnion = (
    Annotated[CallTask, Tag(TAG + "call")]
    | Annotated[DoTask, Tag(TAG + "do")]
    | Annotated[EmitTask, Tag(TAG + "emit")]
    | Annotated[ForTask, Tag(TAG + "for")]
    | Annotated[ForkTask, Tag(TAG + "fork")]
    | Annotated[ListenTask, Tag(TAG + "listen")]
    | Annotated[RaiseTask, Tag(TAG + "raise")]
    | Annotated[RunTask, Tag(TAG + "run")]
    | Annotated[SetTask, Tag(TAG + "set")]
    | Annotated[SwitchTask, Tag(TAG + "switch")]
    | Annotated[TryTask, Tag(TAG + "try")]
    | Annotated[WaitTask, Tag(TAG + "wait")]
)

#: any task; ``task.kind`` says which type
Task = Annotated[
    Annotated[
        _TaskUnion,
        Discriminator(
            _task_kind,
            custom_error_type="wrong_type",
            custom_error_message="expected a task (an object)",
        ),
    ],
    BeforeValidator(_task_kinds),
]
