"""The change feed on its own: complete history after any sequence number, then live entries;
on PostgreSQL, woken by LISTEN/NOTIFY (the polling interval is set far beyond the test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import batonflow as bf
from batonflow.server._feed import Feed
from batonflow.store import AuditEntry


@pytest.fixture
async def two_stores(store_url: str) -> AsyncIterator[tuple[bf.Store, bf.Store]]:
    reader, writer = bf.open_store(store_url), bf.open_store(store_url)
    await reader.open()
    await writer.open()
    try:
        yield reader, writer
    finally:
        await reader.close()
        await writer.close()


async def _append(store: bf.Store, *kinds: str) -> None:
    await store.append_audit([AuditEntry(k, "{}", run_id="r1") for k in kinds], 1.0)


async def test_history_then_live_without_gaps(two_stores: tuple[bf.Store, bf.Store]) -> None:
    reader, writer = two_stores
    await _append(writer, "a.one", "a.two", "a.three")
    feed = Feed(reader, interval=60.0)  # only a wake-up (NOTIFY) or the history read delivers
    seen = asyncio.Event()
    feed.observe(lambda r: seen.set() if r.kind == "a.four" else None)
    await feed.start()
    assert feed.head == 3
    try:
        stream = feed.entries(1, lambda r: True)
        got = [await anext(stream), await anext(stream)]
        assert [r.kind for r in got] == ["a.two", "a.three"]
        await _append(writer, "a.four")
        if not hasattr(reader, "on_audit"):
            feed.wake()  # SQLite has no notifications: the interval (here: a wake) reads it
        await asyncio.wait_for(seen.wait(), 10)  # the follower read it: it was woken
        assert feed.head == 4
        live = await asyncio.wait_for(anext(stream), 10)
        assert (live.seq, live.kind) == (4, "a.four")
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await feed.stop()


async def test_the_last_sequence_is_found_in_few_reads(
    two_stores: tuple[bf.Store, bf.Store],
) -> None:
    reader, writer = two_stores
    await _append(writer, *[f"k.{i}" for i in range(37)])
    feed = Feed(reader)
    await feed.start()
    try:
        assert feed.head == 37
    finally:
        await feed.stop()
