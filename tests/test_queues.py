"""Named queues on one engine (both stores): concurrency and rate limits, and which queues an
engine serves. Several engines sharing limits are in ``tests/postgres/test_queues.py``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import batonflow as bf
from batonflow.testing import FakeClock
from conftest import EngineFactory


class Gauge:
    """How many step functions run at once, at most. The first ones wait until ``full`` of them
    are in (so the limit is reached however the claims interleave), then all pass."""

    def __init__(self, full: int = 1) -> None:
        self.now = 0
        self.most = 0
        self.full = asyncio.Event()
        self.want = full

    def step(self) -> bf.Step[[str], Any]:
        async def gauge(tag: str) -> str:
            self.now += 1
            self.most = max(self.most, self.now)
            if self.now >= self.want:
                self.full.set()
            try:
                await self.full.wait()
                for _ in range(5):
                    await asyncio.sleep(0)  # let the others in, if the limits allow them
            finally:
                self.now -= 1
            return tag

        return bf.step(gauge, name="gauge")


@pytest.fixture
def gauge() -> Gauge:
    return Gauge()


def flows(gauge: Gauge) -> tuple[bf.Workflow[str, str], bf.Workflow[str, str]]:
    step = gauge.step()

    @bf.workflow(name="limited", queue="llm")
    async def limited(ctx: bf.Context, tag: str) -> str:
        return str(await ctx.step(step, tag))

    @bf.workflow(name="free")
    async def free(ctx: bf.Context, tag: str) -> str:
        return str(await ctx.step(step, tag))

    return limited, free


async def _ended(engine: bf.Engine, handles: list[bf.RunHandle[str]]) -> int:
    return sum([(await h.status()) is bf.RunStatus.COMPLETED for h in handles])


async def test_a_queue_runs_at_most_its_concurrency(
    make_engine: EngineFactory, gauge: Gauge
) -> None:
    gauge.want = 2
    limited, _ = flows(gauge)
    queues = {"llm": bf.Queue(concurrency=2)}
    async with make_engine(queues=queues) as engine:
        handles = [await engine.start(limited, f"r{i}") for i in range(7)]
        await engine.settle()
        assert [await h.result() for h in handles] == [f"r{i}" for i in range(7)]
    assert gauge.most == 2


async def test_a_queue_starts_at_most_its_rate(
    make_engine: EngineFactory, gauge: Gauge, clock: FakeClock
) -> None:
    limited, free = flows(gauge)
    queues = {"llm": bf.Queue(rate=bf.RateLimit(3, per=60))}
    async with make_engine(queues=queues) as engine:
        handles = [await engine.start(limited, f"r{i}") for i in range(7)]
        other = await engine.start(free, "free")  # no queue, no limit
        await engine.settle()
        assert await other.result() == "free"
        assert await _ended(engine, handles) == 3
        await clock.advance(59)
        await engine.settle()
        assert await _ended(engine, handles) == 3
        await clock.advance(1)
        await engine.settle()
        assert await _ended(engine, handles) == 6
        await clock.advance(60)
        await engine.settle()
        assert await _ended(engine, handles) == 7


async def test_an_engine_serves_only_the_queues_it_is_given(
    make_engine: EngineFactory, gauge: Gauge
) -> None:
    limited, free = flows(gauge)
    async with make_engine(serve=["llm"]) as engine:
        queued = await engine.start(limited, "q")
        unqueued = await engine.start(free, "f")
        await engine.settle()
        assert await queued.result() == "q"
        assert await unqueued.status() is bf.RunStatus.PENDING
    async with make_engine(serve=["default"], workflows=[free]) as engine:
        await engine.settle()
        assert await engine.handle(unqueued.run_id).result() == "f"
    async with make_engine(serve=[]) as submitter:  # starts runs, leaves them to workers
        later = await submitter.start(free, "later")
        await submitter.settle()
        assert await later.status() is bf.RunStatus.PENDING


def test_queue_settings_are_checked() -> None:
    with pytest.raises(bf.ConfigError):
        bf.Queue(concurrency=0)
    with pytest.raises(bf.ConfigError):
        bf.RateLimit(0)
    with pytest.raises(bf.ConfigError):
        bf.Engine("x.db", queues={"default": bf.Queue(concurrency=1)})
    with pytest.raises(bf.ConfigError):
        bf.workflow(queue=" ")(_noop)
    assert bf.workflow(queue="default")(_noop).queue is None


async def _noop(ctx: bf.Context) -> None:
    return None


def test_the_worker_reads_queue_limits_from_the_command_line() -> None:
    from batonflow.cli._worker import parse_queue_limit, served

    assert parse_queue_limit("llm:concurrency=4,per-worker=2,rate=50/60") == (
        "llm",
        bf.Queue(concurrency=4, per_worker=2, rate=bf.RateLimit(50, per=60)),
    )
    assert parse_queue_limit("mail:rate=10") == ("mail", bf.Queue(rate=bf.RateLimit(10)))
    for bad in ("llm", "llm:", "llm:speed=3", "llm:rate=fast", "llm:concurrency=0"):
        with pytest.raises(bf.ConfigError):
            parse_queue_limit(bad)
    assert served("default, llm") == ["default", "llm"]
    assert served(None) is None
