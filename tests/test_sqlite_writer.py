"""The SQLite writer: batches concurrent writes, isolates a failing one, commits inline alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from batonflow.errors import LeaseLost, StoreError
from batonflow.store._sqlite_writer import Writer, connect


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    path = str(tmp_path / "w.db")
    setup = connect(path)
    setup.execute("CREATE TABLE t (v TEXT PRIMARY KEY)")
    setup.close()
    w = Writer(path)
    w.start()
    yield w
    w.close()


def insert(value: str) -> object:
    def op(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        return value

    return op


def fails_after_writing(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t VALUES ('partial')")
    raise LeaseLost("not ours")


def rows(writer: Writer) -> list[str]:
    conn = connect(writer._path)
    try:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")]
    finally:
        conn.close()


async def test_concurrent_writes_share_a_commit(writer: Writer) -> None:
    values = [f"v{i:02}" for i in range(40)]
    assert await asyncio.gather(*(writer.submit(insert(v)) for v in values)) == values
    assert writer.batches < 40
    assert rows(writer) == values


async def test_a_failing_write_changes_nothing_and_spares_its_batch(writer: Writer) -> None:
    results = await asyncio.gather(
        writer.submit(insert("a")),
        writer.submit(fails_after_writing),
        writer.submit(insert("b")),
        return_exceptions=True,
    )
    assert (results[0], results[2]) == ("a", "b")
    assert isinstance(results[1], LeaseLost)
    assert rows(writer) == ["a", "b"]  # no 'partial'


def thread_name(conn: sqlite3.Connection) -> str:
    return threading.current_thread().name


async def test_a_lone_write_commits_inline_and_a_crowd_goes_to_the_writer(writer: Writer) -> None:
    assert await writer.submit(thread_name) == threading.current_thread().name
    crowd = await asyncio.gather(*(writer.submit(thread_name) for _ in range(10)))
    assert "batonflow-sqlite-writer" in crowd


async def test_database_errors_are_translated(writer: Writer) -> None:
    assert await writer.submit(insert("solo")) == "solo"
    with pytest.raises(StoreError, match="SQLite error: UNIQUE constraint failed"):
        await writer.submit(insert("solo"))
    assert rows(writer) == ["solo"]


async def test_a_closed_writer_refuses_work(tmp_path: Path) -> None:
    w = Writer(str(tmp_path / "closed.db"))
    w.start()
    w.close()
    with pytest.raises(StoreError, match="closed"):
        await w.submit(insert("late"))
