"""Cancel, suspend, resume; the status table; idempotency; non-determinism."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import batonflow as bf
from batonflow.testing import FakeClock
from conftest import EngineFactory

runs_of: dict[str, int] = {}


@bf.step
async def count(name: str) -> str:
    runs_of[name] = runs_of.get(name, 0) + 1
    return name


@bf.workflow
async def sleeper(ctx: bf.Context) -> str:
    await ctx.step(count, "before")
    await ctx.sleep(100)
    return await ctx.step(count, "after")


@pytest.fixture(autouse=True)
def _reset() -> None:
    runs_of.clear()


def test_the_status_table() -> None:
    for status in (bf.RunStatus.COMPLETED, bf.RunStatus.CANCELLED):
        assert bf.TRANSITIONS[status] == frozenset()
    assert set(bf.TRANSITIONS) == set(bf.RunStatus)
    assert bf.RunStatus.COMPLETED in bf.TRANSITIONS[bf.RunStatus.RUNNING]
    assert bf.RunStatus.COMPLETED not in bf.TRANSITIONS[bf.RunStatus.WAITING]


async def test_cancel_a_running_step(engine: bf.Engine) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def long_call() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    @bf.workflow(name="busy")
    async def busy(ctx: bf.Context) -> None:
        await ctx.step(long_call)

    handle = await engine.start(busy)
    await started.wait()
    record = await engine.cancel(handle.run_id)
    assert record.status is bf.RunStatus.CANCELLED
    await engine.settle()
    assert stopped.is_set()
    with pytest.raises(bf.RunCancelled):
        await handle.result()
    with pytest.raises(bf.InvalidTransition, match="is cancelled"):
        await engine.resume(handle.run_id)


async def test_suspend_and_resume(engine: bf.Engine, clock: FakeClock) -> None:
    handle = await engine.start(sleeper)
    await engine.settle()
    await engine.suspend(handle.run_id)
    await clock.advance(200)
    await engine.settle()
    assert await handle.status() is bf.RunStatus.SUSPENDED
    await engine.resume(handle.run_id)
    await engine.settle()
    assert await handle.result() == "after"
    assert runs_of == {"before": 1, "after": 1}


async def test_resume_retries_a_faulted_run_from_the_failed_step(engine: bf.Engine) -> None:
    outage = {"down": True}

    async def crm() -> str:
        if outage["down"]:
            raise ConnectionError("CRM down")
        return "logged"

    @bf.workflow(name="crm_flow")
    async def crm_flow(ctx: bf.Context) -> list[str]:
        first = await ctx.step(count, "first")
        return [first, await ctx.step(bf.step(crm, retry=bf.Retry.never()))]

    handle = await engine.start(crm_flow)
    with pytest.raises(bf.RunFailed, match="CRM down"):
        await handle.result()
    outage["down"] = False
    await engine.resume(handle.run_id)
    await engine.settle()
    assert await handle.result() == ["first", "logged"]
    assert runs_of == {"first": 1}


async def test_resume_reruns_a_failed_child(engine: bf.Engine) -> None:
    broken = {"yes": True}

    @bf.workflow(name="fragile_child")
    async def fragile_child(ctx: bf.Context) -> str:
        if broken["yes"]:
            raise RuntimeError("bug")
        return "fixed"

    @bf.workflow(name="fragile_parent")
    async def fragile_parent(ctx: bf.Context) -> str:
        return await ctx.child(fragile_child)

    handle = await engine.start(fragile_parent)
    with pytest.raises(bf.RunFailed, match="bug"):
        await handle.result()
    broken["yes"] = False
    await engine.resume(handle.run_id)
    await engine.settle()
    assert await handle.result() == "fixed"


async def test_same_idempotency_key_same_run(engine: bf.Engine) -> None:
    first = await engine.start(sleeper, None, idempotency_key="email-42")
    again = await engine.start(sleeper, None, idempotency_key="email-42")
    assert first.run_id == again.run_id
    assert len(await engine.store.list_runs()) == 1
    with pytest.raises(bf.IdempotencyConflict, match="different input"):
        await engine.start(sleeper, {"other": 1}, idempotency_key="email-42")

    @bf.workflow(name="other")
    async def other(ctx: bf.Context) -> None: ...

    with pytest.raises(bf.IdempotencyConflict, match="workflow 'sleeper'"):
        await engine.start(other, None, idempotency_key="email-42")


async def test_changed_code_is_detected_not_obeyed(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    @bf.workflow(name="evolving")
    async def v1(ctx: bf.Context) -> str:
        await ctx.step(count, "a")
        await ctx.sleep(10)
        return "v1"

    async with make_engine(workflows=[v1]) as engine:
        handle = await engine.start(v1)
        await engine.settle()

    @bf.workflow(name="evolving")
    async def v2(ctx: bf.Context) -> str:
        await ctx.step(bf.step(count, name="tally"), "b")  # a different first step
        await ctx.sleep(10)
        return "v2"

    async with make_engine(workflows=[v2]) as engine:
        await clock.advance(10)
        await engine.settle()
        expected = "journal recorded step 'count' but the workflow now asks for step 'tally'"
        with pytest.raises(bf.RunFailed, match=expected) as info:
            await engine.handle(handle.run_id).result()
    assert info.value.error["type"] == "batonflow.errors:NonDeterminismError"
    assert runs_of == {"a": 1}


async def test_dropped_steps_are_detected(make_engine: EngineFactory, clock: FakeClock) -> None:
    @bf.workflow(name="shrinking")
    async def v1(ctx: bf.Context) -> str:
        await ctx.sleep(10)
        await ctx.step(count, "a")
        await ctx.sleep(10)
        return "v1"

    async with make_engine(workflows=[v1]) as engine:
        handle = await engine.start(v1)
        await engine.settle()
        await clock.advance(10)
        await engine.settle()

    @bf.workflow(name="shrinking")
    async def v2(ctx: bf.Context) -> str:
        await ctx.sleep(10)
        return "v2"

    async with make_engine(workflows=[v2]) as engine:
        await clock.advance(10)
        await engine.settle()
        with pytest.raises(bf.RunFailed, match="without reaching recorded position"):
            await engine.handle(handle.run_id).result()


async def test_swallowing_the_nondeterminism_error_does_not_help(engine: bf.Engine) -> None:
    @bf.workflow(name="swallow")
    async def swallow(ctx: bf.Context) -> str:
        await ctx.step(count, "x")
        return "ok"

    handle = await engine.start(swallow)
    await handle.result()
    # Simulate replaying with code that catches everything around a changed step.
    ctx = bf.Context(engine, await handle.record(), await engine.store.load_steps(handle.run_id))
    with contextlib.suppress(Exception):
        await ctx.step(bf.step(count, name="renamed"), "x")
    assert isinstance(ctx.nondeterminism, bf.NonDeterminismError)


async def test_an_engine_without_the_workflow_sets_the_run_aside_unharmed(
    make_engine: EngineFactory, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    @bf.workflow(name="ephemeral")
    async def ephemeral(ctx: bf.Context) -> str:
        await ctx.sleep(5)
        return "done"

    async with make_engine() as engine:
        handle = await engine.start(ephemeral)
        await engine.settle()
    async with make_engine() as engine:  # does not know 'ephemeral' and cannot import it
        await clock.advance(5)
        await engine.settle()
        record = await engine.get_run(handle.run_id)
    assert record.status is bf.RunStatus.WAITING  # not faulted: its code is missing only here
    assert record.wake_at == clock.now() + 60
    assert "does not know" in caplog.text
    async with make_engine(workflows=[ephemeral]) as engine:  # one that has the code
        await clock.advance(60)
        await engine.settle()
        assert await engine.handle(handle.run_id).result() == "done"


async def test_result_timeout(engine: bf.Engine, clock: FakeClock) -> None:
    handle = await engine.start(sleeper)
    await engine.settle()
    waiting = asyncio.ensure_future(handle.result(timeout=30))
    await asyncio.sleep(0)  # let it start and read the clock before time moves
    await clock.advance(30)
    with pytest.raises(TimeoutError, match="still waiting"):
        await waiting


async def test_resume_retries_the_step_whose_error_the_workflow_was_handling(
    engine: bf.Engine,
) -> None:
    """`except ConnectionError: raise Refused(...)` (no `from`): the run recorded nothing after
    the failed step, so resume retries it."""
    outage = {"down": True}

    async def crm() -> str:
        if outage["down"]:
            raise ConnectionError("CRM down")
        return "logged"

    class CrmUnavailable(Exception):
        pass

    @bf.workflow(name="handling")
    async def handling(ctx: bf.Context) -> str:
        await ctx.step(count, "first")
        try:
            return await ctx.step(bf.step(crm, retry=bf.Retry.never()))
        except ConnectionError:
            raise CrmUnavailable("the enquiry could not be logged")  # noqa: B904

    handle = await engine.start(handling)
    with pytest.raises(bf.RunFailed, match="could not be logged"):
        await handle.result()
    outage["down"] = False
    await engine.resume(handle.run_id)
    await engine.settle()
    assert await handle.result() == "logged"
    assert runs_of == {"first": 1}


async def test_resume_does_not_retry_a_handled_step_once_the_handler_did_more(
    engine: bf.Engine,
) -> None:
    """The handler recorded a step after the failed one: retrying the failed step would leave
    that step behind, so resume re-runs the workflow from its journal as it is."""
    calls: list[str] = []

    async def crm() -> str:
        calls.append("crm")
        raise ConnectionError("CRM down")

    @bf.workflow(name="handled_more")
    async def handled_more(ctx: bf.Context) -> str:
        try:
            return await ctx.step(bf.step(crm, retry=bf.Retry.never()))
        except ConnectionError:
            await ctx.step(count, "noted")
            raise LookupError("still down")  # noqa: B904

    handle = await engine.start(handled_more)
    with pytest.raises(bf.RunFailed, match="still down"):
        await handle.result()
    run = await engine.get_run(handle.run_id)
    assert bf.problem_of(run) is not None
    assert "step" not in (bf.problem_of(run) or {})
    await engine.resume(handle.run_id)
    await engine.settle()
    with pytest.raises(bf.RunFailed, match="still down"):
        await handle.result()
    assert calls == ["crm"]  # not retried
    assert runs_of == {"noted": 1}  # and the handler's step was not run twice
