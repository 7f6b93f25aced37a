"""Retries with durable backoff, step timeouts (async and sync), run deadlines."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

import batonflow as bf
from batonflow.testing import FakeClock


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


def flaky_step(failures: int, error: type[Exception] = Flaky) -> tuple[list[int], bf.Step]:
    attempts: list[int] = []

    async def call_crm() -> str:
        attempts.append(bf.current_step().attempt)
        if len(attempts) <= failures:
            raise error(f"CRM timed out (attempt {len(attempts)})")
        return "logged"

    return attempts, bf.step(call_crm)


def one_step_flow(step: bf.Step, name: str) -> bf.Workflow:
    async def flow(ctx: bf.Context) -> str:
        return await ctx.step(step)

    return bf.Workflow(flow, name=name)


async def test_retries_back_off_durably_and_record_every_attempt(
    engine: bf.Engine, clock: FakeClock
) -> None:
    attempts, call_crm = flaky_step(2)
    policy = bf.Retry(max_attempts=5, initial_delay=2, backoff=3, jitter=0)
    flow = one_step_flow(bf.step(call_crm, retry=policy), "retrying")
    handle = await engine.start(flow)
    await engine.settle()
    step = (await engine.store.load_steps(handle.run_id))[0]
    assert (step.status, step.attempts, step.wake_at) == (
        bf.StepStatus.PENDING, 1, clock.now() + 2,
    )  # fmt: skip
    assert await handle.status() is bf.RunStatus.WAITING
    await clock.advance(2)
    await engine.settle()
    assert attempts == [1, 2]
    await clock.advance(5.9)  # second backoff is 2 * 3 = 6 s
    await engine.settle()
    assert attempts == [1, 2]
    await clock.advance(0.1)
    await engine.settle()
    assert await handle.result() == "logged"
    assert attempts == [1, 2, 3]
    recorded = await engine.store.load_attempts(handle.run_id)
    assert [(a.attempt, json.loads(a.error_json)["type"]) for a in recorded] == [
        (1, f"{__name__}:Flaky"),
        (2, f"{__name__}:Flaky"),
    ]
    assert (await engine.store.load_steps(handle.run_id))[0].attempts == 3


async def test_backoff_is_capped_and_jittered() -> None:
    import random

    policy = bf.Retry(initial_delay=1, backoff=10, max_delay=30, jitter=0.5)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in (1, 2, 3, 4)]
    assert 0.5 <= delays[0] <= 1.5
    assert 5 <= delays[1] <= 15
    assert all(15 <= d <= 45 for d in delays[2:])
    assert len(set(delays)) == 4


async def test_the_last_error_is_raised_after_the_last_attempt(
    engine: bf.Engine, clock: FakeClock
) -> None:
    attempts, call_crm = flaky_step(10)
    flow = one_step_flow(bf.step(call_crm, retry=bf.Retry(max_attempts=3, jitter=0)), "gives_up")
    handle = await engine.start(flow)
    for _ in range(3):
        await engine.settle()
        await clock.advance(60)
    await engine.settle()
    with pytest.raises(bf.RunFailed, match="attempt 3") as info:
        await handle.result()
    assert isinstance(info.value.__cause__, Flaky)
    assert info.value.error["step"] == "1"
    assert attempts == [1, 2, 3]


async def test_errors_that_cannot_succeed_are_not_retried(engine: bf.Engine) -> None:
    attempts, call_crm = flaky_step(1, Fatal)
    policy = bf.Retry(max_attempts=5, give_up_on=(Fatal,))
    with pytest.raises(bf.RunFailed):
        await engine.run(one_step_flow(bf.step(call_crm, retry=policy), "fatal"))
    assert attempts == [1]

    attempts, call_crm = flaky_step(1, Fatal)
    policy = bf.Retry(max_attempts=5, retry_on=(Flaky,))
    with pytest.raises(bf.RunFailed):
        await engine.run(one_step_flow(bf.step(call_crm, retry=policy), "only_flaky"))
    assert attempts == [1]

    attempts, call_crm = flaky_step(1, bf.ConfigError)  # retryable = False
    with pytest.raises(bf.RunFailed):
        await engine.run(one_step_flow(call_crm, "config_error"))
    assert attempts == [1]


async def test_a_workflow_can_catch_a_failed_step(engine: bf.Engine) -> None:
    _attempts, call_crm = flaky_step(5)

    @bf.workflow(name="fallback")
    async def fallback(ctx: bf.Context) -> str:
        try:
            return await ctx.step(bf.step(call_crm, retry=bf.Retry.never()))
        except Flaky as exc:
            return f"queued for later: {exc}"

    assert await engine.run(fallback) == "queued for later: CRM timed out (attempt 1)"


async def test_async_step_timeout_cancels_the_attempt(engine: bf.Engine, clock: FakeClock) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    flow = one_step_flow(bf.step(hangs, timeout=5, retry=bf.Retry.never()), "hangs")
    handle = await engine.start(flow)
    await started.wait()
    await clock.advance(4.9)
    assert not cancelled.is_set()
    await clock.advance(0.1)
    await engine.settle()
    assert cancelled.is_set()
    with pytest.raises(bf.RunFailed, match=r"ran past its 5s timeout") as info:
        await handle.result()
    assert isinstance(info.value.__cause__, bf.StepTimeout)


async def test_sync_step_timeout_moves_on_and_abandons_the_thread(
    engine: bf.Engine, clock: FakeClock
) -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def blocks() -> str:
        started.set()
        release.wait(10)
        finished.append("thread done")
        return "too late"

    flow = one_step_flow(bf.step(blocks, timeout=3, retry=bf.Retry.never()), "blocks")
    handle = await engine.start(flow)
    await asyncio.get_running_loop().run_in_executor(None, started.wait)
    await clock.advance(3)
    await engine.settle()
    with pytest.raises(bf.RunFailed, match="timeout"):
        await handle.result()
    assert finished == []  # the run moved on while the thread still ran
    release.set()


async def test_run_deadline_interrupts_a_step(engine: bf.Engine, clock: FakeClock) -> None:
    started = asyncio.Event()

    @bf.workflow(name="slow", timeout=60)
    async def slow(ctx: bf.Context) -> None:
        async def forever() -> None:
            started.set()
            await asyncio.Event().wait()

        await ctx.step(forever)

    handle = await engine.start(slow)
    await started.wait()
    await clock.advance(60)
    await engine.settle()
    with pytest.raises(bf.RunFailed, match="deadline") as info:
        await handle.result()
    assert isinstance(info.value.__cause__, bf.RunTimeout)


async def test_run_deadline_fires_while_the_run_sleeps(engine: bf.Engine, clock: FakeClock) -> None:
    @bf.workflow(name="oversleeps", timeout=3600)
    async def oversleeps(ctx: bf.Context) -> None:
        await ctx.sleep(86400)

    handle = await engine.start(oversleeps)
    await engine.settle()
    record = await handle.record()
    assert (record.status, record.wake_at) == (bf.RunStatus.WAITING, clock.now() + 3600)
    await clock.advance(3600)
    await engine.settle()
    with pytest.raises(bf.RunFailed, match="deadline"):
        await handle.result()
