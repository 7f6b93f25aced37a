"""A full disk under a SQLite engine: writes fail, the engine hands its runs back and pauses its
claims instead of exiting or spinning, and once there is room again every run completes with
nothing recorded lost. The disk is "filled" with SQLite's own ``max_page_count``, which fails
writes with the same SQLITE_FULL error as a full file system."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

import batonflow as bf
from batonflow.store import RunStatus, SQLiteStore
from batonflow.testing import FakeClock


@bf.step
def shout(text: str) -> str:
    return text.upper() * 4000  # 8 KB: overflow pages, so it cannot fit in a page's free space


@bf.workflow
async def napper(ctx: bf.Context, text: str) -> str:
    await ctx.sleep(10)
    return (await ctx.step(shout, text))[:10]


async def _limit_pages(store: SQLiteStore, pages: int | None) -> None:
    """Cap the file at its current size (``None``: lift the cap). Private: a test device."""
    writer = store._writer
    assert writer is not None

    def cap(conn: object) -> None:
        execute = conn.execute  # type: ignore[attr-defined]
        size = pages if pages is not None else execute("PRAGMA page_count").fetchone()[0]
        execute(f"PRAGMA max_page_count={size}").fetchone()

    await writer.submit(cap)


@pytest.mark.slow
async def test_a_full_disk_pauses_the_engine_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "full.db")
    async with bf.Engine(store, clock=clock, workflows=[napper]) as engine:
        handles = [await engine.start(napper, f"r{i}") for i in range(12)]
        await engine.settle()  # all asleep: the sleep is recorded
        await _limit_pages(store, None)
        with caplog.at_level(logging.ERROR, logger="batonflow"):
            await clock.advance(10)
            await asyncio.wait_for(engine.settle(), 30)
        assert "the store is failing" in caplog.text
        assert "database or disk is full" in caplog.text
        # one pause per retry (0.5 s, doubling), not a hot loop over the 12 runs
        assert 1 <= caplog.text.count("the store is failing") <= 4
        assert caplog.text.count("handing the run back") <= 24
        runs = [await engine.get_run(h.run_id) for h in handles]
        statuses = {run.status for run in runs if run is not None}
        # Nothing failed. A run whose hand-back could not be written either (the disk is full)
        # still reads RUNNING; it is this engine's, and it takes it up again once there is room.
        assert statuses <= {RunStatus.PENDING, RunStatus.RUNNING}, statuses
        with pytest.raises(bf.StoreError, match="disk is full"):
            await engine.start(napper, "x" * 200_000)  # the caller is told, clearly
        await _limit_pages(store, 1 << 30)  # room again
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)
    assert results == [(f"R{i}" * 400)[:10] for i in range(12)]
