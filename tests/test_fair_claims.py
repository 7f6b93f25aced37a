"""Fair scheduling: runs already under way (a due timer, a delivered event, an expired lease) are
claimed before new runs, so a backlog of thousands of new runs never delays a due timer by
more than one poll. On both stores."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import batonflow as bf
from batonflow.store import NewRun, RunStatus
from batonflow.testing import FakeClock
from conftest import EngineFactory

BACKLOG = 5_000
ROOM = 8  # an engine's free slots in one claim


@bf.workflow
async def nap(ctx: bf.Context, seconds: float) -> str:
    await ctx.sleep(seconds)
    return "woke"


@bf.workflow
async def listener(ctx: bf.Context, _: None) -> object:
    return await ctx.wait_for_event("go")


async def _backlog(store: bf.Store, created_at: float) -> None:
    async def one(index: int) -> None:
        run = NewRun(
            id=uuid.uuid4().hex, workflow="backlog", workflow_ref=None, input_json=str(index),
            status=RunStatus.PENDING, owner=None, lease_until=None, created_at=created_at,
        )  # fmt: skip
        await store.create_run(run)

    for start in range(0, BACKLOG, 250):
        await asyncio.gather(*(one(i) for i in range(start, min(start + 250, BACKLOG))))


@pytest.mark.slow
@pytest.mark.long  # 5,000 inserts: ~40 s on a loaded PostgreSQL
async def test_due_timers_and_events_are_claimed_before_a_backlog_of_new_runs(
    make_engine: EngineFactory, store_url: str, clock: FakeClock
) -> None:
    async with make_engine(workflows=[nap, listener]) as engine:
        sleeper = await engine.start(nap, 0.5)
        waiter = await engine.start(listener, None)
        await engine.settle()
        assert (await engine.get_run(sleeper.run_id)).status is RunStatus.WAITING  # type: ignore[union-attr]
    parked_at = clock.now()
    store = bf.open_store(store_url)
    await store.open()
    try:
        # the backlog is older than the timer's wake-up time: ordering by time alone would put
        # all 5,000 first
        await _backlog(store, created_at=parked_at - 60)
        await store.deliver_event("go", '"now"', parked_at, run_id=waiter.run_id)
        due = parked_at + 0.5
        claimed = await store.claim_runs("fair-test", due, due + 30, ROOM)
        ids = {run.id for run in claimed}
        assert sleeper.run_id in ids  # the due timer, in the first claim
        assert waiter.run_id in ids  # the delivered event too
        assert len(claimed) == ROOM  # and the rest of the room goes to the backlog
        assert sum(run.workflow == "backlog" for run in claimed) == ROOM - 2
    finally:
        await store.close()


@pytest.mark.slow
async def test_new_runs_keep_their_order_among_themselves(store_url: str) -> None:
    store = bf.open_store(store_url)
    await store.open()
    try:
        for index in range(5):
            run = NewRun(
                id=f"r{index}", workflow="w", workflow_ref=None, input_json="null",
                status=RunStatus.PENDING, owner=None, lease_until=None, created_at=100.0 + index,
            )  # fmt: skip
            await store.create_run(run)
        claimed = await store.claim_runs("o", 200.0, 230.0, 3)
        assert [run.id for run in claimed] == ["r0", "r1", "r2"]
    finally:
        await store.close()
