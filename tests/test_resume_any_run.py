"""Resume retries the step that failed a run: Python or DSL, with or without data subjects,
sealed or not, on SQLite and PostgreSQL; steps that succeeded are not run again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

import batonflow as bf
from batonflow.dsl._runtime import DslRuntime
from batonflow.governance import wrap_store
from batonflow.testing import FakeClock

Open = Callable[..., AbstractAsyncContextManager[bf.Engine]]
RUNTIME = "https://serverlessworkflow.io/spec/1.0.0/errors/runtime"
WHO = "${ $workflow.input.from }"


class Service:
    """A service that is down until it recovers; it counts what reached it."""

    def __init__(self) -> None:
        self.down = True
        self.calls: list[str] = []

    def __call__(self, what: str = "crm") -> dict[str, Any]:
        self.calls.append(what)
        if self.down:
            raise ConnectionError(f"{what} is down (call {len(self.calls)})")
        return {"logged": what}


#: plain store; sealed store, runs without subjects; sealed store, runs with subjects (a plain
#: store refuses runs with subjects)
MODES = ["plain", "sealed", "sealed-subjects"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_engine(mode: str, store_url: str, clock: FakeClock) -> Open:
    """An engine on the test's store, or on that store wrapped by the sealing store."""

    @asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[bf.Engine]:
        store: bf.Store = bf.open_store(store_url)
        if mode.startswith("sealed"):
            store = wrap_store(store, now=clock.now)
        async with bf.Engine(store, clock=clock, **options) as engine:
            yield engine

    return factory


async def _fault_then_resume(
    engine: bf.Engine, service: Service, handle: bf.RunHandle[Any]
) -> bf.RunRecord:
    await engine.settle()
    faulted = await engine.get_run(handle.run_id)
    assert faulted.status is bf.RunStatus.FAULTED, faulted.output_json
    service.down = False
    await engine.resume(handle.run_id)
    await engine.settle()
    return await engine.get_run(handle.run_id)


async def test_a_python_run(open_engine: Open, mode: str) -> None:
    subjects = mode == "sealed-subjects"
    service, before = Service(), Service()
    before.down = False
    first = bf.step(before, name="first", retry=bf.Retry.never())
    crm = bf.step(service, name="crm", retry=bf.Retry.never())

    async def flow(ctx: bf.Context, enquiry: dict[str, str]) -> list[Any]:
        return [await ctx.step(first, "first"), await ctx.step(crm, enquiry["from"])]

    who = (lambda e: e["from"]) if subjects else None
    wf = bf.Workflow(flow, name="enquiry", subjects=who)
    async with open_engine(workflows=[wf]) as engine:
        handle = await engine.start(wf, {"from": "ann@example.com"})
        run = await _fault_then_resume(engine, service, handle)
    assert run.status is bf.RunStatus.COMPLETED, run.error_json
    assert json.loads(run.output_json or "") == [{"logged": "first"}, {"logged": "ann@example.com"}]
    assert before.calls == ["first"]  # the step that had succeeded was not run again
    assert service.calls == ["ann@example.com"] * 2
    assert bool(run.subjects) is subjects


def _document(subjects: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "crm", "version": "1.0.0"},
        "do": [
            {"first": {"call": "before"}},
            {
                "logEnquiry": {
                    "try": [{"callCrm": {"call": "crm", "with": {"what": WHO}}}],
                    "catch": {
                        "errors": {"with": {"type": RUNTIME}},
                        "retry": {"delay": {"seconds": 5}, "limit": {"attempt": {"count": 1}}},
                    },
                }
            },
        ],
    }
    if subjects:
        document["document"]["metadata"] = {"batonflow": {"subjects": "${ [.from] }"}}
    return document


