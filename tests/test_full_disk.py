"""A full disk under a SQLite engine: writes fail, the engine hands its runs back and pauses its
claims instead of exiting or spinning, an alert goes out at once (to a real webhook receiver),
and once there is room again every run completes with nothing recorded lost, the alert is put
on the record and a ``store.recovered`` alert resolves it. The disk is "filled" with SQLite's
own ``max_page_count``, which fails writes with the same SQLITE_FULL error as a full file
system.

Nothing here waits on a fixed time: each wait is for an event (an alert arriving, runs ending)
with a generous bound, so a loaded machine makes the test slower, never wrong."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import batonflow as bf
from batonflow._net import make_client
from batonflow.governance import AlertHook
from batonflow.governance._alert_config import AlertSettings
from batonflow.store import RunStatus, SQLiteStore
from batonflow.testing import FakeClock
from governance.receivers import Receiver, receiver

#: Real seconds an awaited event may take on a loaded machine (never reached when all is well).
PATIENCE = 120


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


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as server:
        yield server


def alerts_to(hooks: Receiver) -> AlertHook:
    settings = AlertSettings.parse({"webhooks": [{"url": hooks.url}]}, "test")
    return settings.hook(lambda engine: make_client())


@pytest.mark.slow
@pytest.mark.long
async def test_a_full_disk_pauses_the_engine_alerts_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, hooks: Receiver
) -> None:
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "full.db")
    engine = bf.Engine(store, clock=clock, workflows=[napper], hooks=[alerts_to(hooks)])
    async with engine:
        handles = [await engine.start(napper, f"r{i}") for i in range(12)]
        await engine.settle()  # all asleep: the sleep is recorded
        await _limit_pages(store, None)
        with caplog.at_level(logging.ERROR, logger="batonflow"):
            await clock.advance(10)
            await asyncio.wait_for(engine.settle(), PATIENCE)
            # at once, though nothing can be recorded: the webhook hears of it
            [failing] = await asyncio.to_thread(hooks.wait_for, "store.failing", 1, PATIENCE)
        assert "database or disk is full" in failing["data"]["summary"]
        assert failing["data"]["details"]["error"] == "SQLite error: database or disk is full"
        assert "the store is failing" in caplog.text
        # one pause per retry (0.5 s, doubling), not a hot loop over the 12 runs
        assert 1 <= caplog.text.count("the store is failing") <= 4
        assert caplog.text.count("handing the run back") <= 24
        runs = [await engine.get_run(h.run_id) for h in handles]
        statuses = {run.status for run in runs if run is not None}
        # Nothing failed. A run whose hand-back could not be written either (the disk is full)
        # still reads RUNNING; it is this engine's, and it hands it back once there is room.
        assert statuses <= {RunStatus.PENDING, RunStatus.RUNNING}, statuses
        with pytest.raises(bf.StoreError, match="disk is full"):
            await engine.start(napper, "x" * 200_000)  # the caller is told, clearly
        assert hooks.of("store.recovered") == []
        await _limit_pages(store, 1 << 30)  # room again
        waiting = asyncio.gather(*(h.result() for h in handles))
        results = await asyncio.wait_for(waiting, PATIENCE)
        [recovered] = await asyncio.to_thread(hooks.wait_for, "store.recovered", 1, PATIENCE)
        assert recovered["data"]["details"]["resolves"] == failing["id"]
        trail = await engine.store.read_audit()
    assert results == [(f"R{i}" * 400)[:10] for i in range(12)]
    assert len(hooks.of("store.failing")) == 1  # one alert for the episode, not one per run
    # what was sent while nothing could be written is on the record now, sent
    record = await _record(tmp_path / "full.db", failing["id"])
    assert record["state"] == "sent"
    raised = [json.loads(e.data_json)["key"] for e in trail if e.kind == "alert.raised"]
    assert failing["id"] in raised


async def _record(path: Path, key: str) -> dict[str, object]:
    store = SQLiteStore(path)
    await store.open()
    try:
        text = await store.get_record("alert", key)
    finally:
        await store.close()
    assert text is not None, f"no alert record {key!r}"
    data: dict[str, object] = json.loads(text)
    return data
