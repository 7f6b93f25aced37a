"""Lease fences: an engine that cannot renew its leases stops its runs before they expire, and
hands them back once the store answers again (so no other engine can run them at the same time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import batonflow as bf

LEASE = 0.6  # seconds of real time: the fence falls 0.5 s after the lease was requested


class StallingStore(bf.SQLiteStore):
    """A store whose lease renewals hang while ``stalled`` is set (an unreachable database)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.stalled = asyncio.Event()
        self.answer = asyncio.Event()
        self.released: list[str] = []

    async def renew_leases(self, owner: str, run_ids: Sequence[str], lease_until: float) -> Any:
        if self.stalled.is_set():
            await self.answer.wait()
        return await super().renew_leases(owner, run_ids, lease_until)

    async def release_run(self, run_id: str, owner: str, now: float) -> None:
        self.released.append(run_id)
        await super().release_run(run_id, owner, now)


async def test_a_run_is_stopped_at_its_fence_and_handed_back(db_path: Path) -> None:
    store = StallingStore(db_path)
    cut = asyncio.Event()
    go_on = asyncio.Event()
    attempts: list[float] = []

    async def slow() -> str:
        attempts.append(time.monotonic())
        try:
            await go_on.wait()
        except asyncio.CancelledError:
            cut.set()
            raise
        return "done"

    @bf.workflow(name="fenced")
    async def fenced(ctx: bf.Context) -> str:
        return str(await ctx.step(bf.step(slow, name="slow", retry=bf.Retry.never())))

    async with bf.Engine(store, workflows=[fenced], lease_seconds=LEASE) as engine:
        store.stalled.set()
        handle = await engine.start(fenced)
        await asyncio.wait_for(cut.wait(), 10 * LEASE)  # stopped by its fence...
        stopped_after = time.monotonic() - attempts[0]
        assert stopped_after < LEASE  # ...before the lease expired
        assert (await handle.record()).status is bf.RunStatus.RUNNING  # nobody told the store
        store.answer.set()  # the store answers again: the run is handed back and taken anew
        go_on.set()
        assert await handle.result(timeout=10 * LEASE) == "done"
    assert store.released[:1] == [handle.run_id]
    assert len(attempts) == 2
