"""How each task kind runs. Leaf tasks are kernel steps; composite ones walk nested task lists."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import batonflow as bf
from batonflow.dsl._durations import to_seconds
from batonflow.dsl._interpreter import (
    Handler,
    Interpreter,
    TaskCall,
    TaskResult,
    timeout_error,
)
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError, canonical_type

# -- leaf steps -------------------------------------------------------------------------------


async def leaf_step(
    it: Interpreter, call: TaskCall, compute: Callable[[Any], Awaitable[Any]]
) -> Any:
    """Run ``compute(input)`` as the task's durable step, named by the task's JSON pointer."""
    timeout = it.timeout_of(call.task, call.pointer)
    step = bf.step(compute, name=call.pointer, retry=bf.Retry.never(), timeout=timeout)
    try:
        return await it.ctx.step(step, call.input)
    except (WorkflowError, bf.DeadlineExceeded):  # the latter is for the enclosing timeout
        raise
    except bf.StepTimeout as error:  # chained: resume retries the step that timed out
        raise timeout_error(call.pointer, timeout or 0) from error
    except bf.ChildWorkflowFailed as failed:
        raise WorkflowError(_child_problem(failed, call.pointer)) from failed
    except Exception as error:  # a bug or an unexpected failure in the task's machinery
        detail = f"{type(error).__name__}: {error}"
        raise WorkflowError(Problem.of(ErrorType.RUNTIME, detail, instance=call.pointer)) from error


def _child_problem(failed: bf.ChildWorkflowFailed, pointer: str) -> Problem:
    """A failed sub-flow's own problem (its type, status, title and detail), located at the
    task that ran it; a child that failed otherwise (cancelled, a bug) is a runtime error."""
    state = (getattr(failed, "error", None) or {}).get("state")
    if isinstance(state, dict) and "type" in state and "status" in state:
        child = Problem.from_dict(state)
        return Problem(child.type, child.status, child.title, child.detail, instance=pointer)
    return Problem.of(ErrorType.RUNTIME, str(failed), instance=pointer)


async def set_task(it: Interpreter, call: TaskCall) -> TaskResult:
    async def compute(data: Any) -> Any:
        args = it.arguments(call.scope, task=call.descriptor, input=data)
        return it.evaluate(call.task["set"], data, args, f"{call.pointer}/set")

    return TaskResult(await leaf_step(it, call, compute))


async def raise_task(it: Interpreter, call: TaskCall) -> TaskResult:
    error = call.task["raise"]["error"]
    if isinstance(error, str):
        error = it.use("errors", error, f"{call.pointer}/raise/error")

    async def compute(data: Any) -> Any:
        args = it.arguments(call.scope, task=call.descriptor, input=data)
        details = it.evaluate(error, data, args, f"{call.pointer}/raise/error")
        raise WorkflowError(
            Problem(
                type=str(details["type"]),
                status=int(details["status"]),
                title=details.get("title"),
                detail=details.get("detail"),
                instance=details.get("instance") or call.pointer,
            )
        )

    return TaskResult(await leaf_step(it, call, compute))


# -- composite tasks --------------------------------------------------------------------------


async def do_task(it: Interpreter, call: TaskCall) -> TaskResult:
    output = await it.do_list(call.task["do"], f"{call.pointer}/do", call.input, call.scope)
    return TaskResult(output)


async def switch_task(it: Interpreter, call: TaskCall) -> TaskResult:
    args = it.arguments(call.scope, task=call.descriptor, input=call.input)
    default: tuple[str, str] | None = None
    passed: list[str] = []
    for index, case in enumerate(call.task["switch"]):
        name, spec = next(iter(case.items()))
        if "when" not in spec:
            default = name, spec["then"]
            continue
        where = f"{call.pointer}/switch/{index}/{name}/when"
        if it.condition(spec["when"], call.input, args, where):
            _note_route(it, call, name, spec["then"], spec["when"], passed)
            return TaskResult(call.input, then=spec["then"])
        passed.append(name)
    if default is None:
        _note_route(it, call, None, None, None, passed)
        return TaskResult(call.input)
    _note_route(it, call, default[0], default[1], None, passed)
    return TaskResult(call.input, then=default[1])


def _note_route(
    it: Interpreter,
    call: TaskCall,
    case: str | None,
    then: str | None,
    when: str | None,
    not_matched: list[str],
) -> None:
    """The routing decision on the audit trail: the case taken, the condition that chose it
    (None: the default case, or no case and the flow continues), and the cases passed over."""
    it.ctx.note(
        "route.decision",
        {"task": call.pointer, "case": case, "when": when, "then": then,
         "not_matched": not_matched},
    )  # fmt: skip


async def for_task(it: Interpreter, call: TaskCall) -> TaskResult:
    loop = call.task["for"]
    each, at = loop.get("each", "item"), loop.get("at", "index")
    args = it.arguments(call.scope, task=call.descriptor, input=call.input)
    items = it.evaluate(loop["in"], call.input, args, f"{call.pointer}/for/in")
    if items is None:
        items = []
    if isinstance(items, dict):
        items = list(items.values())
    if not isinstance(items, list):
        raise WorkflowError(
            Problem.of(
                ErrorType.EXPRESSION,
                f"for.in must give an array, got {type(items).__name__}",
                instance=f"{call.pointer}/for/in",
            )
        )
    data = call.input
    for index, item in enumerate(items):
        scope = {**call.scope, each: item, at: index}
        if "while" in call.task:
            condition_args = it.arguments(scope, task=call.descriptor, input=data)
            if not it.condition(call.task["while"], data, condition_args, f"{call.pointer}/while"):
                break
        data = await it.do_list(call.task["do"], f"{call.pointer}/do", data, scope)
    return TaskResult(data)


async def fork_task(it: Interpreter, call: TaskCall) -> TaskResult:
    fork = call.task["fork"]
    branches = [
        it.run_task(name, task, f"{call.pointer}/fork/branches/{i}/{name}", call.input, call.scope)
        for i, item in enumerate(fork["branches"])
        for name, task in item.items()
    ]
    if fork.get("compete", False):
        _, winner = await it.ctx.race(*branches)
        return TaskResult(winner.output)
    results = await it.ctx.parallel(*branches)
    return TaskResult([result.output for result in results])


async def wait_task(it: Interpreter, call: TaskCall) -> TaskResult:
    args = it.arguments(call.scope, task=call.descriptor, input=call.input)
    # an ISO 8601 string or an object; only a ${ } string is an expression
    duration = it.template(call.task["wait"], call.input, args, f"{call.pointer}/wait")
    await it.ctx.sleep(to_seconds(duration, where=f"{call.pointer}/wait"))
    return TaskResult(call.input)


# -- try / catch / retry ----------------------------------------------------------------------


async def try_task(it: Interpreter, call: TaskCall) -> TaskResult:
    """Run ``try``; a caught error is retried per ``catch.retry`` while the policy allows, and
    then handled by ``catch.do`` and ``catch.then`` when the catch has them. A catch with a
    retry policy and neither of those has nothing to carry on with: once the retries are used
    up, the task fails with the last error. (A catch with no retry, no ``do`` and no ``then``
    deliberately ignores the errors it matches: the task's output is its input.)"""
    catch = call.task["catch"]
    policy = catch.get("retry")
    if isinstance(policy, str):
        policy = it.use("retries", policy, f"{call.pointer}/catch/retry")
    started = await it.ctx.now() if policy and _has_time_limit(policy) else 0.0
    retries = 0
    while True:
        try:
            output = await it.do_list(
                call.task["try"], f"{call.pointer}/try", call.input, call.scope
            )
            return TaskResult(output)
        except WorkflowError as error:
            variable = catch.get("as", "error")
            scope = {**call.scope, variable: error.problem.to_dict()}
            if not _catches(it, call, catch, error.problem, scope):
                raise
            if policy and await _should_retry(it, call, policy, scope, retries, started):
                _note_caught(it, call, error.problem, "retried", retries)
                retries += 1
                delay = _retry_delay(policy, retries, call, it.ctx.run_id)
                retry_at = it.ctx.engine.clock.now() + delay
                it.ctx.report_retry(call.pointer, retries, error.problem.to_dict(), retry_at)
                await it.ctx.sleep(delay)
                continue
            handled = "do" in catch or "then" in catch
            if policy and not handled:  # retries used up (or refused): fail, loudly
                _note_caught(it, call, error.problem, "failed", retries)
                raise
            _note_caught(it, call, error.problem, "handled" if handled else "ignored", retries)
            output = call.input
            if "do" in catch:
                pointer = f"{call.pointer}/catch/do"
                output = await it.do_list(catch["do"], pointer, call.input, scope)
            return TaskResult(output, then=catch.get("then"))


def _note_caught(
    it: Interpreter, call: TaskCall, problem: Problem, outcome: str, retries: int
) -> None:
    """A caught error on the audit trail, with what became of it: ``retried``, ``failed``
    (retries used up: the task fails), ``handled`` (by ``catch.do`` / ``catch.then``) or
    ``ignored`` (a bare catch); ``retries``: how many retries were made before it."""
    it.ctx.note(
        "task.error_caught",
        {"task": call.pointer, "outcome": outcome, "retries": retries, "type": problem.type,
         "status": problem.status, "instance": problem.instance},
    )  # fmt: skip


def _catches(
    it: Interpreter, call: TaskCall, catch: dict[str, Any], problem: Problem, scope: dict[str, Any]
) -> bool:
    wanted = (catch.get("errors") or {}).get("with") or {}
    found = problem.to_dict()
    found["details"] = problem.detail
    for key, value in wanted.items():
        if key == "type":
            if canonical_type(str(value)) != canonical_type(problem.type):
                return False
        elif found.get(key) != value:
            return False
    args = it.arguments(scope, task=call.descriptor, input=call.input)
    pointer = f"{call.pointer}/catch"
    if "when" in catch and not it.condition(catch["when"], call.input, args, f"{pointer}/when"):
        return False
    return not (
        "exceptWhen" in catch
        and it.condition(catch["exceptWhen"], call.input, args, f"{pointer}/exceptWhen")
    )


def _has_time_limit(policy: dict[str, Any]) -> bool:
    limit = policy.get("limit") or {}
    return "duration" in limit or "duration" in (limit.get("attempt") or {})


async def _should_retry(
    it: Interpreter,
    call: TaskCall,
    policy: dict[str, Any],
    scope: dict[str, Any],
    retries: int,
    started: float,
) -> bool:
    args = it.arguments(scope, task=call.descriptor, input=call.input)
    pointer = f"{call.pointer}/catch/retry"
    if "when" in policy and not it.condition(policy["when"], call.input, args, f"{pointer}/when"):
        return False
    if "exceptWhen" in policy and it.condition(
        policy["exceptWhen"], call.input, args, f"{pointer}/exceptWhen"
    ):
        return False
    limit = policy.get("limit") or {}
    attempt = limit.get("attempt") or {}
    if "count" in attempt and retries >= int(attempt["count"]):
        return False
    for budget in (limit.get("duration"), attempt.get("duration")):
        if budget is not None:
            elapsed = await it.ctx.now() - started
            if elapsed >= to_seconds(budget, where=f"{pointer}/limit"):
                return False
    return True


def _retry_delay(policy: dict[str, Any], retry: int, call: TaskCall, run_id: str) -> float:
    """Backoff: constant (delay), linear (delay x n), exponential (delay x 2^(n-1)); plus jitter
    drawn deterministically from the run, task and attempt, so a replay waits the same."""
    delay = to_seconds(policy["delay"], where=call.pointer) if "delay" in policy else 0.0
    backoff = policy.get("backoff") or {}
    if "linear" in backoff:
        delay *= retry
    elif "exponential" in backoff:
        delay *= 2 ** (retry - 1)
    jitter = policy.get("jitter")
    if jitter:
        low, high = to_seconds(jitter["from"]), to_seconds(jitter["to"])
        seed = hashlib.sha256(f"{run_id}{call.pointer}{retry}".encode()).digest()
        delay += low + (high - low) * int.from_bytes(seed[:8], "big") / 2**64
    return delay


def _handlers() -> dict[str, Handler]:
    from batonflow.dsl._tasks_io import call_task, emit_task, listen_task, run_task

    return {
        "call": call_task,
        "do": do_task,
        "emit": emit_task,
        "for": for_task,
        "fork": fork_task,
        "listen": listen_task,
        "raise": raise_task,
        "run": run_task,
        "set": set_task,
        "switch": switch_task,
        "try": try_task,
        "wait": wait_task,
    }


HANDLERS: dict[str, Handler] = _handlers()
