"""Concurrent runs share commits: many step records, far fewer transactions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import batonflow as bf


@bf.step
async def noop(i: int) -> int:
    return i


@bf.workflow
async def three_steps(ctx: bf.Context, i: int) -> int:
    a = await ctx.step(noop, i)
    b = await ctx.step(noop, a)
    return await ctx.step(noop, b)


async def test_concurrent_runs_share_commits(db_path: Path) -> None:
    store = bf.SQLiteStore(db_path)
    async with bf.Engine(store) as engine:
        before = store.commits
        results = await asyncio.gather(*(engine.run(three_steps, i) for i in range(64)))
        commits = store.commits - before
    assert results == list(range(64))
    # Sequentially each run costs 4 commits (start, step 1, step 2, step 3 + completion).
    assert commits < 64 * 4 / 2, commits