async def test_a_dsl_run(open_engine: Open, clock: FakeClock, mode: str) -> None:
    subjects = mode == "sealed-subjects"
    service, before = Service(), Service()
    before.down = False
    runtime = DslRuntime(functions={"crm": service, "before": lambda: before("first")})
    async with open_engine(workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, _document(subjects), {"from": "ann@example.com"})
        await engine.settle()
        await clock.advance(5)  # the one retry
        run = await _fault_then_resume(engine, service, handle)
        steps = await engine.store.load_steps(handle.run_id)
    assert run.status is bf.RunStatus.COMPLETED, run.error_json
    assert json.loads(run.output_json or "") == {"logged": "ann@example.com"}
    assert before.calls == ["first"]
    assert service.calls == ["ann@example.com"] * 3  # two attempts, then the resumed one
    assert bool(run.subjects) is subjects
    crm = [s for s in steps if s.kind is bf.StepKind.STEP and s.name.endswith("/callCrm")]
    assert [s.status for s in crm] == [bf.StepStatus.FAILED, bf.StepStatus.COMPLETED]
    await runtime.aclose()


async def test_a_faulted_runs_error_names_its_failed_step_even_when_sealed(
    store_url: str, clock: FakeClock
) -> None:
    """The sealed error keeps the step's position readable (and authenticated) for the store;
    the error itself stays sealed."""
    service = Service()
    runtime = DslRuntime(functions={"crm": service, "before": lambda: "x"})
    store = wrap_store(bf.open_store(store_url), now=clock.now)
    async with bf.Engine(store, clock=clock, workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, _document(True), {"from": "ann@example.com"})
        await engine.settle()
        await clock.advance(5)
        await engine.settle()
        raw = await store.inner.get_run(handle.run_id)
        opened = await engine.get_run(handle.run_id)
    await runtime.aclose()
    assert raw is not None
    assert raw.error_json is not None
    assert "ann@example.com" not in raw.error_json
    envelope = json.loads(raw.error_json)
    assert envelope["$sealed"] == 1
    assert envelope["step"] == json.loads(opened.error_json or "")["step"]
    assert bf.store.failed_step_of(raw.error_json) == envelope["step"]


async def test_a_tampered_step_position_does_not_open(store_url: str, clock: FakeClock) -> None:
    from batonflow.governance._sealed import SubjectKeys

    keys = SubjectKeys(bf.open_store(store_url), clock.now)
    await keys.store.open()
    try:
        ref = await keys.ref("ann@example.com")
        await keys.ensure(ref)
        sealed = await keys.seal('{"message": "x", "step": "4"}', [ref], "run-1", step="4")
        assert json.loads(await keys.open(sealed, "run-1"))["step"] == "4"
        moved = sealed.replace('"step":"4"', '"step":"2"')
        with pytest.raises(bf.StoreError, match="altered"):
            await keys.open(moved, "run-1")
    finally:
        await keys.store.close()


async def test_a_dsl_sub_flow(open_engine: Open, mode: str) -> None:
    """The failed step is a child run's: resume resumes the child at its failed call."""
    service = Service()
    child = {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "log", "version": "1.0.0"},
        "do": [{"callCrm": {"call": "crm", "with": {"what": WHO}}}],
    }
    parent: dict[str, Any] = {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "parent", "version": "1.0.0"},
        "do": [
            {
                "logIt": {
                    "run": {
                        "workflow": {
                            "namespace": "test", "name": "log", "version": "1.0.0",
                            "input": "${ $workflow.input }",
                        }
                    }
                }
            }
        ],
    }  # fmt: skip
    if mode == "sealed-subjects":
        parent["document"]["metadata"] = {"batonflow": {"subjects": "${ [.from] }"}}
    runtime = DslRuntime(functions={"crm": service})
    runtime.add_document(child)
    async with open_engine(workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, parent, {"from": "ann@example.com"})
        run = await _fault_then_resume(engine, service, handle)
        children = await engine.store.list_runs(parent_id=handle.run_id)
    await runtime.aclose()
    assert run.status is bf.RunStatus.COMPLETED, run.error_json
    assert json.loads(run.output_json or "") == {"logged": "ann@example.com"}
    assert service.calls == ["ann@example.com"] * 2
    assert [c.status for c in children] == [bf.RunStatus.COMPLETED]
