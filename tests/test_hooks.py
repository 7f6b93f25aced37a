"""Engine hooks: told as things happen, with the facts the store recorded, and never able to
change a run."""

from __future__ import annotations

from typing import Any

import pytest

import batonflow as bf
from batonflow.testing import FakeClock
from conftest import EngineFactory


class Recorder(bf.Hook):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def opened(self, engine: bf.Engine) -> None:
        self.seen.append("opened")

    async def closing(self, engine: bf.Engine) -> None:
        self.seen.append("closing")

    def run_started(self, event: bf.RunStarted) -> None:
        self.seen.append(event)

    def attempt_failed(self, event: bf.FailedAttempt) -> None:
        self.seen.append(event)

    def run_ended(self, event: bf.RunEnded) -> None:
        self.seen.append(event)


@bf.step(retry=bf.Retry(max_attempts=2, initial_delay=10, jitter=0))
async def flaky() -> str:
    raise ConnectionError(f"down ({bf.current_step().attempt})")


@bf.workflow(name="flaky")
async def uses_flaky(ctx: bf.Context) -> str:
    return await ctx.step(flaky)


@bf.workflow(name="fine")
async def fine(ctx: bf.Context) -> str:
    return "ok"


async def test_hooks_hear_of_starts_failed_attempts_and_ends(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    hook = Recorder()
    async with make_engine(hooks=[hook]) as engine:
        handle = await engine.start(uses_flaky)
        await engine.settle()
        await clock.advance(10)
        await engine.settle()
        record = await handle.record()
    assert record.status is bf.RunStatus.FAULTED
    assert hook.seen[0] == "opened"
    assert hook.seen[-1] == "closing"
    events = hook.seen[1:-1]
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["RunStarted", "FailedAttempt", "RunStarted", "FailedAttempt", "RunEnded"]
    first, last = events[1], events[3]
    assert (first.step, first.attempt, first.retry_at) == ("flaky", 1, first.at + 10)
    assert (last.attempt, last.retry_at) == (2, None)  # it gave up
    assert last.error["message"] == "down (2)"
    ended = events[4]
    assert (ended.status, ended.at) == (bf.RunStatus.FAULTED, record.finished_at)
    assert ended.error["message"] == "down (2)"


async def test_a_failing_hook_changes_nothing(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(bf.Hook):
        def run_ended(self, event: bf.RunEnded) -> None:
            raise RuntimeError("hook bug")

    async with make_engine(hooks=[Broken()]) as engine:
        assert await engine.run(fine) == "ok"
    assert "hook Broken.run_ended failed; the run goes on" in caplog.text


async def test_only_hooks_are_hooks(store_url: str) -> None:
    with pytest.raises(bf.ConfigError, match=r"expected a batonflow\.Hook, got function"):
        bf.Engine(store_url, hooks=[lambda event: None])  # type: ignore[list-item]


async def test_a_hook_that_cannot_open_leaves_the_store_closed(
    make_engine: EngineFactory,
) -> None:
    class NoChannels(bf.Hook):
        async def opened(self, engine: bf.Engine) -> None:
            raise bf.ConfigError("no channels")

    with pytest.raises(bf.ConfigError, match="no channels"):
        async with make_engine(hooks=[NoChannels()]):
            pass
    async with make_engine() as engine:  # the database is free again
        assert await engine.run(fine) == "ok"
