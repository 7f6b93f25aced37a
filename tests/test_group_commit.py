"""Concurrent runs share commits: many step records, far fewer transactions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.store._audit import verify_records


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


async def test_a_batch_reads_the_chain_head_once(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer remembers the head its open transaction appended: a batch of group-committed
    writes reads it once, and the chain still verifies (a failed write in a batch included)."""
    import sqlite3

    statements: list[str] = []
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    store = bf.SQLiteStore(db_path)
    async with bf.Engine(store) as engine:
        before = store.commits
        results = await asyncio.gather(*(engine.run(three_steps, i) for i in range(64)))
        commits = store.commits - before
        bad = [engine.store.deliver_event("t", "{}", 1.0, run_id="nobody") for _ in range(3)]
        failed = await asyncio.gather(*bad, engine.run(three_steps, 99), return_exceptions=True)
        trail = await store.read_audit(limit=100_000)
    assert results == list(range(64))
    assert all(isinstance(f, bf.RunNotFound) for f in failed[:3])
    assert failed[3] == 99
    head_reads = sum("FROM audit ORDER BY seq DESC" in s for s in statements)
    # once per transaction (a failed write makes the next one read it again), not once per write
    assert head_reads <= commits + 12 < 64 * 4
    checked, _, problem = verify_records(trail)
    assert problem is None
    assert checked == len(trail) > 64 * 5


async def test_commit_observers_see_every_commit_of_both_stores(store_url: str) -> None:
    """What ``batonflow_store_commit_seconds`` is fed from: each committed write transaction,
    with its duration; an observer that raises does not fail a write that committed."""
    store = bf.open_store(store_url)
    seen: list[float] = []

    def broken(seconds: float) -> None:
        raise RuntimeError("an observer's bug")

    store.observe_commits(seen.append)  # type: ignore[attr-defined]
    store.observe_commits(broken)  # type: ignore[attr-defined]
    async with bf.Engine(store) as engine:
        results = await asyncio.gather(*(engine.run(three_steps, i) for i in range(8)))
        writes = len(seen)
        assert await store.add_record("test", "k", "{}", 1.0)
        if isinstance(store, bf.SQLiteStore):
            assert len(seen) == store.commits  # one observation per commit, no more
    assert results == list(range(8))
    assert writes >= 4  # at least the writes of one run; concurrent ones may share commits
    assert len(seen) > writes  # the record's insert committed and was seen too
    assert all(0 <= s < 60 for s in seen)
