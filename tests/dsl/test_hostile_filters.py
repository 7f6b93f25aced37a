"""Regular expressions in `listen` filters run under the expression budget, off the event loop:
a pattern that backtracks for ever (``(a+)+$`` on ``aaa...ab``) skips the event it cannot
decide, while the loop, the other filters and the other runs go on."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.dsl import _events
from batonflow.dsl._expr import Evaluator, ExpressionBudget, InvalidPattern
from batonflow.dsl._problems import WorkflowError
from batonflow.dsl._runtime import DslRuntime
from batonflow.testing import FakeClock

QUICK = ExpressionBudget(seconds=0.5, memory_mb=256, processes=2)
#: Exponential backtracking: each extra "a" doubles Python's work on the failing match.
CATASTROPHIC = "(a+)+$"
VICTIM = "a" * 64 + "!"


async def test_patterns_match_the_whole_string_as_before() -> None:
    evaluator = Evaluator(QUICK)
    assert await evaluator.matches("com.example.order", "com.example.order") is True
    assert await evaluator.matches("com.example.order", "com.example.orders") is False
    assert await evaluator.matches(r"com\.example\..*", "com.example.paid") is True
    assert await evaluator.matches(r"com\.example\..*", "org.example.paid") is False
    assert await evaluator.matches("order", "order") is True  # plain text: compared here
    with pytest.raises(InvalidPattern, match="unterminated character set"):
        await evaluator.matches("[abc", "a")


@pytest.mark.slow
async def test_a_backtracking_pattern_is_stopped_and_the_loop_runs_on() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        with pytest.raises(WorkflowError, match=r"\(a regular expression\) ran past its time"):
            await Evaluator(QUICK).matches(CATASTROPHIC, VICTIM)
    finally:
        task.cancel()
    assert ticks >= 10  # ~50 in 0.5 s; a blocked loop would give none


@pytest.mark.slow
async def test_a_filter_that_cannot_decide_skips_the_event_and_others_still_match() -> None:
    # A handler and a level on the logger itself: the CLI's tests may leave "batonflow" at a
    # higher level, no longer propagating to the root logger, where caplog listens.
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("batonflow.dsl")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)
    evaluator = Evaluator(QUICK)
    event = {"id": "1", "source": "shop", "type": VICTIM}
    hostile = {"with": {"type": CATASTROPHIC}}
    plain = {"with": {"source": "shop"}}
    try:
        assert await _events.matches(event, hostile, evaluator) is False
        assert await _events.first_match(event, [hostile, plain], evaluator) == 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert any("event filter '(a+)+$' skipped an event" in m for m in seen), seen
    # a pattern that does not compile is compared as text, as it always was
    assert await _events.matches({**event, "type": "[x"}, {"with": {"type": "[x"}}, evaluator)


def _listener(name: str, wanted: dict[str, Any]) -> dict[str, Any]:
    return {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": name, "version": "1.0.0"},
        "do": [
            {
                "wait": {
                    "listen": {"to": {"one": {"with": wanted}}},
                }
            }
        ],
    }


@pytest.mark.slow
async def test_a_hostile_listener_does_not_stop_an_event_reaching_another_run(
    tmp_path: Path,
) -> None:
    runtime = DslRuntime(expression_budget=QUICK)
    clock = FakeClock()
    async with bf.Engine(tmp_path / "r.db", clock=clock, workflows=[runtime.workflow]) as engine:
        hostile = await runtime.start(engine, _listener("hostile", {"type": CATASTROPHIC}), {})
        plain = await runtime.start(engine, _listener("plain", {"source": "shop"}), {})
        await engine.settle()  # both parked, listening
        event = {"id": "e1", "source": "shop", "type": VICTIM, "data": {"n": 1}}
        delivered = await runtime.publish(engine, event)
        assert delivered == [plain.run_id]
        await engine.settle()
        assert await plain.result() == [{"n": 1}]
        run = await engine.get_run(hostile.run_id)
    assert run is not None
    assert run.status is bf.RunStatus.WAITING


def _checked(name: str, pattern: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}}
    return {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": name, "version": "1.0.0"},
        "input": {"schema": {"document": schema}},
        "do": [{"x": {"set": {"code": "${ .code }"}}}],
    }


@pytest.mark.slow
async def test_schema_patterns_are_checked_under_the_budget(tmp_path: Path) -> None:
    """A JSON Schema ``pattern`` is a regular expression too: a backtracking one faults its
    run with the budget; a sound one still accepts and refuses as JSON Schema says."""
    runtime = DslRuntime(expression_budget=QUICK)
    async with bf.Engine(tmp_path / "r.db", workflows=[runtime.workflow]) as engine:
        hostile = await runtime.start(engine, _checked("hostile", CATASTROPHIC), {"code": VICTIM})
        fine = await runtime.start(engine, _checked("fine", "^[A-Z]-[0-9]+$"), {"code": "A-12"})
        wrong = await runtime.start(engine, _checked("wrong", "^[A-Z]-[0-9]+$"), {"code": "12"})
        assert await fine.result() == {"code": "A-12"}
        with pytest.raises(bf.RunFailed) as refused:
            await wrong.result()
        with pytest.raises(bf.RunFailed) as stopped:
            await hostile.result()
    assert "does not match its schema at /code: '12' does not match" in str(refused.value)
    assert "ran past its time budget of 0.5s" in str(stopped.value)
