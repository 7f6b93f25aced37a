"""The PostgreSQL trail is sealed after commit (docs/design.md decisions 96-98).

Writers insert entries unsealed, without touching the chain's head; a chainer seals committed
entries in (transaction id, order key) order. These tests write from real processes and from
raw connections standing for a writer whose transaction stays open, rolls back, or whose process
dies between its commit and a seal.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

import batonflow as bf
from batonflow.governance import verify_chain
from batonflow.governance._approval import vote_on_trail
from batonflow.store import AuditEntry
from batonflow.store._postgres import PostgresStore

#: A writer process: appends ``count`` transactions of three entries each, tagged with its name.
WRITER = """
import asyncio, sys
from batonflow.store import AuditEntry
from batonflow.store._postgres import PostgresStore

async def main(url, name, count):
    store = PostgresStore(url)
    await store.open()
    try:
        for i in range(count):
            entries = [AuditEntry("test.note", '{"n":%d,"k":%d}' % (i, k), None, None, name, ())
                       for k in range(3)]
            await store.append_audit(entries, 1000.0 + i)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""

#: A writer that commits one entry and then stops, never sealing (the test holds the chain
#: lock), until it is killed.
STALLED = """
import asyncio, sys, time
from batonflow.store import AuditEntry
from batonflow.store._postgres import PostgresStore

async def main(url):
    store = PostgresStore(url)
    await store.open()
    await store.append_audit([AuditEntry("test.note", '{"who":"stalled"}', None, None, "s", ())],
                             1000.0)
    print("committed", flush=True)
    time.sleep(3600)  # blocks the loop: no pass of this process runs again

asyncio.run(main(sys.argv[1]))
"""


def note(text: str, run_id: str | None = None) -> AuditEntry:
    return AuditEntry("test.note", json.dumps({"note": text}), run_id, None, "tester", ())


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_url)
    s.seal_interval = 3600.0  # passes only when asked or after its own commits
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def raw(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain connection on the test's schema: a writer whose transaction we control."""
    with psycopg.connect(pg_url) as conn:
        yield conn


def insert_unsealed(conn: psycopg.Connection[Any], text: str) -> None:
    """What the store's writers do (``_postgres_sql.INSERT_AUDIT``), in ``conn``'s open
    transaction."""
    conn.execute(
        "INSERT INTO audit (at, kind, data_json, actor, txid)"
        " VALUES (2000.0, 'test.note', %s, 'raw', pg_current_xact_id())",
        (json.dumps({"note": text}),),
    )


async def notes(store: bf.Store) -> list[str]:
    return [json.loads(r.data_json)["note"] for r in await store.read_audit(limit=100_000)]


def unsealed(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM audit WHERE seq IS NULL").fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


@pytest.mark.long
async def test_two_processes_writing_at_once_make_one_verifiable_chain(
    store: PostgresStore, pg_url: str
) -> None:
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, pg_url, name, "60")
        for name in ("alpha", "beta")
    ]
    for proc in procs:
        assert await asyncio.wait_for(proc.wait(), 240) == 0
    # the server is shared: another client's open transaction may hold entries back for a
    # moment; a read waits for the reader's own entries, and so for every older one
    await store.append_audit([note("end")], 2000.0)
    records = await store.read_audit(limit=100_000)
    assert [r.seq for r in records] == list(range(1, 362))
    for name in ("alpha", "beta"):  # each writer's entries in the order it committed them
        mine = [json.loads(r.data_json) for r in records if r.actor == name]
        assert [(d["n"], d["k"]) for d in mine] == [(i, k) for i in range(60) for k in range(3)]
    result = await verify_chain(store, seal_lag=0)
    assert result.ok, result.problem
    assert result.entries == 361


