"""Queue limits hold across engines: each engine object here stands for a worker process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

import batonflow as bf
from batonflow.store import NewRun
from batonflow.testing import FakeClock


async def _submit(store: bf.Store, wf: bf.Workflow[Any, Any], n: int, now: float) -> list[str]:
    ids = []
    for i in range(n):
        run = NewRun(
            id=uuid.uuid4().hex, workflow=wf.name, workflow_ref=None, input_json=str(i),
            status=bf.RunStatus.PENDING, owner=None, lease_until=None, created_at=now + i,
            queue=wf.queue,
        )  # fmt: skip
        ids.append((await store.create_run(run))[0].id)
    return ids


async def test_concurrency_limits_hold_across_workers(pg_url: str) -> None:
    observer = bf.open_store(pg_url)
    await observer.open()
    in_flight: Counter[str] = Counter()  # by worker
    most: Counter[str] = Counter()
    most_total = 0
    three_in = asyncio.Event()

    async def call_model(i: int) -> int:
        nonlocal most_total
        run = await observer.get_run(bf.current_step().run_id)
        assert run is not None
        assert run.owner is not None
        in_flight[run.owner] += 1
        most[run.owner] = max(most[run.owner], in_flight[run.owner])
        most_total = max(most_total, sum(in_flight.values()))
        if sum(in_flight.values()) >= 3:
            three_in.set()
        try:
            await asyncio.wait_for(three_in.wait(), 10)  # hold the slots until the limit is met
            await asyncio.sleep(0.01)
        finally:
            in_flight[run.owner] -= 1
        return i

    @bf.workflow(name="llm_call", queue="llm")
    async def llm_call(ctx: bf.Context, i: int) -> int:
        return int(await ctx.step(bf.step(call_model, name="call_model"), i))

    queues = {"llm": bf.Queue(concurrency=3, per_worker=2)}
    try:
        async with AsyncExitStack() as stack:
            workers = [
                await stack.enter_async_context(
                    bf.Engine(pg_url, workflows=[llm_call], queues=queues, poll_interval=0.1)
                )
                for _ in range(2)
            ]
            ids = await _submit(observer, llm_call, 12, time.time())
            results = [await workers[0].handle(r).result(timeout=30) for r in ids]
    finally:
        await observer.close()
    assert results == list(range(12))
    assert most_total == 3
    assert len(most) == 2
    assert max(most.values()) == 2


async def test_rate_limits_hold_across_workers(pg_url: str) -> None:
    clock = FakeClock()
    started: list[float] = []

    async def call_model(i: int) -> int:
        started.append(clock.now())
        return i

    @bf.workflow(name="rated", queue="llm")
    async def rated(ctx: bf.Context, i: int) -> int:
        return int(await ctx.step(bf.step(call_model, name="call_model"), i))

    queues = {"llm": bf.Queue(rate=bf.RateLimit(4, per=60))}
    async with AsyncExitStack() as stack:
        workers = [
            await stack.enter_async_context(
                bf.Engine(pg_url, workflows=[rated], queues=queues, clock=clock)
            )
            for _ in range(3)
        ]
        await _submit(workers[0].store, rated, 10, clock.now())
        seen = []
        for _ in range(3):
            await asyncio.gather(*(w.settle() for w in workers))
            seen.append(len(started))
            await clock.advance(60)
    assert seen == [4, 8, 10]
