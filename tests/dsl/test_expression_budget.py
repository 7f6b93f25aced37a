"""Runtime expressions under a time and memory budget: a never-ending or ever-growing expression
faults its task with an error naming it; the event loop and other runs go on meanwhile."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.dsl._expr import Evaluator, ExpressionBudget, evaluate, is_bounded
from batonflow.dsl._problems import WorkflowError
from batonflow.dsl._runtime import DslRuntime
from batonflow.dsl._sandbox import EvaluatorPool
from batonflow.testing import FakeClock

QUICK = ExpressionBudget(seconds=0.5, memory_mb=256, processes=2)

NEVER_ENDING = ["${ def f: f; f }", "${ [repeat(1)] }", "${ last(range(1e12)) }"]


@pytest.mark.parametrize(
    ("body", "bounded"),
    [
        (".a", True),
        (".a.b[0]", True),
        ('$input.customer.name // "unknown"', True),
        ("{id: .id, items: [.a, .b], total: .x + .y}", True),
        ('.status == "paid" and .total >= 100', True),
        ("if .a then .b elif .c then null else {x: .d} end", True),
        (".items[1:3]", True),
        ("{a}", True),
        ("[]", True),
        (".a | length", False),  # a pipe
        (".items[]", False),  # iteration
        ("[.items[] | .price]", False),
        ("(.a, .b)", False),  # the comma operator
        (".a[.b, .c]", False),
        ("..", False),
        ("def f: f; f", False),
        ("reduce .[] as $x (0; . + $x)", False),
        ('"total: \\(.a)"', False),  # interpolation runs an expression
        (".a - .b", False),  # array difference is quadratic
        ('"x" * 100000000', False),  # string repetition
        (".[100000000] = 1", False),  # assignment can make a huge array
        ("{a: f}", False),
        ("end[]", False),
    ],
)
def test_only_plainly_bounded_expressions_run_in_process(body: str, bounded: bool) -> None:
    assert is_bounded(body) is bounded


@pytest.mark.parametrize(
    "expression",
    [
        "${ .a }",
        "${ {x: .a, y: [.b, .c]} }",
        "${ [.list[] | . * 2] }",
        "${ .list | map(select(. > 1)) | add }",
        '${ "n=\\(.a)" }',
        "${ .missing.deeper }",
        "${ empty }",
    ],
)
async def test_in_process_and_pool_give_the_same_value(expression: str) -> None:
    data = {"a": 1, "b": "two", "c": None, "list": [1, 2, 3]}
    direct = evaluate(expression, data)  # blocking path (in process when bounded)
    pooled = await Evaluator(QUICK).evaluate(expression, data)
    assert direct == pooled


async def test_an_error_inside_the_pool_reads_as_in_process() -> None:
    with pytest.raises(WorkflowError) as caught:
        await Evaluator(QUICK).evaluate('${ [.[] | error("boom")] }', [1])
    problem = caught.value.problem
    assert problem.status == 400
    assert problem.detail is not None
    assert "failed: boom" in problem.detail


@pytest.mark.slow
@pytest.mark.parametrize("expression", NEVER_ENDING)
async def test_a_never_ending_expression_faults_naming_itself(expression: str) -> None:
    started = time.monotonic()
    with pytest.raises(WorkflowError) as caught:
        await Evaluator(QUICK).evaluate(expression, {}, instance="/do/0/spin/set")
    assert time.monotonic() - started < 5
    problem = caught.value.problem
    assert problem.type.endswith("/expression")
    assert problem.status == 400
    assert problem.instance == "/do/0/spin/set"
    assert problem.detail == f"Runtime expression '{expression}' ran past its time budget of 0.5s"


@pytest.mark.slow
async def test_an_expression_that_grows_without_end_faults_on_its_memory_budget() -> None:
    budget = ExpressionBudget(seconds=20, memory_mb=100, processes=1)
    with pytest.raises(WorkflowError, match="ran past its memory budget of 100 MB"):
        await Evaluator(budget).evaluate('${ [range(1e9) | tostring] | join(",") }', {})
    # the pool replaced the process: the next expression is served
    assert await Evaluator(budget).evaluate("${ [.[] + 1] }", [1]) == [2]


@pytest.mark.slow
async def test_the_event_loop_runs_on_while_an_expression_spins() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        with pytest.raises(WorkflowError, match="time budget"):
            await Evaluator(QUICK).evaluate("${ def f: f; f }", {})
    finally:
        task.cancel()
    assert ticks >= 10  # ~50 ticks in 0.5 s; a blocked loop would give none


@pytest.mark.slow
def test_the_blocking_path_is_bounded_too() -> None:
    with pytest.raises(WorkflowError, match=r"time budget of 0\.5s"):
        evaluate("${ def f: f; f }", None, budget=QUICK)


def _document(name: str, expression: str) -> dict[str, Any]:
    return {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": name, "version": "1.0.0"},
        "do": [{"compute": {"set": {"value": expression}}}],
    }


@pytest.mark.slow
async def test_a_runaway_run_faults_while_another_run_completes(tmp_path: Path) -> None:
    runtime = DslRuntime(expression_budget=QUICK)
    clock = FakeClock()
    async with bf.Engine(tmp_path / "r.db", clock=clock, workflows=[runtime.workflow]) as engine:
        bad = await runtime.start(engine, _document("spin", "${ def f: f; f }"), {})
        good = await runtime.start(engine, _document("sum", "${ [.[] | . * 2] | add }"), [1, 2])
        await engine.settle()
        assert await good.result() == {"value": 6}
        run = await engine.get_run(bad.run_id)
    assert run is not None
    assert run.status is bf.RunStatus.FAULTED
    assert "'${ def f: f; f }' ran past its time budget of 0.5s" in (run.error_json or "")


def test_budgets_are_checked() -> None:
    with pytest.raises(ValueError, match="seconds"):
        ExpressionBudget(seconds=0)
    with pytest.raises(ValueError, match="memory_mb"):
        ExpressionBudget(memory_mb=1)
    with pytest.raises(ValueError, match="processes"):
        ExpressionBudget(processes=0)


def test_pools_are_shared_per_budget() -> None:
    assert EvaluatorPool.shared(QUICK) is EvaluatorPool.shared(
        ExpressionBudget(seconds=0.5, memory_mb=256)
    )
    assert EvaluatorPool.shared(QUICK) is not EvaluatorPool.shared(ExpressionBudget())


@pytest.mark.slow
async def test_an_evaluator_killed_from_outside_is_replaced() -> None:
    budget = ExpressionBudget(seconds=5, memory_mb=200, processes=1)
    evaluator = Evaluator(budget)
    assert await evaluator.evaluate("${ [.[] + 1] }", [1]) == [2]
    for process in list(evaluator.pool._idle):  # an operator's kill -9
        process.popen.kill()
        process.popen.wait()
    assert await evaluator.evaluate("${ [.[] + 2] }", [1]) == [3]


async def test_a_blocking_evaluation_never_waits_for_the_loop_it_blocks() -> None:
    """The pool's one process is busy with an evaluation whose answer this event loop awaits;
    a synchronous caller on the same loop (a workflow's `subjects` expression) gets a process
    of its own instead of waiting for one that only the blocked loop could free."""
    # a generous budget: the busy evaluation's time runs on while the loop is blocked, and a
    # loaded machine may take seconds to start the one-off process (a deadlock never ends)
    budget = ExpressionBudget(seconds=60.0, memory_mb=256, processes=1)
    evaluator = Evaluator(budget)
    busy = asyncio.create_task(evaluator.evaluate("${ [range(3e6)] | length }", {}))
    await asyncio.sleep(0)  # one turn: the task takes the only process (it spawns it at once)
    assert evaluate("${ .a | ascii_downcase }", {"a": "ANN"}, budget=budget) == "ann"
    assert await busy == 3_000_000
