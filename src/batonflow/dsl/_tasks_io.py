"""Tasks that reach outside the run: call, emit, listen, run."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import batonflow as bf
from batonflow.core import wants_context
from batonflow.dsl import _events
from batonflow.dsl._http import call_http
from batonflow.dsl._interpreter import Interpreter, TaskCall, TaskResult, datetime_descriptor
from batonflow.dsl._openapi import call_openapi
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError
from batonflow.dsl._tasks import _child_problem, leaf_step

_UNSUPPORTED_CALLS = ("grpc", "asyncapi", "a2a", "mcp")


# -- call -------------------------------------------------------------------------------------


async def call_task(it: Interpreter, call: TaskCall) -> TaskResult:
    target = call.task["call"]
    arguments = call.task.get("with") or {}
    if target in _UNSUPPORTED_CALLS:
        raise WorkflowError(
            Problem.of(
                ErrorType.CONFIGURATION,
                f"call: {target} is not supported by this runtime (supported: http, openapi, "
                "functions in use.functions, and functions registered with the runtime)",
                instance=f"{call.pointer}/call",
            )
        )
    if target in ("http", "openapi"):
        return TaskResult(await leaf_step(it, call, _protocol_call(it, call, target, arguments)))
    functions = (it.document.get("use") or {}).get("functions") or {}
    if target in functions:  # a custom function: a task definition, fed the evaluated 'with'
        args = it.arguments(call.scope, task=call.descriptor, input=call.input)
        function_input = await it.template(arguments, call.input, args, f"{call.pointer}/with")
        pointer = f"{call.pointer}/call/{target}"
        result = await it.run_task(target, functions[target], pointer, function_input, {})
        return TaskResult(result.output)
    registered = it.runtime.functions.get(target)
    if registered is None:
        raise WorkflowError(
            Problem.of(
                ErrorType.CONFIGURATION,
                f"no function named {target!r}: define it in use.functions or register it with "
                "DslRuntime(functions={...})",
                instance=f"{call.pointer}/call",
            )
        )

    if wants_context(registered):  # an agent, an approval: it makes its own steps and waits
        args = it.arguments(call.scope, task=call.descriptor, input=call.input)
        values = await it.template(arguments, call.input, args, f"{call.pointer}/with")
        if not isinstance(values, dict):
            raise WorkflowError(
                Problem.of(
                    ErrorType.VALIDATION,
                    f"call: {target} needs 'with' to be an object of named arguments",
                    instance=f"{call.pointer}/with",
                )
            )
        if isinstance(values.get("tools"), list):  # an agent's tools: functions named become
            from dataclasses import replace  # tools this runtime runs

            from batonflow.catalog import AgentTool, tool
            from batonflow.core import takes_context

            def as_tool(index: int, entry: Any) -> Any:
                if not isinstance(entry, str):
                    return entry
                if entry in functions:  # a use.functions task, run as that task per tool call
                    definition = functions[entry]
                    schema = (definition.get("input") or {}).get("schema") or {}
                    about = (definition.get("metadata") or {}).get("description")
                    pointer = f"{call.pointer}/with/tools/{index}"

                    @takes_context
                    async def run_function(ctx: bf.Context, **tool_input: Any) -> Any:
                        done = await it.run_task(entry, definition, pointer, tool_input, {})
                        return done.output

                    return AgentTool(
                        entry,
                        run_function,
                        about if isinstance(about, str) else f"the workflow function {entry}",
                        schema.get("document") or {"type": "object"},
                    )
                function = it.runtime.functions.get(entry)
                if isinstance(function, AgentTool):
                    return function if function.name == entry else replace(function, name=entry)
                if function is not None and not wants_context(function):
                    return tool(function, name=entry)
                return entry  # the function itself resolves it (catalog tools, MCP servers)

            values["tools"] = [as_tool(i, entry) for i, entry in enumerate(values["tools"])]
        try:
            return TaskResult(await registered(it.ctx, **values))
        except (WorkflowError, bf.DeadlineExceeded, bf.NonDeterminismError):
            raise
        except Exception as error:  # e.g. an agent's budget ran out: a fault DSL try/catch sees
            detail = f"{type(error).__name__}: {error}"
            raise WorkflowError(
                Problem.of(ErrorType.RUNTIME, detail, instance=call.pointer)
            ) from error

    async def compute(data: Any) -> Any:
        args = it.arguments(call.scope, task=call.descriptor, input=data)
        values = await it.template(arguments, data, args, f"{call.pointer}/with")
        result = registered(**values) if isinstance(values, dict) else registered(values)
        return await result if asyncio.iscoroutine(result) else result

    return TaskResult(await leaf_step(it, call, compute))


def _protocol_call(it: Interpreter, call: TaskCall, target: str, arguments: Any) -> Any:
    async def compute(data: Any) -> Any:
        args = it.arguments(call.scope, task=call.descriptor, input=data)
        spec = await it.template(
            _inline_policies(it, arguments), data, args, f"{call.pointer}/with"
        )
        if target == "http":
            return await call_http(spec, input_data=data, client=it.runtime.client, auth=it.auth)
        return await call_openapi(
            spec, input_data=data, client=it.runtime.client, auth=it.auth, documents=it.documents
        )

    return compute


def _inline_policies(it: Interpreter, value: Any) -> Any:
    """Replace ``authentication: {use: name}`` with the named policy from use.authentications,
    so its runtime expressions are evaluated against the calling task's input like the rest of
    ``with``."""
    if isinstance(value, list):
        return [_inline_policies(it, item) for item in value]
    if not isinstance(value, dict):
        return value
    inlined = {}
    for key, item in value.items():
        reference = item.get("use") if key == "authentication" and isinstance(item, dict) else None
        if isinstance(reference, str) and len(item) == 1:
            inlined[key] = it.use("authentications", reference, "/use/authentications")
        elif key == "authentication" and isinstance(item, str):
            inlined[key] = it.use("authentications", item, "/use/authentications")
        else:
            inlined[key] = _inline_policies(it, item)
    return inlined


# -- events -----------------------------------------------------------------------------------


async def emit_task(it: Interpreter, call: TaskCall) -> TaskResult:
    attributes = call.task["emit"]["event"].get("with") or {}

    async def compute(data: Any) -> Any:
        args = it.arguments(call.scope, task=call.descriptor, input=data)
        values = await it.template(attributes, data, args, f"{call.pointer}/emit/event/with")
        engine = it.ctx.engine
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "time": datetime_descriptor(engine.clock.now())["iso8601"],
            **values,
        }
        if "data" in event and "datacontenttype" not in event:
            event["datacontenttype"] = "application/json"
        _events.check_event(event, f"{call.pointer}/emit/event/with")
        await it.runtime.publish(engine, event)
        return event

    return TaskResult(await leaf_step(it, call, compute))


async def listen_task(it: Interpreter, call: TaskCall) -> TaskResult:
    listen = call.task["listen"]
    read = listen.get("read", "data")
    timeout = it.timeout_of(call.task, call.pointer)
    listener = _events.Listener(it, call, timeout)
    events = await listener.consume(listen["to"])
    items = [_events.read(event, read) for event in events]
    foreach = call.task.get("foreach")
    if foreach is None:
        return TaskResult(items)
    return TaskResult(await _each(it, call, foreach, items))


async def _each(
    it: Interpreter, call: TaskCall, foreach: dict[str, Any], items: list[Any]
) -> list[Any]:
    """``foreach``: run the iterator's tasks on each consumed event, in arrival order."""
    name, at = foreach.get("item", "item"), foreach.get("at", "index")
    outputs = []
    for index, item in enumerate(items):
        scope = {**call.scope, name: item, at: index}
        output = item
        if "do" in foreach:
            output = await it.do_list(foreach["do"], f"{call.pointer}/foreach/do", item, scope)
        spec = foreach.get("output") or {}
        if "as" in spec:
            args = it.arguments(scope, task=call.descriptor, input=item)
            output = await it.evaluate(
                spec["as"], output, args, f"{call.pointer}/foreach/output/as"
            )
        outputs.append(output)
    return outputs