async def test_entries_behind_an_open_transaction_are_sealed_after_it_in_a_stable_order(
    store: PostgresStore, raw: psycopg.Connection[Any]
) -> None:
    await store.append_audit([note("first")], 1000.0)
    assert await notes(store) == ["first"]
    raw.execute("SELECT pg_current_xact_id()")  # the open transaction's id is older ...
    await store.append_audit([note("later")], 1001.0)  # ... than this committed one's
    insert_unsealed(raw, "open")  # and its entry's order key is newer
    store.read_wait = 0.0  # do not wait for "later": it is held back on purpose
    assert await notes(store) == ["first"]  # "later" waits for the older transaction
    result = await verify_chain(store, seal_lag=0)
    assert not result.ok
    assert "1 committed audit entries are not sealed" in str(result.problem)
    raw.commit()
    store.read_wait = 5.0
    await store.seal_audit()  # waits for "later", and so for "open", older
    assert await notes(store) == ["first", "open", "later"]  # by transaction id, then order key
    before = [(r.seq, r.hash) for r in await store.read_audit()]
    assert await store.seal_audit() == 0
    assert [(r.seq, r.hash) for r in await store.read_audit()] == before
    result = await verify_chain(store, seal_lag=0)
    assert result.ok, result.problem


async def test_a_rolled_back_transaction_leaves_no_gap(
    store: PostgresStore, raw: psycopg.Connection[Any]
) -> None:
    insert_unsealed(raw, "undone")
    await store.append_audit([note("kept")], 1000.0)
    raw.rollback()
    await store.append_audit([note("also kept")], 1001.0)
    records = await store.read_audit()
    assert [r.seq for r in records] == [1, 2]
    assert await notes(store) == ["kept", "also kept"]
    assert unsealed(raw) == 0
    result = await verify_chain(store, seal_lag=0)
    assert result.ok, result.problem


@pytest.mark.long
async def test_a_process_killed_between_commit_and_seal_is_sealed_by_another(
    store: PostgresStore, pg_url: str, raw: psycopg.Connection[Any]
) -> None:
    lock = psycopg.connect(pg_url, autocommit=True)
    try:  # hold the chain lock, as a pass of another process would, so the writer cannot seal
        lock.execute(
            "SELECT pg_advisory_lock(hashtextextended('batonflow-chain:' || current_schema(), 17))"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", STALLED, pg_url, stdout=asyncio.subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            assert (await proc.stdout.readline()).strip() == b"committed"
            assert unsealed(raw) == 1
            proc.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(proc.wait(), 30) == -signal.SIGKILL
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        lock.close()  # the lock goes with the session
    await store.append_audit([note("after")], 2000.0)
    await store.seal_audit()  # a pass of this process; it waits for its own, newer, entry
    assert unsealed(raw) == 0
    assert await notes_of(store) == [{"who": "stalled"}, {"note": "after"}]
    result = await verify_chain(store, seal_lag=0)
    assert result.ok, result.problem


async def notes_of(store: bf.Store) -> list[Any]:
    return [json.loads(r.data_json) for r in await store.read_audit()]


async def test_a_vote_counts_once_committed_even_before_its_entry_is_sealed(
    store: PostgresStore, raw: psycopg.Connection[Any]
) -> None:
    vote = {"approval": "a1", "by": "ana", "option": "approve", "at": 1000.0}
    raw.execute("SELECT pg_current_xact_id()")  # an older transaction stays open
    entry = AuditEntry("approval.decision", json.dumps(vote), "run-1", None, "ana", ())
    await store.append_audit([entry], 1000.0)
    store.read_wait = 0.0  # do not wait for the entry: it is held back on purpose
    assert await store.read_audit(run_id="run-1") == []  # not sealed yet
    assert await vote_on_trail(store, "run-1", json.dumps(vote))
    assert not await vote_on_trail(store, "run-1", json.dumps({**vote, "option": "reject"}))
    assert not await vote_on_trail(store, "run-2", json.dumps(vote))
    raw.rollback()
    store.read_wait = 5.0
    await store.seal_audit()
    assert [r.kind for r in await store.read_audit(run_id="run-1")] == ["approval.decision"]
    assert await vote_on_trail(store, "run-1", json.dumps(vote))  # now through the chain
