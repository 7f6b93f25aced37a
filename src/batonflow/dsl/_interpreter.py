"""The DSL interpreter: walks a workflow document's task lists on the durable kernel.

It runs inside one kernel workflow function, so it is replayed from the top after a crash or a
wake-up like any workflow. Everything it decides comes from the document, the run's input and
recorded results, so a replay takes the same path: leaf tasks (``set``, ``call``, ``emit``,
``raise``) are kernel steps whose results are journaled, ``wait`` is a durable sleep,
``run: workflow`` a child run, ``fork`` a parallel group; data-flow expressions (``input.from``,
``output.as``, ``export.as``, ``if``, ``switch``) are re-evaluated on replay from recorded data.

The interpreter walks the validated plain document rather than the typed model: runtime
expressions see definitions as plain data (``$task.definition``, ``$workflow.definition``), and
the typed model exists for validation and static tools.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import batonflow as bf
from batonflow.dsl import _expr
from batonflow.dsl._auth import AuthResolver
from batonflow.dsl._durations import to_seconds
from batonflow.dsl._openapi import OpenApiDocuments
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError

if TYPE_CHECKING:
    from batonflow.dsl._runtime import DslRuntime

TASK_KINDS = (
    "for", "try", "fork", "call", "emit", "listen", "raise", "run", "set", "switch", "wait", "do",
)  # fmt: skip  # "for" and "try" before "do": their tasks carry a nested "do" too

#: Journal values named "task <pointer>" mark when each task started, and "done <pointer>" when
#: a composite task ended (a leaf task's own step record says when it ended).
TASK_MARK = "task "
DONE_MARK = "done "

Handler = Callable[["Interpreter", "TaskCall"], Awaitable["TaskResult"]]


def task_kind(task: dict[str, Any]) -> str:
    for kind in TASK_KINDS:
        if kind in task:
            return kind
    raise WorkflowError(Problem.of(ErrorType.CONFIGURATION, f"not a task: {sorted(task)}"))


@dataclass(frozen=True, slots=True)
class TaskCall:
    """One task about to run: its name, definition, place in the document and input."""

    name: str
    task: dict[str, Any]
    pointer: str
    input: Any  # the transformed task input
    raw_input: Any
    scope: dict[str, Any]  # variables in scope: for-loop items, caught errors
    descriptor: dict[str, Any]  # $task


@dataclass(slots=True)
class TaskResult:
    output: Any
    then: str | None = None  # a switch's chosen directive overrides the task's own


class EndWorkflow(Exception):
    """``then: end``: the workflow completes now with this output."""

    def __init__(self, output: Any) -> None:
        super().__init__("end")
        self.output = output


@dataclass
class Interpreter:
    runtime: DslRuntime
    ctx: bf.Context
    document: dict[str, Any]
    raw_input: Any
    secrets: dict[str, Any] = field(default_factory=dict)
    context: Any = field(default_factory=dict)  # $context
    workflow: dict[str, Any] = field(default_factory=dict)  # $workflow
    _auth: AuthResolver | None = None
    _documents: OpenApiDocuments | None = None

    @property
    def auth(self) -> AuthResolver:
        """Credentials for this run's calls: its secrets, its named policies, tokens cached."""
        if self._auth is None:
            policies = (self.document.get("use") or {}).get("authentications") or {}
            self._auth = AuthResolver(
                self.runtime.client,
                secrets=self.secrets,
                policies=policies,
                clock=self.ctx.engine.clock,
            )
        return self._auth

    @property
    def documents(self) -> OpenApiDocuments:
        if self._documents is None:
            self._documents = OpenApiDocuments(self.runtime.client, self.auth)
        return self._documents

    # -- the run ------------------------------------------------------------------------------
    async def run(self) -> Any:
        started = await self.ctx.now()
        self.workflow = {
            "id": self.ctx.run_id,
            "definition": self.document,
            "input": self.raw_input,
            "startedAt": datetime_descriptor(started),
        }
        data = self.raw_input
        spec_input = self.document.get("input") or {}
        await self.validate(spec_input.get("schema"), data, "/input/schema", "workflow input")
        if "from" in spec_input:
            args = _expr.Arguments(
                workflow=self.workflow, runtime=self.runtime.descriptor, secrets=self.secrets
            )
            data = await self.evaluate(spec_input["from"], data, args, "/input/from")
        try:
            data = await self.do_list(self.document.get("do", []), "/do", data, {})
        except EndWorkflow as end:
            data = end.output
        spec_output = self.document.get("output") or {}
        if "as" in spec_output:
            data = await self.evaluate(spec_output["as"], data, self.arguments({}), "/output/as")
        await self.validate(spec_output.get("schema"), data, "/output/schema", "workflow output")
        return data

    # -- task lists and flow directives -------------------------------------------------------
    async def do_list(
        self, items: list[dict[str, Any]], pointer: str, data: Any, scope: dict[str, Any]
    ) -> Any:
        """Run a task list; ``exit`` leaves it, ``end`` ends the workflow."""
        names = [next(iter(item)) for item in items]
        index = 0
        while index < len(items):
            name = names[index]
            result = await self.run_task(
                name, items[index][name], f"{pointer}/{index}/{name}", data, scope
            )
            data = result.output
            directive = result.then or "continue"
            if directive == "continue":
                index += 1
            elif directive == "exit":
                return data
            elif directive == "end":
                raise EndWorkflow(data)
            elif directive in names:
                index = names.index(directive)
            else:
                raise WorkflowError(
                    Problem.of(
                        ErrorType.CONFIGURATION,
                        f"then: {directive!r} names no task in this list ({', '.join(names)})",
                        instance=f"{pointer}/{index}/{name}/then",
                    )
                )
        return data

    async def run_task(
        self, name: str, task: dict[str, Any], pointer: str, raw_input: Any, scope: dict[str, Any]
    ) -> TaskResult:
        descriptor: dict[str, Any] = {
            "name": name,
            "reference": pointer,
            "definition": task,
            "input": raw_input,
        }
        started = await self.ctx.now(f"{TASK_MARK}{pointer}")  # the task's place in history
        descriptor["startedAt"] = datetime_descriptor(started)
        if "if" in task:
            args = self.arguments(scope, task=descriptor)
            if not await self.condition(task["if"], raw_input, args, f"{pointer}/if"):
                return TaskResult(raw_input)  # skipped: the raw input becomes the output
        spec_input = task.get("input") or {}
        await self.validate(
            spec_input.get("schema"), raw_input, f"{pointer}/input/schema", "task input"
        )
        data = raw_input
        if "from" in spec_input:
            args = self.arguments(scope, task=descriptor)
            data = await self.evaluate(spec_input["from"], raw_input, args, f"{pointer}/input/from")
        call = TaskCall(name, task, pointer, data, raw_input, scope, descriptor)
        try:
            result = await self.execute(call)
        except WorkflowError as error:
            raise WorkflowError(error.problem.with_instance(pointer)) from error
        if task_kind(task) not in LEAF_KINDS:
            await self.ctx.now(f"{DONE_MARK}{pointer}")
        descriptor["output"] = result.output
        output = await self.transform_output(call, result.output)
        await self.export(call, output)
        return TaskResult(output, result.then or task.get("then"))

    async def execute(self, call: TaskCall) -> TaskResult:
        from batonflow.dsl._tasks import HANDLERS

        kind = task_kind(call.task)
        timeout = self.timeout_of(call.task, call.pointer)
        if timeout is None or kind in LEAF_KINDS:  # leaf steps apply their own timeout
            return await HANDLERS[kind](self, call)
        started = call.descriptor["startedAt"]["epoch"]["milliseconds"] / 1000
        return await self.within(HANDLERS[kind](self, call), started, timeout, call.pointer)

    async def transform_output(self, call: TaskCall, raw_output: Any) -> Any:
        spec = call.task.get("output") or {}
        output = raw_output
        if "as" in spec:
            args = self.arguments(call.scope, task=call.descriptor, input=call.input)
            output = await self.evaluate(spec["as"], raw_output, args, f"{call.pointer}/output/as")
        await self.validate(
            spec.get("schema"), output, f"{call.pointer}/output/schema", "task output"
        )
        return output

    async def export(self, call: TaskCall, output: Any) -> None:
        spec = call.task.get("export") or {}
        if "as" in spec:
            args = self.arguments(call.scope, task=call.descriptor, input=call.input, output=output)
            self.context = await self.evaluate(
                spec["as"], output, args, f"{call.pointer}/export/as"
            )
        schema = spec.get("schema")
        await self.validate(
            schema, self.context, f"{call.pointer}/export/schema", "exported context"
        )

    # -- timeouts -------------------------------------------------------------------------------
    def timeout_of(self, task: dict[str, Any], pointer: str) -> float | None:
        spec = task.get("timeout")
        if spec is None:
            return None
        if isinstance(spec, str):  # a named timeout from use.timeouts
            spec = self.use("timeouts", spec, f"{pointer}/timeout")
        return to_seconds(spec.get("after"), where=f"{pointer}/timeout/after")

    def use(self, section: str, name: str, where: str) -> Any:
        """A reusable component from the document's ``use`` section, by name."""
        found = ((self.document.get("use") or {}).get(section) or {}).get(name)
        if found is None:
            raise WorkflowError(
                Problem.of(
                    ErrorType.CONFIGURATION,
                    f"{name!r} is not defined in use.{section}",
                    instance=where,
                )
            )
        return found

    async def within(
        self, work: Awaitable[TaskResult], started: float, seconds: float, pointer: str
    ) -> TaskResult:
        """Bound a composite task in time, durably: the deadline counts from the task's recorded
        start; parks never outlast it and steps inside are cut off at it (the kernel's deadline
        scope), so a replay reaches the same verdict."""
        try:
            with self.ctx.deadline(started + seconds):
                return await work
        except bf.DeadlineExceeded:
            raise timeout_error(pointer, seconds) from None

    # -- expressions ---------------------------------------------------------------------------
    def arguments(self, scope: dict[str, Any], **extra: Any) -> _expr.Arguments:
        """The runtime expression arguments: $context, $workflow, $runtime, $secrets, the
        variables in scope (for items, caught errors) and ``extra`` ($task, $input, $output)."""
        return _expr.Arguments(
            context=self.context,
            workflow=self.workflow,
            runtime=self.runtime.descriptor,
            secrets=self.secrets,
            variables=scope,
            **extra,
        )

    async def evaluate(self, expression: Any, data: Any, args: _expr.Arguments, where: str) -> Any:
        """An expression (``${ }`` or bare jq), or an object whose ``${ }`` strings are;
        under the runtime's expression budget."""
        evaluator = self.runtime.evaluator
        if isinstance(expression, str):
            return await evaluator.evaluate(expression, data, args, instance=where)
        return await evaluator.template(expression, data, args, instance=where)

    async def template(self, value: Any, data: Any, args: _expr.Arguments, where: str) -> Any:
        """``value`` with its ``${ }`` strings evaluated; other strings stay as written."""
        return await self.runtime.evaluator.template(value, data, args, instance=where)

    async def condition(
        self, expression: str, data: Any, args: _expr.Arguments, where: str
    ) -> bool:
        return await self.runtime.evaluator.condition(expression, data, args, instance=where)

    async def validate(self, schema: Any, value: Any, where: str, what: str) -> None:
        if schema is not None:
            await self.runtime.schemas.validate(schema, value, where, what, self.runtime.evaluator)


LEAF_KINDS = frozenset({"call", "set", "emit", "raise", "run"})


def timeout_error(pointer: str, seconds: float) -> WorkflowError:
    return WorkflowError(
        Problem.of(
            ErrorType.TIMEOUT,
            f"the task ran past its {seconds:g}s timeout",
            title="Task timed out",
            instance=pointer,
        )
    )


def datetime_descriptor(epoch: float) -> dict[str, Any]:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return {
        "iso8601": moment.isoformat().replace("+00:00", "Z"),
        "epoch": {"seconds": int(epoch), "milliseconds": int(epoch * 1000)},
    }
