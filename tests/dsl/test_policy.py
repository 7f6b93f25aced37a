"""batonflow's settings in a document (``document.metadata.batonflow``): checked at load, used
at run time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import batonflow as bf
from batonflow.dsl import DslValidationError, load_document
from batonflow.dsl._expr import Evaluator, ExpressionBudget
from batonflow.dsl._policy import duration_seconds, policy_of
from batonflow.dsl._problems import WorkflowError
from batonflow.dsl._runtime import DslRuntime, policy_for
from batonflow.governance._subjects import wrap_store
from batonflow.testing import FakeClock

HEAD = """\
document:
  dsl: 1.0.3
  namespace: firm
  name: enquiries
  version: 1.0.0
  metadata:
    batonflow:
"""
BODY = """\
do:
  - hello:
      set:
        ok: true
"""


def _doc(settings: str) -> str:
    return HEAD + "".join(f"      {line}\n" for line in settings.splitlines()) + BODY


async def test_settings_are_read() -> None:
    evaluator = Evaluator()
    document = load_document(
        "e.yaml",
        text=_doc("subjects: ${ [.from, .client_id] }\nretention: P6Y\ndeadline: PT4H\n"
                  "egress: [crm.example.test]"),
    )  # fmt: skip
    policy = policy_of(document.raw)
    assert policy.retention == 6 * 365 * 86400
    assert policy.deadline == 4 * 3600
    assert policy.egress == ("crm.example.test",)
    found = await policy.subjects_of({"from": "ann@example.test", "client_id": 42}, evaluator)
    assert found == ("ann@example.test", "42")
    assert await policy.subjects_of({"from": None, "client_id": None}, evaluator) == ()


@pytest.mark.parametrize(
    ("settings", "line", "message"),
    [
        ("retention: six years", 8, "ISO 8601 duration"),
        ("subjects: ${ [.from] | $nope }", 8, "$nope"),
        ("egress: api.example.com", 8, "array of host names"),
        ("egress: ['*']", 8, "*"),
        ("retain: P6Y", 8, "unknown setting"),
    ],
)
def test_bad_settings_are_refused_with_their_place(settings: str, line: int, message: str) -> None:
    with pytest.raises(DslValidationError) as caught:
        load_document("e.yaml", text=_doc(settings))
    (problem,) = caught.value.problems
    assert problem.line == line
    assert message in str(problem)
    assert str(problem).startswith("e.yaml:8:")


def test_durations() -> None:
    assert duration_seconds("P1Y2M", "x") == 365 * 86400 + 60 * 86400
    assert duration_seconds("PT1.5S", "x") == 1.5
    with pytest.raises(WorkflowError, match="ISO 8601"):
        duration_seconds("PT", "x")


async def test_runs_are_tagged_with_their_subjects(tmp_path: Path) -> None:
    document = load_document("e.yaml", text=_doc("subjects: ${ .from }")).raw
    runtime = DslRuntime()
    store = wrap_store(bf.SQLiteStore(tmp_path / "p.db"))
    async with bf.Engine(store, clock=FakeClock(), workflows=[runtime.workflow]) as e:
        handle = await runtime.start(e, document, {"from": "Ann@Example.test"}, started_by="bob")
        await handle.result()
        run = await e.get_run(handle.run_id)
        ref = await store.keys.ref("ann@example.test")
    assert run.subjects == (ref,)  # a keyed reference: the address itself is not stored
    assert run.started_by == "bob"
    assert policy_for(run) is not None


async def test_a_plain_store_refuses_runs_with_subjects(tmp_path: Path) -> None:
    document = load_document("e.yaml", text=_doc("subjects: ${ .from }")).raw
    runtime = DslRuntime()
    async with bf.Engine(tmp_path / "p.db", clock=FakeClock()) as engine:
        with pytest.raises(bf.ConfigError, match="sealed store"):
            await runtime.start(engine, document, {"from": "ann@example.test"})
        assert await engine.store.list_runs() == []


@pytest.mark.slow
async def test_the_subjects_expression_runs_under_the_budget_off_the_loop(tmp_path: Path) -> None:
    """A ``subjects`` expression is evaluated like any other: a pooled one (it iterates) gives
    its subjects, a never-ending one refuses the run with its budget, and meanwhile the event
    loop runs on (a synchronous evaluation would freeze it: no tick at all)."""
    budget = ExpressionBudget(seconds=0.5, memory_mb=256, processes=2)
    runtime = DslRuntime(expression_budget=budget)
    store = wrap_store(bf.SQLiteStore(tmp_path / "p.db"))
    many = load_document("e.yaml", text=_doc("subjects: '${ [.people[] | .email] }'")).raw
    spin = load_document("e.yaml", text=_doc("subjects: '${ def f: f; f }'")).raw
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async with bf.Engine(store, clock=FakeClock(), workflows=[runtime.workflow]) as engine:
        people = {"people": [{"email": "ann@example.test"}, {"email": "bob@example.test"}]}
        handle = await runtime.start(engine, many, people)
        await handle.result()
        run = await engine.get_run(handle.run_id)
        assert run is not None
        assert len(run.subjects) == 2
        task = asyncio.create_task(ticker())
        try:
            with pytest.raises(WorkflowError, match=r"ran past its time budget of 0\.5s"):
                await runtime.start(engine, spin, {})
        finally:
            task.cancel()
        assert ticks >= 10  # ~50 in 0.5 s
        assert len(await engine.store.list_runs()) == 1  # the refused run was not recorded