# -- run --------------------------------------------------------------------------------------


async def run_task(it: Interpreter, call: TaskCall) -> TaskResult:
    run = call.task["run"]
    if "workflow" in run:
        return TaskResult(await _run_workflow(it, call, run["workflow"]))
    kind = next((k for k in ("shell", "script", "container") if k in run), "process")
    if not it.runtime.allow_processes or kind == "container":
        reason = (
            "no container runtime is available to batonflow"
            if kind == "container"
            else "running local processes is disabled; enable it deliberately with "
            "DslRuntime(allow_processes=True) or `batonflow run --allow-processes`"
        )
        raise WorkflowError(
            Problem.of(
                ErrorType.CONFIGURATION,
                f"run: {kind} refused: {reason}",
                title="Process execution not allowed",
                instance=f"{call.pointer}/run/{kind}",
            )
        )
    from batonflow.dsl._processes import run_process

    async def compute(data: Any) -> Any:
        args = it.arguments(call.scope, task=call.descriptor, input=data)
        spec = await it.template(run, data, args, f"{call.pointer}/run")
        return await run_process(spec, kind, f"{call.pointer}/run/{kind}")

    return TaskResult(await leaf_step(it, call, compute))


async def _run_workflow(it: Interpreter, call: TaskCall, target: dict[str, Any]) -> Any:
    args = it.arguments(call.scope, task=call.descriptor, input=call.input)
    where = f"{call.pointer}/run/workflow"
    spec = await it.template(target, call.input, args, where)
    document = await it.runtime.lookup_document(
        spec.get("namespace"), spec["name"], spec.get("version", "latest"), where
    )
    try:
        return await it.ctx.child(
            it.runtime.workflow, {"definition": document, "input": spec.get("input")}
        )
    except bf.ChildWorkflowFailed as failed:
        raise WorkflowError(_child_problem(failed, call.pointer)) from failed
