"""Several engines on one PostgreSQL schema, in one process: claims, takeover, wake-ups, timers.

Each engine (or store) object here stands for a worker process: it has its own connection pool
and its own LISTEN connection, and knows the others only through the database.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

import batonflow as bf
from batonflow.store import NewRun
from batonflow.testing import FakeClock

WAKE_BOUND = 2.0  # seconds; a wake-up by NOTIFY takes milliseconds, the poll here takes 60 s


def _pending(run_id: str, wf: bf.Workflow[Any, Any], now: float, data: Any = None) -> NewRun:
    return NewRun(
        id=run_id, workflow=wf.name, workflow_ref=wf.ref, input_json=json.dumps(data),
        status=bf.RunStatus.PENDING, owner=None, lease_until=None, created_at=now,
        queue=wf.queue,
    )  # fmt: skip


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Open another store on the test's schema (as another process would)."""
    async with AsyncExitStack() as stack:

        async def another() -> bf.Store:
            store = bf.open_store(pg_url)
            await store.open()
            stack.push_async_callback(store.close)
            return store

        yield another


async def test_concurrent_claimers_never_share_a_run(stores: Callable[[], Any]) -> None:
    workers = [await stores() for _ in range(6)]
    setup = workers[0]
    for i in range(300):
        await setup.create_run(
            NewRun(f"r{i:03}", "wf", None, "{}", bf.RunStatus.PENDING, None, None, 1000.0 + i)
        )

    async def drain(store: bf.Store, owner: str) -> list[str]:
        mine: list[str] = []
        while batch := await store.claim_runs(owner, 5000.0, 5030.0, 7):
            mine += [r.id for r in batch]
            await asyncio.sleep(0)
        return mine

    claims = await asyncio.gather(*(drain(s, f"w{n}") for n, s in enumerate(workers)))
    everything = [run_id for claim in claims for run_id in claim]
    assert len(everything) == len(set(everything)) == 300
    assert sum(1 for claim in claims if claim) > 1, "one claimer took everything"


async def test_a_dead_workers_run_is_taken_over_and_resumed_from_its_journal(
    pg_url: str, stores: Callable[[], Any]
) -> None:
    clock = FakeClock()
    calls: Counter[str] = Counter()

    @bf.step(name="s")
    async def s(tag: str) -> str:
        calls[tag] += 1
        return tag

    @bf.workflow(name="two_steps")
    async def two_steps(ctx: bf.Context) -> list[str]:
        return [await ctx.step(s, "a"), await ctx.step(s, "b")]

    # A worker that died after recording step 1: its run is RUNNING under a lease nobody renews.
    dead = await stores()
    now = clock.now()
    run = _pending("orphan", two_steps, now)
    await dead.create_run(
        NewRun(**{**_fields(run), "status": bf.RunStatus.RUNNING, "owner": "dead:1",
                  "lease_until": now + 30})
    )  # fmt: skip
    first = bf.StepRecord("orphan", "1", bf.StepKind.STEP, "s", bf.StepStatus.COMPLETED,
                          output_json='"a"', attempts=1)  # fmt: skip
    await dead.save_steps("orphan", "dead:1", [first], [], now)

    async with bf.Engine(pg_url, workflows=[two_steps], clock=clock, lease_seconds=30) as engine:
        await engine.settle()
        assert (await engine.get_run("orphan")).status is bf.RunStatus.RUNNING  # lease still on
        await clock.advance(31)
        await engine.settle()
        assert await engine.handle("orphan").result() == ["a", "b"]
    assert calls == {"b": 1}  # step 1 came from the journal


def _fields(run: NewRun) -> dict[str, Any]:
    return {name: getattr(run, name) for name in run.__dataclass_fields__}


async def test_notify_wakes_an_idle_worker_for_new_runs_and_events(
    pg_url: str, stores: Callable[[], Any]
) -> None:
    began: asyncio.Queue[tuple[str, float]] = asyncio.Queue()

    async def mark(tag: str) -> str:
        await began.put((tag, time.monotonic()))
        return tag

    @bf.workflow(name="wakes")
    async def wakes(ctx: bf.Context) -> str:
        await ctx.step(mark, "started")
        await ctx.wait_for_event("go")
        return str(await ctx.step(mark, "resumed"))

    other = await stores()  # another process: the worker can learn of its writes only by NOTIFY
    async with bf.Engine(pg_url, workflows=[wakes], poll_interval=60.0) as worker:
        await worker.settle()
        sent = time.monotonic()
        await other.create_run(_pending("w1", wakes, time.time()))
        tag, at = await asyncio.wait_for(began.get(), WAKE_BOUND)
        assert tag == "started"
        started_after = at - sent
        await worker.settle()  # it parked, waiting for "go"
        sent = time.monotonic()
        await other.deliver_event("go", "1", time.time(), run_id="w1")
        tag, at = await asyncio.wait_for(began.get(), WAKE_BOUND)
        assert tag == "resumed"
        assert await worker.handle("w1").result(timeout=WAKE_BOUND) == "resumed"
    assert started_after < WAKE_BOUND / 2
    assert at - sent < WAKE_BOUND / 2


async def test_timers_fire_once_on_exactly_one_of_several_workers(
    pg_url: str, stores: Callable[[], Any]
) -> None:
    clock = FakeClock()
    executed: Counter[tuple[str, str]] = Counter()

    async def after(tag: str) -> str:
        executed[bf.current_step().run_id, tag] += 1
        await asyncio.sleep(0)
        return tag

    @bf.workflow(name="timed")
    async def timed(ctx: bf.Context) -> str:
        await ctx.sleep(60)  # a durable sleep
        await ctx.step(after, "slept")
        try:
            await ctx.wait_for_event("approval", timeout=30)  # an approval that expires
        except bf.EventTimeout:
            await ctx.step(after, "expired")
        return "done"

    submitter = await stores()
    ids = [f"t{i}" for i in range(40)]
    for run_id in ids:
        await submitter.create_run(_pending(run_id, timed, clock.now()))
    async with AsyncExitStack() as stack:
        engines = [
            await stack.enter_async_context(
                bf.Engine(pg_url, workflows=[timed], clock=clock, poll_interval=60.0)
            )
            for _ in range(3)
        ]

        async def settle_all() -> None:
            await asyncio.gather(*(e.settle() for e in engines))

        await settle_all()
        assert executed == {}
        for _ in range(3):
            await clock.advance(30)
            await settle_all()
        for run_id in ids:
            assert await engines[0].handle(run_id).result() == "done"
    assert executed == {(r, tag): 1 for r in ids for tag in ("slept", "expired")}
