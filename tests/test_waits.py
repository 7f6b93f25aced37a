"""Durable sleep and waiting for external events."""

from __future__ import annotations

import datetime as dt

import pytest

import batonflow as bf
from batonflow.testing import FakeClock
from conftest import EngineFactory


@bf.workflow
async def nap(ctx: bf.Context, seconds: float) -> str:
    await ctx.sleep(dt.timedelta(seconds=seconds))
    return "rested"


@bf.workflow
async def approval(ctx: bf.Context, invoice: str) -> object:
    return await ctx.wait_for_event("approved", key=invoice, timeout=3600)


@bf.workflow
async def inbox(ctx: bf.Context) -> list[object]:
    return [await ctx.wait_for_event("msg"), await ctx.wait_for_event("msg")]


async def test_a_sleeping_run_holds_nothing_and_wakes_on_time(
    engine: bf.Engine, clock: FakeClock
) -> None:
    handle = await engine.start(nap, 86400)
    await engine.settle()
    record = await handle.record()
    assert (record.status, record.wake_at) == (bf.RunStatus.WAITING, clock.now() + 86400)
    assert record.owner is None
    await clock.advance(86399)
    await engine.settle()
    assert await handle.status() is bf.RunStatus.WAITING
    await clock.advance(1)
    await engine.settle()
    assert await handle.result() == "rested"


async def test_sleep_survives_a_restart(make_engine: EngineFactory, clock: FakeClock) -> None:
    async with make_engine() as engine:
        handle = await engine.start(nap, 30)
        await engine.settle()
    await clock.advance(45)  # time passes while no engine runs
    async with make_engine(workflows=[nap]) as engine:
        await engine.settle()
        assert await engine.handle(handle.run_id).result() == "rested"


async def test_sleep_until_a_moment(engine: bf.Engine, clock: FakeClock) -> None:
    @bf.workflow(name="until")
    async def until(ctx: bf.Context, when: float) -> float:
        await ctx.sleep_until(dt.datetime.fromtimestamp(when, dt.UTC))
        return await ctx.now()

    handle = await engine.start(until, clock.now() + 90)
    await engine.settle()
    await clock.advance(90)
    await engine.settle()
    assert await handle.result() == clock.now()
    with pytest.raises(bf.RunFailed, match="timezone-aware"):
        await engine.run(_naive_until)


@bf.workflow
async def _naive_until(ctx: bf.Context) -> None:
    await ctx.sleep_until(dt.datetime(2030, 1, 1))


async def test_event_by_correlation_key(engine: bf.Engine, clock: FakeClock) -> None:
    first = await engine.start(approval, "INV-1")
    second = await engine.start(approval, "INV-2")
    await engine.settle()
    await engine.send_event("approved", {"by": "ann"}, key="INV-2")
    await engine.settle()
    assert await second.result() == {"by": "ann"}
    assert await first.status() is bf.RunStatus.WAITING


async def test_an_event_sent_before_the_wait_is_not_lost(engine: bf.Engine) -> None:
    await engine.send_event("approved", "early", key="INV-9")
    assert await engine.run(approval, "INV-9") == "early"


async def test_events_to_a_run_are_consumed_in_order(engine: bf.Engine) -> None:
    handle = await engine.start(inbox)
    await engine.settle()
    # held while the three arrive: otherwise the run may take two and end before the third is
    # sent, and an event for an ended run is refused
    await engine.suspend(handle.run_id)
    await engine.send_event("msg", 1, run_id=handle.run_id)
    await engine.send_event("msg", 2, run_id=handle.run_id)
    await engine.send_event("msg", 3, run_id=handle.run_id)
    await engine.resume(handle.run_id)
    assert await handle.result() == [1, 2]
    events = await engine.store.list_events(run_id=handle.run_id)
    assert [e.consumed_step for e in events] == ["1", "2", None]


async def test_a_wait_times_out(engine: bf.Engine, clock: FakeClock) -> None:
    handle = await engine.start(approval, "INV-3")
    await engine.settle()
    await clock.advance(3600)
    await engine.settle()
    with pytest.raises(bf.RunFailed, match="no event 'approved' with key 'INV-3'") as info:
        await handle.result()
    assert isinstance(info.value.__cause__, bf.EventTimeout)


async def test_a_timeout_can_be_handled_by_the_workflow(
    engine: bf.Engine, clock: FakeClock
) -> None:
    @bf.workflow(name="escalate")
    async def escalate(ctx: bf.Context) -> str:
        try:
            await ctx.wait_for_event("approved", timeout=60)
            return "approved"
        except bf.EventTimeout:
            decision = await ctx.wait_for_event("manager")
            return f"escalated: {decision}"

    handle = await engine.start(escalate)
    await engine.settle()
    await clock.advance(60)
    await engine.settle()
    await engine.send_event("manager", "ok", run_id=handle.run_id)
    assert await handle.result() == "escalated: ok"


async def test_events_need_an_address(engine: bf.Engine) -> None:
    with pytest.raises(bf.ConfigError, match="run id or a correlation key"):
        await engine.send_event("approved", {})
    with pytest.raises(bf.RunNotFound):
        await engine.send_event("approved", {}, run_id="no-such-run")
    with pytest.raises(bf.SerializationError):
        await engine.send_event("approved", object(), key="k")


async def test_a_deadline_scope_caps_waits_and_cuts_steps(
    engine: bf.Engine, clock: FakeClock
) -> None:
    import asyncio

    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    @bf.workflow(name="scoped")
    async def scoped(ctx: bf.Context) -> list[str]:
        outcomes = []
        begin = await ctx.now()
        with ctx.deadline(begin + 60):
            try:
                await ctx.sleep(3600)  # parks until the deadline, not for an hour
            except bf.DeadlineExceeded:
                outcomes.append("sleep cut")
        with ctx.deadline(await ctx.now() + 30):
            try:
                await ctx.step(bf.step(forever, timeout=600))
            except bf.DeadlineExceeded:
                outcomes.append("step cut")
        return outcomes

    handle = await engine.start(scoped)
    await engine.settle()
    assert (await handle.record()).wake_at == clock.now() + 60
    await clock.advance(60)
    await started.wait()
    await clock.advance(30)
    await engine.settle()
    assert await handle.result() == ["sleep cut", "step cut"]
    failed = [s for s in await engine.store.load_steps(handle.run_id) if s.kind is bf.StepKind.STEP]
    assert "DeadlineExceeded" in (failed[0].error_json or "")  # recorded: a replay agrees
